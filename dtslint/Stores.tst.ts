import type { FileSystem, Path } from "@effect/platform"
import { NodeContext } from "@effect/platform-node"
import type { SqlClient } from "@effect/sql"
import type { ConfigError } from "effect"
import { Config, Effect, Layer, Redacted } from "effect"
import { describe, expect, test } from "tstyche"
import * as DynamoDbStore from "../src/DynamoDbStore.js"
import * as FileSystemStore from "../src/FileSystemStore.js"
import * as MemcachedStore from "../src/MemcachedStore.js"
import * as MemoryStore from "../src/MemoryStore.js"
import * as MongoStore from "../src/MongoStore.js"
import * as RedisStore from "../src/RedisStore.js"
import * as Session from "../src/Session.js"
import type { SessionStoreError } from "../src/SessionError.js"
import type { SessionIndex, SessionStore } from "../src/SessionStore.js"
import * as SqlStore from "../src/SqlStore.js"

// What an app built on sessions and "log out everywhere" needs from its store.
const revokeProgram = Effect.zipRight(Effect.flatMap(Session.list("alice"), Effect.log), Session.revokeAll("alice"))

describe("MemoryStore", () => {
  test("provides SessionStore and SessionIndex, needs nothing and cannot fail", () => {
    expect(MemoryStore.layer()).type.toBe<Layer.Layer<SessionStore | SessionIndex>>()
    expect(MemoryStore.layer({ maxEntries: 10, cleanupInterval: "30 seconds" })).type.toBe<
      Layer.Layer<SessionStore | SessionIndex>
    >()
    expect(MemoryStore.layer).type.not.toBeCallableWith({ maxEntries: "10" })
  })

  test("layerConfig takes each option as a Config and adds ConfigError", () => {
    expect(MemoryStore.layerConfig({ maxEntries: Config.integer("SESSION_MAX_ENTRIES") })).type.toBe<
      Layer.Layer<SessionStore | SessionIndex, ConfigError.ConfigError>
    >()
    expect(MemoryStore.layerConfig).type.toBeCallableWith({ cleanupInterval: Config.duration("SESSION_SWEEP") })
    // a plain value where a Config is expected
    expect(MemoryStore.layerConfig).type.not.toBeCallableWith({ maxEntries: 10 })
    expect(MemoryStore.layerConfig).type.not.toBeCallableWith({ maxEntries: Config.string("SESSION_MAX_ENTRIES") })
  })
})

describe("RedisStore", () => {
  test("provides SessionStore and SessionIndex and fails with SessionStoreError", () => {
    expect(RedisStore.layer()).type.toBe<Layer.Layer<SessionStore | SessionIndex, SessionStoreError>>()
    expect(RedisStore.layer({ url: "redis://127.0.0.1:6379", prefix: "app:", commandTimeout: "2 seconds" })).type
      .toBe<Layer.Layer<SessionStore | SessionIndex, SessionStoreError>>()
    expect(RedisStore.layer).type.not.toBeCallableWith({ commandTimeout: "soon" })
  })

  test("layerConfig adds ConfigError", () => {
    expect(RedisStore.layerConfig({ url: Config.string("REDIS_URL"), prefix: Config.succeed("app:") })).type.toBe<
      Layer.Layer<SessionStore | SessionIndex, SessionStoreError | ConfigError.ConfigError>
    >()
    expect(RedisStore.layerConfig).type.not.toBeCallableWith({ url: "redis://127.0.0.1:6379" })
  })
})

describe("SqlStore", () => {
  test("requires a SqlClient", () => {
    expect(SqlStore.layer()).type.toBe<
      Layer.Layer<SessionStore | SessionIndex, SessionStoreError, SqlClient.SqlClient>
    >()
    expect(SqlStore.layer).type.toBeCallableWith({ table: "app_sessions", cleanupBatchSize: 500 })
    expect(SqlStore.layer).type.not.toBeCallableWith({ table: 42 })
  })

  test("a program on the layer alone still needs the SqlClient", () => {
    expect(Effect.provide(revokeProgram, SqlStore.layer())).type.toBe<
      Effect.Effect<number, SessionStoreError, SqlClient.SqlClient>
    >()
    expect(Effect.runPromise).type.not.toBeCallableWith(Effect.provide(revokeProgram, SqlStore.layer()))
  })

  test("layerConfig keeps the SqlClient requirement and adds ConfigError", () => {
    expect(
      SqlStore.layerConfig({
        table: Config.string("SESSION_TABLE"),
        cleanupBatchSize: Config.withDefault(Config.integer("SESSION_CLEANUP_BATCH"), 1000)
      })
    ).type.toBe<
      Layer.Layer<SessionStore | SessionIndex, SessionStoreError | ConfigError.ConfigError, SqlClient.SqlClient>
    >()
    expect(SqlStore.layerConfig).type.toBeCallableWith({ createTable: Config.boolean("SESSION_CREATE_TABLE") })
    expect(SqlStore.layerConfig).type.not.toBeCallableWith({ createTable: false })
  })
})

describe("FileSystemStore", () => {
  test("requires FileSystem and Path, and a directory", () => {
    expect(FileSystemStore.layer({ directory: "/var/lib/app/sessions" })).type.toBe<
      Layer.Layer<SessionStore | SessionIndex, SessionStoreError, FileSystem.FileSystem | Path.Path>
    >()
    expect(FileSystemStore.layer).type.not.toBeCallableWith()
    expect(FileSystemStore.layer).type.not.toBeCallableWith({ cleanupInterval: "1 minute" })
    expect(FileSystemStore.layer).type.not.toBeCallableWith({ directory: "sessions", fsync: "yes" })
  })

  test("NodeContext.layer provides what it needs", () => {
    expect(Layer.provide(FileSystemStore.layer({ directory: "sessions" }), NodeContext.layer)).type.toBe<
      Layer.Layer<SessionStore | SessionIndex, SessionStoreError>
    >()
    expect(Effect.provide(revokeProgram, FileSystemStore.layer({ directory: "sessions" }))).type.toBe<
      Effect.Effect<number, SessionStoreError, FileSystem.FileSystem | Path.Path>
    >()
  })

  test("layerConfig keeps the requirements and adds ConfigError", () => {
    expect(
      FileSystemStore.layerConfig({ directory: Config.string("SESSION_DIR"), lockTimeout: Config.duration("LOCK") })
    ).type.toBe<
      Layer.Layer<
        SessionStore | SessionIndex,
        SessionStoreError | ConfigError.ConfigError,
        FileSystem.FileSystem | Path.Path
      >
    >()
    expect(FileSystemStore.layerConfig).type.not.toBeCallableWith({ lockTimeout: Config.duration("LOCK") })
  })
})

describe("MongoStore", () => {
  test("provides SessionStore and SessionIndex and fails with SessionStoreError", () => {
    expect(MongoStore.layer({ url: "mongodb://127.0.0.1:27017", database: "app", collection: "sessions" })).type.toBe<
      Layer.Layer<SessionStore | SessionIndex, SessionStoreError>
    >()
    expect(MongoStore.layer).type.not.toBeCallableWith({ url: "mongodb://127.0.0.1:27017", collection: 7 })
  })

  test("layerConfig adds ConfigError", () => {
    expect(MongoStore.layerConfig({ url: Config.string("MONGODB_URL") })).type.toBe<
      Layer.Layer<SessionStore | SessionIndex, SessionStoreError | ConfigError.ConfigError>
    >()
  })
})

describe("DynamoDbStore", () => {
  test("provides SessionStore and SessionIndex and fails with SessionStoreError", () => {
    expect(DynamoDbStore.layer()).type.toBe<Layer.Layer<SessionStore | SessionIndex, SessionStoreError>>()
    expect(DynamoDbStore.layer({ tableName: "sessions", indexName: "by-principal", createTable: true })).type.toBe<
      Layer.Layer<SessionStore | SessionIndex, SessionStoreError>
    >()
  })

  test("takes the secret access key as a Redacted, never as a plain string", () => {
    expect(DynamoDbStore.layer).type.toBeCallableWith({
      credentials: { accessKeyId: "AKID", secretAccessKey: Redacted.make("secret") }
    })
    expect(DynamoDbStore.layer).type.not.toBeCallableWith({
      credentials: { accessKeyId: "AKID", secretAccessKey: "secret" }
    })
  })

  test("layerConfig reads the ConfigOptions only, and adds ConfigError", () => {
    expect(
      DynamoDbStore.layerConfig({
        tableName: Config.string("SESSION_TABLE"),
        credentials: Config.all({
          accessKeyId: Config.string("AWS_ACCESS_KEY_ID"),
          secretAccessKey: Config.redacted("AWS_SECRET_ACCESS_KEY")
        })
      })
    ).type.toBe<Layer.Layer<SessionStore | SessionIndex, SessionStoreError | ConfigError.ConfigError>>()
    // a client object is not configuration: it is given to `layer`
    expect(DynamoDbStore.layerConfig).type.not.toBeCallableWith({ clientConfig: Config.succeed({}) })
  })
})

describe("revokeAll against each store", () => {
  test("the stores with an index satisfy list and revokeAll", () => {
    type Runnable = Effect.Effect<number, SessionStoreError, never>
    expect(Effect.provide(revokeProgram, MemoryStore.layer())).type.toBe<Runnable>()
    expect(Effect.provide(revokeProgram, RedisStore.layer())).type.toBe<Runnable>()
    expect(Effect.provide(revokeProgram, MongoStore.layer({ url: "mongodb://127.0.0.1:27017" }))).type.toBe<
      Runnable
    >()
    expect(Effect.provide(revokeProgram, DynamoDbStore.layer())).type.toBe<Runnable>()
    expect(Effect.runPromise).type.toBeCallableWith(Effect.provide(revokeProgram, MemoryStore.layer()))
  })

  test("Memcached, which has no index, leaves SessionIndex unprovided: the program does not run", () => {
    expect(Effect.provide(revokeProgram, MemcachedStore.layer())).type.toBe<
      Effect.Effect<number, SessionStoreError, SessionIndex>
    >()
    expect(Effect.runPromise).type.not.toBeCallableWith(Effect.provide(revokeProgram, MemcachedStore.layer()))
  })
})
