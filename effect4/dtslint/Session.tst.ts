/**
 * Type tests of the Effect 4 line's Session module (tstyche: `npm run
 * test:types`): accessors typed by the schema, what the router middleware,
 * the HttpApi middleware and withSession provide and require, and the
 * principal functions' need of SessionIndex.
 */
import type { Option } from "effect"
import { Context, Data, Effect, Layer, Redacted, Schema } from "effect"
import { HttpRouter, HttpServerResponse } from "effect/http"
import type { HttpServer } from "effect/http"
import { HttpApiMiddleware } from "effect/http-api"
import { describe, expect, test } from "tstyche"
import * as MemoryStore from "../src/MemoryStore.js"
import * as Session from "../src/Session.js"
import * as SessionError from "../src/SessionError.js"
import type { SessionStoreError } from "../src/SessionError.js"
import type { SessionId, StorageKey } from "../src/SessionId.js"
import type { SessionIndex, SessionStore } from "../src/SessionStore.js"

class Counter extends Session.Tag<Counter>()("dtslint/Counter", {
  count: Schema.Int.pipe(Schema.withDecodingDefault(Effect.succeed(0))),
  name: Schema.optional(Schema.String)
}) {}

// a second session of the same app: one tag's middleware must not
// discharge the other's requirement
class AdminSession extends Session.Tag<AdminSession>()("dtslint/AdminSession", {
  role: Schema.optional(Schema.Literals(["admin", "auditor"]))
}) {}

type CounterData = { readonly name?: string | undefined; readonly count: number }

class Database extends Context.Service<Database, { readonly query: Effect.Effect<string> }>()("dtslint/Database") {}

class NotAllowed extends Data.TaggedError("NotAllowed")<{}> {}

describe("Session.Tag accessors", () => {
  test("are typed by the schema and require their tag", () => {
    expect(Counter.get("count")).type.toBe<Effect.Effect<number, SessionError.SessionError, Counter>>()
    expect(Counter.get("name")).type.toBe<Effect.Effect<string | undefined, SessionError.SessionError, Counter>>()
    expect(Counter.getAll).type.toBe<Effect.Effect<CounterData, SessionError.SessionError, Counter>>()
    expect(AdminSession.get("role")).type.toBe<Effect.Effect<"admin" | "auditor" | undefined, SessionError.SessionError, AdminSession>>()
  })

  test("a value of the wrong type or an unknown key does not compile", () => {
    expect(Counter.set("count", 3)).type.toBe<Effect.Effect<void, SessionError.SessionError, Counter>>()
    expect(Counter.set).type.not.toBeCallableWith("count", "one")
    expect(Counter.set).type.not.toBeCallableWith("name", 42)
    expect(AdminSession.set).type.toBeCallableWith("role", "auditor")
    expect(AdminSession.set).type.not.toBeCallableWith("role", "root")
    expect(Counter.get).type.not.toBeCallableWith("missing")
    expect(Counter.set).type.not.toBeCallableWith("missing", "x")
    expect(Counter.remove).type.not.toBeCallableWith("missing")
    expect(Counter.get).type.not.toBeCallableWith("role")
  })

  test("update's function is typed by the field", () => {
    expect(Counter.update("count", (n) => n + 1)).type.toBe<Effect.Effect<void, SessionError.SessionError, Counter>>()
    expect(Counter.update).type.not.toBeCallableWith("count", (n: number) => String(n))
    expect(Counter.update).type.not.toBeCallableWith("count", (s: string) => s.length)
  })

  test("remove, clear, regenerate, invalidate and login are effects on the session", () => {
    expect(Counter.remove("name")).type.toBe<Effect.Effect<void, SessionError.SessionError, Counter>>()
    expect(Counter.clear).type.toBe<Effect.Effect<void, SessionError.SessionError, Counter>>()
    expect(Counter.regenerate).type.toBe<Effect.Effect<void, SessionError.SessionError, Counter>>()
    expect(Counter.invalidate).type.toBe<Effect.Effect<void, SessionError.SessionError, Counter>>()
    expect(Counter.login("alice")).type.toBe<Effect.Effect<void, SessionError.SessionError, Counter>>()
    expect(Counter.login("alice", { keepData: true })).type.toBe<Effect.Effect<void, SessionError.SessionError, Counter>>()
    expect(Counter.login).type.not.toBeCallableWith(42)
    expect(Counter.login).type.not.toBeCallableWith("alice", { keepData: "yes" })
  })

  test("principal is an optional string and id a branded SessionId", () => {
    expect(Counter.principal).type.toBe<Effect.Effect<Option.Option<string>, SessionError.SessionError, Counter>>()
    expect(Counter.id).type.toBe<Effect.Effect<SessionId, SessionError.SessionError, Counter>>()
    expect<string>().type.not.toBeAssignableTo<SessionId>()
    expect<SessionId>().type.not.toBeAssignableTo<StorageKey>()
  })

  test("each accessor requires its own tag", () => {
    expect(AdminSession.clear).type.not.toBeAssignableTo<Effect.Effect<void, SessionError.SessionError, Counter>>()
  })

  test("yield* of the tag gives the handle, typed by the schema", () => {
    const handle = Effect.gen(function*() {
      return yield* Counter
    })
    expect(handle).type.toBe<Effect.Effect<Session.SessionHandle<CounterData>, never, Counter>>()
    type Handle = Session.SessionHandle<CounterData>
    expect<Handle["get"]>().type.not.toBeCallableWith("missing")
    expect<Handle["set"]>().type.not.toBeCallableWith("count", "one")
  })

  test("every field must be optional or have a default", () => {
    expect(Session.Tag<unknown>()).type.not.toBeCallableWith("dtslint/Required", { user: Schema.String })
    expect(Session.Tag<unknown>()("dtslint/Required", { user: Schema.String })).type.toRaiseError(
      "every session field must be optional or have a default"
    )
    expect(Session.Tag<unknown>()).type.toBeCallableWith("dtslint/Optional", { user: Schema.optional(Schema.String) })
  })
})

describe("the router middleware", () => {
  const Routes = HttpRouter.add("GET", "/", Effect.as(Counter.update("count", (n) => n + 1), HttpServerResponse.text("ok")))

  test("is a Session.Middleware of its tag, with typed options", () => {
    expect(Counter.middleware()).type.toBe<Session.Middleware<Counter>>()
    expect(Counter.middleware).type.toBeCallableWith({
      cookie: { name: "sid", sameSite: "strict", secure: false },
      idleTimeout: "2 hours",
      absoluteTimeout: "7 days",
      maxSize: 4096,
      conflictTimeout: "2 seconds",
      maxConflictRetries: 10
    })
    expect(Counter.middleware).type.not.toBeCallableWith({ cookie: { sameSite: "sometimes" } })
    expect(Counter.middleware).type.not.toBeCallableWith({ maxSize: "64 KiB" })
    expect(Counter.middleware).type.toBeCallableWith({ pepper: Redacted.make("pepper") })
    expect(Counter.middleware).type.not.toBeCallableWith({ pepper: "pepper" })
  })

  test("its layer cannot be built without a SessionStore", () => {
    type Needs = Layer.Services<ReturnType<typeof Counter.middleware>["layer"]>
    expect<Extract<Needs, SessionStore>>().type.toBe<SessionStore>()
    expect<Extract<Needs, SessionIndex>>().type.toBe<never>()
  })

  test("routes using the session are served once the middleware and a store are provided", () => {
    const served = HttpRouter.serve(Routes.pipe(Layer.provide(Counter.middleware().layer), Layer.provide(MemoryStore.layer())))
    expect(served).type.toBeAssignableTo<Layer.Layer<never, unknown, HttpServer.HttpServer>>()
  })

  test("without the middleware the session is still required", () => {
    const unserved = HttpRouter.serve(Routes)
    expect(unserved).type.not.toBeAssignableTo<Layer.Layer<never, unknown, HttpServer.HttpServer>>()
  })

  test("without a store the SessionStore is required", () => {
    const noStore = HttpRouter.serve(Routes.pipe(Layer.provide(Counter.middleware().layer)))
    expect(noStore).type.not.toBeAssignableTo<Layer.Layer<never, unknown, HttpServer.HttpServer>>()
    expect(noStore).type.toBeAssignableTo<Layer.Layer<never, unknown, HttpServer.HttpServer | SessionStore>>()
  })

  test("combined with SessionError.respond, as the Session module's example does", () => {
    const handler = Effect.andThen(
      Counter.update("count", (n) => n + 1),
      Effect.map(Counter.get("count"), (n) => HttpServerResponse.text(`visit ${n}`))
    )
    const ExampleRoutes = HttpRouter.add("GET", "/", handler).pipe(
      Layer.provide(Counter.middleware({ cookie: { secure: false } }).combine(SessionError.respond).layer),
      Layer.provide(MemoryStore.layer())
    )
    expect(HttpRouter.serve(ExampleRoutes)).type.toBeAssignableTo<Layer.Layer<never, unknown, HttpServer.HttpServer>>()
  })

  test("one tag's middleware leaves another session's tag required", () => {
    const both = HttpRouter.add(
      "GET",
      "/",
      Effect.as(Effect.andThen(Counter.get("count"), AdminSession.get("role")), HttpServerResponse.text("ok"))
    )
    const onlyCounter = HttpRouter.serve(both.pipe(Layer.provide(Counter.middleware().layer), Layer.provide(MemoryStore.layer())))
    expect(onlyCounter).type.not.toBeAssignableTo<Layer.Layer<never, unknown, HttpServer.HttpServer>>()
    const twoSessions = HttpRouter.serve(
      both.pipe(
        Layer.provide(Counter.middleware().layer),
        Layer.provide(AdminSession.middleware({ cookie: { name: "admin" } }).layer),
        Layer.provide(MemoryStore.layer())
      )
    )
    expect(twoSessions).type.toBeAssignableTo<Layer.Layer<never, unknown, HttpServer.HttpServer>>()
  })
})

describe("apiMiddleware", () => {
  class SessionMiddleware extends HttpApiMiddleware.Service<SessionMiddleware, { provides: Counter }>()(
    "dtslint/SessionMiddleware"
  ) {}
  class AdminMiddleware extends HttpApiMiddleware.Service<AdminMiddleware, { provides: AdminSession }>()(
    "dtslint/AdminMiddleware"
  ) {}

  test("implements an HttpApiMiddleware that provides the session, requiring a SessionStore", () => {
    expect(Counter.apiMiddleware(SessionMiddleware)).type.toBe<Layer.Layer<SessionMiddleware, never, SessionStore>>()
    expect(Layer.provide(Counter.apiMiddleware(SessionMiddleware), MemoryStore.layer())).type.toBe<
      Layer.Layer<SessionMiddleware>
    >()
    expect(Counter.apiMiddleware).type.toBeCallableWith(SessionMiddleware, { idleTimeout: "1 hour" })
  })

  test("refuses a middleware that provides another session", () => {
    expect(Counter.apiMiddleware).type.not.toBeCallableWith(AdminMiddleware)
  })
})

describe("withSession", () => {
  const program = Effect.gen(function*() {
    const count = yield* Counter.get("count")
    const db = yield* Database
    const row = yield* db.query
    if (row === "") return yield* new NotAllowed()
    return count
  })

  test("removes the tag from R, adds SessionStore, and adds SessionError to E", () => {
    expect(Counter.withSession("id", program)).type.toBe<
      Effect.Effect<number, NotAllowed | SessionError.SessionError, Database | SessionStore>
    >()
  })

  test("leaves another session's tag required", () => {
    expect(AdminSession.withSession("id", program)).type.toBe<
      Effect.Effect<number, NotAllowed | SessionError.SessionError, Counter | Database | SessionStore>
    >()
  })

  test("runs once the store is provided", () => {
    expect(Effect.provide(Counter.withSession("id", Counter.set("count", 1)), MemoryStore.layer())).type.toBe<
      Effect.Effect<void, SessionError.SessionError>
    >()
  })

  test("takes the id as a string and the middleware's options", () => {
    expect(Counter.withSession).type.not.toBeCallableWith(42, Effect.void)
    expect(Counter.withSession).type.toBeCallableWith("id", Effect.void, { idleTimeout: "1 hour" })
    expect(Counter.withSession).type.not.toBeCallableWith("id", Effect.void, { pepper: "pepper" })
  })
})

describe("principals", () => {
  test("list gives storage keys, never session ids, and requires SessionIndex", () => {
    expect(Session.list("alice")).type.toBe<Effect.Effect<ReadonlyArray<StorageKey>, SessionStoreError, SessionIndex>>()
    expect(Session.list("alice")).type.not.toBeAssignableTo<
      Effect.Effect<ReadonlyArray<SessionId>, SessionStoreError, SessionIndex>
    >()
  })

  test("revokeAll requires SessionIndex (and SessionStore, for its revocation marker)", () => {
    expect(Session.revokeAll("alice")).type.toBe<Effect.Effect<number, SessionStoreError, SessionIndex | SessionStore>>()
    expect(Session.revokeAll("alice")).type.not.toBeAssignableTo<Effect.Effect<number, SessionStoreError>>()
  })

  test("a store providing only SessionStore cannot satisfy revokeAll; the memory store can", () => {
    const onlyStore = null as unknown as Layer.Layer<SessionStore>
    expect(Effect.provide(Session.revokeAll("alice"), onlyStore)).type.toBe<
      Effect.Effect<number, SessionStoreError, SessionIndex>
    >()
    expect(Effect.provide(Session.revokeAll("alice"), MemoryStore.layer())).type.toBe<
      Effect.Effect<number, SessionStoreError>
    >()
  })
})
