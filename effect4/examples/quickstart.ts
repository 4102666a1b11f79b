/**
 * Flask-Session's quickstart, in effect-session on Effect 4.
 *
 *   npm start                              # filesystem store in ./.sessions (SESSION_DIR)
 *   SESSION_STORE=redis npm start          # REDIS_URL, default redis://127.0.0.1:6379
 *   SESSION_STORE=postgres npm start       # DATABASE_URL; also memory, memcached, dynamodb, mongodb, sqlite, mysql
 *   PORT=8080 npm start
 */
import { NodeHttpServer, NodeRuntime } from "@effect/platform-node"
import { Config, Effect, Layer, Schema } from "effect"
import { HttpRouter, HttpServerResponse } from "effect/http"
import { createServer } from "node:http"
import { Session, SessionError } from "../src/index.js"
import * as Stores from "./stores.js"

class AppSession extends Session.Tag<AppSession>()("quickstart/AppSession", {
  username: Schema.optional(Schema.String)
}) {}

const escapeHtml = (text: string): string => text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`)

const Routes = Layer.mergeAll(
  HttpRouter.add(
    "GET",
    "/",
    Effect.map(AppSession.get("username"), (name) =>
      name === undefined
        ? HttpServerResponse.html(`You are not logged in. <a href="/login">Login</a>`)
        : HttpServerResponse.html(`Hello, ${escapeHtml(name)}! <a href="/logout">Logout</a>`))
  ),
  HttpRouter.add(
    "GET",
    "/login",
    Effect.gen(function*() {
      yield* AppSession.regenerate // a new id on privilege change
      yield* AppSession.set("username", "testuser")
      return HttpServerResponse.redirect("/")
    })
  ),
  HttpRouter.add("GET", "/logout", Effect.as(AppSession.remove("username"), HttpServerResponse.redirect("/")))
).pipe(
  // the routes get the session from the middleware (plain HTTP on localhost);
  // store down → 503, too large → 413, logged with what failed
  Layer.provide(AppSession.middleware({ cookie: { secure: false } }).combine(SessionError.respond).layer)
)

const ServerLive = NodeHttpServer.layerConfig(createServer, {
  port: Config.Port("PORT").pipe(Config.withDefault(5000))
})

// The store is provided last, so it is built first: the server listens only
// once the store is ready.
HttpRouter.serve(Routes).pipe(
  Layer.provide(ServerLive),
  Layer.provide(Stores.fromEnvironment),
  Layer.launch,
  NodeRuntime.runMain
)
