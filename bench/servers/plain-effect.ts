/**
 * (e) The effect-session server WITHOUT the session middleware: the baseline
 * for `/plain` (a route that never touches the session). The same router
 * (its five routes; those that would use the session answer a constant),
 * the same layers (`RedisStore` with its client included, though nothing
 * uses it), the same platform and server layer: the only difference from
 * `effect-session.ts` is the middleware.
 */
import { HttpRouter, HttpServer, HttpServerResponse } from "@effect/platform"
import { NodeHttpServer, NodeRuntime } from "@effect/platform-node"
import { Layer } from "effect"
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

HttpServer.serve(router).pipe(
  Layer.provide(RedisStore.layer({ url: redisUrl, prefix: "bench-no-mw:" })),
  Layer.provide(NodeHttpServer.layer(createServer, { port, host: "127.0.0.1" })),
  Layer.launch,
  NodeRuntime.runMain
)
