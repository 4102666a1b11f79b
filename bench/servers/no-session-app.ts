/**
 * The effect-session server's router without the session middleware (the
 * routes that would use the session answer a constant), with the same layers
 * (`RedisStore` with its client included, though nothing uses it) and server
 * layer: what `plain-effect.ts` serves as it is and `identity-mw.ts` inside
 * a middleware that does nothing.
 */
import { HttpRouter, HttpServer, HttpServerResponse } from "@effect/platform"
import type { HttpApp } from "@effect/platform"
import { NodeHttpServer, NodeRuntime } from "@effect/platform-node"
import { Layer } from "effect"
import { createServer } from "node:http"
import * as RedisStore from "../../src/RedisStore.js"
import { port, redisUrl } from "./config.js"

export const router = HttpRouter.empty.pipe(
  HttpRouter.get("/setup", HttpServerResponse.text("ok")),
  HttpRouter.get("/get", HttpServerResponse.text("")),
  HttpRouter.get("/counter", HttpServerResponse.text("0")),
  HttpRouter.get("/incr", HttpServerResponse.text("0")),
  HttpRouter.get("/plain", HttpServerResponse.text("plain"))
)

/** Serves `app` on the bench's port, with the store layer under `prefix`. */
export const run = <E>(app: HttpApp.Default<E>, prefix: string): void =>
  HttpServer.serve(app).pipe(
    // the store first: the server listens only once it is ready
    Layer.provide(NodeHttpServer.layer(createServer, { port, host: "127.0.0.1" })),
    Layer.provide(RedisStore.layer({ url: redisUrl, prefix })),
    Layer.launch,
    NodeRuntime.runMain
  )
