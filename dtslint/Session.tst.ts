import type { HttpApp, HttpServerRequest } from "@effect/platform"
import { HttpServerResponse } from "@effect/platform"
import { Context, Effect, Layer, Schema } from "effect"
import { describe, expect, test } from "tstyche"
import * as MemoryStore from "../src/MemoryStore.js"
import * as Session from "../src/Session.js"
import type { SessionError } from "../src/SessionError.js"
import type * as SessionStoreModule from "../src/SessionStore.js"
type SessionIndex = SessionStoreModule.SessionIndex
type SessionStore = SessionStoreModule.SessionStore

class AppSession extends Session.Tag<AppSession>()("dtslint/AppSession", {
  username: Schema.optional(Schema.String),
  visits: Schema.optionalWith(Schema.Number, { default: () => 0 })
}) {}

class Database extends Context.Tag("dtslint/Database")<Database, { readonly query: Effect.Effect<string> }>() {}

describe("Session.Tag accessors", () => {
  test("are typed by the schema", () => {
    expect(AppSession.get("username")).type.toBe<Effect.Effect<string | undefined, SessionError, AppSession>>()
    expect(AppSession.get("visits")).type.toBe<Effect.Effect<number, SessionError, AppSession>>()
    expect(AppSession.getAll).type.toBe<
      Effect.Effect<
        { readonly username?: string | undefined } & { readonly visits: number },
        SessionError,
        AppSession
      >
    >()
  })

  test("setting a value of the wrong type does not compile", () => {
    expect(AppSession.set("visits", 3)).type.toBe<Effect.Effect<void, SessionError, AppSession>>()
    expect(AppSession.set).type.not.toBeCallableWith("visits", "three")
    expect(AppSession.set).type.not.toBeCallableWith("username", 42)
  })

  test("unknown keys do not compile", () => {
    expect(AppSession.get).type.not.toBeCallableWith("password")
    expect(AppSession.set).type.not.toBeCallableWith("password", "x")
  })

  test("update's function is typed by the field", () => {
    expect(AppSession.update).type.toBeCallableWith("visits", (n: number) => n + 1)
    expect(AppSession.update).type.not.toBeCallableWith("visits", (n: number) => String(n))
  })

  test("a required field is a type error", () => {
    expect(Session.Tag<unknown>()).type.not.toBeCallableWith("dtslint/Bad", { name: Schema.String })
    expect(Session.Tag<unknown>()).type.toBeCallableWith("dtslint/Good", { name: Schema.optional(Schema.String) })
  })
})

describe("the middleware", () => {
  const handler = Effect.gen(function*() {
    const name = yield* AppSession.get("username")
    const row = yield* Effect.flatMap(Database, (db) => db.query)
    return HttpServerResponse.text(`${name}${row}`)
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
      Effect.Effect<HttpServerResponse.HttpServerResponse, "AppError" | SessionError, SessionStore | HttpServerRequest.HttpServerRequest>
    >()
  })

  test("a handler using the session without the middleware still requires the tag", () => {
    expect(handler).type.toBe<
      Effect.Effect<HttpServerResponse.HttpServerResponse, SessionError, AppSession | Database>
    >()
  })
})

describe("principals", () => {
  test("revokeAll requires SessionIndex", () => {
    expect(Session.revokeAll("alice")).type.toBe<Effect.Effect<number, import("../src/SessionError.js").SessionStoreError, SessionIndex>>()
  })

  test("a store providing only SessionStore cannot satisfy revokeAll", () => {
    const program = Session.revokeAll("alice")
    const onlyStore = null as unknown as Layer.Layer<SessionStore>
    expect(Effect.provide(program, onlyStore)).type.toBe<
      Effect.Effect<number, import("../src/SessionError.js").SessionStoreError, SessionIndex>
    >()
    expect(Effect.provide(program, MemoryStore.layer())).type.toBe<
      Effect.Effect<number, import("../src/SessionError.js").SessionStoreError, never>
    >()
  })
})
