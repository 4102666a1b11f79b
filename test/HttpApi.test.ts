/**
 * A session in an HttpApi, over real HTTP: the HttpApiMiddleware of
 * `HttpApiSession.Tag` gives the handlers the session, the cookie reaches
 * the client, session errors are the declared responses, and the OpenAPI
 * document names the cookie.
 */
import {
  Cookies,
  HttpApi,
  HttpApiBuilder,
  HttpApiClient,
  HttpApiEndpoint,
  HttpApiError,
  HttpApiGroup,
  HttpClient,
  HttpClientRequest,
  HttpServer
} from "@effect/platform"
import { NodeHttpServer } from "@effect/platform-node"
import { describe, expect, it } from "@effect/vitest"
import { Effect, Either, Layer, Option, Schema } from "effect"
import * as HttpApiSession from "../src/HttpApiSession.js"
import * as MemoryStore from "../src/MemoryStore.js"
import * as Session from "../src/Session.js"
import { SessionConflict, SessionEncodeError, SessionStoreError, SessionTooLarge } from "../src/SessionError.js"
import * as SessionId from "../src/SessionId.js"
import { SessionStore } from "../src/SessionStore.js"
import { parseSetCookie } from "./utils/http.js"

class ApiSession extends Session.Tag<ApiSession>()("test/HttpApi/ApiSession", {
  username: Schema.optional(Schema.String),
  note: Schema.optional(Schema.String),
  visits: Schema.optionalWith(Schema.Int, { default: () => 0 })
}) {}

class SessionMiddleware extends HttpApiSession.Tag<SessionMiddleware>()(
  "test/HttpApi/SessionMiddleware",
  ApiSession,
  { cookie: { secure: false }, maxSize: 400 }
) {}

class Me extends Schema.Class<Me>("Me")({ username: Schema.String, visits: Schema.Int }) {}

const Username = Schema.Struct({ username: Schema.String.pipe(Schema.minLength(1), Schema.maxLength(255)) })

class Api extends HttpApi.make("api").add(
  HttpApiGroup.make("account")
    .add(HttpApiEndpoint.post("login", "/login").setPayload(Username))
    .add(HttpApiEndpoint.get("me", "/me").addSuccess(Me).addError(HttpApiError.Unauthorized))
    .add(HttpApiEndpoint.post("logout", "/logout"))
    .add(HttpApiEndpoint.post("note", "/note").setPayload(Schema.Struct({ note: Schema.String })))
    .add(HttpApiEndpoint.post("noteThenFail", "/note-then-fail").addError(HttpApiError.Forbidden))
    .middleware(SessionMiddleware)
).add(
  HttpApiGroup.make("public").add(HttpApiEndpoint.get("health", "/health").addSuccess(Schema.String))
) {}

const AccountLive = HttpApiBuilder.group(Api, "account", (handlers) =>
  handlers
    .handle("login", ({ payload }) =>
      Effect.gen(function*() {
        yield* ApiSession.login(payload.username)
        yield* ApiSession.set("username", payload.username)
      }))
    .handle("me", () =>
      Effect.gen(function*() {
        const username = yield* ApiSession.get("username")
        if (username === undefined) return yield* new HttpApiError.Unauthorized()
        yield* ApiSession.update("visits", (n) => n + 1)
        return new Me({ username, visits: yield* ApiSession.get("visits") })
      }))
    .handle("logout", () => ApiSession.invalidate)
    .handle("note", ({ payload }) => ApiSession.set("note", payload.note))
    .handle("noteThenFail", () =>
      Effect.zipRight(ApiSession.set("note", "written by a failed request"), new HttpApiError.Forbidden()))
)

const PublicLive = HttpApiBuilder.group(Api, "public", (handlers) => handlers.handle("health", () => Effect.succeed("ok")))

const ApiLive = HttpApiBuilder.api(Api).pipe(
  Layer.provide([AccountLive, PublicLive]),
  Layer.provide(SessionMiddleware.layer)
)

/** The API on a random loopback port, with a store; an `HttpClient` aimed at it. */
const serveApi = <E, R>(store: Layer.Layer<SessionStore, E, R>) =>
  HttpApiBuilder.serve().pipe(
    Layer.provide(HttpApiBuilder.middlewareOpenApi()),
    Layer.provide(ApiLive),
    Layer.provideMerge(NodeHttpServer.layerTest),
    Layer.provideMerge(store)
  )

interface Reply {
  readonly status: number
  readonly body: string
  readonly json: unknown
  readonly headers: Record<string, string>
  readonly setCookies: ReadonlyArray<string>
}

/** A browser-like client for JSON APIs: keeps the cookies the server sets, sends them back. */
const makeClient = Effect.gen(function*() {
  const client = yield* HttpClient.HttpClient
  const jar = new Map<string, string>()
  const send = (request: HttpClientRequest.HttpClientRequest) => {
    const cookie = [...jar].map(([k, v]) => `${k}=${v}`).join("; ")
    return client.execute(cookie === "" ? request : HttpClientRequest.setHeader(request, "cookie", cookie)).pipe(
      Effect.flatMap((res) =>
        Effect.map(res.text, (body): Reply => {
          const setCookies = Cookies.toSetCookieHeaders(res.cookies)
          for (const line of setCookies) {
            const { attributes, name, value } = parseSetCookie(line)
            if (attributes["max-age"] === "0") jar.delete(name)
            else jar.set(name, value)
          }
          let json: unknown = undefined
          try {
            json = JSON.parse(body)
          } catch {
            // not JSON
          }
          return { status: res.status, body, json, headers: res.headers as Record<string, string>, setCookies }
        })
      ),
      Effect.scoped
    )
  }
  return {
    jar,
    get: (path: string) => send(HttpClientRequest.get(path)),
    post: (path: string, body?: unknown) =>
      send(body === undefined ? HttpClientRequest.post(path) : HttpClientRequest.bodyUnsafeJson(HttpClientRequest.post(path), body))
  }
})

const failingStore = (operations: ReadonlyArray<string>) =>
  Layer.effect(
    SessionStore,
    Effect.map(SessionStore, (inner): SessionStore["Type"] => {
      const fail = (operation: "load" | "insert" | "update" | "touch" | "remove") =>
        Effect.fail(new SessionStoreError({ store: "down", operation, cause: new Error("ECONNREFUSED 127.0.0.1:1") }))
      return {
        name: "down",
        load: (key) => operations.includes("load") ? fail("load") : inner.load(key),
        insert: (key, write) => operations.includes("insert") ? fail("insert") : inner.insert(key, write),
        update: (key, write, version) => operations.includes("update") ? fail("update") : inner.update(key, write, version),
        touch: (key, expiresAt) => operations.includes("touch") ? fail("touch") : inner.touch(key, expiresAt),
        remove: (key) => operations.includes("remove") ? fail("remove") : inner.remove(key)
      }
    })
  ).pipe(Layer.provide(MemoryStore.layer()))

const stored = (cookieValue: string) =>
  Effect.flatMap(SessionStore, (store) => store.load(SessionId.storageKey(cookieValue as SessionId.SessionId)))

describe("HttpApiSession over HTTP", () => {
  it.effect("login sets the cookie (204), /me counts visits, logout expires the cookie and ends the session", () =>
    Effect.gen(function*() {
      const client = yield* makeClient
      const anonymous = yield* client.get("/me")
      expect(anonymous.status).toBe(401)
      expect(anonymous.setCookies).toEqual([])

      const login = yield* client.post("/login", { username: "alice" })
      expect(login.status).toBe(204)
      const [line] = login.setCookies
      expect(line).toMatch(/^session=[A-Za-z0-9_-]{43}; Max-Age=\d+; Path=\/; HttpOnly; SameSite=Lax$/)
      const id = parseSetCookie(line).value
      expect(Option.isSome(yield* stored(id))).toBe(true)
      expect(login.headers["cache-control"]).toBe("private")

      const first = yield* client.get("/me")
      expect(first.status).toBe(200)
      expect(first.json).toEqual({ username: "alice", visits: 1 })
      expect(first.headers["vary"]).toBe("Cookie")
      expect((yield* client.get("/me")).json).toEqual({ username: "alice", visits: 2 })

      const logout = yield* client.post("/logout")
      expect(logout.status).toBe(204)
      expect(logout.setCookies).toEqual(["session=; Max-Age=0; Path=/; HttpOnly; SameSite=Lax"])
      expect(Option.isNone(yield* stored(id))).toBe(true)
      expect((yield* client.get("/me")).status).toBe(401)
    }).pipe(Effect.provide(serveApi(MemoryStore.layer()))))

  it.effect("a handler that fails with a declared error after a write saves nothing", () =>
    Effect.gen(function*() {
      const client = yield* makeClient
      yield* client.post("/login", { username: "bob" })
      const id = client.jar.get("session")!
      const before = yield* stored(id)
      const failed = yield* client.post("/note-then-fail")
      expect(failed.status).toBe(403)
      expect(failed.setCookies).toEqual([])
      const after = yield* stored(id)
      expect(Option.map(after, (r) => r.version)).toEqual(Option.map(before, (r) => r.version))
      expect(after).toEqual(before)
    }).pipe(Effect.provide(serveApi(MemoryStore.layer()))))

  it.effect("a store that is down answers the declared 503, for a save after the handler and for a load in it", () =>
    Effect.gen(function*() {
      const client = yield* makeClient
      const save = yield* client.post("/login", { username: "carol" })
      expect(save.status).toBe(503)
      expect(save.json).toEqual({
        _tag: "SessionStoreError",
        message: "The session store is unavailable",
        operation: "insert"
      })
      // the backend's words stay in the log
      expect(save.body).not.toContain("ECONNREFUSED")
      expect(save.setCookies).toEqual([])

      client.jar.set("session", SessionId.unsafeGenerate())
      const load = yield* client.get("/me")
      expect(load.status).toBe(503)
      expect(load.json).toEqual({
        _tag: "SessionStoreError",
        message: "The session store is unavailable",
        operation: "load"
      })
      // a route without the session is unaffected
      expect((yield* client.get("/health")).status).toBe(200)
    }).pipe(Effect.provide(serveApi(failingStore(["load", "insert"])))))

  it.effect("a session over maxSize answers the declared 413 and stores nothing", () =>
    Effect.gen(function*() {
      const client = yield* makeClient
      const res = yield* client.post("/note", { note: "x".repeat(1000) })
      expect(res.status).toBe(413)
      expect(res.json).toMatchObject({ _tag: "SessionTooLarge", message: "The session would be too large", limit: 400 })
      expect((res.json as { size: number }).size).toBeGreaterThan(1000)
      expect(res.setCookies).toEqual([])
      expect(client.jar.size).toBe(0)
    }).pipe(Effect.provide(serveApi(MemoryStore.layer()))))

  it.effect("an HttpApiClient decodes the 503 into a SessionStoreError", () =>
    Effect.gen(function*() {
      // (the test server's client is aimed at the server already)
      const api = yield* HttpApiClient.make(Api)
      const error = yield* Effect.flip(api.account.login({ payload: { username: "dave" } }))
      expect(error).toBeInstanceOf(SessionStoreError)
      expect(error._tag).toBe("SessionStoreError")
      if (error._tag === "SessionStoreError") {
        expect(error.operation).toBe("insert")
        expect(error.store).toBe("remote")
      }
    }).pipe(Effect.provide(serveApi(failingStore(["insert"])))))

  it.effect("the OpenAPI document names the session cookie as a security scheme and declares the session errors", () =>
    Effect.gen(function*() {
      const client = yield* makeClient
      const res = yield* client.get("/openapi.json")
      const doc = res.json as any
      expect(doc.components.securitySchemes).toEqual({ session: { type: "apiKey", name: "session", in: "cookie" } })
      for (const [path, method] of [["/login", "post"], ["/me", "get"], ["/logout", "post"]] as const) {
        const op = doc.paths[path][method]
        expect(op.security).toEqual([{ session: [] }])
        expect(Object.keys(op.responses)).toEqual(expect.arrayContaining(["413", "500", "503"]))
      }
      // the group without the middleware has neither
      expect(doc.paths["/health"].get.security).toEqual([])
      expect(Object.keys(doc.paths["/health"].get.responses)).not.toContain("503")
    }).pipe(Effect.provide(serveApi(MemoryStore.layer()))))
})

describe("HttpApiSession.Tag", () => {
  it("names the security scheme after the cookie", () => {
    class Sid extends HttpApiSession.Tag<Sid>()("test/HttpApi/Sid", ApiSession, { cookie: { name: "__Host-sid" } }) {}
    expect(Sid.cookieName).toBe("__Host-sid")
    expect(Object.keys(Sid.security)).toEqual(["__Host-sid"])
    expect(Sid.security["__Host-sid"]).toMatchObject({ _tag: "ApiKey", in: "cookie", key: "__Host-sid" })
  })

  it("rejects invalid cookie options when the tag is defined, as the session middleware does", () => {
    expect(() => HttpApiSession.Tag<unknown>()("test/HttpApi/Bad", ApiSession, { cookie: { name: "__Host-x", secure: false } }))
      .toThrow(/__Host-x/)
  })

  it("encodes every session error to its declared status", () => {
    const status = (e: Parameters<typeof HttpApiSession.toResponse>[0]) => HttpApiSession.toResponse(e).status
    expect(status(new SessionStoreError({ store: "redis", operation: "load", cause: "x" }))).toBe(503)
    const encoded = Schema.encodeEither(HttpApiSession.ErrorResponse)(
      new SessionStoreError({ store: "redis", operation: "update", cause: new Error("secret host name") })
    )
    expect(encoded).toEqual(Either.right({
      _tag: "SessionStoreError",
      message: "The session store is unavailable",
      operation: "update"
    }))
  })
})

describe("HttpApiSession.toResponse", () => {
  it("answers a conflict with 503 and Retry-After, as the API declares it", () => {
    const res = HttpApiSession.toResponse(new SessionConflict({ reason: "VersionMismatch" }))
    expect(res.status).toBe(503)
    expect(res.headers["retry-after"]).toBe("1")
    expect(HttpApiSession.toResponse(new SessionTooLarge({ size: 500, limit: 400 })).status).toBe(413)
    expect(HttpApiSession.toResponse(new SessionEncodeError({ cause: "x" })).status).toBe(500)
  })
})

describe("HttpApiSession.Tag elsewhere", () => {
  class Counter extends Session.Tag<Counter>()("test/HttpApi/Counter", {
    n: Schema.optionalWith(Schema.Int, { default: () => 0 })
  }) {}
  class CounterMiddleware extends HttpApiSession.Tag<CounterMiddleware>()(
    "test/HttpApi/CounterMiddleware",
    Counter,
    { cookie: { name: "counter", secure: false } }
  ) {}
  // the middleware on the whole API rather than on a group
  class CounterApi extends HttpApi.make("counter").add(
    HttpApiGroup.make("count").add(HttpApiEndpoint.post("increment", "/increment").addSuccess(Schema.Int))
  ).middleware(CounterMiddleware) {}
  const CountLive = HttpApiBuilder.group(CounterApi, "count", (handlers) =>
    handlers.handle("increment", () =>
      Effect.gen(function*() {
        yield* Counter.update("n", (n) => n + 1)
        return yield* Counter.get("n")
      })))
  const CounterLive = HttpApiBuilder.api(CounterApi).pipe(
    Layer.provide(CountLive),
    Layer.provide(CounterMiddleware.layer),
    Layer.provide(MemoryStore.layer())
  )

  it.effect("on the whole API, served by HttpApiBuilder.toWebHandler: the cookie is on the web Response", () =>
    Effect.gen(function*() {
      const { dispose, handler } = HttpApiBuilder.toWebHandler(Layer.mergeAll(CounterLive, HttpServer.layerContext))
      try {
        const first = yield* Effect.promise(() => handler(new Request("http://localhost/increment", { method: "POST" })))
        expect(first.status).toBe(200)
        expect(yield* Effect.promise(() => first.text())).toBe("1")
        const [line] = first.headers.getSetCookie()
        expect(line).toMatch(/^counter=[A-Za-z0-9_-]{43}; /)
        const cookie = line.split(";")[0]
        const second = yield* Effect.promise(() =>
          handler(new Request("http://localhost/increment", { method: "POST", headers: { cookie } }))
        )
        expect(yield* Effect.promise(() => second.text())).toBe("2")
      } finally {
        yield* Effect.promise(() => dispose())
      }
    }))
})
