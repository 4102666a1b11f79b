/**
 * The security review's findings that live in the session itself (issue 12):
 * shared default values, switching accounts, principals the stores cannot
 * hold, what a response that carries the cookie tells caches, and what the
 * logs keep of an undecodable session. Each is reproduced through HTTP.
 */
import { HttpRouter, HttpServerResponse } from "@effect/platform"
import { assert, describe, expect, it } from "@effect/vitest"
import { Cause, Effect, Exit, Layer, Logger, Option, Schema, TestClock } from "effect"
import * as MemoryStore from "../src/MemoryStore.js"
import * as Session from "../src/Session.js"
import * as SessionId from "../src/SessionId.js"
import { SessionStore } from "../src/SessionStore.js"
import type { SessionIndex } from "../src/SessionStore.js"
import { makeBrowser, parseSetCookie, serve } from "./utils/http.js"
import { isEnded } from "./utils/records.js"

class CartSession extends Session.Tag<CartSession>()("test/CartSession", {
  items: Schema.optionalWith(Schema.mutable(Schema.Array(Schema.String)), { default: () => [] }),
  prefs: Schema.optionalWith(Schema.mutable(Schema.Record({ key: Schema.String, value: Schema.String })), {
    default: () => ({})
  }),
  role: Schema.optional(Schema.String)
}) {}

const text = (body: string) => HttpServerResponse.text(body)

const routes = HttpRouter.empty.pipe(
  // a handler that mutates what it read instead of writing through `set`:
  // wrong, but it must never reach another session
  HttpRouter.get(
    "/push-in-place",
    Effect.gen(function*() {
      const items = yield* CartSession.get("items")
      items.push("alice-secret-item")
      ;(yield* CartSession.get("prefs"))["secret"] = "alice"
      return text("ok")
    })
  ),
  HttpRouter.get(
    "/remove-then-push",
    Effect.gen(function*() {
      yield* CartSession.set("role", "x")
      yield* CartSession.remove("items")
      ;(yield* CartSession.get("items")).push("alice-secret-item")
      return text("ok")
    })
  ),
  HttpRouter.get(
    "/clear-then-push",
    Effect.gen(function*() {
      yield* CartSession.set("role", "x")
      yield* CartSession.clear
      ;(yield* CartSession.get("items")).push("alice-secret-item")
      return text("ok")
    })
  ),
  HttpRouter.get(
    "/items",
    Effect.map(CartSession.getAll, (all) => text(JSON.stringify({ items: all.items, prefs: all.prefs })))
  ),
  HttpRouter.get(
    "/login-alice-admin",
    Effect.gen(function*() {
      yield* CartSession.login("alice")
      yield* CartSession.set("role", "admin")
      yield* CartSession.set("items", ["alice-item"])
      return text("ok")
    })
  ),
  HttpRouter.get("/login-bob", Effect.as(CartSession.login("bob"), text("ok"))),
  HttpRouter.get("/login-bob-keep", Effect.as(CartSession.login("bob", { keepData: true }), text("ok"))),
  HttpRouter.get("/login-alice-again", Effect.as(CartSession.login("alice"), text("ok"))),
  HttpRouter.get("/login-empty", Effect.as(CartSession.login(""), text("ok"))),
  HttpRouter.get("/login-long", Effect.as(CartSession.login("a".repeat(256)), text("ok"))),
  HttpRouter.get("/login-longest", Effect.as(CartSession.login("a".repeat(255)), text("ok"))),
  HttpRouter.get(
    "/show",
    Effect.gen(function*() {
      const all = yield* CartSession.getAll
      const principal = yield* CartSession.principal
      return text(JSON.stringify({ role: all.role ?? null, items: all.items, principal: Option.getOrNull(principal) }))
    })
  ),
  HttpRouter.get("/set-role", Effect.as(CartSession.set("role", "user"), text("ok"))),
  HttpRouter.get(
    "/set-role-public",
    Effect.as(CartSession.set("role", "user"), text("ok").pipe(HttpServerResponse.setHeader("cache-control", "public, max-age=60, s-maxage=600")))
  ),
  HttpRouter.get(
    "/set-role-no-store",
    Effect.as(CartSession.set("role", "user"), text("ok").pipe(HttpServerResponse.setHeader("cache-control", "no-store")))
  ),
  HttpRouter.get(
    "/read-public",
    Effect.as(CartSession.get("role"), text("ok").pipe(HttpServerResponse.setHeader("cache-control", "public, max-age=60")))
  ),
  HttpRouter.get("/logout", Effect.as(CartSession.invalidate, text("bye")))
)

const app = routes.pipe(CartSession.middleware({ cookie: { secure: false } }))

const env = Layer.provideMerge(serve(app), MemoryStore.layer())

describe("default values are never shared between sessions (finding 1)", () => {
  for (const route of ["/push-in-place", "/remove-then-push", "/clear-then-push"]) {
    it.effect(`${route}: a value mutated in place by one session's handler never shows in another new session`, () =>
      Effect.gen(function*() {
        const alice = yield* makeBrowser
        expect((yield* alice.get(route)).status).toBe(200)
        const bob = yield* makeBrowser
        expect(JSON.parse((yield* bob.get("/items")).body)).toEqual({ items: [], prefs: {} })
        // and neither does a later clear or remove of bob's own session
        const carol = yield* makeBrowser
        yield* carol.get("/clear-then-push")
        expect(JSON.parse((yield* bob.get("/items")).body)).toEqual({ items: [], prefs: {} })
      }).pipe(Effect.provide(env)))
  }
})

describe("switching accounts (finding 2)", () => {
  it.effect("login as another principal starts from empty data under a new id; the previous account's session ends", () =>
    Effect.gen(function*() {
      const browser = yield* makeBrowser
      yield* browser.get("/login-alice-admin")
      const aliceId = browser.jar.get("session")!
      expect(JSON.parse((yield* browser.get("/show")).body)).toEqual({
        role: "admin",
        items: ["alice-item"],
        principal: "alice"
      })
      const res = yield* browser.get("/login-bob")
      expect(res.status).toBe(200)
      const bobId = browser.jar.get("session")!
      expect(bobId).not.toBe(aliceId)
      expect(JSON.parse((yield* browser.get("/show")).body)).toEqual({ role: null, items: [], principal: "bob" })
      expect(yield* Session.list("alice")).toEqual([])
      expect(yield* Session.list("bob")).toEqual([SessionId.storageKey(bobId as SessionId.SessionId)])
      const store = yield* SessionStore
      expect(isEnded(yield* store.load(SessionId.storageKey(aliceId as SessionId.SessionId)))).toBe(true)
    }).pipe(Effect.provide(env)))

  it.effect("login(p, { keepData: true }) keeps the data; logging in again as the same principal keeps it too", () =>
    Effect.gen(function*() {
      const browser = yield* makeBrowser
      yield* browser.get("/login-alice-admin")
      yield* browser.get("/login-alice-again")
      expect(JSON.parse((yield* browser.get("/show")).body)).toEqual({
        role: "admin",
        items: ["alice-item"],
        principal: "alice"
      })
      yield* browser.get("/login-bob-keep")
      expect(JSON.parse((yield* browser.get("/show")).body)).toEqual({
        role: "admin",
        items: ["alice-item"],
        principal: "bob"
      })
    }).pipe(Effect.provide(env)))

  it.effect("an anonymous session's data (a cart) carries over to the login", () =>
    Effect.gen(function*() {
      const browser = yield* makeBrowser
      yield* browser.get("/set-role")
      yield* browser.get("/login-bob")
      expect(JSON.parse((yield* browser.get("/show")).body)).toEqual({ role: "user", items: [], principal: "bob" })
    }).pipe(Effect.provide(env)))
})

describe("principals (finding 3, 4: what no store can hold exactly is refused)", () => {
  it.effect("login with an empty or over-long principal fails the request and stores nothing; 255 characters work", () =>
    Effect.gen(function*() {
      const browser = yield* makeBrowser
      expect((yield* browser.get("/login-empty")).status).toBe(500)
      expect((yield* browser.get("/login-long")).status).toBe(500)
      expect(browser.jar.get("session")).toBeUndefined()
      expect((yield* browser.get("/login-longest")).status).toBe(200)
      expect((yield* Session.list("a".repeat(255))).length).toBe(1)
    }).pipe(Effect.provide(env)))

  it.effect("revokeAll and list with a value that is not a principal (unchecked JSON) die with a clear message and remove nothing", () =>
    Effect.gen(function*() {
      const browser = yield* makeBrowser
      yield* browser.get("/login-alice-admin")
      const operator = { $ne: null } as unknown as string
      const attempts: ReadonlyArray<Effect.Effect<unknown, unknown, SessionIndex | SessionStore>> = [
        Session.revokeAll(operator),
        Session.list(operator),
        Session.revokeAll("x".repeat(256))
      ]
      for (const attempt of attempts) {
        const exit = yield* Effect.exit(attempt)
        assert(Exit.isFailure(exit))
        const defect = Cause.dieOption(exit.cause)
        assert(Option.isSome(defect))
        expect(Cause.isIllegalArgumentException(defect.value)).toBe(true)
        expect(String((defect.value as Error).message)).toMatch(/a principal must be a string of 1 to 255 characters/)
      }
      expect((yield* Session.list("alice")).length).toBe(1)
    }).pipe(Effect.provide(env)))
})

describe("caches (finding 8)", () => {
  it.effect("a response that sets the cookie is private; an app's public becomes private; no-store is kept", () =>
    Effect.gen(function*() {
      const browser = yield* makeBrowser
      const inserted = yield* browser.get("/set-role")
      expect(inserted.setCookies.length).toBe(1)
      expect(inserted.headers["cache-control"]).toBe("private")
      const fresh = yield* makeBrowser
      const publicOne = yield* fresh.get("/set-role-public")
      expect(publicOne.setCookies.length).toBe(1)
      expect(publicOne.headers["cache-control"]).toBe("private, max-age=60")
      const other = yield* makeBrowser
      expect((yield* other.get("/set-role-no-store")).headers["cache-control"]).toBe("no-store")
    }).pipe(Effect.provide(env)))

  it.effect("a response that expires the cookie is private", () =>
    Effect.gen(function*() {
      const browser = yield* makeBrowser
      yield* browser.get("/set-role")
      const logout = yield* browser.get("/logout")
      expect(parseSetCookie(logout.setCookies[0]).attributes["max-age"]).toBe("0")
      expect(logout.headers["cache-control"]).toBe("private")
    }).pipe(Effect.provide(env)))

  it.effect("a response that sends no cookie keeps the app's Cache-Control as it is", () =>
    Effect.gen(function*() {
      const browser = yield* makeBrowser
      yield* browser.get("/set-role")
      const read = yield* browser.get("/read-public")
      expect(read.setCookies).toEqual([])
      expect(read.headers["cache-control"]).toBe("public, max-age=60")
    }).pipe(Effect.provide(env)))
})

const logs: Array<string> = []
const recordingLogger = Logger.make(({ message }) => {
  logs.push(Array.isArray(message) ? message.map(String).join(" ") : String(message))
})
// the server's fibers log with the logger of the layer that started them
const loggedEnv = Layer.provideMerge(
  serve(app).pipe(Layer.provide(Logger.replace(Logger.defaultLogger, recordingLogger))),
  MemoryStore.layer()
)

describe("logs (finding 6)", () => {
  it.effect("the warning for an undecodable stored session names a key prefix, never the stored values or the full key", () =>
    Effect.gen(function*() {
      const browser = yield* makeBrowser
      const id = SessionId.unsafeGenerate()
      const key = SessionId.storageKey(id)
      const store = yield* SessionStore
      const stored = [
        // valid envelope, data failing the schema (a number where a string is due)
        `{"v":1,"data":{"role":12345678,"items":["private-value-1"]},"createdAt":1,"absoluteExpiresAt":99999999999999,"principal":null}`,
        // not JSON at all
        `private-value-2 {{`
      ]
      for (const text of stored) {
        yield* store.remove(key)
        yield* store.insert(key, {
          data: new TextEncoder().encode(text),
          expiresAt: Date.now() + 60_000,
          principal: Option.none()
        })
        const res = yield* browser.get("/show", { cookie: `session=${id}` })
        expect(res.status).toBe(200)
      }
      const warnings = logs.filter((line) => line.includes("undecodable"))
      expect(warnings.length).toBe(2)
      for (const line of warnings) {
        expect(line).toContain(SessionId.logPrefix(key))
        expect(line).not.toContain(key)
        expect(line).not.toMatch(/private-value|12345678/)
      }
    }).pipe(Effect.provide(loggedEnv)))
})

describe("stored data the session cannot trust (finding 9) and shortened timeouts", () => {
  it.effect("a stored record over maxSize is not parsed: a fresh session, a warning, nothing adopted", () =>
    Effect.gen(function*() {
      const browser = yield* makeBrowser
      const id = SessionId.unsafeGenerate()
      const key = SessionId.storageKey(id)
      const store = yield* SessionStore
      const big = `{"v":1,"data":{"role":"${"r".repeat(70_000)}","items":[]},"createdAt":1,"absoluteExpiresAt":99999999999999,"principal":null}`
      yield* store.insert(key, { data: new TextEncoder().encode(big), expiresAt: Date.now() + 60_000, principal: Option.none() })
      const warningsBefore = logs.filter((line) => line.includes("undecodable")).length
      const res = yield* browser.get("/show", { cookie: `session=${id}` })
      expect(res.status).toBe(200)
      expect(JSON.parse(res.body)).toEqual({ role: null, items: [], principal: null })
      expect(logs.filter((line) => line.includes("undecodable")).length).toBe(warningsBefore + 1)
    }).pipe(Effect.provide(loggedEnv)))

  it.effect("a shortened absoluteTimeout ends sessions older than it at once, whatever deadline they were stored with", () =>
    Effect.gen(function*() {
      const id = yield* CartSession.withSession("", Effect.zipLeft(CartSession.id, CartSession.set("role", "admin")))
      yield* TestClock.adjust("2 hours")
      expect((yield* CartSession.withSession(id, CartSession.getAll)).role).toBe("admin")
      const shorter = { absoluteTimeout: "1 hour" } as const
      expect((yield* CartSession.withSession(id, CartSession.getAll, shorter)).role).toBeUndefined()
    }).pipe(Effect.provide(MemoryStore.layer())))
})
