/**
 * effect-session on Effect 4: the `Session.Tag` middleware provided to every
 * route (`/plain` included, which never reads the session), sessions in
 * Redis through `RedisStore`, served by `effect/http` on
 * `@effect/platform-node` 4 with the request logger off (`disableLogger`, as
 * the Effect 4 floor). The same app as the Effect 3 line's
 * `bench/servers/effect-session.ts`.
 */
import { NodeHttpServer, NodeRuntime } from "@effect/platform-node"
import { Effect, Layer, Schema } from "effect"
import { HttpRouter, HttpServerResponse } from "effect/http"
import { createServer } from "node:http"
import { cookieName, idleTimeoutMs, port, redisUrl, storedValue } from "../../bench/servers/config.js"
import * as RedisStore from "../src/RedisStore.js"
import * as Session from "../src/Session.js"

class AppSession extends Session.Tag<AppSession>()("bench/AppSession", {
  value: Schema.optional(Schema.String),
  counter: Schema.optional(Schema.Number)
}) {}

const Routes = Layer.mergeAll(
  HttpRouter.add(
    "GET",
    "/setup",
    Effect.gen(function*() {
      yield* AppSession.set("value", storedValue)
      yield* AppSession.set("counter", 0)
      return HttpServerResponse.text("ok")
    })
  ),
  HttpRouter.add("GET", "/get", Effect.map(AppSession.get("value"), (value) => HttpServerResponse.text(value ?? ""))),
  HttpRouter.add(
    "GET",
    "/counter",
    Effect.map(AppSession.get("counter"), (counter) => HttpServerResponse.text(String(counter ?? 0)))
  ),
  HttpRouter.add(
    "GET",
    "/incr",
    Effect.gen(function*() {
      yield* AppSession.update("counter", (n) => (n ?? 0) + 1)
      const counter = yield* AppSession.get("counter")
      return HttpServerResponse.text(String(counter ?? 0))
    })
  ),
  HttpRouter.add("GET", "/plain", HttpServerResponse.text("plain"))
).pipe(
  Layer.provide(AppSession.middleware({ cookie: { name: cookieName, secure: false }, idleTimeout: idleTimeoutMs }).layer)
)

HttpRouter.serve(Routes, { disableLogger: true, disableListenLog: true }).pipe(
  Layer.provide(NodeHttpServer.layer(createServer, { port, host: "127.0.0.1" })),
  // the store first: the server listens only once it is ready
  Layer.provide(RedisStore.layer({ url: redisUrl, prefix: "bench-effect4-session:" })),
  Layer.launch,
  NodeRuntime.runMain
)
