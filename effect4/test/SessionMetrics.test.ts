/**
 * What an operator's dashboard sees on the Effect 4 line, as on the Effect 3
 * line (test/Observability.test.ts): the metrics of `SessionMetrics`, with
 * the same names and attributes — store operations by store, operation and
 * outcome, and their latency; conflict replays, moves, revocations by kind,
 * undecodable and oversized sessions — recorded by requests over real HTTP.
 */
import { assert, describe, expect, it } from "@effect/vitest"
import { Effect, Layer, Metric, Option, Schema } from "effect"
import { HttpRouter, HttpServerResponse } from "effect/http"
import * as MemoryStore from "../src/MemoryStore.js"
import * as Session from "../src/Session.js"
import { SessionConflict, SessionStoreError } from "../src/SessionError.js"
import * as SessionError from "../src/SessionError.js"
import * as Id from "../src/SessionId.js"
import * as SessionMetrics from "../src/SessionMetrics.js"
import * as SessionStoreModule from "../src/SessionStore.js"
import { SessionIndex, SessionStore } from "../src/SessionStore.js"
import { browser, get, serve } from "./utils/server.js"

class Metered extends Session.Tag<Metered>()("test/e4metrics/Metered", {
  visits: Schema.Int.pipe(Schema.withDecodingDefault(Effect.succeed(0))),
  note: Schema.optional(Schema.String)
}) {}

const ok = HttpServerResponse.text("ok")
const param = (name: string) => Effect.map(HttpRouter.params, (params) => params[name] ?? "")

/** The routes on `store`, with `revokeAll` over the memory store's index. */
const app = (memory: MemoryStore.MemoryStore, store: SessionStore["Service"] = memory.store) =>
  Layer.mergeAll(
    Layer.mergeAll(
      HttpRouter.add("GET", "/incr", Effect.as(Metered.update("visits", (n) => n + 1), ok)),
      HttpRouter.add("GET", "/read", Effect.map(Metered.get("visits"), (n) => HttpServerResponse.text(String(n)))),
      HttpRouter.add("GET", "/big", Effect.as(Metered.set("note", "x".repeat(2_000)), ok)),
      HttpRouter.add("GET", "/regenerate", Effect.as(Metered.regenerate, ok)),
      HttpRouter.add("GET", "/login/:user", Effect.as(Effect.flatMap(param("user"), (user) => Metered.login(user)), ok)),
      HttpRouter.add("GET", "/logout", Effect.as(Metered.invalidate, ok))
    ).pipe(
      Layer.provide(Metered.middleware({ cookie: { secure: false }, maxSize: 1_000 }).combine(SessionError.respond).layer),
      Layer.provide(Layer.succeed(SessionStore)(store))
    ),
    HttpRouter.add(
      "POST",
      "/revoke/:user",
      Effect.flatMap(param("user"), (user) =>
        Effect.map(
          Session.revokeAll(user).pipe(
            Effect.provideService(SessionIndex, memory.index),
            Effect.provideService(SessionStore, memory.store)
          ),
          (n) => HttpServerResponse.text(String(n))
        ))
    )
  )

/** The count of one series of a counter. */
const count = (metric: Metric.Counter<number>, attributes: Record<string, string> = {}) =>
  Effect.map(Metric.value(Metric.withAttributes(metric, attributes)), (state) => state.count)

const operations = (store: string, operation: string, outcome: string) =>
  count(SessionMetrics.storeOperations, { store, operation, outcome })

/** How many durations the histogram of one store operation holds. */
const timed = (store: string, operation: string) =>
  Effect.map(
    Metric.value(Metric.withAttributes(SessionMetrics.storeOperationDuration, { store, operation })),
    (state) => state.count
  )

describe("SessionMetrics (Effect 4)", () => {
  it.live("store operations of requests are counted by store, operation and outcome, and timed", () =>
    Effect.gen(function*() {
      const memory = MemoryStore.make()
      const client = browser(yield* serve(app(memory)))
      const before = {
        insert: yield* operations("memory", "insert", "success"),
        load: yield* operations("memory", "load", "success"),
        update: yield* operations("memory", "update", "success"),
        timedLoads: yield* timed("memory", "load")
      }
      // a new session (inserted), then a known one (loaded, updated), then read
      yield* client.get("/incr")
      yield* client.get("/incr")
      expect((yield* client.get("/read")).body).toBe("2")
      expect((yield* operations("memory", "insert", "success")) - before.insert).toBe(1)
      expect((yield* operations("memory", "load", "success")) - before.load).toBe(2)
      expect((yield* operations("memory", "update", "success")) - before.update).toBe(1)
      expect((yield* timed("memory", "load")) - before.timedLoads).toBe(2)
      // what an exporter reads: the series under the Effect 3 line's names and attributes
      const snapshot = yield* Metric.snapshot
      const counted = snapshot.find((metric) =>
        metric.id === "effect_session_store_operations_total" && metric.attributes?.operation === "load" &&
        metric.attributes?.store === "memory"
      )
      assert(counted !== undefined)
      expect(counted.type).toBe("Counter")
      expect(counted.attributes).toEqual({ store: "memory", operation: "load", outcome: "success" })
      const durations = snapshot.find((metric) =>
        metric.id === "effect_session_store_operation_duration" && metric.attributes?.operation === "load" &&
        metric.attributes?.store === "memory"
      )
      assert(durations !== undefined)
      expect(durations.type).toBe("Histogram")
      expect(durations.attributes).toEqual({ time_unit: "milliseconds", store: "memory", operation: "load" })
    }).pipe(Effect.scoped))

  it.live("an operation called through the service, outside a request, is counted too", () =>
    Effect.gen(function*() {
      const memory = MemoryStore.make()
      const before = yield* operations("memory", "load", "success")
      yield* memory.store.load(Id.storageKey(Id.generateUnsafe()))
      expect((yield* operations("memory", "load", "success")) - before).toBe(1)
    }))

  it.live("a store that fails is counted as a failure, a lost compare-and-set as a conflict and a replay", () =>
    Effect.gen(function*() {
      const memory = MemoryStore.make()
      const inner = memory.store
      const client = browser(yield* serve(app(memory)))
      yield* client.get("/incr")
      // the first update of every key loses, as if another process had saved first
      const lost = new Set<string>()
      const flaky = SessionStoreModule.make("flaky", {
        ...inner,
        update: (key, write, version) => {
          if (lost.has(key)) return inner.update(key, write, version)
          lost.add(key)
          return Effect.fail(new SessionConflict({ reason: "VersionMismatch" }))
        }
      })
      const conflicts = yield* operations("flaky", "update", "conflict")
      const replays = yield* count(SessionMetrics.conflictReplays)
      const flakyBase = yield* serve(app(memory, flaky))
      expect((yield* get(`${flakyBase}/incr`, client.cookie)).status).toBe(200)
      expect((yield* client.get("/read")).body).toBe("2")
      expect((yield* operations("flaky", "update", "conflict")) - conflicts).toBe(1)
      expect((yield* count(SessionMetrics.conflictReplays)) - replays).toBe(1)

      const down = SessionStoreModule.make("down", {
        ...inner,
        load: () => Effect.fail(new SessionStoreError({ store: "down", operation: "load", cause: new Error("connection refused") }))
      })
      const failures = yield* operations("down", "load", "failure")
      const downBase = yield* serve(app(memory, down))
      expect((yield* get(`${downBase}/read`, client.cookie)).status).toBe(503)
      expect((yield* operations("down", "load", "failure")) - failures).toBe(1)
    }).pipe(Effect.scoped))

  it.live("oversized sessions, moves, logouts, revokeAll and undecodable sessions are counted", () =>
    Effect.gen(function*() {
      const memory = MemoryStore.make()
      const base = yield* serve(app(memory))
      const tooLarge = yield* count(SessionMetrics.tooLarge)
      const moved = yield* count(SessionMetrics.regenerations)
      const logouts = yield* count(SessionMetrics.revocations, { kind: "logout" })
      const revoked = yield* count(SessionMetrics.revocations, { kind: "revokeAll" })
      const undecodable = yield* count(SessionMetrics.undecodable)

      const client = browser(base)
      expect((yield* client.get("/big")).status).toBe(413)
      expect((yield* count(SessionMetrics.tooLarge)) - tooLarge).toBe(1)

      yield* client.get("/incr")
      yield* client.get("/regenerate")
      yield* client.get("/login/zoe")
      expect((yield* count(SessionMetrics.regenerations)) - moved).toBe(2)
      yield* client.get("/logout")
      expect((yield* count(SessionMetrics.revocations, { kind: "logout" })) - logouts).toBe(1)

      const alices = [browser(base), browser(base), browser(base)]
      for (const alice of alices) yield* alice.get("/login/alice")
      expect((yield* get(`${base}/revoke/alice`, undefined, "POST")).body).toBe("3")
      expect((yield* count(SessionMetrics.revocations, { kind: "revokeAll" })) - revoked).toBe(3)

      const id = Id.generateUnsafe()
      yield* memory.store.insert(Id.storageKey(id), {
        text: "not an envelope",
        expiresAt: Date.now() + 60_000,
        principal: Option.none()
      })
      expect((yield* get(`${base}/read`, `session=${id}`)).body).toBe("0")
      expect((yield* count(SessionMetrics.undecodable)) - undecodable).toBe(1)
    }).pipe(Effect.scoped))
})
