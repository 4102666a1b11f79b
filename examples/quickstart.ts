/**
 * Flask-Session's quickstart, in effect-session.
 *
 *   npm start                              # filesystem store in ./.sessions
 *   SESSION_STORE=memory npm start         # or redis, memcached, dynamodb, sqlite, postgres, mysql, mongodb
 *   PORT=8080 npm start
 */
import { HttpMiddleware, HttpRouter, HttpServer, HttpServerResponse } from "@effect/platform"
import { NodeHttpServer, NodeRuntime } from "@effect/platform-node"
import { Config, Effect, Layer, Schema } from "effect"
import { Session, SessionError } from "effect-session"
import { createServer } from "node:http"
import * as Stores from "./stores.js"

class AppSession extends Session.Tag<AppSession>()("quickstart/AppSession", {
  username: Schema.optional(Schema.String)
}) {}

const escapeHtml = (text: string): string =>
  text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`)

const router = HttpRouter.empty.pipe(
  HttpRouter.get(
    "/",
    Effect.map(AppSession.get("username"), (name) =>
      name === undefined
        ? HttpServerResponse.html(`You are not logged in. <a href="/login">Login</a>`)
        : HttpServerResponse.html(`Hello, ${escapeHtml(name)}! <a href="/logout">Logout</a>`))
  ),
  HttpRouter.get(
    "/login",
    Effect.gen(function*() {
      yield* AppSession.regenerate // a new id on privilege change
      yield* AppSession.set("username", "testuser")
      return HttpServerResponse.redirect("/")
    })
  ),
  HttpRouter.get("/logout", Effect.as(AppSession.remove("username"), HttpServerResponse.redirect("/")))
)

const app = router.pipe(
  AppSession.middleware({ cookie: { secure: false } }), // plain HTTP on localhost
  SessionError.respond // store down → 503, too large → 413, logged with what failed
)

const ServerLive = Layer.unwrapEffect(
  Effect.map(
    Config.port("PORT").pipe(Config.withDefault(5000)),
    (port) => NodeHttpServer.layer(createServer, { port })
  )
)

// The store is provided last, so it is built first: the server listens only
// once the store is ready. (In the other order the server would accept
// connections while the store starts, and answer none of those requests:
// its request handler is attached only when the app is served.)
HttpServer.serve(app, HttpMiddleware.logger).pipe(
  HttpServer.withLogAddress,
  Layer.provide(ServerLive),
  Layer.provide(Stores.fromEnvironment),
  Layer.launch,
  NodeRuntime.runMain
)
