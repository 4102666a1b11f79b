import { HttpRouter, HttpServerResponse } from "@effect/platform"
import { assert, describe, expect, it } from "@effect/vitest"
import { Cause, Deferred, Effect, Exit, Layer, Option, Schema, TestClock } from "effect"
import * as MemoryStore from "../src/MemoryStore.js"
import * as Session from "../src/Session.js"
import { SessionStoreError } from "../src/SessionError.js"
import * as SessionId from "../src/SessionId.js"
import { SessionStore } from "../src/SessionStore.js"
import { counting, makeBrowser, parseSetCookie, serve, StoreCalls, totalCalls } from "./utils/http.js"
import { isEnded } from "./utils/records.js"

class TestSession extends Session.Tag<TestSession>()("test/TestSession", {
  username: Schema.optional(Schema.String),
  visits: Schema.optionalWith(Schema.Number, { default: () => 0 })
}) {}

const routes = HttpRouter.empty.pipe(
  HttpRouter.get("/plain", HttpServerResponse.text("plain")),
  HttpRouter.get(
    "/get",
    Effect.map(TestSession.getAll, (s) => HttpServerResponse.text(`${s.username ?? "anonymous"}:${s.visits}`))
  ),
  HttpRouter.get(
    "/login",
    Effect.gen(function*() {
      yield* TestSession.login("testuser")
      yield* TestSession.set("username", "testuser")
      return HttpServerResponse.text("ok")
    })
  ),
  HttpRouter.get("/regenerate", Effect.as(TestSession.regenerate, HttpServerResponse.text("ok"))),
  HttpRouter.get("/logout", Effect.as(TestSession.invalidate, HttpServerResponse.text("bye"))),
  HttpRouter.get(
    "/incr",
    Effect.gen(function*() {
      yield* TestSession.update("visits", (n) => n + 1)
      return HttpServerResponse.text(String(yield* TestSession.get("visits")))
    })
  ),
  HttpRouter.get("/remove", Effect.as(TestSession.remove("username"), HttpServerResponse.text("ok"))),
  HttpRouter.get("/clear", Effect.as(TestSession.clear, HttpServerResponse.text("ok"))),
  HttpRouter.get(
    "/set-then-fail",
    Effect.zipRight(TestSession.set("username", "mallory"), Effect.fail(new Error("handler failed")))
  ),
  HttpRouter.get(
    "/set-then-500",
    Effect.as(TestSession.set("username", "mallory"), HttpServerResponse.text("oops", { status: 500 }))
  ),
  HttpRouter.get("/big", Effect.as(TestSession.set("username", "x".repeat(70_000)), HttpServerResponse.text("ok"))),
  HttpRouter.get(
    "/vary",
    Effect.as(TestSession.get("username"), HttpServerResponse.text("ok", { headers: { vary: "Accept-Encoding" } }))
  ),
  HttpRouter.get("/id", Effect.map(TestSession.id, (id) => HttpServerResponse.text(id)))
)

const app = routes.pipe(TestSession.middleware({ cookie: { secure: false } }))

const env = <E, R>(httpApp: Parameters<typeof serve<E, R>>[0]) =>
  serve(httpApp).pipe(Layer.provideMerge(counting(MemoryStore.layer())))

const resetCalls = Effect.map(StoreCalls, (calls) => {
  for (const k of Object.keys(calls)) delete calls[k]
  return calls
})

const storedRecord = (id: string) =>
  Effect.flatMap(SessionStore, (store) => store.load(SessionId.storageKey(id as SessionId.SessionId)))

describe("Session middleware over HTTP", () => {
  it.effect("a route that never touches the session sets no cookie, adds no Vary and calls no store", () =>
    Effect.gen(function*() {
      const browser = yield* makeBrowser
      yield* browser.get("/login")
      const calls = yield* resetCalls
      const res = yield* browser.get("/plain")
      expect(res.body).toBe("plain")
      expect(res.setCookies).toEqual([])
      expect(res.headers["vary"]).toBeUndefined()
      expect(totalCalls(calls)).toBe(0)
    }).pipe(Effect.provide(env(app))))

  it.effect("reading without a cookie costs no store call and sets no cookie, but adds Vary", () =>
    Effect.gen(function*() {
      const browser = yield* makeBrowser
      const calls = yield* resetCalls
      const res = yield* browser.get("/get")
      expect(res.body).toBe("anonymous:0")
      expect(res.setCookies).toEqual([])
      expect(res.headers["vary"]).toBe("Cookie")
      expect(totalCalls(calls)).toBe(0)
    }).pipe(Effect.provide(env(app))))

  it.effect("a read-only request with a session costs exactly one store call", () =>
    Effect.gen(function*() {
      const browser = yield* makeBrowser
      yield* browser.get("/login")
      const calls = yield* resetCalls
      const res = yield* browser.get("/get")
      expect(res.body).toBe("testuser:0")
      expect(res.headers["vary"]).toBe("Cookie")
      expect(res.setCookies).toEqual([])
      expect(calls).toEqual({ load: 1 })
    }).pipe(Effect.provide(env(app))))

  it.effect("a new session is stored only when written, with one insert", () =>
    Effect.gen(function*() {
      const browser = yield* makeBrowser
      const calls = yield* resetCalls
      yield* browser.get("/get")
      expect(browser.jar.size).toBe(0)
      const res = yield* browser.get("/incr")
      expect(res.body).toBe("1")
      expect(calls).toEqual({ insert: 1 })
      const cookie = parseSetCookie(res.setCookies[0])
      expect(cookie.name).toBe("session")
      expect(cookie.value).toMatch(/^[A-Za-z0-9_-]{43}$/)
      expect(cookie.attributes["httponly"]).toBe(true)
      expect(cookie.attributes["samesite"]).toBe("Lax")
      expect(cookie.attributes["path"]).toBe("/")
      expect(cookie.attributes["max-age"]).toBe(String(14 * 24 * 3600))
      const record = yield* storedRecord(cookie.value)
      assert(Option.isSome(record))
      // the store never sees the raw id
      expect(new TextDecoder().decode(record.value.data)).not.toContain(cookie.value)
    }).pipe(Effect.provide(env(app))))

  it.effect("a modifying request costs a load and one compare-and-set update", () =>
    Effect.gen(function*() {
      const browser = yield* makeBrowser
      yield* browser.get("/incr")
      const calls = yield* resetCalls
      const res = yield* browser.get("/incr")
      expect(res.body).toBe("2")
      expect(calls).toEqual({ load: 1, update: 1 })
    }).pipe(Effect.provide(env(app))))

  it.effect("a write that leaves the data as it was stores nothing", () =>
    Effect.gen(function*() {
      const browser = yield* makeBrowser
      yield* browser.get("/incr")
      const calls = yield* resetCalls
      // removing a value the session does not have changes nothing
      const res = yield* browser.get("/remove")
      expect(res.status).toBe(200)
      expect(res.setCookies).toEqual([])
      expect(calls).toEqual({ load: 1 })
    }).pipe(Effect.provide(env(app))))

  it.effect("regenerate changes the id, keeps the data, and the old id no longer works", () =>
    Effect.gen(function*() {
      const browser = yield* makeBrowser
      yield* browser.get("/incr")
      yield* browser.get("/incr")
      const oldId = browser.jar.get("session")!
      const res = yield* browser.get("/regenerate")
      expect(res.status).toBe(200)
      const newId = browser.jar.get("session")!
      expect(newId).not.toBe(oldId)
      expect((yield* browser.get("/get")).body).toBe("anonymous:2")
      const stale = yield* browser.get("/get", { cookie: `session=${oldId}` })
      expect(stale.body).toBe("anonymous:0")
      expect(isEnded(yield* storedRecord(oldId))).toBe(true)
    }).pipe(Effect.provide(env(app))))

  it.effect("logout removes the record and expires the cookie with the attributes it was set with", () => {
    const custom = routes.pipe(TestSession.middleware({
      cookie: { name: "sid", domain: "example.test", path: "/", secure: true, sameSite: "strict" }
    }))
    return Effect.gen(function*() {
      const browser = yield* makeBrowser
      const login = yield* browser.get("/login")
      const set = parseSetCookie(login.setCookies[0])
      const id = set.value
      expect(set.attributes).toMatchObject({ domain: "example.test", path: "/", secure: true, samesite: "Strict" })
      assert(Option.isSome(yield* storedRecord(id)))
      const logout = yield* browser.get("/logout", { cookie: `sid=${id}` })
      expect(logout.body).toBe("bye")
      const expired = parseSetCookie(logout.setCookies[0])
      expect(expired.name).toBe("sid")
      expect(expired.value).toBe("")
      expect(expired.attributes).toMatchObject({
        domain: "example.test",
        path: "/",
        secure: true,
        samesite: "Strict",
        "max-age": "0"
      })
      expect(Option.isNone(yield* storedRecord(id))).toBe(true)
      expect((yield* browser.get("/get", { cookie: `sid=${id}` })).body).toBe("anonymous:0")
    }).pipe(Effect.provide(env(custom)))
  })

  it.effect("clearing every value removes the record and expires the cookie", () =>
    Effect.gen(function*() {
      const browser = yield* makeBrowser
      yield* browser.get("/incr")
      const id = browser.jar.get("session")!
      const res = yield* browser.get("/clear")
      expect(parseSetCookie(res.setCookies[0]).attributes["max-age"]).toBe("0")
      expect(browser.jar.has("session")).toBe(false)
      expect(Option.isNone(yield* storedRecord(id))).toBe(true)
    }).pipe(Effect.provide(env(app))))

  describe("malformed cookies give a fresh session, never a 5xx, never a store call", () => {
    const malformed: ReadonlyArray<readonly [string, string]> = [
      ["empty", "session="],
      ["spaces", "session=   a b c   "],
      ["6 KB", `session=${"A".repeat(6 * 1024)}`],
      ["non-ASCII", "session=caf%C3%A9-sessi%C3%B3n-\u00e9\u00e8"],
      ["path traversal", "session=../../etc/passwd"],
      ["NoSQL operator", `session={"$gt":""}`],
      ["43 chars, bad alphabet", `session=${"+".repeat(20)}${"/".repeat(23)}`],
      ["44 chars", `session=${"a".repeat(44)}`],
      ["bad percent-encoding", "session=%E0%A4%A"]
    ]
    for (const [name, cookie] of malformed) {
      it.effect(name, () =>
        Effect.gen(function*() {
          const browser = yield* makeBrowser
          const calls = yield* resetCalls
          const read = yield* browser.get("/get", { cookie })
          expect(read.status).toBe(200)
          expect(read.body).toBe("anonymous:0")
          expect(totalCalls(calls)).toBe(0)
          const write = yield* browser.get("/incr", { cookie })
          expect(write.status).toBe(200)
          expect(write.body).toBe("1")
          expect(calls).toEqual({ insert: 1 })
          expect(parseSetCookie(write.setCookies[0]).value).toMatch(/^[A-Za-z0-9_-]{43}$/)
        }).pipe(Effect.provide(env(app))))
    }

    it.effect("a well-formed id nobody issued: one load, then a new id on write", () =>
      Effect.gen(function*() {
        const browser = yield* makeBrowser
        const forged = SessionId.unsafeGenerate()
        const calls = yield* resetCalls
        const res = yield* browser.get("/incr", { cookie: `session=${forged}` })
        expect(res.body).toBe("1")
        expect(calls).toEqual({ load: 1, insert: 1 })
        const issued = parseSetCookie(res.setCookies[0]).value
        expect(issued).not.toBe(forged)
        expect(Option.isNone(yield* storedRecord(forged))).toBe(true)
      }).pipe(Effect.provide(env(app))))
  })

  it.effect("a failing handler commits nothing", () =>
    Effect.gen(function*() {
      const browser = yield* makeBrowser
      yield* browser.get("/login")
      const calls = yield* resetCalls
      const res = yield* browser.get("/set-then-fail")
      expect(res.status).toBe(500)
      expect(res.setCookies).toEqual([])
      expect(calls).toEqual({ load: 1 })
      expect((yield* browser.get("/get")).body).toBe("testuser:0")
    }).pipe(Effect.provide(env(app))))

  it.effect("a 5xx response commits nothing", () =>
    Effect.gen(function*() {
      const browser = yield* makeBrowser
      yield* browser.get("/login")
      const calls = yield* resetCalls
      const res = yield* browser.get("/set-then-500")
      expect(res.status).toBe(500)
      expect(res.setCookies).toEqual([])
      expect(calls).toEqual({ load: 1 })
      expect((yield* browser.get("/get")).body).toBe("testuser:0")
    }).pipe(Effect.provide(env(app))))

  it.effect("an oversized session fails with SessionTooLarge before anything is written", () => {
    const mapped = routes.pipe(
      TestSession.middleware({ cookie: { secure: false } }),
      Effect.catchTag("SessionTooLarge", (e) => HttpServerResponse.text(e.message, { status: 413 }))
    )
    return Effect.gen(function*() {
      const browser = yield* makeBrowser
      yield* browser.get("/incr")
      const calls = yield* resetCalls
      const res = yield* browser.get("/big")
      expect(res.status).toBe(413)
      expect(res.body).toContain("over the limit of 65536 bytes")
      expect(calls).toEqual({ load: 1 })
      expect((yield* browser.get("/get")).body).toBe("anonymous:1")
    }).pipe(Effect.provide(env(mapped)))
  })

  it.effect("Vary: Cookie is merged into an existing Vary header", () =>
    Effect.gen(function*() {
      const browser = yield* makeBrowser
      const res = yield* browser.get("/vary")
      expect(res.headers["vary"]).toBe("Accept-Encoding, Cookie")
    }).pipe(Effect.provide(env(app))))

  it.effect("idle timeout: a session unused for longer than idleTimeout is gone", () => {
    const timed = routes.pipe(TestSession.middleware({ cookie: { secure: false }, idleTimeout: "30 minutes" }))
    return Effect.gen(function*() {
      const browser = yield* makeBrowser
      yield* browser.get("/incr")
      yield* TestClock.adjust("29 minutes")
      expect((yield* browser.get("/get")).body).toBe("anonymous:1")
      yield* browser.get("/incr") // activity moves the idle deadline
      yield* TestClock.adjust("29 minutes")
      expect((yield* browser.get("/get")).body).toBe("anonymous:2")
      yield* TestClock.adjust("31 minutes")
      expect((yield* browser.get("/get")).body).toBe("anonymous:0")
    }).pipe(Effect.provide(env(timed)))
  })

  it.effect("absolute timeout: activity does not keep a session alive past absoluteTimeout", () => {
    const timed = routes.pipe(
      TestSession.middleware({ cookie: { secure: false }, idleTimeout: "1 hour", absoluteTimeout: "2 hours" })
    )
    return Effect.gen(function*() {
      const browser = yield* makeBrowser
      yield* browser.get("/incr")
      for (let i = 0; i < 2; i++) {
        yield* TestClock.adjust("40 minutes")
        yield* browser.get("/incr")
      }
      yield* TestClock.adjust("39 minutes")
      expect((yield* browser.get("/get")).body).toBe("anonymous:3")
      // 2 hours after creation: dead, although last used 40 minutes ago with a 1 hour idle timeout
      yield* TestClock.adjust("1 minute")
      expect((yield* browser.get("/get")).body).toBe("anonymous:0")
    }).pipe(Effect.provide(env(timed)))
  })

  it.effect("touch is throttled: reads extend the idle deadline only once touchAfter has passed", () => {
    const timed = routes.pipe(
      TestSession.middleware({ cookie: { secure: false }, idleTimeout: "10 hours", touchAfter: "1 hour" })
    )
    return Effect.gen(function*() {
      const browser = yield* makeBrowser
      yield* browser.get("/incr")
      const calls = yield* resetCalls
      yield* TestClock.adjust("30 minutes")
      const early = yield* browser.get("/get")
      expect(early.setCookies).toEqual([])
      expect(calls).toEqual({ load: 1 })
      yield* TestClock.adjust("31 minutes")
      const late = yield* browser.get("/get")
      expect(calls).toEqual({ load: 2, touch: 1 })
      // the persistent cookie is re-sent with the new time left
      expect(parseSetCookie(late.setCookies[0]).attributes["max-age"]).toBe(String(10 * 3600))
      // 9.5 hours after the touch (10.5 after the write) the session still lives
      yield* TestClock.adjust("570 minutes")
      expect((yield* browser.get("/get")).body).toBe("anonymous:1")
    }).pipe(Effect.provide(env(timed)))
  })

  it.live("50 concurrent increments on one session end at 50", () =>
    Effect.gen(function*() {
      const browser = yield* makeBrowser
      yield* browser.get("/incr")
      const cookie = `session=${browser.jar.get("session")}`
      const results = yield* Effect.all(
        Array.from({ length: 50 }, () => browser.get("/incr", { cookie })),
        { concurrency: "unbounded" }
      )
      expect(results.every((r) => r.status === 200)).toBe(true)
      expect((yield* browser.get("/get")).body).toBe("anonymous:51")
      // the saves of one process are written in groups, each over the last
      // one's result: no compare-and-set is lost, so no request reloads (one
      // load each, and the final read's), and a group takes one write for
      // all its requests
      const calls = yield* StoreCalls
      expect(calls.load).toBe(51)
      expect(calls.update).toBeGreaterThan(0)
      expect(calls.update).toBeLessThan(50)
    }).pipe(
      Effect.provide(serve(app).pipe(Layer.provideMerge(counting(MemoryStore.layer(), { latency: "2 millis" }))))
    ))

  it.live("a slow request that writes after a concurrent logout does not bring the session back", () =>
    Effect.gen(function*() {
      const loaded = yield* Deferred.make<void>()
      const release = yield* Deferred.make<void>()
      const slow = routes.pipe(
        HttpRouter.get(
          "/slow",
          Effect.gen(function*() {
            yield* TestSession.get("visits")
            yield* Deferred.succeed(loaded, void 0)
            yield* Deferred.await(release)
            yield* TestSession.update("visits", (n) => n + 100)
            return HttpServerResponse.text("slow done")
          })
        ),
        TestSession.middleware({ cookie: { secure: false } })
      )
      return yield* Effect.gen(function*() {
        const browser = yield* makeBrowser
        yield* browser.get("/login")
        const id = browser.jar.get("session")!
        const cookie = `session=${id}`
        const slowRequest = yield* Effect.fork(browser.get("/slow", { cookie }))
        yield* Deferred.await(loaded)
        const logout = yield* browser.get("/logout", { cookie })
        expect(logout.body).toBe("bye")
        yield* Deferred.succeed(release, void 0)
        const slowResult = yield* slowRequest.await.pipe(Effect.flatten)
        expect(slowResult.body).toBe("slow done")
        expect(Option.isNone(yield* storedRecord(id))).toBe(true)
        expect((yield* browser.get("/get", { cookie })).body).toBe("anonymous:0")
      }).pipe(Effect.provide(env(slow)))
    }))

  const withPausedRoute = (path: HttpRouter.PathInput, before: Effect.Effect<unknown, any, TestSession>, after: Effect.Effect<unknown, any, TestSession>) =>
    Effect.gen(function*() {
      const paused = yield* Deferred.make<void>()
      const release = yield* Deferred.make<void>()
      const slow = routes.pipe(
        HttpRouter.get(
          path,
          Effect.gen(function*() {
            yield* before
            yield* Deferred.succeed(paused, void 0)
            yield* Deferred.await(release)
            yield* after
            return HttpServerResponse.text("slow done")
          })
        ),
        TestSession.middleware({ cookie: { secure: false } })
      )
      return { paused, release, app: slow }
    })

  it.live("a concurrent save is not overwritten: the loser's writes are replayed over the winner's data", () =>
    Effect.gen(function*() {
      const { app: slow, paused, release } = yield* withPausedRoute(
        "/slow-set",
        TestSession.get("visits"),
        TestSession.set("username", "late-writer")
      )
      return yield* Effect.gen(function*() {
        const browser = yield* makeBrowser
        yield* browser.get("/incr")
        const cookie = `session=${browser.jar.get("session")}`
        const calls = yield* resetCalls
        const slowRequest = yield* Effect.fork(browser.get("/slow-set", { cookie }))
        yield* Deferred.await(paused)
        expect((yield* browser.get("/incr", { cookie })).body).toBe("2")
        yield* Deferred.succeed(release, void 0)
        expect((yield* Effect.flatten(slowRequest.await)).body).toBe("slow done")
        // the slow request replayed its `set` over the state the other request's
        // save handed over in this process: no lost compare-and-set, no reload
        expect(calls.update).toBe(2)
        expect(calls.load).toBe(2)
        expect((yield* browser.get("/get", { cookie })).body).toBe("late-writer:2")
      }).pipe(Effect.provide(env(slow)))
    }))

  /**
   * A request that reads, pauses, then adds 10 with `update` (its function
   * counted), over a session at 1; `raced`: another request's increment is
   * saved while it pauses. The function's runs, and the stored visits.
   */
  const slowUpdate = (raced: boolean) =>
    Effect.gen(function*() {
      let runs = 0
      const { app: slow, paused, release } = yield* withPausedRoute(
        "/slow-update",
        TestSession.get("visits"),
        TestSession.update("visits", (n) => (runs++, n + 10))
      )
      return yield* Effect.gen(function*() {
        const browser = yield* makeBrowser
        yield* browser.get("/incr")
        const cookie = `session=${browser.jar.get("session")}`
        const request = yield* Effect.fork(browser.get("/slow-update", { cookie }))
        yield* Deferred.await(paused)
        if (raced) expect((yield* browser.get("/incr", { cookie })).body).toBe("2")
        yield* Deferred.succeed(release, void 0)
        expect((yield* Effect.flatten(request.await)).body).toBe("slow done")
        return { runs, stored: (yield* browser.get("/get", { cookie })).body }
      }).pipe(Effect.provide(env(slow)))
    })

  it.live("an update's function runs once when its save meets no other writer, and again over a winner's data", () =>
    Effect.gen(function*() {
      // alone: run when recorded; the save writes what the request saw
      expect(yield* slowUpdate(false)).toEqual({ runs: 1, stored: "anonymous:11" })
      // raced: recorded over 1, then replayed over the other request's 2
      expect(yield* slowUpdate(true)).toEqual({ runs: 2, stored: "anonymous:12" })
    }))

  it.live("a slow login racing a logout does not carry the logged-out session to a new id", () =>
    Effect.gen(function*() {
      const { app: slow, paused, release } = yield* withPausedRoute(
        "/slow-login",
        TestSession.get("visits"),
        Effect.zipRight(TestSession.login("alice"), TestSession.set("username", "alice"))
      )
      return yield* Effect.gen(function*() {
        const browser = yield* makeBrowser
        yield* browser.get("/incr")
        const id = browser.jar.get("session")!
        const cookie = `session=${id}`
        const slowRequest = yield* Effect.fork(browser.get("/slow-login", { cookie }))
        yield* Deferred.await(paused)
        expect((yield* browser.get("/logout", { cookie })).body).toBe("bye")
        yield* Deferred.succeed(release, void 0)
        const result = yield* Effect.flatten(slowRequest.await)
        expect(result.body).toBe("slow done")
        // no new session was issued (the logout's response already expired the cookie)
        expect(result.setCookies).toEqual([])
        expect(Option.isNone(yield* storedRecord(id))).toBe(true)
      }).pipe(Effect.provide(env(slow)))
    }))

  it.effect("a store failure reaches the app as SessionStoreError (here mapped to 503)", () => {
    const failing = Layer.succeed(SessionStore, {
      name: "down",
      load: () => Effect.fail(new SessionStoreError({ store: "down", operation: "load", cause: new Error("ECONNREFUSED") })),
      insert: () => Effect.fail(new SessionStoreError({ store: "down", operation: "insert", cause: new Error("ECONNREFUSED") })),
      update: () => Effect.fail(new SessionStoreError({ store: "down", operation: "update", cause: new Error("ECONNREFUSED") })),
      touch: () => Effect.fail(new SessionStoreError({ store: "down", operation: "touch", cause: new Error("ECONNREFUSED") })),
      remove: () => Effect.fail(new SessionStoreError({ store: "down", operation: "remove", cause: new Error("ECONNREFUSED") }))
    })
    const mapped = routes.pipe(
      TestSession.middleware({ cookie: { secure: false } }),
      Effect.catchTag("SessionStoreError", (e) => HttpServerResponse.text(e.message, { status: 503 }))
    )
    return Effect.gen(function*() {
      const browser = yield* makeBrowser
      const write = yield* browser.get("/incr")
      expect(write.status).toBe(503)
      expect(write.body).toBe("down store: insert failed: ECONNREFUSED")
      const read = yield* browser.get("/get", { cookie: `session=${SessionId.unsafeGenerate()}` })
      expect(read.status).toBe(503)
      expect(read.body).toBe("down store: load failed: ECONNREFUSED")
      expect((yield* browser.get("/plain")).status).toBe(200)
    }).pipe(Effect.provide(serve(mapped).pipe(Layer.provide(failing))))
  })
})

describe("where a request finds its session", () => {
  const handleRoutes = HttpRouter.empty.pipe(
    // the tag itself gives the handle, without loading anything
    HttpRouter.get("/handle-only", Effect.as(TestSession, HttpServerResponse.text("ok"))),
    HttpRouter.get(
      "/handle",
      Effect.gen(function*() {
        const session = yield* TestSession
        yield* session.update("visits", (n) => n + 1)
        return HttpServerResponse.text(String(yield* session.get("visits")))
      })
    ),
    // forked fibers of the request share its session
    HttpRouter.get(
      "/forked",
      Effect.gen(function*() {
        const fiber = yield* Effect.fork(TestSession.update("visits", (n) => n + 10))
        yield* fiber.await
        return HttpServerResponse.text(String(yield* TestSession.get("visits")))
      })
    )
  )

  it.effect("`yield* Tag` gives the request's handle: it loads nothing by itself and reads and writes the session", () =>
    Effect.gen(function*() {
      const browser = yield* makeBrowser
      expect((yield* browser.get("/incr")).body).toBe("1")
      const calls = yield* resetCalls
      const only = yield* browser.get("/handle-only")
      expect(only.status).toBe(200)
      expect(totalCalls(calls)).toBe(0)
      expect(only.setCookies).toEqual([])
      expect((yield* browser.get("/handle")).body).toBe("2")
      expect((yield* browser.get("/forked")).body).toBe("12")
      expect((yield* browser.get("/get")).body).toBe("anonymous:12")
    }).pipe(Effect.provide(env(HttpRouter.concat(routes, handleRoutes).pipe(TestSession.middleware({ cookie: { secure: false } }))))))

  it.effect("an app mounted under a prefix, below the middleware, uses the request's session", () =>
    Effect.gen(function*() {
      const browser = yield* makeBrowser
      expect((yield* browser.get("/api/incr")).body).toBe("1")
      expect((yield* browser.get("/api/handle")).body).toBe("2")
      expect((yield* browser.get("/api/get")).body).toBe("anonymous:2")
    }).pipe(Effect.provide(env(
      HttpRouter.empty.pipe(
        HttpRouter.mount("/api", HttpRouter.concat(routes, handleRoutes)),
        TestSession.middleware({ cookie: { secure: false } })
      )
    ))))

  it.effect("a middleware nested in another of the same tag has its own session, and the outer one gets its own back", () =>
    Effect.gen(function*() {
      const browser = yield* makeBrowser
      const res = yield* browser.get("/outer")
      // the inner middleware stored "inner" under its cookie name, the outer one "outer" under its own
      expect(res.body).toBe("inner|outer")
      expect(res.setCookies.map((c) => parseSetCookie(c).name).sort()).toEqual(["inner", "outer"])
    }).pipe(Effect.provide(env(
      HttpRouter.empty.pipe(
        HttpRouter.get(
          "/outer",
          Effect.gen(function*() {
            const inner = yield* HttpRouter.empty.pipe(
              HttpRouter.get(
                "/outer",
                Effect.as(TestSession.set("username", "inner"), HttpServerResponse.text("inner"))
              ),
              TestSession.middleware({ cookie: { secure: false, name: "inner" } })
            )
            yield* TestSession.set("username", "outer")
            const text = inner.body._tag === "Uint8Array" ? new TextDecoder().decode(inner.body.body) : ""
            return HttpServerResponse.text(`${text}|${(yield* TestSession.get("username")) ?? ""}`).pipe(
              HttpServerResponse.mergeCookies(inner.cookies)
            )
          })
        ),
        TestSession.middleware({ cookie: { secure: false, name: "outer" } })
      )
    ))))

  it.effect("a nested middleware of the same tag whose app fails gives the outer one its own session back", () =>
    Effect.gen(function*() {
      const browser = yield* makeBrowser
      const res = yield* browser.get("/outer")
      // the inner app failed after a write: it saved nothing, and the outer
      // handler, catching the failure, read and wrote its own session
      expect(res.body).toBe("caught|outer:1")
      expect(res.setCookies.map((c) => parseSetCookie(c).name)).toEqual(["outer"])
      expect((yield* browser.get("/outer")).body).toBe("caught|outer:2")
    }).pipe(Effect.provide(env(
      HttpRouter.empty.pipe(
        HttpRouter.get(
          "/outer",
          Effect.gen(function*() {
            yield* TestSession.set("username", "outer")
            const inner = yield* HttpRouter.empty.pipe(
              HttpRouter.get(
                "/outer",
                Effect.zipRight(TestSession.set("username", "inner"), Effect.fail("inner failed" as const))
              ),
              TestSession.middleware({ cookie: { secure: false, name: "inner" } }),
              Effect.as("unexpected"),
              Effect.catchAll(() => Effect.succeed("caught"))
            )
            yield* TestSession.update("visits", (n) => n + 1)
            return HttpServerResponse.text(
              `${inner}|${(yield* TestSession.get("username")) ?? ""}:${yield* TestSession.get("visits")}`
            )
          })
        ),
        TestSession.middleware({ cookie: { secure: false, name: "outer" } })
      )
    ))))

  it.effect("withSession inside a request works on its own session; the request's session is untouched by it", () =>
    Effect.gen(function*() {
      const browser = yield* makeBrowser
      const res = yield* browser.get("/with-session")
      const [otherId, requestName] = res.body.split("|")
      expect(requestName).toBe("request")
      expect(yield* TestSession.withSession(otherId, TestSession.get("username"))).toBe("ws")
      expect((yield* browser.get("/get")).body).toBe("request:0")
    }).pipe(Effect.provide(env(
      HttpRouter.concat(
        routes,
        HttpRouter.empty.pipe(HttpRouter.get(
          "/with-session",
          Effect.gen(function*() {
            yield* TestSession.set("username", "request")
            const otherId = yield* TestSession.withSession(
              "not-an-id",
              Effect.zipRight(TestSession.set("username", "ws"), TestSession.id)
            )
            return HttpServerResponse.text(`${otherId}|${(yield* TestSession.get("username")) ?? ""}`)
          })
        ))
      ).pipe(TestSession.middleware({ cookie: { secure: false } }))
    ))))

  it.effect("a middleware inside a context that already provides the tag puts its own session there: the handler uses it", () =>
    Effect.gen(function*() {
      const browser = yield* makeBrowser
      // withSession around the whole app provides a session of its own in every request's context;
      // the middleware inside must shadow it, or /incr would count in a fresh withSession session each time
      expect((yield* browser.get("/incr")).body).toBe("1")
      expect((yield* browser.get("/incr")).body).toBe("2")
      expect(browser.jar.has("session")).toBe(true)
    }).pipe(Effect.provide(env(TestSession.withSession("not-an-id", app)))))

  it.effect("without the middleware, an accessor dies naming the missing middleware", () =>
    Effect.gen(function*() {
      const exit = yield* Effect.exit(TestSession.get("visits") as Effect.Effect<number, unknown>)
      assert(exit._tag === "Failure")
      expect(String(exit.cause)).toContain("test/TestSession is not provided")
      // `yield* Tag` is the tag's own context lookup: Effect's message names the tag
      const handleExit = yield* Effect.exit(TestSession as unknown as Effect.Effect<unknown>)
      assert(handleExit._tag === "Failure")
      expect(String(handleExit.cause)).toContain("Service not found: test/TestSession")
    }))
})

describe("Session definitions", () => {
  it("a required field is rejected when the session class is defined", () => {
    expect(() =>
      Session.Tag<unknown>()("test/Bad", { name: Schema.String } as any)
    ).toThrow(/every session field must be optional or have a default/)
  })

  it("a __Host- cookie must be Secure, Path=/ and have no Domain", () => {
    expect(() => TestSession.middleware({ cookie: { name: "__Host-sid", secure: false } })).toThrow(/__Host-sid/)
    expect(() => TestSession.middleware({ cookie: { name: "__Host-sid", path: "/app" } })).toThrow(/Path=\//)
    expect(() => TestSession.middleware({ cookie: { name: "__Host-sid", domain: "example.test" } })).toThrow(/no Domain/)
    expect(() => TestSession.middleware({ cookie: { name: "__Host-sid" } })).not.toThrow()
  })
})

describe("outside HTTP", () => {
  it.effect("withSession reads and writes a stored session by id", () =>
    Effect.gen(function*() {
      const created = yield* TestSession.withSession(
        "not-an-id",
        Effect.zipRight(TestSession.set("username", "ws-user"), TestSession.id)
      )
      const visits = yield* TestSession.withSession(
        created,
        Effect.zipRight(TestSession.update("visits", (n) => n + 5), TestSession.getAll)
      )
      expect(visits).toEqual({ username: "ws-user", visits: 5 })
      const again = yield* TestSession.withSession(created, TestSession.getAll)
      expect(again).toEqual({ username: "ws-user", visits: 5 })
    }).pipe(Effect.provide(MemoryStore.layer())))

  /** A session stored through `withSession`, with a username and two visits; its id. */
  const stored = TestSession.withSession(
    "",
    Effect.zipRight(
      Effect.zipRight(TestSession.set("username", "ws-user"), TestSession.update("visits", (n) => n + 2)),
      TestSession.id
    )
  )

  it.effect("withSession with a failing effect saves nothing, on a stored session or a fresh one", () =>
    Effect.gen(function*() {
      const id = yield* stored
      const calls = yield* resetCalls
      const failed = yield* Effect.exit(
        TestSession.withSession(id, Effect.zipRight(TestSession.update("visits", (n) => n + 1), Effect.fail("boom")))
      )
      assert(Exit.isFailure(failed))
      expect(Cause.failureOption(failed.cause)).toEqual(Option.some("boom"))
      // the load only: no update
      expect(calls).toEqual({ load: 1 })
      // a fresh session written then failed: no insert either
      const fresh = yield* Effect.exit(
        TestSession.withSession("", Effect.zipRight(TestSession.set("username", "never"), Effect.fail("boom")))
      )
      assert(Exit.isFailure(fresh))
      expect(calls).toEqual({ load: 1 })
      expect(yield* TestSession.withSession(id, TestSession.getAll)).toEqual({ username: "ws-user", visits: 2 })
    }).pipe(Effect.provide(counting(MemoryStore.layer()))))

  it.effect("withSession with regenerate moves the data to a new id and removes the old record", () =>
    Effect.gen(function*() {
      const id = yield* stored
      const moved = yield* TestSession.withSession(id, Effect.zipRight(TestSession.regenerate, TestSession.id))
      expect(moved).not.toBe(id)
      expect(SessionId.isSessionId(moved)).toBe(true)
      expect(isEnded(yield* storedRecord(id))).toBe(true)
      expect(yield* TestSession.withSession(moved, TestSession.getAll)).toEqual({ username: "ws-user", visits: 2 })
      // the old id finds nothing
      expect(yield* TestSession.withSession(id, TestSession.getAll)).toEqual({ visits: 0 })
    }).pipe(Effect.provide(MemoryStore.layer())))

  it.effect("withSession with invalidate removes the record", () =>
    Effect.gen(function*() {
      const id = yield* stored
      assert(Option.isSome(yield* storedRecord(id)))
      yield* TestSession.withSession(id, TestSession.invalidate)
      expect(Option.isNone(yield* storedRecord(id))).toBe(true)
      expect(yield* TestSession.withSession(id, TestSession.getAll)).toEqual({ visits: 0 })
    }).pipe(Effect.provide(MemoryStore.layer())))

  // live: a save that lost its compare-and-set waits a few real milliseconds
  // before it replays
  it.live("two withSession increments of one id, run concurrently, both count", () =>
    Effect.gen(function*() {
      const id = yield* stored
      const loadedA = yield* Deferred.make<void>()
      const loadedB = yield* Deferred.make<void>()
      // each has loaded and written before either saves: the second save
      // starts from a stale version and must replay its increment
      const increment = (mine: Deferred.Deferred<void>, other: Deferred.Deferred<void>) =>
        TestSession.withSession(
          id,
          Effect.gen(function*() {
            yield* TestSession.update("visits", (n) => n + 1)
            yield* Deferred.succeed(mine, void 0)
            yield* Deferred.await(other)
          })
        )
      yield* Effect.all([increment(loadedA, loadedB), increment(loadedB, loadedA)], { concurrency: "unbounded" })
      expect(yield* TestSession.withSession(id, TestSession.getAll)).toEqual({ username: "ws-user", visits: 4 })
    }).pipe(Effect.provide(MemoryStore.layer())))

  it.effect("revokeAll ends every session of a principal and list shows them", () =>
    Effect.gen(function*() {
      const login = (name: string) =>
        TestSession.withSession("", Effect.zipRight(TestSession.login(name), TestSession.id))
      const a = yield* login("alice")
      const b = yield* login("alice")
      const c = yield* login("bob")
      expect((yield* Session.list("alice")).length).toBe(2)
      expect(yield* Session.revokeAll("alice")).toBe(2)
      expect((yield* Session.list("alice")).length).toBe(0)
      expect(Option.isNone(yield* storedRecord(a))).toBe(true)
      expect(Option.isNone(yield* storedRecord(b))).toBe(true)
      expect(Option.isSome(yield* storedRecord(c))).toBe(true)
    }).pipe(Effect.provide(MemoryStore.layer())))
})
