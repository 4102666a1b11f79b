import { describe, expect, it } from "@effect/vitest"
import { Effect, Fiber, Option, TestClock } from "effect"
import * as MemoryStore from "../../src/MemoryStore.js"
import * as SessionId from "../../src/SessionId.js"
import type { StorageKey } from "../../src/SessionId.js"

const key = (): StorageKey => SessionId.storageKey(SessionId.unsafeGenerate())
const write = (expiresAt: number, principal?: string, text = "x") => ({
  data: new TextEncoder().encode(text),
  text,
  expiresAt,
  principal: Option.fromNullable(principal)
})
const minute = 60_000

describe("MemoryStore bounds", () => {
  it.scoped("a flood of anonymous sessions does not evict a logged-in session while anonymous ones remain", () =>
    Effect.gen(function*() {
      const { index, size, store } = yield* MemoryStore.make({ maxEntries: 1000 })
      const alice = key()
      yield* store.insert(alice, write(10 * minute, "alice"))
      const flood = Array.from({ length: 1000 }, key)
      for (const k of flood) yield* store.insert(k, write(10 * minute))
      expect(Option.isSome(yield* store.load(alice))).toBe(true)
      expect(yield* index.keys("alice")).toEqual([alice])
      expect((yield* size).entries).toBe(1000)
      // the anonymous sessions went oldest first
      expect(Option.isNone(yield* store.load(flood[0]!))).toBe(true)
      expect(Option.isSome(yield* store.load(flood[999]!))).toBe(true)
    }))

  it.scoped("with only logged-in sessions left, the least recently used of them goes", () =>
    Effect.gen(function*() {
      const { store } = yield* MemoryStore.make({ maxEntries: 2 })
      const [a, b, c] = [key(), key(), key()]
      yield* store.insert(a, write(10 * minute, "a"))
      yield* store.insert(b, write(10 * minute, "b"))
      yield* store.load(a)
      yield* store.insert(c, write(10 * minute, "c"))
      expect(Option.isSome(yield* store.load(a))).toBe(true)
      expect(Option.isNone(yield* store.load(b))).toBe(true)
      expect(Option.isSome(yield* store.load(c))).toBe(true)
    }))

  it.scoped("the byte budget bounds the data held, evicting anonymous sessions first", () =>
    Effect.gen(function*() {
      const data = "d".repeat(1000)
      const perSession = data.length + 43 + MemoryStore.entryOverhead
      const { size, store } = yield* MemoryStore.make({ maxBytes: 10 * perSession })
      const bob = key()
      yield* store.insert(bob, write(10 * minute, "bob", data))
      const anonymous = Array.from({ length: 30 }, key)
      for (const k of anonymous) {
        yield* store.insert(k, write(10 * minute, undefined, data))
        expect((yield* size).bytes).toBeLessThanOrEqual(10 * perSession)
      }
      expect((yield* size).entries).toBe(10)
      expect(Option.isSome(yield* store.load(bob))).toBe(true)
      const kept = yield* Effect.forEach(anonymous, (k) => Effect.map(store.load(k), Option.isSome))
      expect(kept).toEqual([...Array(21).fill(false), ...Array(9).fill(true)])
      // an update that grows a session counts its new size, not both
      yield* store.update(bob, write(10 * minute, "bob", data + data), 1)
      expect((yield* size).bytes).toBeLessThanOrEqual(10 * perSession)
      expect((yield* size).entries).toBe(9)
      expect(Option.isSome(yield* store.load(bob))).toBe(true)
    }))

  it.scoped("keeps one representation of a session: the text it was written with, counted once", () =>
    Effect.gen(function*() {
      const { size, store } = yield* MemoryStore.make()
      const k = key()
      const text = "t".repeat(200)
      yield* store.insert(k, write(10 * minute, undefined, text))
      expect((yield* size).bytes).toBe(200 + 43 + MemoryStore.entryOverhead)
      const record = Option.getOrThrow(yield* store.load(k))
      expect(record.text).toBe(text)
      expect(new TextDecoder().decode(record.data)).toBe(text)
    }))
})

describe("MemoryStore sweep", () => {
  it.scoped("removes expired sessions in slices, with a turn of the event loop between them, and keeps live ones", () =>
    Effect.gen(function*() {
      const sliceSize = 500
      const { size, store, sweep } = yield* MemoryStore.make({ sweepSliceSize: sliceSize, cleanupInterval: "1 hour" })
      const expired = 5_000
      for (let i = 0; i < expired; i++) yield* store.insert(key(), write(1_000))
      const live = Array.from({ length: 100 }, key)
      for (const k of live) yield* store.insert(k, write(10 * minute))
      yield* TestClock.adjust("1 minute")

      // an event-loop callback that records the store's size on every turn
      // the sweep leaves to others
      const seen: Array<number> = []
      let probing = true
      const probe = () => {
        Effect.runSync(Effect.map(size, (s) => seen.push(s.entries)))
        if (probing) setImmediate(probe)
      }
      setImmediate(probe)
      const removed = yield* sweep
      probing = false

      expect(removed).toBe(expired)
      expect((yield* size).entries).toBe(live.length)
      const during = seen.filter((entries) => entries > live.length)
      // the other callbacks ran between slices, each slice removed at most sliceSize
      expect(during.length).toBeGreaterThanOrEqual(expired / sliceSize - 1)
      for (let i = 1; i < seen.length; i++) expect(seen[i - 1]! - seen[i]!).toBeLessThanOrEqual(sliceSize)
      for (const k of live) expect(Option.isSome(yield* store.load(k))).toBe(true)
    }))

  it.scoped("removes nothing that has not expired, and sessions written during a sweep stay", () =>
    Effect.gen(function*() {
      const { size, store, sweep } = yield* MemoryStore.make({ sweepSliceSize: 100, cleanupInterval: "1 hour" })
      for (let i = 0; i < 1_000; i++) yield* store.insert(key(), write(1_000))
      const touched = key()
      yield* store.insert(touched, write(1_000, "carol"))
      // touched before it expired: moved to a later bucket
      yield* store.touch(touched, 10 * minute)
      yield* TestClock.adjust("1 minute")
      const fiber = yield* Effect.fork(sweep)
      const during = key()
      yield* store.insert(during, write(10 * minute))
      expect(yield* Fiber.join(fiber)).toBe(1_000)
      expect((yield* size).entries).toBe(2)
      expect(Option.isSome(yield* store.load(touched))).toBe(true)
      expect(Option.isSome(yield* store.load(during))).toBe(true)
      expect(yield* sweep).toBe(0)
    }))
})
