/**
 * A session middleware given where it wraps the sending of the response
 * (`HttpServer.serve(app, middleware)`, `HttpApiBuilder.serve(middleware)`)
 * cannot set its cookie: it says so in the log, once, with where it belongs.
 */
import {
  HttpApi,
  HttpApiBuilder,
  HttpApiEndpoint,
  HttpApiGroup,
  HttpClient,
  HttpClientRequest,
  HttpLayerRouter,
  HttpRouter,
  HttpServer,
  HttpServerResponse
} from "@effect/platform"
import { NodeHttpServer } from "@effect/platform-node"
import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer, Logger, LogLevel, Schema } from "effect"
import * as HttpApiSession from "../src/HttpApiSession.js"
import * as MemoryStore from "../src/MemoryStore.js"
import * as Session from "../src/Session.js"
import { makeBrowser } from "./utils/http.js"

class MisusedSession extends Session.Tag<MisusedSession>()("test/Misuse/MisusedSession", {
  username: Schema.optional(Schema.String)
}) {}

const misplaced = (id: string) =>
  `effect-session: ${id}.middleware() ran after the response was sent, so the session cookie never reaches the client: ` +
  `it was given where a middleware wraps the sending of the response (HttpServer.serve(app, middleware), ` +
  `HttpApiBuilder.serve(middleware) or HttpLayerRouter.serve's middleware option). ` +
  `Apply it to the app instead: HttpServer.serve(app.pipe(${id}.middleware())); for an HttpApi, provide the layer of ` +
  `HttpApiSession.Tag; for HttpLayerRouter routes, HttpApiSession.layerRouterMiddleware`

/** A logger that keeps what is logged, with its level. */
const capture = () => {
  const entries: Array<{ readonly level: LogLevel.LogLevel; readonly message: string }> = []
  const logger = Logger.make(({ logLevel, message }) => {
    entries.push({ level: logLevel, message: (Array.isArray(message) ? message : [message]).map(String).join(" ") })
  })
  return { entries, layer: Logger.replace(Logger.defaultLogger, logger) }
}

const login = Effect.gen(function*() {
  yield* MisusedSession.set("username", "alice")
  return HttpServerResponse.text("ok")
})

const router = HttpRouter.empty.pipe(HttpRouter.get("/login", login))

describe("a session middleware where its cookie cannot reach the response", () => {
  it.effect("HttpServer.serve(app, middleware): logged once as an error, naming where it belongs", () => {
    const log = capture()
    // (the options object makes this middleware's own, so that no other test has warned for it already)
    const middleware = MisusedSession.middleware({ cookie: { secure: false } })
    return Effect.gen(function*() {
      const browser = yield* makeBrowser
      const first = yield* browser.get("/login")
      expect(first.body).toBe("ok")
      expect(first.setCookies).toEqual([])
      yield* browser.get("/login")
      const warnings = log.entries.filter((e) => e.message === misplaced("test/Misuse/MisusedSession"))
      expect(warnings).toHaveLength(1)
      expect(warnings[0].level).toBe(LogLevel.Error)
    }).pipe(
      Effect.provide(
        HttpServer.serve(router, (app) => Effect.catchAll(middleware(app), () => HttpServerResponse.empty({ status: 500 }))).pipe(
          Layer.provideMerge(NodeHttpServer.layerTest),
          Layer.provide(MemoryStore.layer())
        )
      ),
      Effect.provide(log.layer)
    )
  })

  it.effect("HttpApiBuilder.serve(middleware): logged once as an error, naming where it belongs", () => {
    const log = capture()
    class Middleware extends HttpApiSession.Tag<Middleware>()("test/Misuse/Middleware", MisusedSession) {}
    class Api extends HttpApi.make("api").add(
      HttpApiGroup.make("account").add(HttpApiEndpoint.post("login", "/login")).middleware(Middleware)
    ) {}
    const AccountLive = HttpApiBuilder.group(Api, "account", (handlers) =>
      handlers.handle("login", () => MisusedSession.set("username", "alice")))
    // the middleware a user writes by hand when the session is put into
    // serve's argument: it finds the session the misplaced middleware made
    const Handmade = Layer.succeed(Middleware, { session: () => MisusedSession as any })
    const middleware = MisusedSession.middleware({ cookie: { secure: true } })
    return Effect.gen(function*() {
      const client = yield* HttpClient.HttpClient
      const res = yield* Effect.scoped(client.execute(HttpClientRequest.post("/login")))
      expect(res.status).toBe(204)
      expect(res.headers["set-cookie"]).toBeUndefined()
      yield* Effect.scoped(client.execute(HttpClientRequest.post("/login")))
      const warnings = log.entries.filter((e) => e.message === misplaced("test/Misuse/MisusedSession"))
      expect(warnings).toHaveLength(1)
      expect(warnings[0].level).toBe(LogLevel.Error)
    }).pipe(
      Effect.provide(
        HttpApiBuilder.serve((app) => Effect.catchAll(middleware(app), () => HttpServerResponse.empty({ status: 500 }))).pipe(
          Layer.provide(HttpApiBuilder.api(Api)),
          Layer.provide(AccountLive),
          Layer.provide(Handmade),
          Layer.provideMerge(NodeHttpServer.layerTest),
          Layer.provide(MemoryStore.layer())
        )
      ),
      Effect.provide(log.layer)
    )
  })

  it.effect("in place (applied to the app), nothing is logged and the cookie is set", () => {
    const log = capture()
    const middleware = MisusedSession.middleware({ cookie: { secure: false, path: "/" } })
    return Effect.gen(function*() {
      const browser = yield* makeBrowser
      const res = yield* browser.get("/login")
      expect(res.setCookies).toHaveLength(1)
      expect(log.entries.filter((e) => e.message.includes("ran after the response was sent"))).toEqual([])
    }).pipe(
      Effect.provide(
        HttpServer.serve(router.pipe(middleware)).pipe(
          Layer.provideMerge(NodeHttpServer.layerTest),
          Layer.provide(MemoryStore.layer())
        )
      ),
      Effect.provide(log.layer)
    )
  })
})

describe("HttpLayerRouter.serve's middleware option", () => {
  it.effect("is a place where the cookie cannot reach the response: logged once as an error", () => {
    const log = capture()
    const middleware = MisusedSession.middleware({ cookie: { secure: false, sameSite: "strict" } })
    // what a user who put the session there must write for it to compile
    // (the route's session requirement is discharged by hand)
    const Route = HttpLayerRouter.add("GET", "/login", login as Effect.Effect<HttpServerResponse.HttpServerResponse>)
    return Effect.gen(function*() {
      const browser = yield* makeBrowser
      const res = yield* browser.get("/login")
      expect(res.body).toBe("ok")
      expect(res.setCookies).toEqual([])
      yield* browser.get("/login")
      const warnings = log.entries.filter((e) => e.message === misplaced("test/Misuse/MisusedSession"))
      expect(warnings).toHaveLength(1)
    }).pipe(
      Effect.provide(
        HttpLayerRouter.serve(Route, {
          disableLogger: true,
          disableListenLog: true,
          middleware: (app) => Effect.catchAll(middleware(app), () => HttpServerResponse.empty({ status: 500 }))
        }).pipe(
          Layer.provideMerge(NodeHttpServer.layerTest),
          Layer.provide(MemoryStore.layer())
        )
      ),
      Effect.provide(log.layer)
    )
  })
})
