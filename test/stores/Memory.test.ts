import { describe, expect, it } from "@effect/vitest"
import type { Duration } from "effect"
import { Config, ConfigProvider, Effect, Option, TestClock } from "effect"
import * as MemoryStore from "../../src/MemoryStore.js"
import * as SessionId from "../../src/SessionId.js"
import { SessionStore } from "../../src/SessionStore.js"
import * as StoreConformance from "../../src/StoreConformance.js"

describe("MemoryStore", () => {
  describe("conformance", () => {
    for (const check of StoreConformance.checks(MemoryStore.layer())) {
      it.effect(check.name, () => check.run)
    }
    for (const check of StoreConformance.indexChecks(MemoryStore.layer())) {
      it.effect(check.name, () => check.run)
    }
  })

  const write = (expiresAt: number) => ({ data: new Uint8Array([1]), expiresAt, principal: Option.none() })
  const key = () => SessionId.storageKey(SessionId.unsafeGenerate())

  it.effect("evicts the least recently used entry beyond maxEntries", () =>
    Effect.gen(function*() {
      const store = yield* SessionStore
      const [a, b, c] = [key(), key(), key()]
      yield* store.insert(a, write(60_000))
      yield* store.insert(b, write(60_000))
      yield* store.load(a) // a is now the most recently used
      yield* store.insert(c, write(60_000))
      expect(Option.isSome(yield* store.load(a))).toBe(true)
      expect(Option.isNone(yield* store.load(b))).toBe(true)
      expect(Option.isSome(yield* store.load(c))).toBe(true)
    }).pipe(Effect.provide(MemoryStore.layer({ maxEntries: 2 }))))

  // A sweep only removes, and an expired entry is invisible anyway: what it
  // changes is the room left under maxEntries. The expiring entries are the
  // most recently used here, so without a sweep the LRU bound evicts the
  // live entry inserted before them.
  const sweepLeavesRoom = (interval: Duration.DurationInput) =>
    Effect.gen(function*() {
      const store = yield* SessionStore
      const kept = key()
      yield* store.insert(kept, write(10 * 60_000))
      for (const k of Array.from({ length: 5 }, key)) yield* store.insert(k, write(1_000))
      yield* TestClock.adjust(interval)
      for (const k of Array.from({ length: 5 }, key)) yield* store.insert(k, write(10 * 60_000))
      return Option.isSome(yield* store.load(kept))
    })

  it.effect("the sweep fiber removes expired entries without a read, making room under maxEntries", () =>
    Effect.gen(function*() {
      expect(yield* sweepLeavesRoom("2 minutes")).toBe(true)
    }).pipe(Effect.provide(MemoryStore.layer({ maxEntries: 6, cleanupInterval: "1 minute" }))))

  it.effect("before the first sweep, the expired entries still take room and the live one is evicted", () =>
    Effect.gen(function*() {
      // the same steps within the interval: shows the test above observes the sweep
      expect(yield* sweepLeavesRoom("30 seconds")).toBe(false)
    }).pipe(Effect.provide(MemoryStore.layer({ maxEntries: 6, cleanupInterval: "1 minute" }))))

  it.effect("layerConfig reads maxEntries and cleanupInterval from Config", () =>
    Effect.gen(function*() {
      const store = yield* SessionStore
      // maxEntries 2: the least recently used of three is evicted
      const [a, b, c] = [key(), key(), key()]
      for (const k of [a, b, c]) yield* store.insert(k, write(10 * 60_000))
      expect(Option.isNone(yield* store.load(a))).toBe(true)
      expect(Option.isSome(yield* store.load(c))).toBe(true)
    }).pipe(
      Effect.provide(MemoryStore.layerConfig({ maxEntries: Config.integer("SESSION_MAX_ENTRIES") })),
      Effect.withConfigProvider(ConfigProvider.fromMap(new Map([["SESSION_MAX_ENTRIES", "2"]])))
    ))

  it.effect("layerConfig's cleanupInterval sets when the sweep runs", () =>
    Effect.gen(function*() {
      // 20 s: past a 10 s interval, before the 1 minute default
      expect(yield* sweepLeavesRoom("20 seconds")).toBe(true)
    }).pipe(
      Effect.provide(MemoryStore.layerConfig({
        maxEntries: Config.integer("SESSION_MAX_ENTRIES"),
        cleanupInterval: Config.duration("SESSION_CLEANUP_INTERVAL")
      })),
      Effect.withConfigProvider(ConfigProvider.fromMap(
        new Map([["SESSION_MAX_ENTRIES", "6"], ["SESSION_CLEANUP_INTERVAL", "10 seconds"]])
      ))
    ))
})
