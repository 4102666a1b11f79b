/**
 * (f) The app of `plain-effect.ts` (the effect-session server without its
 * session middleware) wrapped in a middleware that does nothing:
 * `(app) => Effect.flatMap(app, Effect.succeed)`. Its `/plain` shows what
 * wrapping the router in any middleware costs an untouched route, next to
 * what the session middleware costs it.
 */
import { HttpRouter, HttpServer, HttpServerResponse } from "@effect/platform"
import type { HttpApp } from "@effect/platform"
import { NodeHttpServer, NodeRuntime } from "@effect/platform-node"
import { Effect, Layer } from "effect"
import { createServer } from "node:http"
import * as RedisStore from "../../src/RedisStore.js"
import { port, redisUrl } from "./config.js"

const router = HttpRouter.empty.pipe(
  HttpRouter.get("/setup", HttpServerResponse.text("ok")),
  HttpRouter.get("/get", HttpServerResponse.text("")),
  HttpRouter.get("/counter", HttpServerResponse.text("0")),
  HttpRouter.get("/incr", HttpServerResponse.text("0")),
  HttpRouter.get("/plain", HttpServerResponse.text("plain"))
)

const nothing = <E, R>(app: HttpApp.Default<E, R>): HttpApp.Default<E, R> =>
  Effect.flatMap(app, (response) => Effect.succeed(response))

HttpServer.serve(router.pipe(nothing)).pipe(
  Layer.provide(RedisStore.layer({ url: redisUrl, prefix: "bench-identity-mw:" })),
  Layer.provide(NodeHttpServer.layer(createServer, { port, host: "127.0.0.1" })),
  Layer.launch,
  NodeRuntime.runMain
)
