/**
 * The session in an HttpApi (effect/http-api), through an
 * HttpApiMiddleware.Service whose implementation is the session tag's
 * `apiMiddleware`: endpoints read and write it over real HTTP, and a store
 * that is down answers 503.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer, Schema } from "effect"
import { HttpApi, HttpApiBuilder, HttpApiEndpoint, HttpApiGroup, HttpApiMiddleware } from "effect/http-api"
import * as MemoryStore from "../src/MemoryStore.js"
import * as Session from "../src/Session.js"
import { SessionStoreError } from "../src/SessionError.js"
import { SessionStore } from "../src/SessionStore.js"
import { browser, get, serve } from "./utils/server.js"

class Counter extends Session.Tag<Counter>()("test/ApiCounter", {
  count: Schema.Int.pipe(Schema.withDecodingDefault(Effect.succeed(0)))
}) {}

class SessionMiddleware extends HttpApiMiddleware.Service<SessionMiddleware, { provides: Counter }>()(
  "test/SessionMiddleware"
) {}

const Api = HttpApi.make("api").add(
  HttpApiGroup.make("counter")
    .add(
      HttpApiEndpoint.get("increment", "/increment", { success: Schema.Number }),
      HttpApiEndpoint.get("read", "/read", { success: Schema.Number })
    )
    .middleware(SessionMiddleware)
)

// a session error is answered by the middleware (503, 413): the endpoints
// declare none, so the handlers let it through as a defect of their type
const CounterLive = HttpApiBuilder.group(Api, "counter", (handlers) =>
  handlers
    .handle("increment", () => Effect.orDie(Effect.andThen(Counter.update("count", (n) => n + 1), Counter.get("count"))))
    .handle("read", () => Effect.orDie(Counter.get("count"))))

const app = (store: SessionStore["Service"]) =>
  HttpApiBuilder.layer(Api).pipe(
    Layer.provide(CounterLive),
    Layer.provide(Counter.apiMiddleware(SessionMiddleware, { cookie: { secure: false } })),
    Layer.provide(Layer.succeed(SessionStore)(store))
  )

describe("the session in an HttpApi", () => {
  it.live("endpoints share the session through the middleware, with its cookie", () =>
    Effect.gen(function*() {
      const memory = MemoryStore.make()
      const client = browser(yield* serve(app(memory.store)))
      expect((yield* client.get("/read")).body).toBe("0")
      expect((yield* client.get("/increment")).body).toBe("1")
      expect(client.cookie).toMatch(/^session=[A-Za-z0-9_-]{43}$/)
      expect((yield* client.get("/increment")).body).toBe("2")
      expect((yield* client.get("/read")).body).toBe("2")
      expect((yield* memory.size).entries).toBe(1)
    }).pipe(Effect.scoped))
})

describe("session failures in an HttpApi", () => {
  const failing = (operation: "load" | "insert"): SessionStore["Service"] => {
    const { store } = MemoryStore.make()
    const down = Effect.fail(new SessionStoreError({ store: "memory", operation, cause: new Error("connection refused") }))
    return operation === "load" ? { ...store, load: () => down } : { ...store, insert: () => down }
  }
  it.live("a store down on load (in the handler, made a defect) answers 503", () =>
    Effect.gen(function*() {
      const base = yield* serve(app(failing("load")))
      const answer = yield* get(`${base}/read`, `session=${"A".repeat(43)}`)
      expect(answer.status).toBe(503)
      expect(answer.body).toBe("Session store unavailable")
    }).pipe(Effect.scoped))
  it.live("a store down on the save after the handler answers 503, without a cookie", () =>
    Effect.gen(function*() {
      const base = yield* serve(app(failing("insert")))
      const answer = yield* get(`${base}/increment`)
      expect(answer.status).toBe(503)
      expect(answer.setCookie).toEqual([])
    }).pipe(Effect.scoped))
})
