/**
 * The quickstart's store, chosen by `SESSION_STORE` with the same names,
 * variables and defaults as on the Effect 3 line. Each store module is
 * imported only when it is chosen, so only its client library must be
 * installed. A store not on the Effect 4 line yet fails at startup, saying
 * so, rather than silently serving from another one.
 */
import { Config, Effect, Layer } from "effect"
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
const stores: { readonly [Name in StoreName]?: StoreLayer } = {
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
  })
}

/** The names `SESSION_STORE` accepts on this line today. */
export const available: ReadonlyArray<StoreName> = storeNames.filter((name) => stores[name] !== undefined)

/** `SESSION_STORE` (default `filesystem`) as a store layer, announced on start. */
export const fromEnvironment: Layer.Layer<SessionStore, unknown> = Layer.unwrap(
  Effect.gen(function*() {
    const name = yield* Config.Literals(storeNames, "SESSION_STORE").pipe(Config.withDefault("filesystem"))
    const store = stores[name]
    if (store === undefined) {
      return yield* Effect.die(
        new Error(`SESSION_STORE=${name}: this store is not on the Effect 4 line yet (available: ${available.join(", ")})`)
      )
    }
    yield* Effect.logInfo(`session store: ${name}`)
    return yield* store
  })
)
