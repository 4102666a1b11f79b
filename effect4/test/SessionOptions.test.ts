/**
 * The middleware's options on the Effect 4 line, each observed where a user
 * sees it: the status of the response, the attributes of its Set-Cookie,
 * what the store holds and which store calls a request made. Through a real
 * HTTP server on the memory store and on Redis; time is the TestClock's.
 */
import { expect, it } from "@effect/vitest"
import type { Scope } from "effect"
import { Context, Effect, Exit, Layer, Option, Schema } from "effect"
import { HttpRouter, HttpServerResponse } from "effect/http"
import { TestClock } from "effect/testing"
import * as Session from "../src/Session.js"
import * as SessionError from "../src/SessionError.js"
import * as SessionId from "../src/SessionId.js"
import { SessionStore } from "../src/SessionStore.js"
import type { Calls } from "./utils/contention.js"
import { backends, buildStore, counting, parseSetCookie, resetCalls, serveOn } from "./utils/contention.js"
import { availabilityOf, describeBackend, preparedFor } from "./utils/contentionSuites.js"
import type { Answer } from "./utils/server.js"
import { browser } from "./utils/server.js"

class OptionsSession extends Session.Tag<OptionsSession>()("test/OptionsSession", {
  username: Schema.optional(Schema.String),
  visits: Schema.Number.pipe(Schema.withDecodingDefault(Effect.succeed(0)))
}) {}

const ok = HttpServerResponse.text("ok")

/**
 * The routes under `prefix`, with the session of `options` (the cookie not
 * Secure: plain HTTP), over `store`.
 */
const app = (options: Session.Options = {}, prefix: "" | "/app" = "") => (store: SessionStore["Service"]) => {
  const route = <E, R>(path: `/${string}`, handler: Effect.Effect<HttpServerResponse.HttpServerResponse, E, R>) =>
    HttpRouter.add("GET", `${prefix}${path}`, handler)
  return Layer.mergeAll(
    route("/show", Effect.map(OptionsSession.getAll, (s) => HttpServerResponse.text(`${s.username ?? "anonymous"}:${s.visits}`))),
    route("/incr", Effect.as(OptionsSession.update("visits", (n) => n + 1), ok)),
    route("/set-short", Effect.as(OptionsSession.set("username", "s".repeat(20)), ok)),
    route("/set-long", Effect.as(OptionsSession.set("username", "l".repeat(300)), ok)),
    route("/invalidate", Effect.as(OptionsSession.invalidate, ok)),
    // reads the session, then removes its record as a concurrent logout would
    // between this request's load and its commit
    route(
      "/read-then-drop",
      Effect.gen(function*() {
        const username = yield* OptionsSession.get("username")
        const id = yield* OptionsSession.id
        yield* store.remove(SessionId.makeStorageKey()(id))
        return HttpServerResponse.text(username ?? "anonymous")
      })
    )
  ).pipe(
    Layer.provide(
      OptionsSession.middleware({ ...options, cookie: { secure: false, ...options.cookie } }).combine(SessionError.respond).layer
    )
  )
}

/** The one Set-Cookie of a response, parsed; fails the test when there is none or more. */
const onlyCookie = (res: Answer) => {
  expect(res.setCookie).toHaveLength(1)
  return parseSetCookie(res.setCookie[0])
}

interface Served {
  readonly client: ReturnType<typeof browser>
  readonly calls: Calls
  readonly store: SessionStore["Service"]
}

const day = 24 * 3600

for (const backend of backends) {
  describeBackend(`session options on ${backend.name}`, await availabilityOf(backend), () => {
    const spec = preparedFor(backend, "options")
    /**
     * `routes` over a new instance of the store, its calls counted, and a
     * browser. The TestClock starts at the real time (Redis expires keys
     * on its own clock as well).
     */
    const serveCounted = <A, E, R>(
      routes: (store: SessionStore["Service"]) => Layer.Layer<A, E, R>
    ): Effect.Effect<Served, unknown, Scope.Scope> =>
      Effect.gen(function*() {
        yield* TestClock.setTime(Date.now())
        const { store } = yield* buildStore(spec())
        const counted = counting(store)
        const base = yield* serveOn(routes(counted.store), Context.make(SessionStore, counted.store))
        return { client: browser(base), calls: counted.calls, store: counted.store }
      })
    const storedRecord = (served: Served, cookie: string) =>
      served.store.load(SessionId.makeStorageKey()(cookie.slice("session=".length) as SessionId.SessionId))

    it.effect("a session over a small maxSize answers 413 and stores nothing; under it, it is stored; grown over it, it stays as it was", () =>
      Effect.scoped(Effect.gen(function*() {
        const served = yield* serveCounted(app({ maxSize: 200 }))
        const { client } = served
        // 300 characters are far under the 64 KiB default, over the 200 bytes configured
        let calls = resetCalls(served.calls)
        const fresh = yield* client.get("/set-long")
        expect(fresh.status).toBe(413)
        expect(fresh.setCookie).toEqual([])
        expect(calls).toEqual({})
        // 20 characters fit: a new session, stored
        const short = yield* client.get("/set-short")
        expect(short.status).toBe(200)
        onlyCookie(short)
        expect(Option.isSome(yield* storedRecord(served, client.cookie!))).toBe(true)
        // a stored session grown over the limit: the request fails, the record stays as it was
        calls = resetCalls(served.calls)
        const grown = yield* client.get("/set-long")
        expect(grown.status).toBe(413)
        expect(grown.setCookie).toEqual([])
        expect(calls).toEqual({ load: 1 })
        expect((yield* client.get("/show")).body).toBe(`${"s".repeat(20)}:0`)
      })))

    it.effect("withSession honours maxSize too, with a message that says the size and the limit", () =>
      Effect.scoped(Effect.gen(function*() {
        const { context } = yield* buildStore(spec())
        const run = <A, E>(effect: Effect.Effect<A, E, SessionStore>) => Effect.provide(effect, context)
        const exit = yield* Effect.exit(run(OptionsSession.withSession("", OptionsSession.set("username", "l".repeat(300)), { maxSize: 200 })))
        expect(Exit.isFailure(exit)).toBe(true)
        const error = yield* Effect.flip(run(OptionsSession.withSession("", OptionsSession.set("username", "l".repeat(300)), { maxSize: 200 })))
        expect(error._tag).toBe("SessionTooLarge")
        expect(error.message).toMatch(/^session data encodes to \d+ bytes, over the limit of 200 bytes$/)
        // the same write under the default limit is stored
        const id = yield* run(OptionsSession.withSession("", Effect.andThen(OptionsSession.set("username", "l".repeat(300)), OptionsSession.id)))
        expect(yield* run(OptionsSession.withSession(id, OptionsSession.get("username")))).toBe("l".repeat(300))
      })))

    it.effect("a read-only request whose deadline must move, on a session removed meanwhile, sends no cookie", () =>
      Effect.scoped(Effect.gen(function*() {
        const served = yield* serveCounted(app({ idleTimeout: "1 hour", touchAfter: "1 minute" }))
        const { client } = served
        yield* client.get("/set-short")
        const cookie = client.cookie!
        yield* TestClock.adjust("2 minutes")
        // the control: a read past touchAfter moves the deadline and re-sends the cookie
        const touched = yield* client.get("/show")
        expect(`session=${onlyCookie(touched).value}`).toBe(cookie)
        // a response that re-sends the cookie is kept out of shared caches too
        expect(touched.headers.get("cache-control")).toBe("private")
        yield* TestClock.adjust("2 minutes")
        const calls = resetCalls(served.calls)
        const dropped = yield* client.get("/read-then-drop")
        expect(dropped.status).toBe(200)
        expect(dropped.body).toBe("s".repeat(20))
        // the touch ran and found nothing: re-sending the cookie would give the
        // browser a fresh lifetime for a session that no longer exists
        expect(calls).toEqual({ load: 1, remove: 1, touch: 1 })
        expect(dropped.setCookie).toEqual([])
        // and the touch did not bring the record back
        expect(Option.isNone(yield* storedRecord(served, cookie))).toBe(true)
        expect((yield* client.get("/show")).body).toBe("anonymous:0")
      })))

    it.effect("httpOnly: false leaves HttpOnly off every Set-Cookie, the expiring one included", () =>
      Effect.scoped(Effect.gen(function*() {
        const { client } = yield* serveCounted(app({ cookie: { httpOnly: false } }))
        const set = onlyCookie(yield* client.get("/incr"))
        expect(set.attributes["httponly"]).toBeUndefined()
        // the other attributes are still the defaults
        expect(set.attributes).toMatchObject({ samesite: "Lax", path: "/" })
        const expired = onlyCookie(yield* client.get("/invalidate"))
        expect(expired.attributes["max-age"]).toBe("0")
        expect(expired.attributes["httponly"]).toBeUndefined()
      })))

    it.effect("a non-root path is on the cookie set on insert, on touch and on the expiring one", () =>
      Effect.scoped(Effect.gen(function*() {
        const { client } = yield* serveCounted(app({ cookie: { path: "/app" }, touchAfter: "1 minute" }, "/app"))
        const inserted = onlyCookie(yield* client.get("/app/incr"))
        expect(inserted.attributes).toMatchObject({ path: "/app", httponly: true })
        yield* TestClock.adjust("2 minutes")
        const touched = onlyCookie(yield* client.get("/app/show"))
        expect(touched.value).toBe(inserted.value)
        expect(touched.attributes["path"]).toBe("/app")
        // a browser deletes a cookie only when the expiring one names the same path
        const expired = onlyCookie(yield* client.get("/app/invalidate"))
        expect(expired.value).toBe("")
        expect(expired.attributes).toMatchObject({ path: "/app", "max-age": "0" })
      })))

    it.effect("with the defaults, a session used every day is dead 30 days after it began", () =>
      Effect.scoped(Effect.gen(function*() {
        const { client } = yield* serveCounted(app())
        // day 0: 14 days of idle lifetime
        expect(onlyCookie(yield* client.get("/incr")).attributes["max-age"]).toBe(String(14 * day))
        const maxAges: Array<ReadonlyArray<string | true | undefined>> = []
        for (let d = 1; d <= 29; d++) {
          yield* TestClock.adjust("1 day")
          const res = yield* client.get("/incr")
          expect(res.status).toBe(200)
          maxAges.push(res.setCookie.map((line) => parseSetCookie(line).attributes["max-age"]))
        }
        // the idle deadline moves with every request until it reaches the
        // absolute one: day 16's cookie lives exactly until day 30, and from
        // then on the deadline cannot move, so no cookie is sent
        expect(maxAges.slice(0, 16)).toEqual(Array.from({ length: 16 }, () => [String(14 * day)]))
        expect(maxAges.slice(16)).toEqual(Array.from({ length: 13 }, () => []))
        yield* TestClock.adjust("23 hours")
        yield* TestClock.adjust("59 minutes")
        expect((yield* client.get("/show")).body).toBe("anonymous:30")
        yield* TestClock.adjust("1 minute")
        expect((yield* client.get("/show")).body).toBe("anonymous:0")
      })))
  })
}
