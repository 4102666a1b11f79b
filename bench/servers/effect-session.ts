/**
 * (a) effect-session: the `Session.Tag` middleware over the app, sessions in
 * Redis through `RedisStore`, served by `@effect/platform-node`.
 */
import { HttpRouter, HttpServer, HttpServerResponse } from "@effect/platform"
import { NodeHttpServer, NodeRuntime } from "@effect/platform-node"
import { Effect, Layer, Schema } from "effect"
import { createServer } from "node:http"
import * as RedisStore from "../../src/RedisStore.js"
import * as Session from "../../src/Session.js"
import { cookieName, idleTimeoutMs, port, redisUrl, storedValue } from "./config.js"
import { router as bareRouter } from "./no-session-app.js"

class AppSession extends Session.Tag<AppSession>()("bench/AppSession", {
  value: Schema.optional(Schema.String),
  counter: Schema.optional(Schema.Number)
}) {}

const router = HttpRouter.empty.pipe(
  HttpRouter.get(
    "/setup",
    Effect.gen(function*() {
      yield* AppSession.set("value", storedValue)
      yield* AppSession.set("counter", 0)
      return HttpServerResponse.text("ok")
    })
  ),
  HttpRouter.get("/get", Effect.map(AppSession.get("value"), (value) => HttpServerResponse.text(value ?? ""))),
  HttpRouter.get(
    "/counter",
    Effect.map(AppSession.get("counter"), (counter) => HttpServerResponse.text(String(counter ?? 0)))
  ),
  HttpRouter.get(
    "/incr",
    Effect.gen(function*() {
      yield* AppSession.update("counter", (n) => (n ?? 0) + 1)
      const counter = yield* AppSession.get("counter")
      return HttpServerResponse.text(String(counter ?? 0))
    })
  ),
  HttpRouter.get("/plain", HttpServerResponse.text("plain"))
)

const app = router.pipe(
  AppSession.middleware({ cookie: { name: cookieName, secure: false }, idleTimeout: idleTimeoutMs })
)

// With BARE_PORT, the same process also serves the router of
// `plain-effect.ts` (this app's routes without the session middleware) on a
// second port: the baseline for `/plain` with exactly this process's history
// (the same requests served before, the same JIT state, the same heap).
const barePort = process.env.BARE_PORT === undefined ? undefined : Number(process.env.BARE_PORT)
const bare = barePort === undefined
  ? Layer.empty
  : HttpServer.serve(bareRouter).pipe(
    Layer.provide(NodeHttpServer.layer(createServer, { port: barePort, host: "127.0.0.1" }))
  )

Layer.merge(
  HttpServer.serve(app).pipe(
    Layer.provide(NodeHttpServer.layer(createServer, { port, host: "127.0.0.1" }))
  ),
  bare
).pipe(
  Layer.provide(RedisStore.layer({ url: redisUrl, prefix: "bench-effect-session:" })),
  Layer.launch,
  NodeRuntime.runMain
)
