/**
 * What an operator sees on the Effect 4 line, as on the Effect 3 line
 * (test/Observability.test.ts): every store operation runs in a span named
 * after it (`effect-session.load`, `.insert`, …) under the request's span,
 * carrying the store's name and a prefix of the storage key, never the
 * session id nor the whole key; a failed operation ends its span failed.
 */
import { assert, describe, expect, it } from "@effect/vitest"
import { Effect, Exit, Layer, Option, Schema, Tracer } from "effect"
import { HttpRouter, HttpServerResponse } from "effect/http"
import * as MemoryStore from "../src/MemoryStore.js"
import * as Session from "../src/Session.js"
import { SessionStoreError } from "../src/SessionError.js"
import * as Id from "../src/SessionId.js"
import * as SessionStoreModule from "../src/SessionStore.js"
import { SessionStore } from "../src/SessionStore.js"
import { browser, get, serve } from "./utils/server.js"

class ObservedSession extends Session.Tag<ObservedSession>()("test/e4obs/ObservedSession", {
  name: Schema.optional(Schema.String),
  visits: Schema.Int.pipe(Schema.withDecodingDefault(Effect.succeed(0)))
}) {}

/** A tracer that keeps every span it makes (Effect's own span, with its attributes and end). */
const recording = () => {
  const spans: Array<Tracer.NativeSpan> = []
  const tracer = Tracer.make({
    span(options) {
      const span = new Tracer.NativeSpan(options)
      spans.push(span)
      return span
    }
  })
  return { spans, tracer, named: (name: string) => spans.filter((span) => span.name === name) }
}

const parentOf = (span: Tracer.NativeSpan): Tracer.Span | undefined => {
  const parent = Option.getOrUndefined(span.parent)
  return parent?._tag === "Span" ? parent : undefined
}
const parentName = (span: Tracer.NativeSpan): string | undefined => parentOf(span)?.name

/** Every attribute of every span, as text: the id must be in none of them. */
const everyAttribute = (spans: ReadonlyArray<Tracer.NativeSpan>) =>
  spans.flatMap((span) => [...span.attributes.values()].map(String))

const storeSpanNames = ["load", "insert", "update", "touch", "remove"].map((op) => `effect-session.${op}`)

describe("spans of store operations", () => {
  it.effect("load, insert, update and remove each run in a span under the request's, with the store and a key prefix only", () =>
    Effect.gen(function*() {
      const { spans, tracer } = recording()
      const traced = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
        effect.pipe(Effect.withSpan("request"), Effect.withTracer(tracer))
      // a new session: its id is issued, nothing is loaded; saved by an insert
      const id = yield* traced(
        ObservedSession.withSession("", Effect.andThen(ObservedSession.set("name", "alice"), ObservedSession.id))
      )
      const key = Id.storageKey(id)
      // a known id: loaded, then saved by a compare-and-set
      yield* traced(ObservedSession.withSession(id, ObservedSession.update("visits", (n) => n + 1)))
      // logout: loaded, then removed
      yield* traced(ObservedSession.withSession(id, ObservedSession.invalidate))

      expect(spans.map((span) => span.name)).toEqual([
        "request",
        "effect-session.insert",
        "request",
        "effect-session.load",
        "effect-session.update",
        "request",
        "effect-session.load",
        // a logout writes its tombstone over the record, then removes it
        "effect-session.update",
        "effect-session.remove"
      ])
      const storeSpans = spans.filter((span) => storeSpanNames.includes(span.name))
      for (const span of storeSpans) {
        expect(parentName(span)).toBe("request")
        expect(span.attributes.get("effect-session.store")).toBe("memory")
        // a prefix of the storage key (the SHA-256 of the id), enough to correlate
        expect(span.attributes.get("effect-session.key")).toBe(Id.logPrefix(key))
        expect(span.attributes.get("effect-session.key")).toBe(key.slice(0, 8))
        assert(span.status._tag === "Ended")
        expect(Exit.isSuccess(span.status.exit)).toBe(true)
      }
      // neither the id nor the whole storage key is in any attribute of any span
      const texts = everyAttribute(spans)
      expect(texts.filter((text) => text.includes(id) || text.includes(key))).toEqual([])
    }).pipe(Effect.provide(MemoryStore.layer())))

  it.effect("revokeAll's operations are spans of the index, with the store and no key", () =>
    Effect.gen(function*() {
      const { named, tracer } = recording()
      yield* ObservedSession.withSession("", ObservedSession.login("alice"))
      const listed = yield* Session.list("alice").pipe(Effect.withTracer(tracer))
      expect(listed).toHaveLength(1)
      yield* Session.revokeAll("alice").pipe(Effect.withTracer(tracer))
      const keys = named("effect-session.keys")
      expect(keys.length).toBeGreaterThanOrEqual(1)
      expect(named("effect-session.removeAll").length).toBeGreaterThanOrEqual(1)
      for (const span of [...keys, ...named("effect-session.removeAll")]) {
        expect(span.attributes.get("effect-session.store")).toBe("memory")
        expect(span.attributes.has("effect-session.key")).toBe(false)
        // the principal is not an attribute either
        expect([...span.attributes.values()].map(String)).not.toContain("alice")
      }
    }).pipe(Effect.provide(MemoryStore.layer())))

  it.effect("a store that fails ends its operation's span failed, with the store's name", () =>
    Effect.gen(function*() {
      const { named, tracer } = recording()
      const { store } = MemoryStore.make()
      const down = SessionStoreModule.make("down", {
        ...store,
        load: () => Effect.fail(new SessionStoreError({ store: "down", operation: "load", cause: new Error("connection refused") }))
      })
      const id = Id.generateUnsafe()
      const exit = yield* ObservedSession.withSession(id, ObservedSession.get("name")).pipe(
        Effect.provideService(SessionStore, down),
        Effect.withTracer(tracer),
        Effect.exit
      )
      expect(Exit.isFailure(exit)).toBe(true)
      const failed = named("effect-session.load").filter((span) => span.attributes.get("effect-session.store") === "down")
      expect(failed).toHaveLength(1)
      assert(failed[0].status._tag === "Ended")
      expect(Exit.isFailure(failed[0].status.exit)).toBe(true)
      expect(failed[0].attributes.get("effect-session.key")).toBe(Id.logPrefix(Id.storageKey(id)))
    }))

  it.live("over HTTP, a request's store operations are spans under the server's request span", () =>
    Effect.gen(function*() {
      const { spans, tracer } = recording()
      const routes = HttpRouter.add(
        "GET",
        "/incr",
        Effect.as(ObservedSession.update("visits", (n) => n + 1), HttpServerResponse.text("ok"))
      ).pipe(
        Layer.provide(ObservedSession.middleware({ cookie: { secure: false } }).layer),
        Layer.provide(MemoryStore.layer())
      )
      // the server's fibers run with the tracer they were started with
      const base = yield* Effect.withTracer(serve(routes), tracer)
      const client = browser(base)
      yield* client.get("/incr")
      yield* client.get("/incr")
      const cookie = client.cookie
      assert(cookie !== undefined)
      const id = cookie.slice("session=".length)
      const storeSpans = spans.filter((span) => storeSpanNames.includes(span.name))
      expect(storeSpans.map((span) => span.name)).toEqual([
        "effect-session.insert",
        "effect-session.load",
        "effect-session.update"
      ])
      for (const span of storeSpans) {
        // the span the server opened for the request
        const parent = parentOf(span)
        assert(parent !== undefined)
        expect(parent.kind).toBe("server")
        expect(parent.name).toBe("GET")
        expect(span.attributes.get("effect-session.key")).toBe(Id.logPrefix(Id.storageKey(id as Id.SessionId)))
      }
      expect(everyAttribute(spans).filter((text) => text.includes(id))).toEqual([])
      // an unknown id is loaded (and found missing) in a span too
      yield* get(`${base}/incr`, `session=${"A".repeat(43)}`)
      expect(spans.filter((span) => span.name === "effect-session.load")).toHaveLength(2)
    }).pipe(Effect.scoped))
})
