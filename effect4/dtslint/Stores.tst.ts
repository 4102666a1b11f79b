/**
 * Type tests of the Effect 4 line's stores and errors (tstyche): what each
 * store layer provides, how it fails and what it requires, and that a
 * program revoking sessions compiles only over a store with SessionIndex.
 */
import type { Cause } from "effect"
import { Config, Effect, Layer } from "effect"
import type { SqlClient } from "effect/sql"
import { describe, expect, test } from "tstyche"
import * as DynamoDbStore from "../src/DynamoDbStore.js"
import * as FileSystemStore from "../src/FileSystemStore.js"
import * as MemcachedStore from "../src/MemcachedStore.js"
import * as MemoryStore from "../src/MemoryStore.js"
import * as MongoStore from "../src/MongoStore.js"
import * as RedisStore from "../src/RedisStore.js"
import * as Session from "../src/Session.js"
import * as SessionError from "../src/SessionError.js"
import type { SessionIndex, SessionStore } from "../src/SessionStore.js"
import * as SqlStore from "../src/SqlStore.js"

// what an app with "log out everywhere" needs from its store
const revokeProgram = Effect.andThen(Effect.flatMap(Session.list("alice"), Effect.log), Session.revokeAll("alice"))

type StoreAndIndex = SessionStore | SessionIndex

describe("MemoryStore", () => {
  test("provides SessionStore and SessionIndex, needs nothing and cannot fail", () => {
    expect(MemoryStore.layer()).type.toBe<Layer.Layer<StoreAndIndex>>()
    expect(MemoryStore.layer({ maxEntries: 10, cleanupInterval: "30 seconds" })).type.toBe<Layer.Layer<StoreAndIndex>>()
    expect(MemoryStore.layer).type.not.toBeCallableWith({ maxEntries: "10" })
    expect(MemoryStore.layer).type.not.toBeCallableWith({ cleanupInterval: "often" })
  })

  test("make gives the store, its index, the sweep and the size", () => {
    expect(MemoryStore.make().sweep).type.toBe<Effect.Effect<number>>()
    expect(MemoryStore.make().store).type.toBe<SessionStore["Service"]>()
  })
})

describe("RedisStore", () => {
  test("provides SessionStore and SessionIndex and fails with SessionStoreError", () => {
    expect(RedisStore.layer()).type.toBe<Layer.Layer<StoreAndIndex, SessionError.SessionStoreError>>()
    expect(RedisStore.layer({ url: "redis://127.0.0.1:6379", prefix: "app:", commandTimeout: "2 seconds" })).type.toBe<
      Layer.Layer<StoreAndIndex, SessionError.SessionStoreError>
    >()
    expect(RedisStore.layer).type.not.toBeCallableWith({ commandTimeout: "soon" })
    expect(RedisStore.layer).type.not.toBeCallableWith({ url: 6379 })
  })

  test("revokeAll runs over it", () => {
    expect(Effect.provide(revokeProgram, RedisStore.layer())).type.toBe<
      Effect.Effect<number, SessionError.SessionStoreError>
    >()
  })
})

describe("FileSystemStore", () => {
  test("needs a directory and provides the index", () => {
    expect(FileSystemStore.layer({ directory: "/var/lib/sessions" })).type.toBe<
      Layer.Layer<StoreAndIndex, SessionError.SessionStoreError>
    >()
    expect(FileSystemStore.layer).type.not.toBeCallableWith({})
  })

  test("layerConfig takes each option as a Config and adds ConfigError", () => {
    expect(FileSystemStore.layerConfig({ directory: Config.String("SESSION_DIR") })).type.toBe<
      Layer.Layer<StoreAndIndex, SessionError.SessionStoreError | Config.ConfigError>
    >()
    expect(FileSystemStore.layerConfig).type.not.toBeCallableWith({ directory: Config.Int("SESSION_DIR") })
  })
})

describe("SqlStore", () => {
  test("requires a SqlClient", () => {
    expect(SqlStore.layer()).type.toBe<Layer.Layer<StoreAndIndex, SessionError.SessionStoreError, SqlClient.SqlClient>>()
    expect(SqlStore.layer).type.toBeCallableWith({ table: "app_sessions", cleanupBatchSize: 500 })
    expect(SqlStore.layer).type.not.toBeCallableWith({ table: 42 })
  })

  test("a program on the layer alone still needs the SqlClient", () => {
    expect(Effect.provide(revokeProgram, SqlStore.layer())).type.toBe<
      Effect.Effect<number, SessionError.SessionStoreError, SqlClient.SqlClient>
    >()
    expect(Effect.runPromise).type.not.toBeCallableWith(Effect.provide(revokeProgram, SqlStore.layer()))
  })
})

describe("MemcachedStore", () => {
  test("provides SessionStore only: it cannot list by principal", () => {
    expect(MemcachedStore.layer()).type.toBe<Layer.Layer<SessionStore, SessionError.SessionStoreError>>()
    expect(MemcachedStore.layer).type.not.toBeCallableWith({ servers: ["a:11211", "b:11211"] })
  })

  test("revokeAll does not compile against it", () => {
    expect(Effect.provide(revokeProgram, MemcachedStore.layer())).type.toBe<
      Effect.Effect<number, SessionError.SessionStoreError, SessionIndex>
    >()
    expect(Effect.runPromise).type.not.toBeCallableWith(Effect.provide(revokeProgram, MemcachedStore.layer()))
  })
})

describe("DynamoDbStore and MongoStore", () => {
  test("provide SessionStore and SessionIndex and fail with SessionStoreError", () => {
    expect(DynamoDbStore.layer()).type.toBe<Layer.Layer<StoreAndIndex, SessionError.SessionStoreError>>()
    expect(MongoStore.layer({ url: "mongodb://127.0.0.1:27017/app" })).type.toBe<
      Layer.Layer<StoreAndIndex, SessionError.SessionStoreError>
    >()
    expect(MongoStore.layer).type.not.toBeCallableWith({ url: 27017 })
  })
})

describe("SessionError", () => {
  test("SessionError is the four errors a request can fail with; a decode error is not one", () => {
    expect<SessionError.SessionError>().type.toBe<
      | SessionError.SessionStoreError
      | SessionError.SessionConflict
      | SessionError.SessionTooLarge
      | SessionError.SessionEncodeError
    >()
    expect<SessionError.SessionDecodeError>().type.not.toBeAssignableTo<SessionError.SessionError>()
  })

  test("each is a yieldable tagged error with its fields", () => {
    expect(new SessionError.SessionConflict({ reason: "Missing" })._tag).type.toBe<"SessionConflict">()
    expect(SessionError.SessionConflict).type.not.toBeConstructableWith({ reason: "Lost" })
    expect(new SessionError.SessionStoreError({ store: "redis", operation: "load", cause: null })).type.toBeAssignableTo<
      Cause.YieldableError
    >()
    expect(SessionError.SessionStoreError).type.not.toBeConstructableWith({ store: "redis", operation: "read", cause: null })
    expect(Effect.fail(new SessionError.SessionTooLarge({ size: 70_000, limit: 65_536 }))).type.toBe<
      Effect.Effect<never, SessionError.SessionTooLarge>
    >()
  })

  test("catchTag tells them apart", () => {
    const failing: Effect.Effect<string, SessionError.SessionError> = Effect.succeed("ok")
    expect(Effect.catchTag(failing, "SessionConflict", () => Effect.succeed("busy"))).type.toBe<
      Effect.Effect<
        string,
        SessionError.SessionStoreError | SessionError.SessionTooLarge | SessionError.SessionEncodeError
      >
    >()
  })

  test("isSessionError narrows", () => {
    const u: unknown = null
    if (SessionError.isSessionError(u)) expect(u).type.toBe<SessionError.SessionError>()
  })
})
