import type { HttpApiGroup, HttpLayerRouter, HttpServerError } from "@effect/platform"
import { HttpApi, HttpApiBuilder, HttpApiEndpoint, HttpApiError, HttpApiGroup as Group } from "@effect/platform"
import { NodeHttpServer, NodeRuntime } from "@effect/platform-node"
import { Data, Effect, Layer, Schema } from "effect"
import { createServer } from "node:http"
import { describe, expect, test } from "tstyche"
import * as HttpApiSession from "../src/HttpApiSession.js"
import * as MemoryStore from "../src/MemoryStore.js"
import * as Session from "../src/Session.js"
import type { SessionError } from "../src/SessionError.js"
import type { SessionStore } from "../src/SessionStore.js"

class AppSession extends Session.Tag<AppSession>()("dtslint/HttpApi/AppSession", {
  username: Schema.optional(Schema.String),
  visits: Schema.optionalWith(Schema.Int, { default: () => 0 })
}) {}

class SessionMiddleware extends HttpApiSession.Tag<SessionMiddleware>()(
  "dtslint/HttpApi/SessionMiddleware",
  AppSession
) {}

class Me extends Schema.Class<Me>("Me")({ username: Schema.String, visits: Schema.Int }) {}

class NotDeclared extends Data.TaggedError("NotDeclared")<{}> {}

const me = HttpApiEndpoint.get("me", "/me").addSuccess(Me).addError(HttpApiError.Unauthorized)

class Api extends HttpApi.make("api").add(Group.make("withSession").add(me).middleware(SessionMiddleware)).add(
  Group.make("withoutSession").add(HttpApiEndpoint.get("count", "/count").addSuccess(Schema.Int))
) {}

const meHandler = Effect.gen(function*() {
  const username = yield* AppSession.get("username")
  if (username === undefined) return yield* new HttpApiError.Unauthorized()
  yield* AppSession.update("visits", (n) => n + 1)
  return new Me({ username, visits: yield* AppSession.get("visits") })
})

const WithSession = HttpApiBuilder.group(Api, "withSession", (handlers) => handlers.handle("me", () => meHandler))

// (its errors made defects: a handler failing with them does not compile there, see below)
const WithoutSession = HttpApiBuilder.group(
  Api,
  "withoutSession",
  (handlers) => handlers.handle("count", () => Effect.orDie(AppSession.get("visits")))
)

const server = <E, R>(groups: Layer.Layer<HttpApiGroup.ApiGroup<"api", "withSession" | "withoutSession">, E, R>) =>
  HttpApiBuilder.serve().pipe(
    Layer.provide(HttpApiBuilder.api(Api)),
    Layer.provide(groups),
    Layer.provide(SessionMiddleware.layer),
    Layer.provide(MemoryStore.layer()),
    Layer.provide(NodeHttpServer.layer(createServer, { port: 0 }))
  )

describe("HttpApiSession.Tag", () => {
  test("its handlers yield* the session's accessors with their exact types", () => {
    expect(meHandler).type.toBe<Effect.Effect<Me, SessionError | HttpApiError.Unauthorized, AppSession>>()
    // the middleware discharges the session: the group needs only the middleware's layer
    expect(WithSession).type.toBe<
      Layer.Layer<HttpApiGroup.ApiGroup<"api", "withSession">, never, SessionMiddleware>
    >()
  })

  test("a handler may fail with a session error, which the API declares, and with nothing undeclared", () => {
    expect(HttpApiBuilder.handler).type.toBeCallableWith(Api, "withSession", "me", () => meHandler)
    expect(HttpApiBuilder.handler).type.not.toBeCallableWith(
      Api,
      "withSession",
      "me",
      () => Effect.zipRight(AppSession.get("username"), new NotDeclared())
    )
    // a group without the middleware does not declare the session errors
    expect(HttpApiBuilder.handler).type.not.toBeCallableWith(
      Api,
      "withoutSession",
      "count",
      () => AppSession.get("visits")
    )
  })

  test("a group using the session without the middleware does not compile when served", () => {
    expect(WithoutSession).type.toBe<Layer.Layer<HttpApiGroup.ApiGroup<"api", "withoutSession">, never, AppSession>>()
    const groups = Layer.merge(WithSession, WithoutSession)
    expect(Layer.launch(server(groups))).type.toBe<Effect.Effect<never, HttpServerError.ServeError, AppSession>>()
    expect(NodeRuntime.runMain).type.not.toBeCallableWith(Layer.launch(server(groups)))
  })

  test("with the middleware on every group that uses the session, the server needs nothing more", () => {
    const Fixed = HttpApiBuilder.group(Api, "withoutSession", (handlers) => handlers.handle("count", () => Effect.succeed(1)))
    expect(Layer.launch(server(Layer.merge(WithSession, Fixed)))).type.toBe<Effect.Effect<never, HttpServerError.ServeError, never>>()
    expect(NodeRuntime.runMain).type.toBeCallableWith(Layer.launch(server(Layer.merge(WithSession, Fixed))))
  })

  test("its layer provides the middleware and requires a store", () => {
    expect(SessionMiddleware.layer).type.toBe<Layer.Layer<SessionMiddleware, never, SessionStore>>()
    expect(SessionMiddleware.session).type.toBe<typeof AppSession>()
  })

  test("the session middleware does not fit HttpApiBuilder.serve's middleware argument", () => {
    // (its errors are not handled there; see HttpApiMisuse.test.ts for what it does once they are)
    expect(HttpApiBuilder.serve).type.not.toBeCallableWith(AppSession.middleware())
  })
})

describe("HttpApiSession.layerRouterMiddleware", () => {
  test("provides the session to HttpLayerRouter routes and requires a store", () => {
    expect(HttpApiSession.layerRouterMiddleware(AppSession).layer).type.toBe<
      Layer.Layer<HttpLayerRouter.Request<"Requires", AppSession>, never, SessionStore>
    >()
  })
})
