/**
 * The security review's findings that live in the session itself, on the
 * Effect 4 line (memory and Redis): shared default values, switching
 * accounts, principals the stores cannot hold, what a response that carries
 * the cookie tells caches, what the logs keep of an undecodable session,
 * stored records too large to parse, and a shortened absolute timeout. Each
 * is reproduced through HTTP where a user would meet it.
 */
import { expect, it } from "@effect/vitest"
import type { Scope } from "effect"
import { Cause, Clock, Context, Effect, Exit, Layer, Logger, Option, Schema } from "effect"
import { HttpRouter, HttpServerResponse } from "effect/http"
import { TestClock } from "effect/testing"
import { readTombstone } from "../../src/core/record.js"
import * as Session from "../src/Session.js"
import * as SessionId from "../src/SessionId.js"
import { SessionIndex, SessionStore } from "../src/SessionStore.js"
import { backends, buildStore, parseSetCookie, serveOn } from "./utils/contention.js"
import { availabilityOf, describeBackend, preparedFor } from "./utils/contentionSuites.js"
import { browser, get } from "./utils/server.js"

class CartSession extends Session.Tag<CartSession>()("test/CartSession", {
  items: Schema.mutable(Schema.Array(Schema.String)).pipe(Schema.withDecodingDefault(Effect.succeed([]))),
  prefs: Schema.Record(Schema.String, Schema.String).pipe(Schema.withDecodingDefault(Effect.succeed({}))),
  role: Schema.optional(Schema.String)
}) {}

const text = (body: string) => HttpServerResponse.text(body)
const route = <E>(path: HttpRouter.PathInput, handler: Effect.Effect<HttpServerResponse.HttpServerResponse, E, CartSession>) =>
  HttpRouter.add("GET", path, handler)

const routes = Layer.mergeAll(
  // a handler that mutates what it read instead of writing through `set`:
  // wrong, but it must never reach another session
  route(
    "/push-in-place",
    Effect.gen(function*() {
      const items = yield* CartSession.get("items")
      items.push("alice-secret-item")
      ;(yield* CartSession.get("prefs") as Effect.Effect<Record<string, string>, never, CartSession>)["secret"] = "alice"
      return text("ok")
    })
  ),
  route(
    "/remove-then-push",
    Effect.gen(function*() {
      yield* CartSession.set("role", "x")
      yield* CartSession.remove("items")
      ;(yield* CartSession.get("items")).push("alice-secret-item")
      return text("ok")
    })
  ),
  route(
    "/clear-then-push",
    Effect.gen(function*() {
      yield* CartSession.set("role", "x")
      yield* CartSession.clear
      ;(yield* CartSession.get("items")).push("alice-secret-item")
      return text("ok")
    })
  ),
  route("/items", Effect.map(CartSession.getAll, (all) => text(JSON.stringify({ items: all.items, prefs: all.prefs })))),
  route(
    "/login-alice-admin",
    Effect.gen(function*() {
      yield* CartSession.login("alice")
      yield* CartSession.set("role", "admin")
      yield* CartSession.set("items", ["alice-item"])
      return text("ok")
    })
  ),
  route("/login-bob", Effect.as(CartSession.login("bob"), text("ok"))),
  route("/login-bob-keep", Effect.as(CartSession.login("bob", { keepData: true }), text("ok"))),
  route("/login-alice-again", Effect.as(CartSession.login("alice"), text("ok"))),
  route("/login-empty", Effect.as(CartSession.login(""), text("ok"))),
  route("/login-long", Effect.as(CartSession.login("a".repeat(256)), text("ok"))),
  route("/login-longest", Effect.as(CartSession.login("a".repeat(255)), text("ok"))),
  route(
    "/show",
    Effect.gen(function*() {
      const all = yield* CartSession.getAll
      const principal = yield* CartSession.principal
      return text(JSON.stringify({ role: all.role ?? null, items: all.items, principal: Option.getOrNull(principal) }))
    })
  ),
  route("/set-role", Effect.as(CartSession.set("role", "user"), text("ok"))),
  route(
    "/set-role-public",
    Effect.as(CartSession.set("role", "user"), text("ok").pipe(HttpServerResponse.setHeader("cache-control", "public, max-age=60, s-maxage=600")))
  ),
  route(
    "/set-role-no-store",
    Effect.as(CartSession.set("role", "user"), text("ok").pipe(HttpServerResponse.setHeader("cache-control", "no-store")))
  ),
  route(
    "/read-public",
    Effect.as(CartSession.get("role"), text("ok").pipe(HttpServerResponse.setHeader("cache-control", "public, max-age=60")))
  ),
  route("/logout", Effect.as(CartSession.invalidate, text("bye")))
).pipe(Layer.provide(CartSession.middleware({ cookie: { secure: false }, idleTimeout: "10 minutes" }).layer))

/** What a test works with: the app's base URL over a new instance of the store, and that store. */
interface App {
  readonly base: string
  readonly store: SessionStore["Service"]
  readonly context: Context.Context<SessionStore | SessionIndex>
}

const show = (res: { readonly body: string }) => JSON.parse(res.body) as unknown

/** Writes `text` as the stored record of a new id, as a backend holding foreign data would; the id. */
const storeRaw = (app: App, text: string) =>
  Effect.gen(function*() {
    const id = SessionId.generateUnsafe()
    const key = SessionId.makeStorageKey()(id)
    const now = yield* Clock.currentTimeMillis
    yield* app.store.insert(key, { text, expiresAt: now + 60_000, principal: Option.none() })
    return { id, key }
  })

const logs: Array<string> = []
const recordingLogger = Logger.make(({ message }) => {
  logs.push(Array.isArray(message) ? message.map(String).join(" ") : String(message))
})
const undecodableWarnings = () => logs.filter((line) => line.includes("undecodable"))

for (const backend of backends) {
  describeBackend(`security on ${backend.name}`, await availabilityOf(backend), () => {
    const spec = preparedFor(backend, "security")
    const withApp = <A>(body: (app: App) => Effect.Effect<A, unknown, Scope.Scope>) =>
      Effect.scoped(Effect.gen(function*() {
        const { context, store } = yield* buildStore(spec())
        return yield* body({ base: yield* serveOn(routes, context), store, context })
      }))

    for (const path of ["/push-in-place", "/remove-then-push", "/clear-then-push"]) {
      it.live(`default values are never shared (${path}): a value mutated in place never shows in another new session`, () =>
        withApp((app) =>
          Effect.gen(function*() {
            const alice = browser(app.base)
            expect((yield* alice.get(path)).status).toBe(200)
            const bob = browser(app.base)
            expect(show(yield* bob.get("/items"))).toEqual({ items: [], prefs: {} })
            // and neither does a later clear or remove of another session
            yield* browser(app.base).get("/clear-then-push")
            expect(show(yield* bob.get("/items"))).toEqual({ items: [], prefs: {} })
          })
        ))
    }

    it.live("login as another principal starts from empty data under a new id; the previous account's session ends", () =>
      withApp((app) =>
        Effect.gen(function*() {
          const client = browser(app.base)
          yield* client.get("/login-alice-admin")
          const alice = client.cookie!
          expect(show(yield* client.get("/show"))).toEqual({ role: "admin", items: ["alice-item"], principal: "alice" })
          expect((yield* client.get("/login-bob")).status).toBe(200)
          const bob = client.cookie!
          expect(bob).not.toBe(alice)
          expect(show(yield* client.get("/show"))).toEqual({ role: null, items: [], principal: "bob" })
          const keyOf = (cookie: string) => SessionId.makeStorageKey()(cookie.slice("session=".length) as SessionId.SessionId)
          const listed = (principal: string) => Effect.provide(Session.list(principal), app.context)
          expect(yield* listed("alice")).toEqual([])
          expect(yield* listed("bob")).toEqual([keyOf(bob)])
          // alice's record is a tombstone: no data, no principal
          const old = yield* app.store.load(keyOf(alice))
          if (Option.isSome(old)) {
            expect(readTombstone({ text: old.value.text, data: new Uint8Array() })).toBeDefined()
            expect(Option.isNone(old.value.principal)).toBe(true)
          }
          expect(show(yield* get(`${app.base}/show`, alice))).toEqual({ role: null, items: [], principal: null })
        })
      ))

    it.live("login(p, { keepData: true }) keeps the data; logging in again as the same principal keeps it too", () =>
      withApp((app) =>
        Effect.gen(function*() {
          const client = browser(app.base)
          yield* client.get("/login-alice-admin")
          yield* client.get("/login-alice-again")
          expect(show(yield* client.get("/show"))).toEqual({ role: "admin", items: ["alice-item"], principal: "alice" })
          yield* client.get("/login-bob-keep")
          expect(show(yield* client.get("/show"))).toEqual({ role: "admin", items: ["alice-item"], principal: "bob" })
        })
      ))

    it.live("an anonymous session's data (a cart) carries over to the login", () =>
      withApp((app) =>
        Effect.gen(function*() {
          const client = browser(app.base)
          yield* client.get("/set-role")
          yield* client.get("/login-bob")
          expect(show(yield* client.get("/show"))).toEqual({ role: "user", items: [], principal: "bob" })
        })
      ))

    it.live("login with an empty or over-long principal fails the request and stores nothing; 255 characters work", () =>
      withApp((app) =>
        Effect.gen(function*() {
          const client = browser(app.base)
          expect((yield* client.get("/login-empty")).status).toBe(500)
          expect((yield* client.get("/login-long")).status).toBe(500)
          expect(client.cookie).toBeUndefined()
          expect((yield* client.get("/login-longest")).status).toBe(200)
          expect(yield* Effect.provide(Session.list("a".repeat(255)), app.context)).toHaveLength(1)
        })
      ))

    it.live("revokeAll and list with a value that is not a principal (unchecked JSON) die with a clear message and remove nothing", () =>
      withApp((app) =>
        Effect.gen(function*() {
          yield* browser(app.base).get("/login-alice-admin")
          const operator = { $ne: null } as unknown as string
          const attempts: ReadonlyArray<Effect.Effect<unknown, unknown, SessionIndex | SessionStore>> = [
            Session.revokeAll(operator),
            Session.list(operator),
            Session.revokeAll("x".repeat(256)),
            Session.list("")
          ]
          for (const attempt of attempts) {
            const exit = yield* Effect.exit(Effect.provide(attempt, app.context))
            expect(Exit.isFailure(exit)).toBe(true)
            if (Exit.isFailure(exit)) {
              const defect = exit.cause.reasons.find(Cause.isDieReason)
              expect(defect).toBeDefined()
              expect(String((defect!.defect as Error).message)).toMatch(/a principal must be a string of 1 to 255 characters/)
            }
          }
          expect(yield* Effect.provide(Session.list("alice"), app.context)).toHaveLength(1)
        })
      ))

    it.live("a response that sets the cookie is private; an app's public becomes private; no-store is kept", () =>
      withApp((app) =>
        Effect.gen(function*() {
          const inserted = yield* browser(app.base).get("/set-role")
          expect(inserted.setCookie).toHaveLength(1)
          expect(inserted.headers.get("cache-control")).toBe("private")
          const publicOne = yield* browser(app.base).get("/set-role-public")
          expect(publicOne.setCookie).toHaveLength(1)
          expect(publicOne.headers.get("cache-control")).toBe("private, max-age=60")
          const noStore = yield* browser(app.base).get("/set-role-no-store")
          expect(noStore.setCookie).toHaveLength(1)
          expect(noStore.headers.get("cache-control")).toBe("no-store")
        })
      ))

    it.live("a response that expires the cookie is private; one that sends no cookie keeps the app's Cache-Control", () =>
      withApp((app) =>
        Effect.gen(function*() {
          const client = browser(app.base)
          yield* client.get("/set-role")
          const read = yield* client.get("/read-public")
          expect(read.setCookie).toEqual([])
          expect(read.headers.get("cache-control")).toBe("public, max-age=60")
          const logout = yield* client.get("/logout")
          expect(parseSetCookie(logout.setCookie[0]).attributes["max-age"]).toBe("0")
          expect(logout.headers.get("cache-control")).toBe("private")
        })
      ))

    it.live("the warning for an undecodable stored session names a key prefix, never the stored values or the full key", () =>
      withApp((app) =>
        Effect.gen(function*() {
          const stored = [
            // a valid envelope, data failing the schema (a number where a string is due)
            `{"v":1,"data":{"role":12345678,"items":["private-value-1"]},"createdAt":1,"absoluteExpiresAt":99999999999999,"principal":null}`,
            // not JSON at all
            `private-value-2 {{`
          ]
          const before = undecodableWarnings().length
          const keys: Array<SessionId.StorageKey> = []
          for (const record of stored) {
            const { id, key } = yield* storeRaw(app, record)
            keys.push(key)
            const res = yield* get(`${app.base}/show`, `session=${id}`)
            expect(res.status).toBe(200)
            expect(show(res)).toEqual({ role: null, items: [], principal: null })
          }
          const warnings = undecodableWarnings().slice(before)
          expect(warnings).toHaveLength(2)
          warnings.forEach((line, i) => {
            expect(line).toContain(SessionId.logPrefix(keys[i]))
            expect(line).not.toContain(keys[i])
            expect(line).not.toMatch(/private-value|12345678/)
          })
        })
      ).pipe(Effect.provide(Logger.layer([recordingLogger]))))

    it.live("a stored record over maxSize is not parsed: a fresh session, a warning, nothing adopted", () =>
      withApp((app) =>
        Effect.gen(function*() {
          const big = `{"v":1,"data":{"role":"${"r".repeat(70_000)}","items":[]},"createdAt":1,"absoluteExpiresAt":99999999999999,"principal":null}`
          const { id } = yield* storeRaw(app, big)
          const before = undecodableWarnings().length
          const res = yield* get(`${app.base}/show`, `session=${id}`)
          expect(res.status).toBe(200)
          expect(show(res)).toEqual({ role: null, items: [], principal: null })
          expect(undecodableWarnings().length).toBe(before + 1)
          expect(undecodableWarnings().at(-1)).toMatch(/not parsed|over the limit|undecodable/)
        })
      ).pipe(Effect.provide(Logger.layer([recordingLogger]))))

    it.effect("a shortened absoluteTimeout ends sessions older than it at once, whatever deadline they were stored with", () =>
      Effect.scoped(Effect.gen(function*() {
        // TestClock's time 0 is 1970: Redis would expire the records at once
        yield* TestClock.setTime(Date.now())
        const { context } = yield* buildStore(spec())
        const run = <A, E>(effect: Effect.Effect<A, E, SessionStore>) => Effect.provide(effect, context)
        const id = yield* run(CartSession.withSession("", Effect.andThen(CartSession.set("role", "admin"), CartSession.id)))
        yield* TestClock.adjust("2 hours")
        expect((yield* run(CartSession.withSession(id, CartSession.getAll))).role).toBe("admin")
        const shorter = { absoluteTimeout: "1 hour" } as const
        expect((yield* run(CartSession.withSession(id, CartSession.getAll, shorter))).role).toBeUndefined()
      })))
  })
}
