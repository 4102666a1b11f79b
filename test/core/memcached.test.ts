/**
 * The Memcached protocol of the core (`src/core/memcached.ts`), without a
 * server: key layout, exptime, the value's framing and the compare-and-set
 * decisions.
 */
import { Buffer } from "node:buffer"
import { describe, expect, it } from "vitest"
import type { MemcachedRecord } from "../../src/core/memcached.js"
import {
  afterRefusedAdd,
  decode,
  encode,
  exptime,
  itemKey,
  keyPrefix,
  maxKeyBytes,
  maxRelativeSeconds,
  negativeReply,
  serverAddress,
  updateStep
} from "../../src/core/memcached.js"

const key = "a".repeat(43)
const record = (overrides: Partial<MemcachedRecord> = {}): MemcachedRecord => ({
  data: new TextEncoder().encode(`{"n":1}`),
  version: 3,
  expiresAt: 1_800_000_060_000,
  principal: undefined,
  ...overrides
})

describe("key layout", () => {
  it("an item key is the prefix and the storage key", () => {
    expect(itemKey("session:", key)).toBe(`session:${key}`)
  })

  it("a key that could split a protocol line, an empty one or one too long has no item key", () => {
    for (const bad of ["", "a b", "a\r\nset x 0 0 1", "é", "\u0000"]) expect(itemKey("session:", bad)).toBeUndefined()
    expect(itemKey("p".repeat(maxKeyBytes - 43), key)).toHaveLength(maxKeyBytes)
    expect(itemKey("p".repeat(maxKeyBytes - 42), key)).toBeUndefined()
  })

  it("a prefix too long is shortened to fit a storage key, distinct prefixes staying distinct", () => {
    const a = keyPrefix("a".repeat(400))
    const b = keyPrefix(`${"a".repeat(399)}b`)
    if (a._tag === "Left" || b._tag === "Left") throw new Error("refused")
    expect(a.prefix).not.toBe(b.prefix)
    expect(itemKey(a.prefix, key)?.length).toBeLessThanOrEqual(maxKeyBytes)
  })

  it("one server only, a memcached:// scheme accepted", () => {
    expect(serverAddress(" memcached://cache.internal:11211 ")).toEqual({ _tag: "Right", server: "cache.internal:11211" })
    expect(serverAddress("memcache://127.0.0.1:11211")).toEqual({ _tag: "Right", server: "127.0.0.1:11211" })
    for (const bad of ["a:1,b:2", "a:1 b:2", "a:1;b:2", "localhost", ""]) {
      expect(serverAddress(bad)._tag).toBe("Left")
    }
  })
})

describe("exptime", () => {
  const t = 1_800_000_000_000
  it("relative seconds, rounded up plus one, up to 30 days", () => {
    expect(exptime(t + 1_001, t)).toBe(3)
    expect(exptime(t + (maxRelativeSeconds - 1) * 1000, t)).toBe(maxRelativeSeconds)
  })
  it("over 30 days: an absolute Unix time, never a relative count read as 1970", () => {
    expect(exptime(t + 45 * 86_400_000, t)).toBe((t + 45 * 86_400_000) / 1000 + 1)
    expect(exptime(t + 45 * 86_400_000, t)).toBeGreaterThan(t / 1000)
  })
  it("a passed deadline still expires (never 0, which is immortal)", () => {
    expect(exptime(t - 3_600_000, t)).toBe(2)
  })
})

describe("the value", () => {
  it("reads back what it wrote, with and without a principal (UTF-8)", () => {
    for (const principal of [undefined, "alice", "zoë 🐈", ""]) {
      const written = record({ principal })
      const read = decode(encode(written))
      expect(read).toEqual(written)
    }
  })

  it("holds the data after the header and the principal", () => {
    const value = encode(record({ principal: "bob" }))
    expect(value[0]).toBe(1)
    expect(value[1]).toBe(1)
    expect(value.readUInt32BE(18)).toBe(3)
    expect(value.subarray(22, 25).toString()).toBe("bob")
    expect(value.subarray(25).toString()).toBe(`{"n":1}`)
  })

  it("the record does not share the buffer it was read from", () => {
    const value = encode(record())
    const read = decode(value)!
    value.fill(0)
    expect(new TextDecoder().decode(read.data)).toBe(`{"n":1}`)
  })

  it("refuses what it did not write", () => {
    const good = encode(record({ principal: "bob" }))
    const variant = (change: (value: Buffer) => void) => {
      const copy = Buffer.from(good)
      change(copy)
      return copy
    }
    expect(decode("text")).toBeUndefined()
    expect(decode(new Uint8Array(good))).toBeUndefined()
    expect(decode(good.subarray(0, 21))).toBeUndefined()
    expect(decode(variant((v) => v.writeUInt8(2, 0)))).toBeUndefined() // another format
    expect(decode(variant((v) => v.writeUInt8(3, 1)))).toBeUndefined() // unknown flags
    expect(decode(variant((v) => v.writeUInt8(0, 1)))).toBeUndefined() // principal bytes without the flag
    expect(decode(variant((v) => v.writeUInt32BE(1_000, 18)))).toBeUndefined() // longer than the value
    expect(decode(variant((v) => v.writeDoubleBE(1.5, 2)))).toBeUndefined() // version not an integer
    expect(decode(variant((v) => v.writeDoubleBE(Number.NaN, 10)))).toBeUndefined() // expiresAt not a number
  })
})

describe("replies and compare-and-set decisions", () => {
  it("the negative replies of a conditional command are values, other rejections are not", () => {
    for (const reply of ["NOT_STORED", "EXISTS", "NOT_FOUND"] as const) expect(negativeReply(new Error(reply))).toBe(reply)
    expect(negativeReply(new Error("SERVER_ERROR out of memory"))).toBeUndefined()
    expect(negativeReply("EXISTS")).toBeUndefined()
  })

  const t = 1_800_000_000_000
  const gotten = (expiresAt: number, version = 3) => ({ record: record({ expiresAt, version }), casUniq: "77" })

  it("after a refused add: add again when gone, Exists when live, replace what was read when expired", () => {
    expect(afterRefusedAdd(undefined, t)).toEqual({ _tag: "AddAgain" })
    expect(afterRefusedAdd(gotten(t + 1), t)).toEqual({ _tag: "Exists" })
    const expired = gotten(t)
    expect(afterRefusedAdd(expired, t)).toEqual({ _tag: "Replace", stored: expired })
  })

  it("update: Missing when gone or expired, VersionMismatch on another version, else the next version", () => {
    expect(updateStep(undefined, 3, t)).toEqual({ _tag: "Conflict", reason: "Missing" })
    expect(updateStep(gotten(t), 3, t)).toEqual({ _tag: "Conflict", reason: "Missing" })
    expect(updateStep(gotten(t + 1, 4), 3, t)).toEqual({ _tag: "Conflict", reason: "VersionMismatch" })
    const live = gotten(t + 1, 3)
    expect(updateStep(live, 3, t)).toEqual({ _tag: "Write", stored: live, version: 4 })
  })
})
