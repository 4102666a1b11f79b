/**
 * The quickstart's store, chosen by `SESSION_STORE` as on the Effect 3 line.
 * The Effect 4 line has the memory store only so far: any other name fails
 * at startup, saying so, rather than silently serving from memory.
 */
import { Config, Effect, Layer } from "effect"
import * as MemoryStore from "../src/MemoryStore.js"
import type { SessionStore } from "../src/SessionStore.js"

const available = ["memory"] as const
const planned = ["filesystem", "redis", "memcached", "dynamodb", "mongodb", "sqlite", "postgres", "mysql"] as const

/** `SESSION_STORE` (default `memory` on this line for now) as a store layer, announced on start. */
export const fromEnvironment: Layer.Layer<SessionStore, Config.ConfigError> = Layer.unwrap(
  Effect.gen(function*() {
    const name = yield* Config.Literals([...available, ...planned], "SESSION_STORE").pipe(Config.withDefault("memory"))
    if (name !== "memory") {
      return yield* Effect.die(new Error(`SESSION_STORE=${name}: this store is not on the Effect 4 line yet (available: memory)`))
    }
    yield* Effect.logInfo(`session store: ${name}`)
    return MemoryStore.layer()
  })
)
