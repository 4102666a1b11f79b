/**
 * The Effect 4 floor over HTTP (`apps.ts`, `floor`): no session library,
 * served as `session.ts` serves effect-session, the request logger off.
 * Started by `bench/run.ts` as `effect4-floor`.
 */
import { NodeHttpServer, NodeRuntime } from "@effect/platform-node"
import { Layer } from "effect"
import { HttpRouter } from "effect/http"
import { createServer } from "node:http"
import { port, redisUrl } from "../../bench/servers/config.js"
import * as Apps from "./apps.js"

HttpRouter.serve(Apps.floor({ url: redisUrl, prefix: "bench-effect4-floor:" }), { disableLogger: true, disableListenLog: true }).pipe(
  Layer.provide(NodeHttpServer.layer(createServer, { port, host: "127.0.0.1" })),
  Layer.launch,
  NodeRuntime.runMain
)
