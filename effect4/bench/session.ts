/**
 * effect-session on Effect 4 over HTTP (`apps.ts`, `session`): served by
 * `effect/http` on `@effect/platform-node` 4 with the request logger off
 * (`disableLogger`, as the Effect 4 floor; Effect 3 logs nothing per request
 * by default). Started by `bench/run.ts` as `effect4-session`.
 */
import { NodeHttpServer, NodeRuntime } from "@effect/platform-node"
import { Layer } from "effect"
import { HttpRouter } from "effect/http"
import { createServer } from "node:http"
import { port, redisUrl } from "../../bench/servers/config.js"
import * as Apps from "./apps.js"

HttpRouter.serve(Apps.session({ url: redisUrl, prefix: "bench-effect4-session:" }), { disableLogger: true, disableListenLog: true }).pipe(
  Layer.provide(NodeHttpServer.layer(createServer, { port, host: "127.0.0.1" })),
  Layer.launch,
  NodeRuntime.runMain
)
