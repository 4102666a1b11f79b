/**
 * The quickstart's store, chosen by `SESSION_STORE` with the same names,
 * variables and defaults as on the Effect 3 line. Each store module is
 * imported only when it is chosen, so only its client library must be
 * installed.
 */
import { Config, Effect, Layer, Redacted } from "effect"
import { mkdir } from "node:fs/promises"
import { dirname } from "node:path"
import type { SessionStore } from "../src/SessionStore.js"

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

type StoreLayer = Effect.Effect<Layer.Layer<SessionStore, unknown>, unknown>

/** The stores of this line: adding one is adding its entry. */
const stores: { readonly [Name in StoreName]: StoreLayer } = {
  filesystem: Effect.gen(function*() {
    const FileSystemStore = yield* Effect.promise(() => import("../src/FileSystemStore.js"))
    const directory = yield* Config.String("SESSION_DIR").pipe(Config.withDefault("./.sessions"))
    return FileSystemStore.layer({ directory })
  }),
  memory: Effect.map(Effect.promise(() => import("../src/MemoryStore.js")), (MemoryStore) => MemoryStore.layer()),
  redis: Effect.gen(function*() {
    const RedisStore = yield* Effect.promise(() => import("../src/RedisStore.js"))
    const url = yield* Config.String("REDIS_URL").pipe(Config.withDefault("redis://127.0.0.1:6379"))
    return RedisStore.layer({ url })
  }),
  memcached: Effect.gen(function*() {
    const MemcachedStore = yield* Effect.promise(() => import("../src/MemcachedStore.js"))
    const servers = yield* Config.String("MEMCACHED_URL").pipe(Config.withDefault("127.0.0.1:11211"))
    return MemcachedStore.layer({ servers })
  }),
  dynamodb: Effect.map(Effect.promise(() => import("./dynalite.js")), (dynalite) => dynalite.layerStore),
  mongodb: Effect.gen(function*() {
    const MongoStore = yield* Effect.promise(() => import("../src/MongoStore.js"))
    const url = yield* Config.String("MONGODB_URL").pipe(Config.withDefault("mongodb://127.0.0.1:27017"))
    const database = yield* Config.String("MONGODB_DATABASE").pipe(Config.withDefault("effect_session_quickstart"))
    return MongoStore.layer({ url, database })
  }),
  sqlite: Effect.gen(function*() {
    const [SqlStore, SqlSqlite] = yield* Effect.promise(() =>
      Promise.all([import("../src/SqlStore.js"), import("../src/SqlSqlite.js")])
    )
    const filename = yield* Config.String("SQLITE_FILE").pipe(Config.withDefault("./.sessions.db"))
    // SQLite creates the file but not its directory
    yield* Effect.promise(() => mkdir(dirname(filename), { recursive: true }))
    return SqlStore.layer().pipe(Layer.provide(SqlSqlite.layer({ filename })))
  }),
  postgres: Effect.gen(function*() {
    const [SqlStore, { PgClient }] = yield* Effect.promise(() =>
      Promise.all([import("../src/SqlStore.js"), import("@effect/sql-pg")])
    )
    const url = yield* Config.String("DATABASE_URL").pipe(Config.withDefault("postgres://postgres@127.0.0.1:5432/test"))
    return SqlStore.layer().pipe(Layer.provide(PgClient.layer({ url: Redacted.make(url) })))
  }),
  mysql: Effect.gen(function*() {
    const [SqlStore, SqlMysql] = yield* Effect.promise(() =>
      Promise.all([import("../src/SqlStore.js"), import("../src/SqlMysql.js")])
    )
    const url = yield* Config.String("DATABASE_URL").pipe(Config.withDefault("mysql://root@127.0.0.1:3306/test"))
    return SqlStore.layer().pipe(Layer.provide(SqlMysql.layer({ url: Redacted.make(url) })))
  })
}

/** `SESSION_STORE` (default `filesystem`) as a store layer, announced on start. */
export const fromEnvironment: Layer.Layer<SessionStore, unknown> = Layer.unwrap(
  Effect.gen(function*() {
    const name = yield* Config.Literals(storeNames, "SESSION_STORE").pipe(Config.withDefault("filesystem"))
    yield* Effect.logInfo(`session store: ${name}`)
    return yield* stores[name]
  })
)
