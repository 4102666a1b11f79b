import type { HttpApp, HttpServerRequest, HttpServerError } from "@effect/platform"
import { HttpRouter, HttpServerResponse } from "@effect/platform"
import type { Option } from "effect"
import { Context, Data, Effect, Layer, Redacted, Schema } from "effect"
import { describe, expect, test } from "tstyche"
import * as MemoryStore from "../src/MemoryStore.js"
import * as Session from "../src/Session.js"
import type { SessionError, SessionStoreError } from "../src/SessionError.js"
import type { SessionId, StorageKey } from "../src/SessionId.js"
import type { SessionIndex, SessionStore } from "../src/SessionStore.js"

class AppSession extends Session.Tag<AppSession>()("dtslint/AppSession", {
  username: Schema.optional(Schema.String),
  visits: Schema.optionalWith(Schema.Number, { default: () => 0 })
}) {}

// A second session of the same app (e.g. an admin area with its own cookie):
// one tag's middleware must not discharge the other's requirement.
class AdminSession extends Session.Tag<AdminSession>()("dtslint/AdminSession", {
  role: Schema.optional(Schema.Literal("admin", "auditor"))
}) {}

type AppData = { readonly username?: string | undefined } & { readonly visits: number }

class Database extends Context.Tag("dtslint/Database")<Database, { readonly query: Effect.Effect<string> }>() {}

class NotAllowed extends Data.TaggedError("NotAllowed")<{}> {}

describe("Session.Tag accessors", () => {
  test("are typed by the schema", () => {
    expect(AppSession.get("username")).type.toBe<Effect.Effect<string | undefined, SessionError, AppSession>>()
    expect(AppSession.get("visits")).type.toBe<Effect.Effect<number, SessionError, AppSession>>()
    expect(AppSession.getAll).type.toBe<Effect.Effect<AppData, SessionError, AppSession>>()
    expect(AdminSession.get("role")).type.toBe<
      Effect.Effect<"admin" | "auditor" | undefined, SessionError, AdminSession>
    >()
  })

  test("setting a value of the wrong type does not compile", () => {
    expect(AppSession.set("visits", 3)).type.toBe<Effect.Effect<void, SessionError, AppSession>>()
    expect(AppSession.set).type.not.toBeCallableWith("visits", "three")
    expect(AppSession.set).type.not.toBeCallableWith("username", 42)
    expect(AdminSession.set).type.toBeCallableWith("role", "auditor")
    expect(AdminSession.set).type.not.toBeCallableWith("role", "root")
  })

  test("a field with a default cannot be set to undefined", () => {
    // with exactOptionalPropertyTypes, `visits` is a number, never absent
    expect(AppSession.set).type.not.toBeCallableWith("visits", undefined)
    expect(AppSession.set).type.toBeCallableWith("username", undefined)
  })

  test("unknown keys do not compile", () => {
    expect(AppSession.get).type.not.toBeCallableWith("password")
    expect(AppSession.set).type.not.toBeCallableWith("password", "x")
    expect(AppSession.update).type.not.toBeCallableWith("password", (s: string) => s)
    expect(AppSession.remove).type.not.toBeCallableWith("password")
    // a key of another session's schema is unknown here too
    expect(AppSession.get).type.not.toBeCallableWith("role")
  })

  test("update's function is typed by the field", () => {
    expect(AppSession.update).type.toBeCallableWith("visits", (n: number) => n + 1)
    expect(AppSession.update).type.not.toBeCallableWith("visits", (n: number) => String(n))
    expect(AppSession.update).type.not.toBeCallableWith("visits", (s: string) => s.length)
    expect(AppSession.update("visits", (n) => n + 1)).type.toBe<Effect.Effect<void, SessionError, AppSession>>()
  })

  test("remove, clear, regenerate, invalidate and login are effects on the session", () => {
    expect(AppSession.remove("username")).type.toBe<Effect.Effect<void, SessionError, AppSession>>()
    expect(AppSession.clear).type.toBe<Effect.Effect<void, SessionError, AppSession>>()
    expect(AppSession.regenerate).type.toBe<Effect.Effect<void, SessionError, AppSession>>()
    expect(AppSession.invalidate).type.toBe<Effect.Effect<void, SessionError, AppSession>>()
    expect(AppSession.login("alice")).type.toBe<Effect.Effect<void, SessionError, AppSession>>()
    expect(AppSession.login).type.not.toBeCallableWith(42)
    expect(AppSession.login).type.not.toBeCallableWith()
  })

  test("login takes LoginOptions", () => {
    expect(AppSession.login("alice", { keepData: true })).type.toBe<Effect.Effect<void, SessionError, AppSession>>()
    expect(AppSession.login).type.not.toBeCallableWith("alice", { keepData: "yes" })
    expect(AppSession.login).type.not.toBeCallableWith("alice", { keep: true })
  })

  test("principal is an optional string and id a branded SessionId", () => {
    expect(AppSession.principal).type.toBe<Effect.Effect<Option.Option<string>, SessionError, AppSession>>()
    expect(AppSession.id).type.toBe<Effect.Effect<SessionId, SessionError, AppSession>>()
    // the brand keeps a raw cookie value from passing for an issued id
    expect<string>().type.not.toBeAssignableTo<SessionId>()
    expect<SessionId>().type.not.toBeAssignableTo<StorageKey>()
  })

  test("each accessor requires its own tag", () => {
    expect(AdminSession.clear).type.toBe<Effect.Effect<void, SessionError, AdminSession>>()
    expect(AdminSession.clear).type.not.toBeAssignableTo<Effect.Effect<void, SessionError, AppSession>>()
  })

  test("yield* Tag gives the handle, typed by the schema", () => {
    const program = Effect.gen(function*() {
      return yield* AppSession
    })
    expect(program).type.toBe<Effect.Effect<Session.SessionHandle<AppData>, never, AppSession>>()
    const handleGet = Effect.gen(function*() {
      const session = yield* AppSession
      return yield* session.get("visits")
    })
    expect(handleGet).type.toBe<Effect.Effect<number, SessionError, AppSession>>()
  })

  test("the handle's methods are typed like the accessors", () => {
    type Handle = Session.SessionHandle<AppData>
    expect<Handle["get"]>().type.not.toBeCallableWith("password")
    expect<Handle["set"]>().type.not.toBeCallableWith("visits", "three")
    expect<Handle["remove"]>().type.not.toBeCallableWith("password")
    expect<Handle["id"]>().type.toBe<Effect.Effect<SessionId, SessionError>>()
  })

  test("a required field is a type error", () => {
    expect(Session.Tag<unknown>()).type.not.toBeCallableWith("dtslint/Bad", { name: Schema.String })
    expect(Session.Tag<unknown>()).type.toBeCallableWith("dtslint/Good", { name: Schema.optional(Schema.String) })
    expect(Session.Tag<unknown>()("dtslint/Bad", { name: Schema.String })).type.toRaiseError(
      "every session field must be optional or have a default"
    )
    // a required field among optional ones is still refused
    expect(Session.Tag<unknown>()).type.not.toBeCallableWith("dtslint/Mixed", {
      name: Schema.optional(Schema.String),
      visits: Schema.Number
    })
    // a default makes the field optional in the encoded form, so it is accepted
    expect(Session.Tag<unknown>()).type.toBeCallableWith("dtslint/Defaulted", {
      visits: Schema.optionalWith(Schema.Number, { default: () => 0 })
    })
  })
})

describe("the middleware", () => {
  const handler = Effect.gen(function*() {
    const name = yield* AppSession.get("username")
    const row = yield* Effect.flatMap(Database, (db) => db.query)
    return HttpServerResponse.text(`${name}${row}`)
  })

  test("is a Session.Middleware of its tag", () => {
    expect(AppSession.middleware()).type.toBe<Session.Middleware<AppSession>>()
    expect(AppSession.middleware).type.toBeCallableWith({
      cookie: { name: "sid", sameSite: "strict", secure: false },
      idleTimeout: "2 hours",
      absoluteTimeout: "7 days",
      maxSize: 4096,
      conflictTimeout: "2 seconds",
      maxConflictRetries: 10
    })
  })

  test("refuses malformed options", () => {
    expect(AppSession.middleware).type.not.toBeCallableWith({ cookie: { sameSite: "sometimes" } })
    expect(AppSession.middleware).type.not.toBeCallableWith({ idleTimeout: "forever" })
    expect(AppSession.middleware).type.not.toBeCallableWith({ maxSize: "64 KiB" })
    expect(AppSession.middleware).type.not.toBeCallableWith({ conflictTimeout: "a while" })
  })

  test("takes the pepper as a Redacted, never as a plain string", () => {
    expect(AppSession.middleware).type.toBeCallableWith({ pepper: Redacted.make("pepper") })
    expect(AppSession.middleware).type.not.toBeCallableWith({ pepper: "pepper" })
    expect(AppSession.withSession).type.not.toBeCallableWith("id", Effect.void, { pepper: "pepper" })
  })

  test("removes the session tag from R and adds SessionStore", () => {
    const app = handler.pipe(AppSession.middleware())
    expect(app).type.toBe<
      Effect.Effect<
        HttpServerResponse.HttpServerResponse,
        SessionError,
        Database | SessionStore | HttpServerRequest.HttpServerRequest
      >
    >()
  })

  test("keeps the app's own errors", () => {
    const failing: HttpApp.Default<"AppError"> = Effect.fail("AppError" as const)
    expect(failing.pipe(AppSession.middleware())).type.toBe<
      Effect.Effect<
        HttpServerResponse.HttpServerResponse,
        "AppError" | SessionError,
        SessionStore | HttpServerRequest.HttpServerRequest
      >
    >()
    const guarded = Effect.gen(function*() {
      const role = yield* AdminSession.get("role")
      if (role === undefined) return yield* new NotAllowed()
      return HttpServerResponse.text(role)
    })
    expect(guarded.pipe(AdminSession.middleware())).type.toBe<
      Effect.Effect<
        HttpServerResponse.HttpServerResponse,
        NotAllowed | SessionError,
        SessionStore | HttpServerRequest.HttpServerRequest
      >
    >()
  })

  test("a handler using the session without the middleware still requires the tag", () => {
    expect(handler).type.toBe<
      Effect.Effect<HttpServerResponse.HttpServerResponse, SessionError, AppSession | Database>
    >()
  })

  test("one tag's middleware leaves another session's tag required", () => {
    const both = Effect.gen(function*() {
      const name = yield* AppSession.get("username")
      const role = yield* AdminSession.get("role")
      return HttpServerResponse.text(`${name}${role}`)
    })
    expect(both.pipe(AppSession.middleware())).type.toBe<
      Effect.Effect<
        HttpServerResponse.HttpServerResponse,
        SessionError,
        AdminSession | SessionStore | HttpServerRequest.HttpServerRequest
      >
    >()
    expect(both.pipe(AppSession.middleware(), AdminSession.middleware())).type.toBe<
      Effect.Effect<
        HttpServerResponse.HttpServerResponse,
        SessionError,
        SessionStore | HttpServerRequest.HttpServerRequest
      >
    >()
  })

  test("applied to an HttpRouter", () => {
    const router = HttpRouter.empty.pipe(
      HttpRouter.get("/", handler),
      HttpRouter.post("/admin", Effect.as(AdminSession.set("role", "admin"), HttpServerResponse.empty()))
    )
    expect(router.pipe(AppSession.middleware())).type.toBe<
      Effect.Effect<
        HttpServerResponse.HttpServerResponse,
        HttpServerError.RouteNotFound | SessionError,
        Database | AdminSession | SessionStore | HttpServerRequest.HttpServerRequest
      >
    >()
    // the app served: nothing of the session left to provide but the store
    const app = router.pipe(AppSession.middleware(), AdminSession.middleware())
    expect(app).type.toBeAssignableTo<
      HttpApp.Default<HttpServerError.RouteNotFound | SessionError, Database | SessionStore>
    >()
    expect(app).type.not.toBeAssignableTo<HttpApp.Default<HttpServerError.RouteNotFound | SessionError, Database>>()
    expect(Effect.provide(app, Layer.merge(MemoryStore.layer(), Layer.succeed(Database, { query: Effect.succeed("") }))))
      .type.toBe<
        Effect.Effect<
          HttpServerResponse.HttpServerResponse,
          HttpServerError.RouteNotFound | SessionError,
          HttpServerRequest.HttpServerRequest
        >
      >()
  })
})

describe("withSession", () => {
  const program = Effect.gen(function*() {
    const visits = yield* AppSession.get("visits")
    const row = yield* Effect.flatMap(Database, (db) => db.query)
    if (row === "") return yield* new NotAllowed()
    return visits
  })

  test("removes the tag from R, adds SessionStore, and adds SessionError to E", () => {
    expect(AppSession.withSession("id", program)).type.toBe<
      Effect.Effect<number, NotAllowed | SessionError, Database | SessionStore>
    >()
  })

  test("requires SessionStore even for an effect that does not use the session", () => {
    expect(AppSession.withSession("id", Effect.succeed(1))).type.toBe<
      Effect.Effect<number, SessionError, SessionStore>
    >()
  })

  test("leaves another session's tag required", () => {
    expect(AdminSession.withSession("id", program)).type.toBe<
      Effect.Effect<number, NotAllowed | SessionError, AppSession | Database | SessionStore>
    >()
  })

  test("runs once the store is provided", () => {
    const run = AppSession.withSession("id", AppSession.set("visits", 1))
    expect(Effect.provide(run, MemoryStore.layer())).type.toBe<Effect.Effect<void, SessionError, never>>()
  })

  test("takes the id as a string and the middleware's options", () => {
    expect(AppSession.withSession).type.not.toBeCallableWith(42, Effect.void)
    expect(AppSession.withSession).type.toBeCallableWith("id", Effect.void, { idleTimeout: "1 hour" })
  })
})

describe("principals", () => {
  test("list gives storage keys, never session ids, and requires SessionIndex", () => {
    expect(Session.list("alice")).type.toBe<
      Effect.Effect<ReadonlyArray<StorageKey>, SessionStoreError, SessionIndex>
    >()
    expect(Session.list("alice")).type.not.toBeAssignableTo<
      Effect.Effect<ReadonlyArray<SessionId>, SessionStoreError, SessionIndex>
    >()
  })

  test("revokeAll requires SessionIndex (and SessionStore, for its revocation marker)", () => {
    expect(Session.revokeAll("alice")).type.toBe<Effect.Effect<number, SessionStoreError, SessionIndex | SessionStore>>()
    expect(Session.revokeAll).type.not.toBeCallableWith()
  })

  test("a store providing only SessionStore cannot satisfy revokeAll", () => {
    const program = Session.revokeAll("alice")
    const onlyStore = null as unknown as Layer.Layer<SessionStore>
    expect(Effect.provide(program, onlyStore)).type.toBe<Effect.Effect<number, SessionStoreError, SessionIndex>>()
    expect(Effect.provide(program, MemoryStore.layer())).type.toBe<Effect.Effect<number, SessionStoreError, never>>()
  })
})
