import type { ConfigError, Layer } from "effect"
import { Config, Effect } from "effect"
import { describe, expect, test } from "tstyche"
import * as MemcachedStore from "../src/MemcachedStore.js"
import type { SessionStoreError } from "../src/SessionError.js"
import type { SessionIndex, SessionStore } from "../src/SessionStore.js"

describe("MemcachedStore", () => {
  test("the layer provides SessionStore and nothing else", () => {
    expect(MemcachedStore.layer()).type.toBe<Layer.Layer<SessionStore, SessionStoreError>>()
    expect(MemcachedStore.layer({ servers: "127.0.0.1:11211", prefix: "app:" })).type.toBe<
      Layer.Layer<SessionStore, SessionStoreError>
    >()
  })

  test("the layer cannot stand in for one that provides SessionIndex", () => {
    expect(MemcachedStore.layer()).type.not.toBeAssignableTo<Layer.Layer<SessionIndex, SessionStoreError>>()
    expect(MemcachedStore.layer()).type.not.toBeAssignableTo<
      Layer.Layer<SessionStore | SessionIndex, SessionStoreError>
    >()
  })

  test("a program that lists sessions still needs SessionIndex after the layer is provided", () => {
    const program = Effect.void as Effect.Effect<void, never, SessionStore | SessionIndex>
    expect(Effect.provide(program, MemcachedStore.layer())).type.toBe<
      Effect.Effect<void, SessionStoreError, SessionIndex>
    >()
  })

  test("layerConfig reads the options from Config and adds ConfigError", () => {
    expect(
      MemcachedStore.layerConfig({ servers: Config.withDefault(Config.string("MEMCACHED_URL"), "127.0.0.1:11211") })
    ).type.toBe<Layer.Layer<SessionStore, SessionStoreError | ConfigError.ConfigError>>()
    expect(MemcachedStore.layerConfig).type.not.toBeCallableWith({ servers: 11211 })
  })
})
