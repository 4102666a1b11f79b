/**
 * A session under HttpLayerRouter (the layer-based router), over real HTTP:
 * the middleware of `HttpApiSession.layerRouterMiddleware` provides the
 * session to the routes it is provided to, and an HttpApi mounted with
 * `HttpLayerRouter.addHttpApi` gets its session from `layerHttpLayerRouter`.
 */
import {
  HttpApi,
  HttpApiBuilder,
  HttpApiEndpoint,
  HttpApiGroup,
  HttpLayerRouter,
  HttpServerResponse
} from "@effect/platform"
import { NodeHttpServer } from "@effect/platform-node"
import { describe, expect, it } from "@effect/vitest"
import { Cause, Effect, Layer, Logger, Option, Schema } from "effect"
import * as HttpApiSession from "../src/HttpApiSession.js"
import * as MemoryStore from "../src/MemoryStore.js"
import * as Session from "../src/Session.js"
import { SessionStoreError, type StoreOperation } from "../src/SessionError.js"
import * as SessionId from "../src/SessionId.js"
import { SessionStore } from "../src/SessionStore.js"
import { makeBrowser, parseSetCookie } from "./utils/http.js"

class RouterSession extends Session.Tag<RouterSession>()("test/HttpLayerRouter/RouterSession", {
  visits: Schema.optionalWith(Schema.Int, { default: () => 0 })
}) {}

const SessionMiddleware = HttpApiSession.layerRouterMiddleware(RouterSession, { cookie: { secure: false } })

const count = Effect.gen(function*() {
  yield* RouterSession.update("visits", (n) => n + 1)
  return HttpServerResponse.text(String(yield* RouterSession.get("visits")))
})

const SessionRoutes = HttpLayerRouter.addAll([
  HttpLayerRouter.route("GET", "/count", count),
  HttpLayerRouter.route("GET", "/peek", Effect.map(RouterSession.get("visits"), (n) => HttpServerResponse.text(String(n))))
]).pipe(Layer.provide(SessionMiddleware.layer))

// a route the middleware is not provided to
const PlainRoutes = HttpLayerRouter.add("GET", "/plain", HttpServerResponse.text("plain"))

const serveRoutes = <E, R>(store: Layer.Layer<SessionStore, E, R>) =>
  HttpLayerRouter.serve(Layer.mergeAll(SessionRoutes, PlainRoutes), { disableLogger: true, disableListenLog: true }).pipe(
    Layer.provideMerge(NodeHttpServer.layerTest),
    Layer.provideMerge(store)
  )

const down = (operation: StoreOperation) =>
  Effect.fail(new SessionStoreError({ store: "down", operation, cause: new Error("ECONNREFUSED") }))

const downStore = Layer.succeed(SessionStore, {
  name: "down",
  load: () => down("load"),
  insert: () => down("insert"),
  update: () => down("update"),
  touch: () => down("touch"),
  remove: () => down("remove")
})

/** A logger that keeps the messages, for the tests that read the log. */
const capture = () => {
  const messages: Array<string> = []
  const logger = Logger.make(({ cause, message }) => {
    const text = (Array.isArray(message) ? message : [message])
      .map((m) => Cause.isCause(m) ? Cause.pretty(m) : String(m))
      .join(" ")
    messages.push(Cause.isEmpty(cause) ? text : `${text}\n${Cause.pretty(cause)}`)
  })
  return { messages, layer: Logger.replace(Logger.defaultLogger, logger) }
}

describe("HttpApiSession.layerRouterMiddleware over HTTP", () => {
  it.effect("provides the session to its routes: the cookie is set and the session saved before the response", () =>
    Effect.gen(function*() {
      const browser = yield* makeBrowser
      const first = yield* browser.get("/count")
      expect(first.body).toBe("1")
      expect(first.setCookies).toHaveLength(1)
      const cookie = parseSetCookie(first.setCookies[0])
      expect(cookie.name).toBe("session")
      expect(cookie.attributes["httponly"]).toBe(true)
      const record = yield* Effect.flatMap(
        SessionStore,
        (store) => store.load(SessionId.storageKey(cookie.value as SessionId.SessionId))
      )
      expect(Option.isSome(record)).toBe(true)
      expect((yield* browser.get("/count")).body).toBe("2")
      expect((yield* browser.get("/peek")).body).toBe("2")
      expect((yield* browser.get("/count")).body).toBe("3")
      const plain = yield* browser.get("/plain")
      expect(plain.body).toBe("plain")
      expect(plain.headers["vary"]).toBeUndefined()
    }).pipe(Effect.provide(serveRoutes(MemoryStore.layer()))))

  it.effect("answers a session error with its declared response and logs the store's message", () => {
    const log = capture()
    return Effect.gen(function*() {
      const browser = yield* makeBrowser
      const saved = yield* browser.get("/count")
      expect(saved.status).toBe(503)
      expect(JSON.parse(saved.body)).toEqual({
        _tag: "SessionStoreError",
        message: "The session store is unavailable",
        operation: "insert"
      })
      const loaded = yield* browser.get("/peek", { cookie: `session=${SessionId.unsafeGenerate()}` })
      expect(loaded.status).toBe(503)
      expect(JSON.parse(loaded.body)).toMatchObject({ operation: "load" })
      expect(log.messages).toContain("effect-session: down store: insert failed: ECONNREFUSED")
      expect((yield* browser.get("/plain")).status).toBe(200)
    }).pipe(Effect.provide(serveRoutes(downStore)), Effect.provide(log.layer))
  })
})

class ApiSessionMiddleware extends HttpApiSession.Tag<ApiSessionMiddleware>()(
  "test/HttpLayerRouter/ApiSessionMiddleware",
  RouterSession,
  { cookie: { secure: false } }
) {}

class Api extends HttpApi.make("api").add(
  HttpApiGroup.make("visits")
    .add(HttpApiEndpoint.get("count", "/api/count").addSuccess(Schema.Int))
    .middleware(ApiSessionMiddleware)
) {}

const VisitsLive = HttpApiBuilder.group(Api, "visits", (handlers) =>
  handlers.handle("count", () =>
    Effect.gen(function*() {
      yield* RouterSession.update("visits", (n) => n + 1)
      return yield* RouterSession.get("visits")
    })))

const serveApi = (middleware: Layer.Layer<ApiSessionMiddleware, never, SessionStore>) =>
  HttpLayerRouter.serve(
    HttpLayerRouter.addHttpApi(Api).pipe(Layer.provide(VisitsLive), Layer.provide(middleware)),
    { disableListenLog: true }
  ).pipe(
    Layer.provideMerge(NodeHttpServer.layerTest),
    Layer.provideMerge(MemoryStore.layer())
  )

describe("HttpApiSession.Tag under HttpLayerRouter.addHttpApi", () => {
  it.effect("layerHttpLayerRouter gives the API's handlers the session and sets the cookie", () =>
    Effect.gen(function*() {
      const browser = yield* makeBrowser
      const first = yield* browser.get("/api/count")
      expect(first.status).toBe(200)
      expect(first.body).toBe("1")
      expect(first.setCookies).toHaveLength(1)
      expect((yield* browser.get("/api/count")).body).toBe("2")
    }).pipe(Effect.provide(serveApi(ApiSessionMiddleware.layerHttpLayerRouter))))

  it.effect("the HttpApiBuilder layer there fails each request loudly, naming the layer to use", () => {
    const log = capture()
    return Effect.gen(function*() {
      const browser = yield* makeBrowser
      const res = yield* browser.get("/api/count")
      expect(res.status).toBe(500)
      expect(res.setCookies).toEqual([])
      expect(log.messages.join("\n")).toContain(
        "test/HttpLayerRouter/ApiSessionMiddleware found no session for this request: its layer is not installed where the API is served. " +
          "Provide test/HttpLayerRouter/ApiSessionMiddleware.layer to HttpApiBuilder.serve(), or, under HttpLayerRouter.addHttpApi, " +
          "test/HttpLayerRouter/ApiSessionMiddleware.layerHttpLayerRouter"
      )
    }).pipe(Effect.provide(serveApi(ApiSessionMiddleware.layer)), Effect.provide(log.layer))
  })
})
