/**
 * The quickstart's store, chosen by `SESSION_STORE`. Each backend module is
 * imported only when it is chosen, so only its client library must be
 * installed.
 */
import { NodeContext } from "@effect/platform-node"
import { Config, Effect, Layer, Redacted } from "effect"
import { mkdir } from "node:fs/promises"
import { dirname } from "node:path"
import type { SessionStore } from "effect-session/SessionStore"

export const storeNames = [
  "filesystem",
  "memory",
  "redis",
  "memcached",
  "dynamodb",
  "mongodb",
  "sqlite",
  "postgres",
  "mysql"
] as const

export type StoreName = typeof storeNames[number]

const choose = (name: StoreName): Effect.Effect<Layer.Layer<SessionStore, unknown>, unknown> => {
  switch (name) {
    case "filesystem":
      return Effect.gen(function*() {
        const FileSystemStore = yield* Effect.promise(() => import("effect-session/FileSystemStore"))
        const directory = yield* Config.string("SESSION_DIR").pipe(Config.withDefault("./.sessions"))
        return FileSystemStore.layer({ directory }).pipe(Layer.provide(NodeContext.layer))
      })
    case "memory":
      return Effect.map(Effect.promise(() => import("effect-session/MemoryStore")), (MemoryStore) => MemoryStore.layer())
    case "redis":
      return Effect.map(Effect.promise(() => import("effect-session/RedisStore")), (RedisStore) =>
        RedisStore.layerConfig({
          url: Config.string("REDIS_URL").pipe(Config.withDefault("redis://127.0.0.1:6379"))
        }))
    case "memcached":
      return Effect.map(Effect.promise(() => import("effect-session/MemcachedStore")), (MemcachedStore) =>
        MemcachedStore.layerConfig({
          servers: Config.string("MEMCACHED_URL").pipe(Config.withDefault("127.0.0.1:11211"))
        }))
    case "dynamodb":
      return Effect.map(Effect.promise(() => import("./dynalite.js")), (dynalite) => dynalite.layerStore)
    case "mongodb":
      return Effect.map(Effect.promise(() => import("effect-session/MongoStore")), (MongoStore) =>
        MongoStore.layerConfig({
          url: Config.string("MONGODB_URL").pipe(Config.withDefault("mongodb://127.0.0.1:27017")),
          database: Config.string("MONGODB_DATABASE").pipe(Config.withDefault("effect_session_quickstart"))
        }))
    case "sqlite":
      return Effect.gen(function*() {
        const [SqlStore, { SqliteClient }] = yield* Effect.promise(() =>
          Promise.all([import("effect-session/SqlStore"), import("@effect/sql-sqlite-node")])
        )
        const filename = yield* Config.string("SQLITE_FILE").pipe(Config.withDefault("./.sessions.db"))
        // SQLite creates the file but not its directory
        yield* Effect.tryPromise(() => mkdir(dirname(filename), { recursive: true }))
        return SqlStore.layer().pipe(Layer.provide(SqliteClient.layer({ filename })))
      })
    case "postgres":
      return Effect.gen(function*() {
        const [SqlStore, { PgClient }] = yield* Effect.promise(() =>
          Promise.all([import("effect-session/SqlStore"), import("@effect/sql-pg")])
        )
        const url = yield* Config.string("DATABASE_URL").pipe(
          Config.withDefault("postgres://postgres@127.0.0.1:5432/test")
        )
        return SqlStore.layer().pipe(Layer.provide(PgClient.layer({ url: Redacted.make(url) })))
      })
    case "mysql":
      return Effect.gen(function*() {
        const [SqlStore, { MysqlClient }] = yield* Effect.promise(() =>
          Promise.all([import("effect-session/SqlStore"), import("@effect/sql-mysql2")])
        )
        const url = yield* Config.string("DATABASE_URL").pipe(
          Config.withDefault("mysql://root@127.0.0.1:3306/test")
        )
        return SqlStore.layer().pipe(Layer.provide(MysqlClient.layer({ url: Redacted.make(url) })))
      })
  }
}

/** `SESSION_STORE` (default `filesystem`) as a store layer, announced on start. */
export const fromEnvironment: Layer.Layer<SessionStore, unknown> = Layer.unwrapEffect(
  Effect.gen(function*() {
    const name = yield* Config.literal(...storeNames)("SESSION_STORE").pipe(Config.withDefault("filesystem"))
    yield* Effect.logInfo(`session store: ${name}`)
    return yield* choose(name)
  })
)
