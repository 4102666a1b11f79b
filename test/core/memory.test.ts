/**
 * The in-process store's table (`src/core/memory.ts`) as plain code: the
 * eviction order, the byte accounting, the expiry buckets a sweep visits and
 * its slices, the principal index.
 */
import { describe, expect, it } from "vitest"
import * as Memory from "../../src/core/memory.js"

const key = (n: number) => `k${String(n).padStart(42, "0")}`
const t = 1_800_000_000_000
const table = (limits: Partial<Memory.MemoryLimits> = {}) =>
  new Memory.MemoryTable<string>({ ...Memory.memoryLimits(), ...limits })

describe("limits and accounting", () => {
  it("defaults, and at least 1 each", () => {
    expect(Memory.memoryLimits()).toEqual({ maxEntries: 100_000, maxBytes: 256 * 1024 * 1024, sliceSize: 1_000 })
    expect(Memory.memoryLimits({ maxEntries: 0, maxBytes: -5, sweepSliceSize: 0 })).toEqual({
      maxEntries: 1,
      maxBytes: 1,
      sliceSize: 1
    })
  })

  it("a session counts its text length or byte length, its key and the entry overhead", () => {
    expect(Memory.entryOverhead).toBe(384)
    expect(Memory.entryBytes(key(1), "é".repeat(10))).toBe(10 + 43 + 384)
    expect(Memory.entryBytes(key(1), new Uint8Array(20))).toBe(20 + 43 + 384)
    const memory = table()
    memory.put(key(1), "x".repeat(100), 1, t + 1, undefined, undefined)
    memory.put(key(2), new Uint8Array(50), 1, t + 1, "alice", undefined)
    expect(memory.size).toEqual({ entries: 2, bytes: 100 + 50 + 2 * (43 + 384) })
    memory.put(key(1), "x", 2, t + 1, undefined, memory.lookup(key(1)))
    expect(memory.size).toEqual({ entries: 2, bytes: 1 + 50 + 2 * (43 + 384) })
    memory.remove(key(2))
    expect(memory.size).toEqual({ entries: 1, bytes: 1 + 43 + 384 })
  })

  it("expiry buckets are 10 seconds wide", () => {
    expect(Memory.expiryBucketWidth).toBe(10_000)
    expect(Memory.expiryBucketOf(19_999)).toBe(1)
    expect(Memory.expiryBucketOf(20_000)).toBe(2)
  })
})

describe("eviction", () => {
  it("anonymous sessions go first, least recently used first; bound ones only when none is left", () => {
    const memory = table({ maxEntries: 3 })
    memory.put(key(1), "a", 1, t + 1, "alice", undefined)
    memory.put(key(2), "b", 1, t + 1, undefined, undefined)
    memory.put(key(3), "c", 1, t + 1, undefined, undefined)
    memory.use(key(2), memory.lookup(key(2))!)
    memory.put(key(4), "d", 1, t + 1, "bob", undefined)
    // key 3 was the least recently used anonymous session (key 2 was read)
    expect([1, 2, 3, 4].map((n) => memory.lookup(key(n)) !== undefined)).toEqual([true, true, false, true])
    memory.put(key(5), "e", 1, t + 1, "carol", undefined)
    expect(memory.lookup(key(2))).toBeUndefined()
    memory.put(key(6), "f", 1, t + 1, "dave", undefined)
    // no anonymous session left: the least recently used bound one goes
    expect([1, 4, 5, 6].map((n) => memory.lookup(key(n)) !== undefined)).toEqual([false, true, true, true])
  })

  it("the byte budget evicts in the same order; an anonymous session over it alone evicts itself, not bound ones", () => {
    const per = 10 + 43 + 384
    const memory = table({ maxBytes: 2 * per })
    memory.put(key(1), "x".repeat(10), 1, t + 1, "alice", undefined)
    memory.put(key(2), "y".repeat(10), 1, t + 1, undefined, undefined)
    memory.put(key(3), "z".repeat(10), 1, t + 1, "bob", undefined)
    expect([1, 2, 3].map((n) => memory.lookup(key(n)) !== undefined)).toEqual([true, false, true])
    memory.put(key(4), "w".repeat(3 * per), 1, t + 1, undefined, undefined)
    expect([1, 3, 4].map((n) => memory.lookup(key(n)) !== undefined)).toEqual([true, true, false])
    expect(memory.size).toEqual({ entries: 2, bytes: 2 * per })
  })
})

describe("expiry, the sweep and the principal index", () => {
  it("an expired entry is not live and is dropped when looked at", () => {
    const memory = table()
    memory.put(key(1), "a", 1, t, undefined, undefined)
    expect(memory.live(key(1), t - 1)).toBeDefined()
    expect(memory.live(key(1), t)).toBeUndefined()
    expect(memory.size.entries).toBe(0)
  })

  it("a sweep visits only buckets that ended, in slices of sliceSize", () => {
    const memory = table({ sliceSize: 2 })
    const start = 1_000 * Memory.expiryBucketWidth
    for (let n = 0; n < 5; n++) memory.put(key(n), "a", 1, start + n, undefined, undefined)
    // expired but in the current bucket: not visited yet
    memory.put(key(9), "b", 1, start + 2 * Memory.expiryBucketWidth + 1, undefined, undefined)
    expect(memory.sweepSlice(start + 2 * Memory.expiryBucketWidth + 5)).toBe(2)
    expect(memory.sweepSlice(start + 2 * Memory.expiryBucketWidth + 5)).toBe(2)
    expect(memory.sweepSlice(start + 2 * Memory.expiryBucketWidth + 5)).toBe(1)
    expect(memory.size.entries).toBe(1)
    expect(memory.sweepSlice(start + 3 * Memory.expiryBucketWidth)).toBe(1)
    expect(memory.size).toEqual({ entries: 0, bytes: 0 })
  })

  it("lists a principal's live sessions and removes all of them, counting the live ones", () => {
    const memory = table()
    memory.put(key(1), "a", 1, t + 10, "alice", undefined)
    memory.put(key(2), "a", 1, t + 1, "alice", undefined)
    memory.put(key(3), "a", 1, t + 10, "bob", undefined)
    expect(memory.keysOf("alice", t)).toEqual([key(1), key(2)])
    expect(memory.keysOf("alice", t + 5)).toEqual([key(1)])
    memory.put(key(4), "a", 1, t + 1, "alice", undefined)
    expect(memory.removeAll("alice", t + 5)).toBe(1)
    expect(memory.keysOf("alice", t)).toEqual([])
    expect(memory.removeAll("nobody", t)).toBe(0)
    // moving a session to another principal takes it out of the first one's index
    memory.put(key(3), "a", 2, t + 10, "carol", memory.lookup(key(3)))
    expect(memory.keysOf("bob", t)).toEqual([])
    expect(memory.keysOf("carol", t)).toEqual([key(3)])
  })
})
