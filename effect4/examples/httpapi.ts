/**
 * A session in an `HttpApi` on Effect 4: login, a visit counter, logout, and
 * the OpenAPI document (which names the session cookie).
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
import { NodeHttpServer, NodeRuntime } from "@effect/platform-node"
import { Config, Effect, Layer, Schema } from "effect"
import { HttpRouter } from "effect/http"
import {
  HttpApi,
  HttpApiBuilder,
  HttpApiEndpoint,
  HttpApiError,
  HttpApiGroup,
  HttpApiMiddleware,
  OpenApi
} from "effect/http-api"
import { createServer } from "node:http"
import { Session } from "../src/index.js"
import * as Stores from "./stores.js"

class AppSession extends Session.Tag<AppSession>()("httpapi/AppSession", {
  username: Schema.optional(Schema.String),
  visits: Schema.Int.pipe(Schema.withDecodingDefault(Effect.succeed(0)))
}) {}

// The session as an HttpApiMiddleware: added to a group, its handlers get the
// session; its implementation is the session's `apiMiddleware`.
class SessionMiddleware extends HttpApiMiddleware.Service<SessionMiddleware, { provides: AppSession }>()(
  "httpapi/SessionMiddleware"
) {}

class Me extends Schema.Class<Me>("Me")({
  username: Schema.String,
  visits: Schema.Int
}) {}

// The OpenAPI document names the session cookie, on every operation of the
// group, and the 503 a store that is down answers (the middleware is not a
// security middleware: it authenticates nobody, it carries the session).
const documentSession = (spec: Record<string, any>): Record<string, any> => {
  spec.components.securitySchemes.session = { type: "apiKey", name: "session", in: "cookie" }
  for (const path of Object.values<Record<string, any>>(spec.paths)) {
    for (const operation of Object.values<Record<string, any>>(path)) {
      operation.security = [{ session: [] }]
      operation.responses["503"] = { description: "Session store unavailable" }
    }
  }
  return spec
}

const Api = HttpApi.make("api").add(
  HttpApiGroup.make("account")
    .add(
      HttpApiEndpoint.post("login", "/login", {
        // a principal is 1 to 255 characters
        payload: Schema.Struct({ username: Schema.String.check(Schema.isMinLength(1), Schema.isMaxLength(255)) })
      }),
      HttpApiEndpoint.get("me", "/me", { success: Me, error: HttpApiError.Unauthorized }),
      HttpApiEndpoint.post("logout", "/logout")
    )
    .middleware(SessionMiddleware)
).annotateMerge(OpenApi.annotations({ transform: documentSession }))

// A session error (store down, session too large) is answered by the
// middleware (503, 413): the endpoints declare none, so the handlers let it
// through as a defect of their type.
const AccountLive = HttpApiBuilder.group(Api, "account", (handlers) =>
  handlers
    .handle("login", ({ payload }) =>
      Effect.orDie(Effect.gen(function*() {
        yield* AppSession.login(payload.username) // a new id, bound to the user
        yield* AppSession.set("username", payload.username)
      })))
    .handle("me", () =>
      Effect.gen(function*() {
        const username = yield* Effect.orDie(AppSession.get("username"))
        if (username === undefined) return yield* new HttpApiError.Unauthorized()
        yield* Effect.orDie(AppSession.update("visits", (n) => n + 1))
        return new Me({ username, visits: yield* Effect.orDie(AppSession.get("visits")) })
      }))
    .handle("logout", () => Effect.orDie(AppSession.invalidate)))

const ApiLive = HttpApiBuilder.layer(Api, { openapiPath: "/openapi.json" }).pipe(
  Layer.provide(AccountLive),
  Layer.provide(AppSession.apiMiddleware(SessionMiddleware, { cookie: { secure: false } })) // plain HTTP on localhost
)

const ServerLive = NodeHttpServer.layerConfig(createServer, {
  port: Config.Port("PORT").pipe(Config.withDefault(5000))
})

HttpRouter.serve(ApiLive).pipe(
  Layer.provide(ServerLive),
  // provided last, so built first: the server listens once the store is ready
  Layer.provide(Stores.fromEnvironment),
  Layer.launch,
  NodeRuntime.runMain
)
