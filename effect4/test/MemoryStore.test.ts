/**
 * The store contract on the memory store: every check of StoreConformance,
 * and the index checks.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Option } from "effect"
import { TestClock } from "effect/testing"
import * as MemoryStore from "../src/MemoryStore.js"
import * as StoreConformance from "../src/StoreConformance.js"

describe("MemoryStore", () => {
  describe("conformance", () => {
    for (const check of StoreConformance.checks(MemoryStore.layer())) it.effect(check.name, () => check.run)
  })
  describe("index conformance", () => {
    for (const check of StoreConformance.indexChecks(MemoryStore.layer())) it.effect(check.name, () => check.run)
  })

  it.effect("the sweep removes expired sessions and only those (once their 10-second expiry bucket has ended)", () =>
    Effect.gen(function*() {
      const memory = MemoryStore.make()
      const key = (n: number) => `${"k".repeat(42)}${n}` as never
      yield* memory.store.insert(key(1), { text: "a", expiresAt: 1_000, principal: Option.none() })
      yield* memory.store.insert(key(2), { text: "b", expiresAt: 100_000, principal: Option.none() })
      yield* TestClock.setTime(2_000)
      expect(yield* memory.sweep).toBe(0)
      yield* TestClock.setTime(10_000)
      expect(yield* memory.sweep).toBe(1)
      expect((yield* memory.size).entries).toBe(1)
    }))

  it.effect("beyond maxEntries the least recently used session without a principal goes first", () =>
    Effect.gen(function*() {
      const memory = MemoryStore.make({ maxEntries: 2 })
      const key = (n: number) => `${"k".repeat(42)}${n}` as never
      const write = (principal?: string) => ({ text: "x", expiresAt: 60_000, principal: Option.fromUndefinedOr(principal) })
      yield* memory.store.insert(key(1), write("alice"))
      yield* memory.store.insert(key(2), write())
      yield* memory.store.insert(key(3), write())
      expect(Option.isSome(yield* memory.store.load(key(1)))).toBe(true)
      expect(Option.isNone(yield* memory.store.load(key(2)))).toBe(true)
      expect(Option.isSome(yield* memory.store.load(key(3)))).toBe(true)
    }))
})
