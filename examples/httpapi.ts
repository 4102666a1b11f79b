/**
 * A session in an `HttpApi`: login, a visit counter, logout, and the
 * OpenAPI document (which names the session cookie).
 *
 *   npm run example:httpapi                         # filesystem store in ./.sessions
 *   SESSION_STORE=memory npm run example:httpapi    # or redis, memcached, dynamodb, sqlite, postgres, mysql, mongodb
 *   PORT=8080 npm run example:httpapi
 *
 *   curl -i -c jar -b jar -H 'content-type: application/json' -d '{"username":"alice"}' localhost:5000/login
 *   curl -i -c jar -b jar localhost:5000/me
 *   curl -i -c jar -b jar -X POST localhost:5000/logout
 *   curl localhost:5000/openapi.json
 */
import {
  HttpApi,
  HttpApiBuilder,
  HttpApiEndpoint,
  HttpApiError,
  HttpApiGroup,
  HttpMiddleware,
  HttpServer
} from "@effect/platform"
import { NodeHttpServer, NodeRuntime } from "@effect/platform-node"
import { Config, Effect, Layer, Schema } from "effect"
import { Session } from "effect-session"
import * as HttpApiSession from "effect-session/HttpApiSession"
import { createServer } from "node:http"
import * as Stores from "./stores.js"

class AppSession extends Session.Tag<AppSession>()("httpapi/AppSession", {
  username: Schema.optional(Schema.String),
  visits: Schema.optionalWith(Schema.Int, { default: () => 0 })
}) {}

// The session as an HttpApiMiddleware: added to a group, its handlers get
// the session, the API declares the session errors, the OpenAPI document
// names the cookie.
class SessionMiddleware extends HttpApiSession.Tag<SessionMiddleware>()(
  "httpapi/SessionMiddleware",
  AppSession,
  { cookie: { secure: false } } // plain HTTP on localhost
) {}

class Me extends Schema.Class<Me>("Me")({
  username: Schema.String,
  visits: Schema.Int
}) {}

class Api extends HttpApi.make("api").add(
  HttpApiGroup.make("account")
    .add(
      HttpApiEndpoint.post("login", "/login").setPayload(Schema.Struct({
        // a principal is 1 to 255 characters
        username: Schema.String.pipe(Schema.minLength(1), Schema.maxLength(Session.maxPrincipalLength))
      }))
    )
    .add(HttpApiEndpoint.get("me", "/me").addSuccess(Me).addError(HttpApiError.Unauthorized))
    .add(HttpApiEndpoint.post("logout", "/logout"))
    .middleware(SessionMiddleware)
) {}

const AccountLive = HttpApiBuilder.group(Api, "account", (handlers) =>
  handlers
    .handle("login", ({ payload }) =>
      Effect.gen(function*() {
        yield* AppSession.login(payload.username) // a new id, bound to the user
        yield* AppSession.set("username", payload.username)
      }))
    .handle("me", () =>
      Effect.gen(function*() {
        const username = yield* AppSession.get("username")
        if (username === undefined) return yield* new HttpApiError.Unauthorized()
        yield* AppSession.update("visits", (n) => n + 1)
        return new Me({ username, visits: yield* AppSession.get("visits") })
      }))
    .handle("logout", () => AppSession.invalidate))

const ApiLive = HttpApiBuilder.api(Api).pipe(
  Layer.provide(AccountLive),
  Layer.provide(SessionMiddleware.layer)
)

const ServerLive = Layer.unwrapEffect(
  Effect.map(
    Config.port("PORT").pipe(Config.withDefault(5000)),
    (port) => NodeHttpServer.layer(createServer, { port })
  )
)

HttpApiBuilder.serve(HttpMiddleware.logger).pipe(
  Layer.provide(HttpApiBuilder.middlewareOpenApi()), // GET /openapi.json
  Layer.provide(ApiLive),
  HttpServer.withLogAddress,
  Layer.provide(ServerLive),
  // provided last, so built first: the server listens once the store is ready
  Layer.provide(Stores.fromEnvironment),
  Layer.launch,
  NodeRuntime.runMain
)
