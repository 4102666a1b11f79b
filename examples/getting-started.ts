/**
 * effect-session's getting started, as one program (docs/getting-started.md
 * shows this file, character for character).
 *
 *   npx tsx examples/getting-started.ts    # http://localhost:3000, PORT to change it
 */
import { HttpRouter, HttpServer, HttpServerRequest, HttpServerResponse } from "@effect/platform"
import { NodeHttpServer, NodeRuntime } from "@effect/platform-node"
import { Config, Effect, Layer, Schema } from "effect"
import { Session, SessionError } from "effect-session"
import * as MemoryStore from "effect-session/MemoryStore"
import { createServer } from "node:http"

// 1. The session: its schema, and a tag that carries typed accessors.
class AppSession extends Session.Tag<AppSession>()("app/AppSession", {
  username: Schema.optional(Schema.String),
  visits: Schema.optionalWith(Schema.Int, { default: () => 0 })
}) {}

// 2. Handlers use the accessors; the session loads on first use.
const router = HttpRouter.empty.pipe(
  HttpRouter.get(
    "/",
    Effect.gen(function*() {
      yield* AppSession.update("visits", (n) => n + 1)
      const name = yield* AppSession.get("username") // string | undefined
      const visits = yield* AppSession.get("visits") // number
      return HttpServerResponse.text(`Hello, ${name ?? "stranger"}! Visits: ${visits}`)
    })
  ),
  HttpRouter.get(
    "/login",
    Effect.gen(function*() {
      yield* AppSession.login("user-42") // a new id, bound to a principal
      yield* AppSession.set("username", "testuser")
      return HttpServerResponse.redirect("/")
    })
  ),
  HttpRouter.get("/logout", Effect.as(AppSession.invalidate, HttpServerResponse.redirect("/"))),
  // A WebSocket behind the same middleware: the middleware has read the
  // upgrade request's cookie, so `AppSession.id` is that session's id; each
  // message then runs in `withSession` against it (loaded and saved per
  // message, as a request would be).
  HttpRouter.get(
    "/ws",
    Effect.gen(function*() {
      const id = yield* AppSession.id
      const socket = yield* HttpServerRequest.upgrade
      const write = yield* socket.writer
      yield* socket.runRaw((message) =>
        AppSession.withSession(
          id,
          Effect.gen(function*() {
            yield* AppSession.update("visits", (n) => n + 1)
            const name = yield* AppSession.get("username")
            yield* write(`${name ?? "stranger"}: ${typeof message === "string" ? message : "(binary)"}`)
          })
        )
      )
      return HttpServerResponse.empty()
    }).pipe(Effect.scoped)
  )
)

// 3. The middleware on the app; session errors answered 503 / 413 and logged.
const app = router.pipe(
  AppSession.middleware({ cookie: { secure: false } }), // plain HTTP on localhost
  SessionError.respond
)

// 4. Serve it. The store is provided last, so it is built first: the server
// listens only once the store is ready (in the other order a request that
// arrives while the store starts is accepted and never answered).
const ServerLive = Layer.unwrapEffect(
  Effect.map(Config.port("PORT").pipe(Config.withDefault(3000)), (port) => NodeHttpServer.layer(createServer, { port }))
)

HttpServer.serve(app).pipe(
  HttpServer.withLogAddress,
  Layer.provide(ServerLive),
  Layer.provide(MemoryStore.layer()),
  Layer.launch,
  NodeRuntime.runMain
)
