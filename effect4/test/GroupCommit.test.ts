/**
 * Group commit on the Effect 4 line: the updates of one process to one
 * session that wait for each other are written together. What a user sees:
 * every request's writes count, and a write that cannot be stored (over
 * maxSize, a value failing the schema) fails its own request only. On the
 * memory store and on Redis.
 */
import { expect, it } from "@effect/vitest"
import { Context, Effect, Layer, Schema } from "effect"
import { HttpRouter, HttpServerResponse } from "effect/http"
import * as Session from "../src/Session.js"
import * as SessionError from "../src/SessionError.js"
import { SessionStore } from "../src/SessionStore.js"
import { backends, buildStore, counting, makeBarrier, resetCalls, serveOn } from "./utils/contention.js"
import { availabilityOf, describeBackend, preparedFor } from "./utils/contentionSuites.js"
import { get, sessionCookie } from "./utils/server.js"

class GroupSession extends Session.Tag<GroupSession>()("test/GroupSession", {
  counter: Schema.Number.pipe(Schema.withDecodingDefault(Effect.succeed(0))),
  note: Schema.optional(Schema.String),
  even: Schema.optional(Schema.Int)
}) {}

const text = (body: string) => HttpServerResponse.text(body)

// a barrier after the write holds each request of a burst until all have
// written: their saves then queue together behind the first one
// SessionError.respond answers a session over maxSize 413 and a value that
// fails the schema 500
const routes = (barrier: Effect.Effect<void>) => {
  const burst = (write: Effect.Effect<void, SessionError.SessionError, GroupSession>) =>
    Effect.as(Effect.andThen(write, barrier), text("ok"))
  return Layer.mergeAll(
    HttpRouter.add("GET", "/start", Effect.as(GroupSession.update("counter", (n) => n + 1), text("ok"))),
    HttpRouter.add("GET", "/incr", burst(GroupSession.update("counter", (n) => n + 1))),
    HttpRouter.add("GET", "/big", burst(GroupSession.set("note", "x".repeat(2000)))),
    HttpRouter.add("GET", "/not-an-int", burst(GroupSession.set("even", 1.5))),
    HttpRouter.add("GET", "/show", Effect.map(GroupSession.getAll, (all) => text(JSON.stringify(all))))
  ).pipe(
    Layer.provide(
      GroupSession.middleware({ cookie: { secure: false }, maxSize: 1000, idleTimeout: "10 minutes" }).combine(SessionError.respond)
        .layer
    )
  )
}

const statusOf = (path: string) => path === "/big" ? 413 : path === "/not-an-int" ? 500 : 200

for (const backend of backends) {
  describeBackend(`group commit on ${backend.name}`, await availabilityOf(backend), () => {
    const spec = preparedFor(backend, "group")

    /** The app over a new instance of the store, counted, with a barrier for a burst of `parties`. */
    const start = (parties: number) =>
      Effect.gen(function*() {
        const { store } = yield* buildStore(spec())
        // a store round trip of a few ms at least, so that requests queue behind a write
        const counted = counting(store, 3)
        const base = yield* serveOn(routes(yield* makeBarrier(parties)), Context.make(SessionStore, counted.store))
        const cookie = sessionCookie(yield* get(`${base}/start`))!
        expect(cookie).toBeDefined()
        return { base, cookie, calls: resetCalls(counted.calls) }
      })

    it.live("40 concurrent increments queued together are written in fewer writes than requests, and all count", () =>
      Effect.gen(function*() {
        const { base, calls, cookie } = yield* start(40)
        const results = yield* Effect.forEach(Array.from({ length: 40 }), () => get(`${base}/incr`, cookie), {
          concurrency: "unbounded"
        })
        expect(results.map((r) => r.status)).toEqual(results.map(() => 200))
        expect(JSON.parse((yield* get(`${base}/show`, cookie)).body)).toEqual({ counter: 41 })
        // grouped: fewer writes than requests, and no write was lost (no
        // reload: one load per request)
        expect(calls["load"]).toBe(41)
        expect(calls["update"]).toBeLessThan(20)
      }).pipe(Effect.scoped))

    it.live("an oversized or invalid update in a group fails its own request only; the others are written", () =>
      Effect.gen(function*() {
        const { base, calls, cookie } = yield* start(40)
        const paths = Array.from({ length: 40 }, (_, i) => i === 13 ? "/big" : i === 27 ? "/not-an-int" : "/incr")
        const results = yield* Effect.forEach(paths, (path) => get(`${base}${path}`, cookie), { concurrency: "unbounded" })
        expect(results.map((r) => r.status)).toEqual(paths.map(statusOf))
        expect(JSON.parse((yield* get(`${base}/show`, cookie)).body)).toEqual({ counter: 39 })
        expect(calls["load"]).toBe(41)
      }).pipe(Effect.scoped))
  })
}
