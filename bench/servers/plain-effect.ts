/**
 * (e) The effect-session app's router WITHOUT the session middleware: the
 * baseline for `/plain` (a route that never touches the session). Same
 * platform, same server layer, same response.
 */
import { HttpRouter, HttpServer, HttpServerResponse } from "@effect/platform"
import { NodeHttpServer, NodeRuntime } from "@effect/platform-node"
import { Layer } from "effect"
import { createServer } from "node:http"
import { port } from "./config.js"

const router = HttpRouter.empty.pipe(
  HttpRouter.get("/plain", HttpServerResponse.text("plain"))
)

HttpServer.serve(router).pipe(
  Layer.provide(NodeHttpServer.layer(createServer, { port, host: "127.0.0.1" })),
  Layer.launch,
  NodeRuntime.runMain
)
