/**
 * Adversarial lifecycle tests of the session core, through a real HTTP server
 * (`NodeHttpServer.layerTest`), a cookie-jar browser and the MemoryStore.
 */
import { HttpRouter, HttpServerResponse } from "@effect/platform"
import { assert, describe, expect, it } from "@effect/vitest"
import { Cause, Context, Deferred, Effect, Exit, Layer, Logger, Option, Redacted, Schema, TestClock } from "effect"
import * as MemoryStore from "../src/MemoryStore.js"
import * as Session from "../src/Session.js"
import * as SessionCodec from "../src/SessionCodec.js"
import * as SessionId from "../src/SessionId.js"
import { SessionConflict } from "../src/SessionError.js"
import { make as makeStore, SessionIndex, SessionStore } from "../src/SessionStore.js"
import type * as SessionStoreModule from "../src/SessionStore.js"
import { counting, makeBrowser, parseSetCookie, serve, StoreCalls, totalCalls } from "./utils/http.js"
import type { Response } from "./utils/http.js"
import { isEnded } from "./utils/records.js"
import { recordingTracer } from "./utils/tracer.js"
import type { RecordedSpan } from "./utils/tracer.js"

class LifeSession extends Session.Tag<LifeSession>()("test/LifeSession", {
  username: Schema.optional(Schema.String),
  theme: Schema.optional(Schema.String),
  visits: Schema.optionalWith(Schema.Number, { default: () => 0 }),
  count: Schema.optional(Schema.Int)
}) {}

type LifeData = Schema.Schema.Type<typeof LifeSession.schema>

const show = Effect.gen(function*() {
  const data = yield* LifeSession.getAll
  const principal = yield* LifeSession.principal
  return HttpServerResponse.unsafeJson({ ...data, principal: Option.getOrNull(principal) })
})

const ok = HttpServerResponse.text("ok")

const routes = HttpRouter.empty.pipe(
  HttpRouter.get("/plain", HttpServerResponse.text("plain")),
  HttpRouter.get("/show", show),
  HttpRouter.get("/incr", Effect.as(LifeSession.update("visits", (n) => n + 1), ok)),
  HttpRouter.get("/set-user", Effect.as(LifeSession.set("username", "alice"), ok)),
  HttpRouter.get("/set-theme", Effect.as(LifeSession.set("theme", "dark"), ok)),
  HttpRouter.get("/remove-user", Effect.as(LifeSession.remove("username"), ok)),
  HttpRouter.get("/remove-theme", Effect.as(LifeSession.remove("theme"), ok)),
  HttpRouter.get("/reset-visits", Effect.as(LifeSession.remove("visits"), ok)),
  HttpRouter.get("/regenerate", Effect.as(LifeSession.regenerate, ok)),
  HttpRouter.get("/invalidate", Effect.as(LifeSession.invalidate, ok)),
  HttpRouter.get(
    "/login-alice",
    Effect.gen(function*() {
      yield* LifeSession.login("alice")
      yield* LifeSession.set("username", "alice")
      return ok
    })
  ),
  HttpRouter.get(
    "/login-twice",
    Effect.gen(function*() {
      yield* LifeSession.login("alice")
      yield* LifeSession.set("username", "alice")
      yield* LifeSession.login("bob")
      yield* LifeSession.set("username", "bob")
      return ok
    })
  ),
  HttpRouter.get(
    "/invalidate-then-set",
    Effect.gen(function*() {
      yield* LifeSession.invalidate
      yield* LifeSession.set("username", "fresh")
      return ok
    })
  ),
  HttpRouter.get(
    "/ids",
    Effect.gen(function*() {
      const before = yield* LifeSession.id
      const again = yield* LifeSession.id
      yield* LifeSession.regenerate
      const after = yield* LifeSession.id
      const afterAgain = yield* LifeSession.id
      return HttpServerResponse.unsafeJson({ before, again, after, afterAgain })
    })
  ),
  HttpRouter.get(
    "/id-then-set",
    Effect.gen(function*() {
      const id = yield* LifeSession.id
      yield* LifeSession.set("theme", "light")
      return HttpServerResponse.text(id)
    })
  ),
  HttpRouter.get(
    "/principals",
    Effect.gen(function*() {
      const initial = yield* LifeSession.principal
      yield* LifeSession.login("alice")
      const afterLogin = yield* LifeSession.principal
      yield* LifeSession.invalidate
      const afterInvalidate = yield* LifeSession.principal
      return HttpServerResponse.unsafeJson([initial, afterLogin, afterInvalidate].map(Option.getOrNull))
    })
  ),
  HttpRouter.get("/bad-int", Effect.as(LifeSession.set("count", 1.5), ok))
).pipe(
  HttpRouter.get("/read-404", Effect.as(LifeSession.get("username"), HttpServerResponse.text("nope", { status: 404 }))),
  HttpRouter.get("/read-403", Effect.as(LifeSession.get("username"), HttpServerResponse.text("no", { status: 403 }))),
  HttpRouter.get("/read-500", Effect.as(LifeSession.get("username"), HttpServerResponse.text("oops", { status: 500 }))),
  HttpRouter.get(
    "/parallel-read",
    Effect.map(
      Effect.all([LifeSession.get("username"), LifeSession.get("visits"), LifeSession.getAll, LifeSession.principal], {
        concurrency: "unbounded"
      }),
      ([username, visits]) => HttpServerResponse.text(`${username ?? "anonymous"}:${visits}`)
    )
  ),
  HttpRouter.get(
    "/parallel-write",
    Effect.as(
      Effect.all([
        LifeSession.update("visits", (n) => n + 1),
        LifeSession.update("visits", (n) => n + 1),
        LifeSession.set("theme", "parallel")
      ], { concurrency: "unbounded" }),
      ok
    )
  ),
  HttpRouter.get("/traced-incr", Effect.as(Effect.withSpan(LifeSession.update("visits", (n) => n + 1), "handler"), ok))
)

const app = (options?: Session.Options) => routes.pipe(LifeSession.middleware({ cookie: { secure: false }, ...options }))

const env = <E, R>(httpApp: Parameters<typeof serve<E, R>>[0], latency?: "2 millis") =>
  serve(httpApp).pipe(
    Layer.provideMerge(counting(MemoryStore.layer(), latency === undefined ? undefined : { latency }))
  )

/** Like `env`, but the store keeps its index too, for `Session.list`. */
const envWithIndex = <E, R>(httpApp: Parameters<typeof serve<E, R>>[0]) => {
  const store = MemoryStore.layer()
  return serve(httpApp).pipe(Layer.provideMerge(counting(store)), Layer.provideMerge(store))
}

const resetCalls = Effect.map(StoreCalls, (calls) => {
  for (const k of Object.keys(calls)) delete calls[k]
  return calls
})

const storedRecord = (id: string, storageKey = SessionId.storageKey) =>
  Effect.flatMap(SessionStore, (store) => store.load(storageKey(id as SessionId.SessionId)))

const codec = SessionCodec.make(LifeSession.schema as unknown as Schema.Schema<LifeData, unknown, never>)

const storedData = (id: string) =>
  Effect.flatMap(storedRecord(id), (record) =>
    Option.isNone(record)
      ? Effect.succeedNone
      : Effect.map(codec.decode(record.value.data), Option.some))

const json = (res: Response) => JSON.parse(res.body) as Record<string, unknown>

/** A route that reads the session, waits to be released, then writes: the slow half of a race. */
const pausedRoute = (
  path: HttpRouter.PathInput,
  after: Effect.Effect<unknown, any, LifeSession>
) =>
  Effect.gen(function*() {
    const paused = yield* Deferred.make<void>()
    const release = yield* Deferred.make<void>()
    const slowApp = routes.pipe(
      HttpRouter.get(
        path,
        Effect.gen(function*() {
          yield* LifeSession.getAll
          yield* Deferred.succeed(paused, void 0)
          yield* Deferred.await(release)
          yield* after
          return HttpServerResponse.text("slow done")
        })
      ),
      LifeSession.middleware({ cookie: { secure: false } })
    )
    return { paused, release, app: slowApp }
  })

describe("concurrent requests on one session (real interleaving, store latency)", () => {
  it.live("mixed set / update / remove racing each other: every request's own keys survive", () =>
    Effect.gen(function*() {
      const browser = yield* makeBrowser
      yield* browser.get("/set-user")
      yield* browser.get("/set-theme")
      const cookie = `session=${browser.jar.get("session")}`
      const requests = [
        ...Array.from({ length: 20 }, () => "/incr"),
        "/remove-theme",
        ...Array.from({ length: 5 }, () => "/set-user")
      ]
      const results = yield* Effect.all(requests.map((path) => browser.get(path, { cookie })), {
        concurrency: "unbounded"
      })
      expect(results.map((r) => r.status)).toEqual(requests.map(() => 200))
      const final = json(yield* browser.get("/show", { cookie }))
      // 20 increments all count, the theme removal is not undone by a replay of stale data,
      // and the username (set by some, untouched by others) is kept
      expect(final).toEqual({ username: "alice", visits: 20, principal: null })
      // the saves of one process are written in groups and never lose to each
      // other: no request reloads (one load per request with the cookie: the
      // set-theme, the 26 racing ones and the final show), and the 21 racing
      // changes take at most 21 writes (plus set-theme's)
      const calls = yield* StoreCalls
      expect(calls.load).toBe(28)
      expect(calls.update).toBeLessThanOrEqual(22)
    }).pipe(Effect.provide(env(app(), "2 millis"))))

  it.live("a slow set of one key does not clobber a concurrent removal of another key", () =>
    Effect.gen(function*() {
      const { app: slowApp, paused, release } = yield* pausedRoute("/slow-theme", LifeSession.set("theme", "late"))
      return yield* Effect.gen(function*() {
        const browser = yield* makeBrowser
        yield* browser.get("/set-user")
        yield* browser.get("/incr")
        const cookie = `session=${browser.jar.get("session")}`
        const slow = yield* Effect.fork(browser.get("/slow-theme", { cookie }))
        yield* Deferred.await(paused)
        expect((yield* browser.get("/remove-user", { cookie })).status).toBe(200)
        yield* Deferred.succeed(release, void 0)
        expect((yield* Effect.flatten(slow.await)).body).toBe("slow done")
        expect(json(yield* browser.get("/show", { cookie }))).toEqual({ theme: "late", visits: 1, principal: null })
      }).pipe(Effect.provide(env(slowApp, "2 millis")))
    }))

  it.live("a slow removal of the last value does not delete a concurrent writer's data", () =>
    Effect.gen(function*() {
      // The slow request sees { username } only; its `remove("username")` leaves *its* view empty.
      // Meanwhile another request increments `visits`. Replayed over the newer data, the removal
      // leaves { visits: 1 }: the session must survive with the increment.
      const { app: slowApp, paused, release } = yield* pausedRoute("/slow-remove", LifeSession.remove("username"))
      return yield* Effect.gen(function*() {
        const browser = yield* makeBrowser
        yield* browser.get("/set-user")
        const id = browser.jar.get("session")!
        const cookie = `session=${id}`
        const slow = yield* Effect.fork(browser.get("/slow-remove", { cookie }))
        yield* Deferred.await(paused)
        expect((yield* browser.get("/incr", { cookie })).status).toBe(200)
        yield* Deferred.succeed(release, void 0)
        const slowResult = yield* Effect.flatten(slow.await)
        expect(slowResult.body).toBe("slow done")
        const stored = yield* storedData(id)
        assert(Option.isSome(stored), "the concurrent increment was deleted with the session")
        expect(stored.value.data).toEqual({ visits: 1 })
        expect(json(yield* browser.get("/show", { cookie }))).toEqual({ visits: 1, principal: null })
      }).pipe(Effect.provide(env(slowApp, "2 millis")))
    }))

  it.live("a save whose replay leaves the session empty removes it and expires the cookie", () =>
    Effect.gen(function*() {
      // slow: { username, visits: 1 } minus username = { visits: 1 } (not empty, so an update);
      // concurrent: visits reset to its default. Replayed, the slow save is the empty session.
      const { app: slowApp, paused, release } = yield* pausedRoute("/slow-remove", LifeSession.remove("username"))
      return yield* Effect.gen(function*() {
        const browser = yield* makeBrowser
        yield* browser.get("/set-user")
        yield* browser.get("/incr")
        const id = browser.jar.get("session")!
        const cookie = `session=${id}`
        const slow = yield* Effect.fork(browser.get("/slow-remove", { cookie }))
        yield* Deferred.await(paused)
        expect((yield* browser.get("/reset-visits", { cookie })).status).toBe(200)
        yield* Deferred.succeed(release, void 0)
        const slowResult = yield* Effect.flatten(slow.await)
        expect(slowResult.body).toBe("slow done")
        expect(slowResult.setCookies.length).toBe(1)
        expect(parseSetCookie(slowResult.setCookies[0]).attributes["max-age"]).toBe("0")
        expect(Option.isNone(yield* storedRecord(id))).toBe(true)
      }).pipe(Effect.provide(env(slowApp, "2 millis")))
    }))

  it.effect("a handler touching the session from parallel fibers loads it once and saves every write", () =>
    Effect.gen(function*() {
      const browser = yield* makeBrowser
      yield* browser.get("/set-user")
      const calls = yield* resetCalls
      const read = yield* browser.get("/parallel-read")
      expect(read.body).toBe("alice:0")
      expect(calls).toEqual({ load: 1 })
      yield* resetCalls
      const write = yield* browser.get("/parallel-write")
      expect(write.status).toBe(200)
      expect(calls).toEqual({ load: 1, update: 1 })
      expect(json(yield* browser.get("/show"))).toEqual({
        username: "alice",
        theme: "parallel",
        visits: 2,
        principal: null
      })
    }).pipe(Effect.provide(env(app()))))

  it.live("parallel fibers of a handler load once under real store latency", () =>
    Effect.gen(function*() {
      const browser = yield* makeBrowser
      yield* browser.get("/set-user")
      const calls = yield* resetCalls
      expect((yield* browser.get("/parallel-read")).body).toBe("alice:0")
      expect(calls).toEqual({ load: 1 })
    }).pipe(Effect.provide(env(app(), "2 millis"))))
})

describe("regenerate, login, invalidate", () => {
  it.effect("login on a fresh session: one insert, bound to the principal, listed in the index", () =>
    Effect.gen(function*() {
      const browser = yield* makeBrowser
      const calls = yield* resetCalls
      const res = yield* browser.get("/login-alice")
      expect(res.status).toBe(200)
      // the insert, then the read of the principal's revocation marker (a store with an index)
      expect(calls).toEqual({ insert: 1, load: 1 })
      const id = parseSetCookie(res.setCookies[0]).value
      const record = yield* storedRecord(id)
      assert(Option.isSome(record))
      expect(record.value.principal).toEqual(Option.some("alice"))
      expect(yield* Session.list("alice")).toEqual([SessionId.storageKey(id as SessionId.SessionId)])
      expect(json(yield* browser.get("/show"))).toEqual({ username: "alice", visits: 0, principal: "alice" })
    }).pipe(Effect.provide(envWithIndex(app()))))

  it.effect("login on a fresh session with no data still stores the session (the principal is the content)", () => {
    const loginOnly = routes.pipe(
      HttpRouter.get("/login-only", Effect.as(LifeSession.login("carol"), ok)),
      LifeSession.middleware({ cookie: { secure: false } })
    )
    return Effect.gen(function*() {
      const browser = yield* makeBrowser
      const res = yield* browser.get("/login-only")
      expect(res.setCookies.length).toBe(1)
      const id = parseSetCookie(res.setCookies[0]).value
      expect(SessionId.isSessionId(id)).toBe(true)
      expect((yield* Session.list("carol")).length).toBe(1)
      expect(json(yield* browser.get("/show"))).toEqual({ visits: 0, principal: "carol" })
    }).pipe(Effect.provide(envWithIndex(loginOnly)))
  })

  it.effect("login twice in one request: one new session, bound to the last principal only", () =>
    Effect.gen(function*() {
      const browser = yield* makeBrowser
      yield* browser.get("/incr")
      const oldId = browser.jar.get("session")!
      const calls = yield* resetCalls
      const res = yield* browser.get("/login-twice")
      expect(res.status).toBe(200)
      expect(res.setCookies.length).toBe(1)
      const newId = parseSetCookie(res.setCookies[0]).value
      expect(newId).not.toBe(oldId)
      // load, one insert, the compare-and-set that leaves a tombstone under the old key: not two sessions;
      // then the read of bob's revocation marker
      expect(calls).toEqual({ load: 2, insert: 1, update: 1 })
      expect(yield* Session.list("alice")).toEqual([])
      expect(yield* Session.list("bob")).toEqual([SessionId.storageKey(newId as SessionId.SessionId)])
      expect(isEnded(yield* storedRecord(oldId))).toBe(true)
      expect(json(yield* browser.get("/show"))).toEqual({ username: "bob", visits: 1, principal: "bob" })
    }).pipe(Effect.provide(envWithIndex(app()))))

  it.effect("invalidate then set in one request: a new session under a new id, the old one removed", () =>
    Effect.gen(function*() {
      const browser = yield* makeBrowser
      yield* browser.get("/login-alice")
      yield* browser.get("/incr")
      const oldId = browser.jar.get("session")!
      const res = yield* browser.get("/invalidate-then-set")
      expect(res.status).toBe(200)
      expect(res.setCookies.length).toBe(1)
      const set = parseSetCookie(res.setCookies[0])
      expect(set.value).not.toBe(oldId)
      expect(SessionId.isSessionId(set.value)).toBe(true)
      expect(set.attributes["max-age"]).toBe(String(14 * 24 * 3600))
      expect(Option.isNone(yield* storedRecord(oldId))).toBe(true)
      // nothing of the old session (data, principal) is carried over
      const record = yield* storedRecord(set.value)
      assert(Option.isSome(record))
      expect(record.value.principal).toEqual(Option.none())
      expect(yield* Session.list("alice")).toEqual([])
      expect(json(yield* browser.get("/show"))).toEqual({ username: "fresh", visits: 0, principal: null })
    }).pipe(Effect.provide(envWithIndex(app()))))

  it.effect("invalidate resets the absolute deadline: the new session is a new session", () => {
    const timed = app({ idleTimeout: "1 hour", absoluteTimeout: "2 hours" })
    return Effect.gen(function*() {
      const browser = yield* makeBrowser
      yield* browser.get("/set-user")
      yield* TestClock.adjust("50 minutes")
      yield* browser.get("/incr")
      yield* TestClock.adjust("50 minutes")
      yield* browser.get("/invalidate-then-set")
      yield* TestClock.adjust("50 minutes")
      // 150 minutes after the first session began, 50 after the new one did
      expect(json(yield* browser.get("/show"))).toEqual({ username: "fresh", visits: 0, principal: null })
    }).pipe(Effect.provide(env(timed)))
  })

  it.effect("regenerate keeps the absolute deadline of the session it moves", () => {
    const timed = app({ idleTimeout: "1 hour", absoluteTimeout: "2 hours" })
    return Effect.gen(function*() {
      const browser = yield* makeBrowser
      yield* browser.get("/set-user")
      yield* TestClock.adjust("50 minutes")
      yield* browser.get("/incr")
      yield* TestClock.adjust("50 minutes")
      const res = yield* browser.get("/regenerate")
      // the new cookie lives only as long as the old session's absolute deadline allows
      expect(parseSetCookie(res.setCookies[0]).attributes["max-age"]).toBe(String(20 * 60))
      yield* TestClock.adjust("19 minutes")
      expect(json(yield* browser.get("/show"))).toEqual({ username: "alice", visits: 1, principal: null })
      yield* TestClock.adjust("1 minute")
      expect(json(yield* browser.get("/show"))).toEqual({ visits: 0, principal: null })
    }).pipe(Effect.provide(env(timed)))
  })

  it.effect("id before and after regenerate: the client's id, then the new id the cookie carries", () =>
    Effect.gen(function*() {
      const browser = yield* makeBrowser
      yield* browser.get("/set-user")
      const clientId = browser.jar.get("session")!
      const res = yield* browser.get("/ids")
      const ids = json(res)
      expect(ids.before).toBe(clientId)
      expect(ids.again).toBe(clientId)
      expect(ids.after).not.toBe(clientId)
      expect(ids.afterAgain).toBe(ids.after)
      expect(SessionId.isSessionId(ids.after)).toBe(true)
      expect(parseSetCookie(res.setCookies[0]).value).toBe(ids.after)
      expect(isEnded(yield* storedRecord(clientId))).toBe(true)
      expect(json(yield* browser.get("/show", { cookie: `session=${ids.after}` }))).toEqual({
        username: "alice",
        visits: 0,
        principal: null
      })
    }).pipe(Effect.provide(env(app()))))

  it.effect("id of a new session is the id its cookie then carries", () =>
    Effect.gen(function*() {
      const browser = yield* makeBrowser
      const res = yield* browser.get("/id-then-set")
      expect(SessionId.isSessionId(res.body)).toBe(true)
      expect(parseSetCookie(res.setCookies[0]).value).toBe(res.body)
      assert(Option.isSome(yield* storedRecord(res.body)))
    }).pipe(Effect.provide(env(app()))))

  it.effect("principal: none, then the login's principal, then none after invalidate (and not stored)", () =>
    Effect.gen(function*() {
      const browser = yield* makeBrowser
      const res = yield* browser.get("/principals")
      expect(JSON.parse(res.body)).toEqual([null, "alice", null])
      // invalidated and empty: nothing stored, no cookie for a browser that had none
      expect(res.setCookies).toEqual([])
      expect(yield* Session.list("alice")).toEqual([])
      // and for a logged-in browser: the cookie is expired, the old session gone
      yield* browser.get("/login-alice")
      const id = browser.jar.get("session")!
      const again = yield* browser.get("/principals")
      expect(JSON.parse(again.body)).toEqual(["alice", "alice", null])
      expect(parseSetCookie(again.setCookies[0]).attributes["max-age"]).toBe("0")
      expect(Option.isNone(yield* storedRecord(id))).toBe(true)
      expect(yield* Session.list("alice")).toEqual([])
    }).pipe(Effect.provide(envWithIndex(app()))))

  it.effect("regenerate on a fresh, empty session stores nothing and sets no cookie", () =>
    Effect.gen(function*() {
      const browser = yield* makeBrowser
      const calls = yield* resetCalls
      const res = yield* browser.get("/regenerate")
      expect(res.status).toBe(200)
      expect(res.setCookies).toEqual([])
      expect(totalCalls(calls)).toBe(0)
    }).pipe(Effect.provide(env(app()))))

  it.effect("withSession with an expired id: a fresh session under a new id; the old id is not adopted", () =>
    Effect.gen(function*() {
      const options: Session.Options = { idleTimeout: "1 hour" }
      const first = yield* LifeSession.withSession(
        "",
        Effect.zipRight(LifeSession.set("username", "ws"), LifeSession.id),
        options
      )
      yield* TestClock.adjust("61 minutes")
      const [data, second] = yield* LifeSession.withSession(
        first,
        Effect.zipRight(
          LifeSession.update("visits", (n) => n + 1),
          Effect.zip(LifeSession.getAll, LifeSession.id)
        ),
        options
      )
      expect(data).toEqual({ visits: 1 })
      expect(second).not.toBe(first)
      expect(Option.isNone(yield* storedRecord(first))).toBe(true)
      const stored = yield* storedData(second)
      assert(Option.isSome(stored))
      expect(stored.value.data).toEqual({ visits: 1 })
    }).pipe(Effect.provide(MemoryStore.layer())))
})

describe("cookie attributes", () => {
  const everyAttribute = (line: string) => {
    const cookie = parseSetCookie(line)
    expect(cookie.name).toBe("session")
    expect(cookie.attributes).toMatchObject({ httponly: true, secure: true, samesite: "Lax", path: "/" })
    return cookie
  }

  it.effect("with the defaults, every Set-Cookie (insert, update, touch, regenerate, expire) is HttpOnly; Secure; SameSite=Lax; Path=/", () => {
    const secureApp = routes.pipe(LifeSession.middleware({ touchAfter: "1 minute" }))
    return Effect.gen(function*() {
      const browser = yield* makeBrowser
      const lines: Array<string> = []
      const collect = (res: Response) => {
        expect(res.setCookies.length).toBe(1)
        lines.push(res.setCookies[0])
      }
      collect(yield* browser.get("/incr")) // insert
      yield* TestClock.adjust("2 minutes")
      collect(yield* browser.get("/incr")) // update that moves the deadline
      yield* TestClock.adjust("2 minutes")
      collect(yield* browser.get("/show")) // touch
      collect(yield* browser.get("/regenerate")) // new id
      collect(yield* browser.get("/invalidate")) // expired
      const cookies = lines.map(everyAttribute)
      expect(cookies.map((c) => c.attributes["max-age"])).toEqual([
        String(14 * 24 * 3600),
        String(14 * 24 * 3600),
        String(14 * 24 * 3600),
        String(14 * 24 * 3600),
        "0"
      ])
    }).pipe(Effect.provide(env(secureApp)))
  })

  it.effect("Max-Age is the time left on the same clock: the idle deadline, or the absolute one when nearer", () => {
    const timed = app({ idleTimeout: "1 hour", absoluteTimeout: "2 hours", touchAfter: "1 minute" })
    return Effect.gen(function*() {
      const browser = yield* makeBrowser
      const maxAge = (res: Response) => parseSetCookie(res.setCookies[0]).attributes["max-age"]
      expect(maxAge(yield* browser.get("/incr"))).toBe("3600")
      yield* TestClock.adjust("45 minutes")
      expect(maxAge(yield* browser.get("/incr"))).toBe("3600")
      yield* TestClock.adjust("30 minutes")
      // 75 minutes in, a read past touchAfter: the idle deadline would be 135, the absolute one is 120
      expect(maxAge(yield* browser.get("/show"))).toBe(String(45 * 60))
      yield* TestClock.adjust("15 minutes")
      // 90 minutes in: a write; the deadline is already the absolute one and
      // cannot move, so the browser's cookie (which says the same) is left alone
      const write = yield* browser.get("/incr")
      expect(write.status).toBe(200)
      expect(write.setCookies).toEqual([])
      yield* TestClock.adjust("29 minutes")
      const cookie = `session=${browser.jar.get("session")}`
      const late = yield* browser.get("/show", { cookie })
      expect(json(late)).toEqual({ visits: 3, principal: null })
      // the deadline cannot move: no touch, no cookie
      expect(late.setCookies).toEqual([])
      yield* TestClock.adjust("1 minute")
      expect(json(yield* browser.get("/show", { cookie }))).toEqual({ visits: 0, principal: null })
    }).pipe(Effect.provide(env(timed)))
  })

  it.effect("a write within touchAfter of the last deadline move keeps the deadline and sends no cookie; past it, both move together", () => {
    const timed = app({ idleTimeout: "1 hour", touchAfter: "10 minutes" })
    return Effect.gen(function*() {
      const store = yield* SessionStore
      const browser = yield* makeBrowser
      const first = yield* browser.get("/incr")
      expect(parseSetCookie(first.setCookies[0]).attributes["max-age"]).toBe("3600")
      const key = SessionId.storageKey(Option.getOrThrow(SessionId.parse(browser.jar.get("session"))))
      const deadline = () => Effect.map(store.load(key), (record) => Option.getOrThrow(record).expiresAt)
      const initial = yield* deadline()
      yield* TestClock.adjust("9 minutes")
      const within = yield* browser.get("/incr")
      // written (the data changed) but the deadline stays where the browser's cookie says it is
      expect(within.setCookies).toEqual([])
      expect(yield* deadline()).toBe(initial)
      yield* TestClock.adjust("2 minutes")
      const past = yield* browser.get("/incr")
      expect(parseSetCookie(past.setCookies[0]).attributes["max-age"]).toBe("3600")
      expect(yield* deadline()).toBe(initial + 11 * 60 * 1000)
      expect(json(yield* browser.get("/show"))).toEqual({ visits: 3, principal: null })
    }).pipe(Effect.provide(env(timed)))
  })

  it.effect("persistent: false sends a browser-session cookie: no Max-Age and no Expires, on insert, update and touch", () => {
    const sessionCookie = app({ cookie: { secure: false, persistent: false }, touchAfter: "1 minute" })
    return Effect.gen(function*() {
      const browser = yield* makeBrowser
      const inserted = yield* browser.get("/incr")
      // past touchAfter, so the update and then the read move the deadline and each send the cookie
      yield* TestClock.adjust("2 minutes")
      const updated = yield* browser.get("/incr")
      yield* TestClock.adjust("2 minutes")
      const touched = yield* browser.get("/show")
      for (const res of [inserted, updated, touched]) {
        // a response without a cookie would check nothing below
        expect(res.setCookies.length).toBe(1)
        const cookie = parseSetCookie(res.setCookies[0])
        expect(cookie.value).toBe(browser.jar.get("session"))
        expect(cookie.attributes["max-age"]).toBeUndefined()
        expect(cookie.attributes["expires"]).toBeUndefined()
        expect(cookie.attributes).toMatchObject({ httponly: true, samesite: "Lax", path: "/" })
      }
      expect(json(touched)).toEqual({ visits: 2, principal: null })
      // logout still expires it for real
      const logout = yield* browser.get("/invalidate")
      expect(parseSetCookie(logout.setCookies[0]).attributes["max-age"]).toBe("0")
    }).pipe(Effect.provide(env(sessionCookie)))
  })

  it("a __Secure- cookie must be Secure", () => {
    expect(() => LifeSession.middleware({ cookie: { name: "__Secure-sid", secure: false } })).toThrow(/__Secure-sid/)
    expect(() => LifeSession.middleware({ cookie: { name: "__Secure-sid" } })).not.toThrow()
    expect(() => LifeSession.middleware({ cookie: { name: "__Secure-sid", path: "/app", domain: "example.test" } }))
      .not.toThrow()
  })

  it("SameSite=None without Secure is rejected when the middleware is built", () => {
    expect(() => LifeSession.middleware({ cookie: { sameSite: "none", secure: false } })).toThrow(/SameSite=None/)
    expect(() => LifeSession.middleware({ cookie: { sameSite: "none" } })).not.toThrow()
  })

  it("an invalid cookie name or timeout is rejected when the middleware is built", () => {
    expect(() => LifeSession.middleware({ cookie: { name: "bad name;" } })).toThrow(/invalid session cookie/)
    expect(() => LifeSession.middleware({ idleTimeout: 0 })).toThrow(/positive/)
  })

  it.effect("SameSite=None; Secure and Partitioned appear on the cookie", () => {
    const crossSite = app({ cookie: { sameSite: "none", secure: true, partitioned: true } })
    return Effect.gen(function*() {
      const browser = yield* makeBrowser
      const cookie = parseSetCookie((yield* browser.get("/incr")).setCookies[0])
      expect(cookie.attributes).toMatchObject({ samesite: "None", secure: true, partitioned: true })
    }).pipe(Effect.provide(env(crossSite)))
  })
})

describe("bad stored data and bad writes", () => {
  const garbage: ReadonlyArray<readonly [string, Uint8Array]> = [
    ["not JSON", new TextEncoder().encode("\u0000garbage{{{")],
    ["invalid UTF-8", new Uint8Array([0x7b, 0xff, 0xfe, 0x7d])],
    ["another envelope version", new TextEncoder().encode(JSON.stringify({ v: 2, data: {}, createdAt: 0, absoluteExpiresAt: 9e15, principal: null }))],
    ["data that fails the schema", new TextEncoder().encode(JSON.stringify({ v: 1, data: { visits: "many" }, createdAt: 0, absoluteExpiresAt: 9e15, principal: "mallory" }))]
  ]
  for (const [name, bytes] of garbage) {
    it.effect(`undecodable stored data (${name}): fresh session, 200, a warning, a new id on write, the record not adopted`, () => {
      const logs: Array<string> = []
      const capture = Logger.replace(
        Logger.defaultLogger,
        Logger.make(({ logLevel, message }) => {
          logs.push(`${logLevel.label} ${Array.isArray(message) ? message.join(" ") : String(message)}`)
        })
      )
      return Effect.gen(function*() {
        const store = yield* SessionStore
        const id = SessionId.unsafeGenerate()
        const key = SessionId.storageKey(id)
        const t = yield* Effect.clockWith((clock) => clock.currentTimeMillis)
        yield* store.insert(key, { data: bytes, expiresAt: t + 3_600_000, principal: Option.some("mallory") })
        const browser = yield* makeBrowser
        const cookie = `session=${id}`
        const read = yield* browser.get("/show", { cookie })
        expect(read.status).toBe(200)
        expect(json(read)).toEqual({ visits: 0, principal: null })
        expect(logs.some((line) => line.startsWith("WARN") && line.includes("undecodable"))).toBe(true)
        // the log line carries the key prefix, never the id
        expect(logs.some((line) => line.includes(id))).toBe(false)
        const write = yield* browser.get("/incr", { cookie })
        expect(write.status).toBe(200)
        const issued = parseSetCookie(write.setCookies[0]).value
        expect(issued).not.toBe(id)
        // the garbage record is left as it was, not overwritten or adopted
        const record = yield* store.load(key)
        assert(Option.isSome(record))
        expect(record.value.version).toBe(1)
        expect([...record.value.data]).toEqual([...bytes])
        const fresh = yield* storedData(issued)
        assert(Option.isSome(fresh))
        expect(fresh.value.data).toEqual({ visits: 1 })
        expect(fresh.value.principal).toEqual(Option.none())
      }).pipe(Effect.provide(env(app())), Effect.provide(capture))
    })
  }

  it.effect("a write that leaves the data as stored saves nothing, whatever the layout of the stored text", () =>
    Effect.gen(function*() {
      const store = yield* SessionStore
      const browser = yield* makeBrowser
      yield* browser.get("/set-user")
      const id = browser.jar.get("session")!
      let calls = yield* resetCalls
      // the same value again: the load only, no update, no cookie
      const same = yield* browser.get("/set-user")
      expect(same.setCookies).toEqual([])
      expect(calls).toEqual({ load: 1 })
      // the same data stored by another writer, spaced and reordered: equal
      // as data though not as text, so still nothing to save
      const key = SessionId.storageKey(id as SessionId.SessionId)
      const record = Option.getOrThrow(yield* store.load(key))
      const envelope = Option.getOrThrow(yield* storedData(id))
      const spaced = new TextEncoder().encode(
        `{ "principal": null, "absoluteExpiresAt": ${envelope.absoluteExpiresAt}, "createdAt": ${envelope.createdAt}, ` +
          `"data": { "visits": 0, "username": "alice" }, "v": 1 }`
      )
      yield* store.update(key, { data: spaced, expiresAt: record.expiresAt, principal: Option.none() }, record.version)
      calls = yield* resetCalls
      yield* browser.get("/set-user")
      expect(calls).toEqual({ load: 1 })
      // and a real change over it is saved
      calls = yield* resetCalls
      yield* browser.get("/set-theme")
      expect(calls).toEqual({ load: 1, update: 1 })
      expect(Option.getOrThrow(yield* storedData(id)).data).toEqual({ username: "alice", theme: "dark", visits: 0 })
    }).pipe(Effect.provide(env(app()))))

  it.effect("a value failing a schema refinement (Schema.Int = 1.5) fails the request with SessionEncodeError; nothing is stored", () => {
    const mapped = app().pipe(
      Effect.catchTag("SessionEncodeError", (e) => HttpServerResponse.text(e.message, { status: 422 }))
    )
    return Effect.gen(function*() {
      const browser = yield* makeBrowser
      // on a new session: no insert
      let calls = yield* resetCalls
      const fresh = yield* browser.get("/bad-int")
      expect(fresh.status).toBe(422)
      expect(fresh.body).toContain("session data does not match its schema")
      expect(fresh.setCookies).toEqual([])
      expect(totalCalls(calls)).toBe(0)
      // on a stored session: only the load, the record unchanged
      yield* browser.get("/incr")
      const id = browser.jar.get("session")!
      calls = yield* resetCalls
      const stored = yield* browser.get("/bad-int")
      expect(stored.status).toBe(422)
      expect(stored.setCookies).toEqual([])
      expect(calls).toEqual({ load: 1 })
      const data = yield* storedData(id)
      assert(Option.isSome(data))
      expect(data.value.data).toEqual({ visits: 1 })
    }).pipe(Effect.provide(env(mapped)))
  })
})

describe("pepper", () => {
  it.effect("a pepper changes the storage key: the same id does not find a session stored without it, and vice versa", () =>
    Effect.gen(function*() {
      const pepper = Redacted.make("a server-side secret")
      const peppered: Session.Options = { pepper }
      const id = yield* LifeSession.withSession("", Effect.zipRight(LifeSession.set("username", "p"), LifeSession.id), peppered)
      expect(Option.isNone(yield* storedRecord(id))).toBe(true)
      assert(Option.isSome(yield* storedRecord(id, SessionId.makeStorageKey(pepper))))
      // without the pepper the id finds nothing, and a write goes to a new id
      const [plainData, plainId] = yield* LifeSession.withSession(
        id,
        Effect.zipRight(LifeSession.set("theme", "t"), Effect.zip(LifeSession.getAll, LifeSession.id))
      )
      expect(plainData).toEqual({ theme: "t", visits: 0 })
      expect(plainId).not.toBe(id)
      // a different pepper finds nothing either
      const other = yield* LifeSession.withSession(id, LifeSession.getAll, { pepper: Redacted.make("another secret") })
      expect(other).toEqual({ visits: 0 })
      // with the pepper, it is there
      const back = yield* LifeSession.withSession(id, LifeSession.getAll, peppered)
      expect(back).toEqual({ username: "p", visits: 0 })
    }).pipe(Effect.provide(MemoryStore.layer())))

  it.effect("over HTTP, a peppered middleware stores under the HMAC key only", () =>
    Effect.gen(function*() {
      const pepper = Redacted.make("http pepper")
      return yield* Effect.gen(function*() {
        const browser = yield* makeBrowser
        yield* browser.get("/set-user")
        const id = browser.jar.get("session")!
        expect(Option.isNone(yield* storedRecord(id))).toBe(true)
        assert(Option.isSome(yield* storedRecord(id, SessionId.makeStorageKey(pepper))))
        expect(json(yield* browser.get("/show"))).toEqual({ username: "alice", visits: 0, principal: null })
      }).pipe(Effect.provide(env(app({ pepper }))))
    }))
})

describe("Vary and untouched responses", () => {
  for (const status of [403, 404, 500]) {
    it.effect(`a ${status} that read the session carries Vary: Cookie`, () =>
      Effect.gen(function*() {
        const browser = yield* makeBrowser
        yield* browser.get("/set-user")
        const res = yield* browser.get(`/read-${status}`)
        expect(res.status).toBe(status)
        expect(res.headers["vary"]).toBe("Cookie")
        expect(res.setCookies).toEqual([])
      }).pipe(Effect.provide(env(app()))))
  }

  it.effect("an unknown route (404) with a session cookie: no Vary, no Set-Cookie, no store call", () =>
    Effect.gen(function*() {
      const browser = yield* makeBrowser
      yield* browser.get("/set-user")
      const calls = yield* resetCalls
      const res = yield* browser.get("/no-such-route")
      expect(res.status).toBe(404)
      expect(res.headers["vary"]).toBeUndefined()
      expect(res.setCookies).toEqual([])
      expect(totalCalls(calls)).toBe(0)
    }).pipe(Effect.provide(env(app()))))
})

describe("observability", () => {
  /** A store wrapper that records the span each `load` / `update` was called under. */
  const spanRecording = Layer.effectContext(Effect.gen(function*() {
    const inner = yield* SessionStore
    const parents: Record<string, Array<string | undefined>> = { load: [], update: [], insert: [] }
    const record = (operation: string) =>
      Effect.flatMap(Effect.option(Effect.currentSpan), (span) =>
        Effect.sync(() => {
          parents[operation].push(Option.isSome(span) ? span.value.name : undefined)
        }))
    const wrapped: SessionStore["Type"] = {
      ...inner,
      load: (key) => Effect.zipRight(record("load"), inner.load(key)),
      update: (key, write, version) => Effect.zipRight(record("update"), inner.update(key, write, version)),
      insert: (key, write) => Effect.zipRight(record("insert"), inner.insert(key, write))
    }
    return Context.make(SessionStore, wrapped).pipe(Context.add(SpanParents, parents))
  })).pipe(Layer.provide(MemoryStore.layer()))

  class SpanParents extends Context.Tag("test/SpanParents")<SpanParents, Record<string, Array<string | undefined>>>() {}

  it.effect("the store's load runs under the caller's span, like its update", () =>
    Effect.gen(function*() {
      const parents = yield* SpanParents
      const id = yield* Effect.withSpan(
        LifeSession.withSession("", Effect.zipRight(LifeSession.set("username", "traced"), LifeSession.id)),
        "create"
      )
      yield* Effect.withSpan(LifeSession.withSession(id, LifeSession.update("visits", (n) => n + 1)), "caller")
      expect(parents.insert).toEqual(["create"])
      expect(parents.update).toEqual(["caller"])
      // the load must be a child of the caller's span too, not a detached root
      expect(parents.load).toEqual(["caller"])
    }).pipe(Effect.provide(spanRecording)))

  it.effect("over HTTP, the load triggered inside a handler's span is a child of that span", () =>
    Effect.gen(function*() {
      const parents = yield* SpanParents
      const browser = yield* makeBrowser
      yield* browser.get("/set-user")
      parents.load.length = 0
      yield* browser.get("/traced-incr")
      expect(parents.load).toEqual(["handler"])
    }).pipe(Effect.provide(serve(app()).pipe(Layer.provideMerge(spanRecording)))))
})

describe("store spans", () => {
  const key = SessionId.storageKey(SessionId.unsafeGenerate())
  const record = { data: new Uint8Array([123, 125]), version: 1, expiresAt: Number.MAX_SAFE_INTEGER, principal: Option.none() }
  const store = makeStore("recorded", {
    load: () => Effect.succeedSome(record),
    insert: () => Effect.void,
    update: () => Effect.fail(new SessionConflict({ reason: "VersionMismatch" })),
    touch: () => Effect.never,
    remove: () => Effect.void
  })

  it.live("each operation gets a span under the caller's, with the store and a key prefix, ended with its outcome", () =>
    Effect.gen(function*() {
      const spans: Array<RecordedSpan> = []
      const traced = <A, E>(effect: Effect.Effect<A, E>) =>
        effect.pipe(Effect.withSpan("caller"), Effect.withTracer(recordingTracer(spans)))
      yield* traced(store.load(key))
      yield* traced(Effect.either(store.update(key, { ...record, data: record.data }, 1)))
      // interrupted mid-operation: the span still ends, with the interruption
      yield* traced(Effect.timeoutOption(store.touch(key, 1), "10 millis"))
      const own = spans.filter((span) => span.name.startsWith("effect-session."))
      expect(own.map((span) => [span.name, span.parent])).toEqual([
        ["effect-session.load", "caller"],
        ["effect-session.update", "caller"],
        ["effect-session.touch", "caller"]
      ])
      for (const span of own) {
        expect(span.attributes.get("effect-session.store")).toBe("recorded")
        expect(span.attributes.get("effect-session.key")).toBe(key.slice(0, 8))
        expect(span.exit).toBeDefined()
      }
      assert(own[0].exit !== undefined && own[1].exit !== undefined && own[2].exit !== undefined)
      expect(Exit.isSuccess(own[0].exit)).toBe(true)
      expect(Exit.isFailure(own[1].exit)).toBe(true)
      assert(Exit.isFailure(own[2].exit))
      expect(Cause.isInterruptedOnly(own[2].exit.cause)).toBe(true)
    }))

  it.effect("annotations of the caller are copied; with tracing disabled no span is made", () =>
    Effect.gen(function*() {
      const spans: Array<RecordedSpan> = []
      yield* store.load(key).pipe(
        Effect.annotateSpans("tenant", "t-1"),
        Effect.withTracer(recordingTracer(spans))
      )
      expect(spans.map((span) => span.name)).toEqual(["effect-session.load"])
      expect(spans[0].attributes.get("tenant")).toBe("t-1")
      expect(spans[0].parent).toBeUndefined()
      yield* store.load(key).pipe(Effect.withTracer(recordingTracer(spans)), Effect.withTracerEnabled(false))
      expect(spans.length).toBe(1)
    }))
})

describe("SessionIndex is untouched by anonymous sessions", () => {
  it.effect("a session without login is listed under no principal", () =>
    Effect.gen(function*() {
      const browser = yield* makeBrowser
      yield* browser.get("/set-user")
      const index = yield* SessionIndex
      expect(yield* index.keys("alice")).toEqual([])
      expect(yield* index.keys("")).toEqual([])
    }).pipe(Effect.provide(envWithIndex(app()))))
})

describe("responses to requests that raced a login", () => {
  it.effect("a read-only request still carrying the pre-login id does not expire the browser's new cookie", () =>
    Effect.gen(function*() {
      // A page fires a read (an XHR) with the old cookie while the login request is in flight; the
      // read's response arrives after the login's. Expiring the cookie here deletes the *new* one.
      const browser = yield* makeBrowser
      yield* browser.get("/incr")
      const oldId = browser.jar.get("session")!
      yield* browser.get("/login-alice")
      const newId = browser.jar.get("session")!
      expect(newId).not.toBe(oldId)
      const inFlight = yield* browser.get("/show", { cookie: `session=${oldId}` })
      expect(inFlight.status).toBe(200)
      expect(inFlight.setCookies).toEqual([])
      expect(browser.jar.get("session")).toBe(newId)
      expect(json(yield* browser.get("/show"))).toEqual({ username: "alice", visits: 1, principal: "alice" })
    }).pipe(Effect.provide(env(app()))))

  it.live("a slow write whose session moved to a new id meanwhile is dropped without expiring the new cookie", () =>
    Effect.gen(function*() {
      const { app: slowApp, paused, release } = yield* pausedRoute("/slow-theme", LifeSession.set("theme", "late"))
      return yield* Effect.gen(function*() {
        const browser = yield* makeBrowser
        yield* browser.get("/incr")
        const oldId = browser.jar.get("session")!
        const slow = yield* Effect.fork(browser.get("/slow-theme", { cookie: `session=${oldId}` }))
        yield* Deferred.await(paused)
        yield* browser.get("/login-alice")
        const newId = browser.jar.get("session")!
        yield* Deferred.succeed(release, void 0)
        const slowResult = yield* Effect.flatten(slow.await)
        expect(slowResult.body).toBe("slow done")
        // the old record is gone (a tombstone) and is not recreated
        expect(isEnded(yield* storedRecord(oldId))).toBe(true)
        // and the browser keeps its new session
        expect(slowResult.setCookies.map((line) => parseSetCookie(line).attributes["max-age"])).not.toContain("0")
        expect(browser.jar.get("session")).toBe(newId)
        expect(json(yield* browser.get("/show"))).toEqual({ username: "alice", visits: 1, principal: "alice" })
      }).pipe(Effect.provide(env(slowApp, "2 millis")))
    }))
})

/** A save of another process (its own lanes): load, increment `visits`, compare-and-set. */
const incrementFromAnotherProcess = (id: string) =>
  Effect.gen(function*() {
    const store = yield* SessionStore
    const key = SessionId.storageKey(id as SessionId.SessionId)
    const record = yield* store.load(key)
    assert(Option.isSome(record))
    const envelope = yield* codec.decode(record.value.data)
    const data = yield* codec.encode({ ...envelope, data: { ...envelope.data, visits: (envelope.data.visits ?? 0) + 1 } })
    yield* store.update(key, { data, expiresAt: record.value.expiresAt, principal: record.value.principal }, record.value.version)
  })

describe("conflict retries", () => {
  it.live("maxConflictRetries: 0 — a save that loses its compare-and-set fails with SessionConflict and stores nothing", () =>
    Effect.gen(function*() {
      const paused = yield* Deferred.make<void>()
      const release = yield* Deferred.make<void>()
      const strict = routes.pipe(
        HttpRouter.get(
          "/slow-theme",
          Effect.gen(function*() {
            yield* LifeSession.getAll
            yield* Deferred.succeed(paused, void 0)
            yield* Deferred.await(release)
            yield* LifeSession.set("theme", "late")
            return HttpServerResponse.text("slow done")
          })
        ),
        LifeSession.middleware({ cookie: { secure: false }, maxConflictRetries: 0 }),
        Effect.catchTag("SessionConflict", (e) => HttpServerResponse.text(e.reason, { status: 409 }))
      )
      return yield* Effect.gen(function*() {
        const browser = yield* makeBrowser
        yield* browser.get("/incr")
        const id = browser.jar.get("session")!
        const cookie = `session=${id}`
        const slow = yield* Effect.fork(browser.get("/slow-theme", { cookie }))
        yield* Deferred.await(paused)
        // the saves of one process take turns and never conflict: the
        // concurrent writer is another process, writing to the store directly
        yield* incrementFromAnotherProcess(id)
        yield* Deferred.succeed(release, void 0)
        const slowResult = yield* Effect.flatten(slow.await)
        expect(slowResult.status).toBe(409)
        expect(slowResult.body).toBe("VersionMismatch")
        expect(slowResult.setCookies).toEqual([])
        const stored = yield* storedData(id)
        assert(Option.isSome(stored))
        expect(stored.value.data).toEqual({ visits: 2 })
      }).pipe(Effect.provide(env(strict, "2 millis")))
    }))
})

describe("other headers of the app's response", () => {
  it.effect("the app's own cookies and Vary survive next to the session cookie", () => {
    const withCookie = routes.pipe(
      HttpRouter.get(
        "/own-cookie",
        Effect.as(
          LifeSession.set("theme", "mine"),
          HttpServerResponse.text("ok", { headers: { vary: "Origin" } }).pipe(
            HttpServerResponse.unsafeSetCookie("prefs", "compact", { path: "/" })
          )
        )
      ),
      LifeSession.middleware({ cookie: { secure: false } })
    )
    return Effect.gen(function*() {
      const browser = yield* makeBrowser
      const res = yield* browser.get("/own-cookie")
      // the Node client joins several Set-Cookie headers into one line with ", "
      const lines = res.setCookies.flatMap((line) => line.split(/, (?=[^;=\s]+=)/))
      const names = lines.map((line) => parseSetCookie(line).name).sort()
      expect(names).toEqual(["prefs", "session"])
      expect(res.headers["vary"]).toBe("Origin, Cookie")
    }).pipe(Effect.provide(env(withCookie)))
  })
})

describe("interruption", () => {
  it.live("a first access interrupted mid-load (a timeout) does not break the session for the rest of the request", () => {
    const timeoutApp = routes.pipe(
      HttpRouter.get(
        "/timeout-then-read",
        Effect.gen(function*() {
          // the store takes 50 ms; the handler gives its first read 5 ms, then falls back to waiting
          const quick = yield* Effect.timeoutOption(LifeSession.get("username"), "5 millis")
          const username = yield* LifeSession.get("username")
          return HttpServerResponse.text(`${Option.isSome(quick) ? "quick" : "timed out"}:${username ?? "anonymous"}`)
        })
      ),
      HttpRouter.get(
        "/timeout-while-another-waits",
        Effect.gen(function*() {
          // the first fiber starts the load and is interrupted 5 ms into it;
          // the second arrived meanwhile and waits for that load: it must
          // not wait forever, but load for itself
          const [quick, waiter] = yield* Effect.all([
            Effect.timeoutOption(LifeSession.get("username"), "5 millis"),
            Effect.zipRight(Effect.sleep("1 millis"), LifeSession.get("username"))
          ], { concurrency: 2 })
          return HttpServerResponse.text(`${Option.isSome(quick) ? "quick" : "timed out"}:${waiter ?? "anonymous"}`)
        })
      ),
      HttpRouter.get(
        "/timeout-then-write",
        Effect.gen(function*() {
          yield* Effect.timeoutOption(LifeSession.get("username"), "5 millis")
          yield* LifeSession.update("visits", (n) => n + 1)
          return HttpServerResponse.text("written")
        })
      ),
      LifeSession.middleware({ cookie: { secure: false } })
    )
    return Effect.gen(function*() {
      const browser = yield* makeBrowser
      yield* browser.get("/set-user")
      const read = yield* browser.get("/timeout-then-read")
      expect(read.status).toBe(200)
      expect(read.body).toBe("timed out:alice")
      const waited = yield* browser.get("/timeout-while-another-waits")
      expect(waited.status).toBe(200)
      expect(waited.body).toBe("timed out:alice")
      const write = yield* browser.get("/timeout-then-write")
      expect(write.status).toBe(200)
      expect(write.body).toBe("written")
      expect(json(yield* browser.get("/show"))).toEqual({ username: "alice", visits: 1, principal: null })
    }).pipe(
      Effect.provide(serve(timeoutApp).pipe(Layer.provideMerge(counting(MemoryStore.layer(), { latency: "50 millis" }))))
    )
  })
})

describe("expired sessions and clear", () => {
  it.effect("a write after the idle timeout issues a new id; the expired record is not brought back", () => {
    const timed = app({ idleTimeout: "30 minutes" })
    return Effect.gen(function*() {
      const browser = yield* makeBrowser
      yield* browser.get("/set-user")
      const oldId = browser.jar.get("session")!
      yield* TestClock.adjust("31 minutes")
      const calls = yield* resetCalls
      const res = yield* browser.get("/incr")
      expect(calls).toEqual({ load: 1, insert: 1 })
      const newId = parseSetCookie(res.setCookies[0]).value
      expect(newId).not.toBe(oldId)
      expect(Option.isNone(yield* storedRecord(oldId))).toBe(true)
      expect(json(yield* browser.get("/show"))).toEqual({ visits: 1, principal: null })
    }).pipe(Effect.provide(env(timed)))
  })

  it.live("a slow clear-then-set replays as clear-then-set over a concurrent increment", () =>
    Effect.gen(function*() {
      const { app: slowApp, paused, release } = yield* pausedRoute(
        "/slow-clear",
        Effect.zipRight(LifeSession.clear, LifeSession.set("theme", "after-clear"))
      )
      return yield* Effect.gen(function*() {
        const browser = yield* makeBrowser
        yield* browser.get("/set-user")
        const cookie = `session=${browser.jar.get("session")}`
        const slow = yield* Effect.fork(browser.get("/slow-clear", { cookie }))
        yield* Deferred.await(paused)
        yield* browser.get("/incr", { cookie })
        yield* Deferred.succeed(release, void 0)
        expect((yield* Effect.flatten(slow.await)).body).toBe("slow done")
        // the clear was saved last, so it also clears what the increment wrote; the set survives it
        expect(json(yield* browser.get("/show", { cookie }))).toEqual({ theme: "after-clear", visits: 0, principal: null })
      }).pipe(Effect.provide(env(slowApp, "2 millis")))
    }))
})

describe("bounded retries against a store whose compare-and-set always loses", () => {
  /** Every `update` reports a newer version, as under a storm of concurrent writers. */
  const alwaysConflicting = Layer.effectContext(Effect.gen(function*() {
    const inner = yield* SessionStore
    // the writers' storm is on the stored session; a key the app inserts
    // during the request (the new id of a regenerate) is known to no one else
    const inserted = new Set<string>()
    const updates = { count: 0, inserted }
    const wrapped: SessionStore["Type"] = {
      ...inner,
      insert: (key, write) => Effect.zipRight(Effect.sync(() => inserted.add(key)), inner.insert(key, write)),
      // a network round trip: lets a runaway retry loop yield to the timers of the test
      update: (key, write, version) =>
        inserted.has(key) ? inner.update(key, write, version) : Effect.zipRight(
          Effect.sleep("1 millis"),
          Effect.suspend(() => {
            updates.count++
            return Effect.fail(new SessionConflict({ reason: "VersionMismatch" }))
          })
        )
    }
    return Context.make(SessionStore, wrapped).pipe(Context.add(UpdateCount, updates))
  })).pipe(Layer.provide(MemoryStore.layer()))

  class UpdateCount extends Context.Tag("test/UpdateCount")<UpdateCount, { count: number; readonly inserted: Set<string> }>() {}

  const bounded = routes.pipe(
    LifeSession.middleware({ cookie: { secure: false }, maxConflictRetries: 3 }),
    Effect.catchTag("SessionConflict", (e) => HttpServerResponse.text(e.reason, { status: 409 }))
  )

  for (const path of ["/incr", "/regenerate", "/login-alice"]) {
    it.live(`${path} gives up with SessionConflict after maxConflictRetries replays`, () =>
      Effect.gen(function*() {
        const browser = yield* makeBrowser
        yield* browser.get("/set-user")
        const updates = yield* UpdateCount
        updates.count = 0
        updates.inserted.clear()
        const res = yield* Effect.timeoutOption(browser.get(path), "2 seconds")
        assert(Option.isSome(res), `${path} was still retrying after 2 seconds (${updates.count} updates)`)
        expect(res.value.status).toBe(409)
        expect(res.value.body).toBe("VersionMismatch")
        expect(updates.count).toBe(4)
      }).pipe(Effect.provide(serve(bounded).pipe(Layer.provideMerge(alwaysConflicting)))))
  }
})

describe("what a store is given to write", () => {
  class Writes extends Context.Tag("test/Writes")<Writes, Array<SessionStoreModule.SessionWrite>>() {}
  // a wrapper that passes on a spread copy of every write, as some wrappers do
  const recording = Layer.effectContext(Effect.gen(function*() {
    const inner = yield* SessionStore
    const writes: Array<SessionStoreModule.SessionWrite> = []
    const wrapped: SessionStore["Type"] = {
      ...inner,
      insert: (key, write) => Effect.zipRight(Effect.sync(() => writes.push(write)), inner.insert(key, { ...write })),
      update: (key, write, version) =>
        Effect.zipRight(Effect.sync(() => writes.push(write)), inner.update(key, { ...write }, version))
    }
    return Context.make(SessionStore, wrapped).pipe(Context.add(Writes, writes))
  })).pipe(Layer.provide(MemoryStore.layer()))

  it.effect("every insert and update carries its text, whose UTF-8 bytes are its data; a spread copy still stores the right bytes", () =>
    Effect.gen(function*() {
      const browser = yield* makeBrowser
      yield* browser.get("/set-user")
      yield* browser.get("/incr")
      yield* browser.get("/login-alice")
      const writes = yield* Writes
      expect(writes.length).toBeGreaterThanOrEqual(3)
      // (the login's tombstone under the old key is no session)
      for (const write of writes.filter((w) => !w.text?.startsWith(`{"v":1,"tombstone":`))) {
        assert(write.text !== undefined)
        expect(write.data).toEqual(new TextEncoder().encode(write.text))
        const decoded = yield* codec.decode(write.data)
        expect(decoded.data.username).toBe("alice")
      }
      // the backend (a MemoryStore, which reads bytes) got them although the wrapper's copy had none
      const stored = yield* storedData(browser.jar.get("session")!)
      expect(Option.map(stored, (envelope) => envelope.data)).toEqual(Option.some({ username: "alice", visits: 1 }))
    }).pipe(Effect.provide(serve(app()).pipe(Layer.provideMerge(recording)))))
})
