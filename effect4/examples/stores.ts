/**
 * The quickstart's store, chosen by `SESSION_STORE` as on the Effect 3 line.
 * The Effect 4 line has the memory and Redis stores so far: any other name
 * fails at startup, saying so, rather than silently serving from memory.
 */
import { Config, Effect, Layer } from "effect"
import * as MemoryStore from "../src/MemoryStore.js"
import type { SessionStore } from "../src/SessionStore.js"

const available = ["memory", "redis"] as const
const planned = ["filesystem", "memcached", "dynamodb", "mongodb", "sqlite", "postgres", "mysql"] as const

/** `SESSION_STORE` (default `memory` on this line for now) as a store layer, announced on start. */
export const fromEnvironment: Layer.Layer<SessionStore, unknown> = Layer.unwrap(
  Effect.gen(function*() {
    const name = yield* Config.Literals([...available, ...planned], "SESSION_STORE").pipe(Config.withDefault("memory"))
    if (name !== "memory" && name !== "redis") {
      return yield* Effect.die(
        new Error(`SESSION_STORE=${name}: this store is not on the Effect 4 line yet (available: ${available.join(", ")})`)
      )
    }
    yield* Effect.logInfo(`session store: ${name}`)
    if (name === "memory") return MemoryStore.layer()
    // imported only when chosen: only then must ioredis be installed
    const RedisStore = yield* Effect.promise(() => import("../src/RedisStore.js"))
    const url = yield* Config.String("REDIS_URL").pipe(Config.withDefault("redis://127.0.0.1:6379"))
    return RedisStore.layer({ url })
  })
)
