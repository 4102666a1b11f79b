/**
 * The middleware's options, each observed where a user sees it: the status of
 * the response, the attributes of its Set-Cookie, what the store holds. Through
 * a real HTTP server (`NodeHttpServer.layerTest`), a cookie-jar browser and the
 * MemoryStore; time is the TestClock's.
 */
import { HttpRouter, HttpServerResponse } from "@effect/platform"
import { assert, describe, expect, it } from "@effect/vitest"
import { Cause, Effect, Exit, Layer, Option, Schema, TestClock } from "effect"
import * as MemoryStore from "../src/MemoryStore.js"
import * as Session from "../src/Session.js"
import * as SessionId from "../src/SessionId.js"
import { SessionStore } from "../src/SessionStore.js"
import { counting, makeBrowser, parseSetCookie, serve, StoreCalls } from "./utils/http.js"
import type { Response } from "./utils/http.js"

class OptionsSession extends Session.Tag<OptionsSession>()("test/OptionsSession", {
  username: Schema.optional(Schema.String),
  visits: Schema.optionalWith(Schema.Number, { default: () => 0 })
}) {}

const ok = HttpServerResponse.text("ok")

const show = Effect.map(
  OptionsSession.getAll,
  (s) => HttpServerResponse.text(`${s.username ?? "anonymous"}:${s.visits}`)
)

const routes = HttpRouter.empty.pipe(
  HttpRouter.get("/show", show),
  HttpRouter.get("/incr", Effect.as(OptionsSession.update("visits", (n) => n + 1), ok)),
  HttpRouter.get("/set-short", Effect.as(OptionsSession.set("username", "s".repeat(20)), ok)),
  HttpRouter.get("/set-long", Effect.as(OptionsSession.set("username", "l".repeat(300)), ok)),
  HttpRouter.get("/invalidate", Effect.as(OptionsSession.invalidate, ok)),
  // reads the session, then removes its record as a concurrent logout would
  // between this request's load and its commit
  HttpRouter.get(
    "/read-then-drop",
    Effect.gen(function*() {
      const username = yield* OptionsSession.get("username")
      const id = yield* OptionsSession.id
      const store = yield* SessionStore
      yield* store.remove(SessionId.storageKey(id))
      return HttpServerResponse.text(username ?? "anonymous")
    })
  )
)

const app = (options?: Session.Options) =>
  routes.pipe(OptionsSession.middleware({ ...options, cookie: { secure: false, ...options?.cookie } }))

const env = <E, R>(httpApp: Parameters<typeof serve<E, R>>[0], store = MemoryStore.layer()) =>
  serve(httpApp).pipe(Layer.provideMerge(counting(store)))

const resetCalls = Effect.map(StoreCalls, (calls) => {
  for (const k of Object.keys(calls)) delete calls[k]
  return calls
})

const storedRecord = (id: string) =>
  Effect.flatMap(SessionStore, (store) => store.load(SessionId.storageKey(id as SessionId.SessionId)))

/** The one Set-Cookie of a response, parsed; fails the test when there is none or more. */
const onlyCookie = (res: Response) => {
  expect(res.setCookies.length).toBe(1)
  return parseSetCookie(res.setCookies[0])
}

describe("maxSize", () => {
  const limited = app({ maxSize: 200 }).pipe(
    Effect.catchTag("SessionTooLarge", (e) => HttpServerResponse.text(e.message, { status: 413 }))
  )

  it.effect("a session over a small maxSize fails with SessionTooLarge and stores nothing; under it, it is stored", () =>
    Effect.gen(function*() {
      const browser = yield* makeBrowser
      // 300 characters are far under the 64 KiB default, over the 200 bytes configured
      let calls = yield* resetCalls
      const fresh = yield* browser.get("/set-long")
      expect(fresh.status).toBe(413)
      expect(fresh.body).toMatch(/^session data encodes to \d+ bytes, over the limit of 200 bytes$/)
      expect(fresh.setCookies).toEqual([])
      expect(calls).toEqual({})
      // 20 characters fit: a new session, stored
      const short = yield* browser.get("/set-short")
      expect(short.status).toBe(200)
      const id = onlyCookie(short).value
      assert(Option.isSome(yield* storedRecord(id)))
      // a stored session grown over the limit: the request fails, the record stays as it was
      calls = yield* resetCalls
      const grown = yield* browser.get("/set-long")
      expect(grown.status).toBe(413)
      expect(grown.setCookies).toEqual([])
      expect(calls).toEqual({ load: 1 })
      expect((yield* browser.get("/show")).body).toBe(`${"s".repeat(20)}:0`)
    }).pipe(Effect.provide(env(limited))))

  it.effect("withSession honours maxSize too", () =>
    Effect.gen(function*() {
      const options: Session.Options = { maxSize: 200 }
      const exit = yield* Effect.exit(
        OptionsSession.withSession("", OptionsSession.set("username", "l".repeat(300)), options)
      )
      assert(Exit.isFailure(exit))
      const failure = Cause.failureOption(exit.cause)
      assert(Option.isSome(failure))
      expect(failure.value._tag).toBe("SessionTooLarge")
      // the same write under the default limit succeeds
      const id = yield* OptionsSession.withSession(
        "",
        Effect.zipRight(OptionsSession.set("username", "l".repeat(300)), OptionsSession.id)
      )
      assert(Option.isSome(yield* storedRecord(id)))
    }).pipe(Effect.provide(MemoryStore.layer())))
})

describe("a touch that finds the session gone", () => {
  it.effect("a read-only request whose deadline must move, on a session removed meanwhile, sends no cookie", () =>
    Effect.gen(function*() {
      const browser = yield* makeBrowser
      yield* browser.get("/set-short")
      const id = browser.jar.get("session")!
      yield* TestClock.adjust("2 minutes")
      // the control: a read past touchAfter moves the deadline and re-sends the cookie
      const touched = yield* browser.get("/show")
      expect(onlyCookie(touched).value).toBe(id)
      yield* TestClock.adjust("2 minutes")
      const calls = yield* resetCalls
      const dropped = yield* browser.get("/read-then-drop")
      expect(dropped.status).toBe(200)
      expect(dropped.body).toBe("s".repeat(20))
      // the touch ran and found nothing: re-sending the cookie would give the
      // browser a fresh lifetime for a session that no longer exists
      expect(calls).toEqual({ load: 1, remove: 1, touch: 1 })
      expect(dropped.setCookies).toEqual([])
      // and the touch did not bring the record back
      expect(Option.isNone(yield* storedRecord(id))).toBe(true)
      expect((yield* browser.get("/show")).body).toBe("anonymous:0")
    }).pipe(Effect.provide(env(app({ idleTimeout: "1 hour", touchAfter: "1 minute" })))))
})

describe("cookie attributes", () => {
  it.effect("httpOnly: false leaves HttpOnly off every Set-Cookie, the expiring one included", () =>
    Effect.gen(function*() {
      const browser = yield* makeBrowser
      const set = onlyCookie(yield* browser.get("/incr"))
      expect(set.attributes["httponly"]).toBeUndefined()
      // the other attributes are still the defaults
      expect(set.attributes).toMatchObject({ samesite: "Lax", path: "/" })
      const expired = onlyCookie(yield* browser.get("/invalidate"))
      expect(expired.attributes["max-age"]).toBe("0")
      expect(expired.attributes["httponly"]).toBeUndefined()
    }).pipe(Effect.provide(env(app({ cookie: { httpOnly: false } })))))

  it.effect("a non-root path is on the cookie set on insert, on touch and on the expiring one", () => {
    const mounted = HttpRouter.empty.pipe(
      HttpRouter.mount("/app", routes),
      OptionsSession.middleware({ cookie: { secure: false, path: "/app" }, touchAfter: "1 minute" })
    )
    return Effect.gen(function*() {
      const browser = yield* makeBrowser
      const inserted = onlyCookie(yield* browser.get("/app/incr"))
      expect(inserted.attributes).toMatchObject({ path: "/app", httponly: true })
      yield* TestClock.adjust("2 minutes")
      const touched = onlyCookie(yield* browser.get("/app/show"))
      expect(touched.value).toBe(inserted.value)
      expect(touched.attributes["path"]).toBe("/app")
      // a browser deletes a cookie only when the expiring one names the same path
      const expired = onlyCookie(yield* browser.get("/app/invalidate"))
      expect(expired.value).toBe("")
      expect(expired.attributes).toMatchObject({ path: "/app", "max-age": "0" })
    }).pipe(Effect.provide(env(mounted)))
  })
})

describe("default timeouts", () => {
  it.effect("with the defaults, a session used every day is dead 30 days after it began", () =>
    Effect.gen(function*() {
      const browser = yield* makeBrowser
      const day = 24 * 3600
      // day 0: 14 days of idle lifetime
      expect(onlyCookie(yield* browser.get("/incr")).attributes["max-age"]).toBe(String(14 * day))
      const maxAges: Array<ReadonlyArray<string | true | undefined>> = []
      for (let d = 1; d <= 29; d++) {
        yield* TestClock.adjust("1 day")
        const res = yield* browser.get("/incr")
        expect(res.status).toBe(200)
        maxAges.push(res.setCookies.map((line) => parseSetCookie(line).attributes["max-age"]))
      }
      // the idle deadline moves with every request until it reaches the
      // absolute one: day 16's cookie lives exactly until day 30, and from
      // then on the deadline cannot move, so no cookie is sent
      expect(maxAges.slice(0, 16)).toEqual(Array.from({ length: 16 }, () => [String(14 * day)]))
      expect(maxAges.slice(16)).toEqual(Array.from({ length: 13 }, () => []))
      yield* TestClock.adjust("23 hours")
      yield* TestClock.adjust("59 minutes")
      expect((yield* browser.get("/show")).body).toBe("anonymous:30")
      yield* TestClock.adjust("1 minute")
      expect((yield* browser.get("/show")).body).toBe("anonymous:0")
    }).pipe(
      // a sweep a minute would run 43,200 times over the TestClock's 30 days
      Effect.provide(env(app(), MemoryStore.layer({ cleanupInterval: "1 day" })))
    ))
})
