/**
 * The session rules of the core, without Effect or a store: replay of
 * recorded operations, deadlines, the plan of a save, the replay budget,
 * principals, ids and the record format.
 */
import { createHash, createHmac } from "node:crypto"
import { describe, expect, it } from "vitest"
import * as Ids from "../../src/core/ids.js"
import { maxPrincipalLength, principalProblem } from "../../src/core/principal.js"
import * as Record from "../../src/core/record.js"
import * as Core from "../../src/core/session.js"

interface Cart {
  readonly items: Array<string>
  readonly visits: number
  readonly name?: string
}
const emptyCart: Core.EmptySession<Cart> = { empty: { items: [], visits: 0 }, make: () => ({ items: [], visits: 0 }) }

describe("applyOps", () => {
  it("replays set, update, remove and clear in order over newer data", () => {
    const ops: Array<Core.Op<Cart>> = [
      { _tag: "Update", key: "visits", f: (n: number) => n + 1 },
      { _tag: "Set", key: "name", value: "alice" }
    ]
    expect(Core.applyOps(emptyCart, { items: ["a"], visits: 41 }, ops)).toEqual({ items: ["a"], visits: 42, name: "alice" })
    expect(Core.applyOps(emptyCart, { items: ["a"], visits: 1, name: "x" }, [{ _tag: "Remove", key: "name" }]))
      .toEqual({ items: ["a"], visits: 1 })
    expect(Core.applyOps(emptyCart, { items: ["a"], visits: 1 }, [{ _tag: "Clear" }, ops[1]]))
      .toEqual({ items: [], visits: 0, name: "alice" })
  })

  it("never hands out a shared default: remove and clear make fresh ones, the base is copied", () => {
    const base: Cart = { items: ["a"], visits: 3 }
    const removed = Core.applyOps(emptyCart, base, [{ _tag: "Remove", key: "items" }])
    removed.items.push("leak")
    const cleared = Core.applyOps(emptyCart, base, [{ _tag: "Clear" }])
    expect(cleared.items).toEqual([])
    expect(emptyCart.empty.items).toEqual([])
    expect(base).toEqual({ items: ["a"], visits: 3 })
  })
})

describe("deadlines", () => {
  const timeouts: Core.Timeouts = { idleMillis: 1000, absoluteMillis: 10_000, touchAfterMillis: 100 }

  it("the idle deadline moves only past touchAfter, and never past the absolute deadline", () => {
    const stored = { expiresAt: 1000, absoluteExpiresAt: 10_000 }
    expect(Core.nextExpiry(timeouts, stored, 50)).toBe(1000)
    expect(Core.nextExpiry(timeouts, stored, 101)).toBe(1101)
    expect(Core.nextExpiry(timeouts, { expiresAt: 9500, absoluteExpiresAt: 9700 }, 9600)).toBe(9700)
  })

  it("a session is live before its idle deadline, its stored absolute deadline and today's absolute timeout", () => {
    const stored = { expiresAt: 5000, createdAt: 0, absoluteExpiresAt: 30_000 }
    expect(Core.isLive(timeouts, stored, 4999)).toBe(true)
    expect(Core.isLive(timeouts, stored, 5000)).toBe(false)
    // stored with a longer absolute timeout than today's 10 s
    expect(Core.isLive(timeouts, { ...stored, expiresAt: 20_000 }, 10_000)).toBe(false)
    expect(Core.isLive(timeouts, { expiresAt: 20_000, createdAt: 0, absoluteExpiresAt: 8000 }, 8000)).toBe(false)
  })

  it("a new session's deadlines, the default touchAfter, a tombstone's expiry", () => {
    expect(Core.newDeadlines(timeouts, 7)).toEqual({ createdAt: 7, absoluteExpiresAt: 10_007, expiresAt: 1007 })
    expect(Core.newDeadlines({ ...timeouts, absoluteMillis: 500 }, 0).expiresAt).toBe(500)
    expect(Core.defaultTouchAfter(14 * 24 * 3600 * 1000)).toBe(3600 * 1000)
    expect(Core.defaultTouchAfter(60_000)).toBe(6000)
    expect(Core.tombstoneExpiry(1_000_000_000, 0)).toBe(Core.forwardMillis)
    expect(Core.tombstoneExpiry(10, 0)).toBe(10)
  })
})

describe("the replay budget", () => {
  it("pauses double from 1-2 ms up to 50-100 ms; the budget ends on time or on the optional count", () => {
    expect([0, 1, 2, 5, 6, 20].map((n) => Core.replayPauseMillis(n, 0))).toEqual([1, 2, 4, 32, 50, 50])
    expect(Core.replayPauseMillis(3, 0.999)).toBeCloseTo(15.992)
    const budget = { conflictMillis: 5000, maxConflictRetries: Number.POSITIVE_INFINITY }
    expect(Core.replayBudgetSpent(budget, 100, 5099, 1000)).toBe(false)
    expect(Core.replayBudgetSpent(budget, 100, 5100, 0)).toBe(true)
    expect(Core.replayBudgetSpent({ conflictMillis: 5000, maxConflictRetries: 3 }, 0, 1, 3)).toBe(true)
  })
})

describe("planSave", () => {
  const base = {
    used: true,
    loaded: true,
    tombstone: false,
    hadCookie: true,
    renew: false,
    invalidated: false,
    writes: 0,
    unchanged: () => false,
    empty: () => false
  }
  const never = () => {
    throw new Error("not asked for this plan")
  }

  it("asks for the encoded comparisons only when the decision needs them", () => {
    expect(Core.planSave({ ...base, used: false, unchanged: never, empty: never })).toEqual({ _tag: "Nothing" })
    expect(Core.planSave({ ...base, unchanged: never, empty: never })).toEqual({ _tag: "Touch" })
    expect(Core.planSave({ ...base, loaded: false, unchanged: never, empty: never })).toEqual({ _tag: "Nothing" })
    expect(Core.planSave({ ...base, writes: 1, unchanged: () => true, empty: never })).toEqual({ _tag: "Touch" })
    expect(Core.planSave({ ...base, writes: 1, empty: never })).toEqual({ _tag: "Update" })
  })

  it("moves a stored session that keeps data to a new id; ends it when a logout or emptiness says so", () => {
    expect(Core.planSave({ ...base, renew: true, unchanged: never })).toEqual({ _tag: "Rotate" })
    expect(Core.planSave({ ...base, renew: true, empty: () => true, unchanged: never })).toEqual({
      _tag: "New",
      end: true,
      insert: false,
      expireCookie: true
    })
    expect(Core.planSave({ ...base, renew: true, invalidated: true, unchanged: never })).toEqual({
      _tag: "New",
      end: true,
      insert: true,
      expireCookie: false
    })
  })

  it("a new session is inserted when it holds something; a dead one read only leaves the cookie alone", () => {
    const fresh = { ...base, loaded: false, unchanged: never }
    expect(Core.planSave({ ...fresh, writes: 1 })).toEqual({ _tag: "New", end: false, insert: true, expireCookie: false })
    expect(Core.planSave({ ...fresh, writes: 1, empty: () => true })).toEqual({
      _tag: "New",
      end: false,
      insert: false,
      expireCookie: true
    })
    expect(Core.planSave({ ...fresh, hadCookie: false, writes: 1, empty: () => true })).toEqual({
      _tag: "New",
      end: false,
      insert: false,
      expireCookie: false
    })
    // the tombstone of a move under the client's id: a logout follows it
    expect(Core.planSave({ ...fresh, tombstone: true, renew: true, invalidated: true, empty: () => true })).toEqual({
      _tag: "New",
      end: true,
      insert: false,
      expireCookie: true
    })
  })
})

describe("principals", () => {
  it("a principal is a string of 1 to 255 code units; anything else says what it got", () => {
    expect(principalProblem("alice")).toBeUndefined()
    expect(principalProblem("a".repeat(maxPrincipalLength))).toBeUndefined()
    expect(principalProblem("")).toMatch(/an empty string/)
    expect(principalProblem("a".repeat(256))).toMatch(/256 characters long/)
    expect(principalProblem({ $ne: null })).toMatch(/got a object/)
    expect(principalProblem(["a"])).toMatch(/got a array/)
    expect(principalProblem(null)).toMatch(/got a null/)
  })
})

describe("ids and storage keys", () => {
  it("ids are 43 base64url characters from 32 random bytes; nothing else is an id", () => {
    const id = Ids.generateId()
    expect(id).toMatch(/^[A-Za-z0-9_-]{43}$/)
    expect(Buffer.from(id, "base64url").length).toBe(32)
    expect(Ids.generateId()).not.toBe(id)
    expect(Ids.isId(id)).toBe(true)
    for (const bad of [id + "A", id.slice(1), `${id.slice(1)}=`, `${id.slice(1)}.`, undefined, 42]) {
      expect(Ids.isId(bad)).toBe(false)
    }
  })

  it("a storage key is SHA-256 of the id, or HMAC-SHA-256 with a pepper, in base64url; logs see 8 characters", () => {
    const id = Ids.generateId()
    expect(Ids.storageKeyFunction()(id)).toBe(createHash("sha256").update(id).digest("base64url"))
    expect(Ids.storageKeyFunction("pepper")(id)).toBe(createHmac("sha256", "pepper").update(id).digest("base64url"))
    expect(Ids.logPrefix(Ids.storageKeyFunction()(id))).toHaveLength(8)
  })
})

describe("the record format", () => {
  it("an envelope is read back with its fields; what is not one says why, without its values", () => {
    const text = Record.envelopePrefix + `{"a":1}` + Record.envelopeSuffix(1, 2, "alice")
    expect(Record.readEnvelope(text)).toEqual({
      _tag: "Envelope",
      fields: { data: { a: 1 }, createdAt: 1, absoluteExpiresAt: 2, principal: "alice" }
    })
    for (
      const [bad, why] of [
        ["secret-value {", /JSON/],
        [`["secret-value"]`, /must be a JSON object/],
        [`{"v":2,"data":{}}`, /unsupported envelope version 2/],
        [`{"v":1,"data":{},"createdAt":"secret-value","absoluteExpiresAt":1,"principal":null}`, /must be numbers/],
        [`{"v":1,"data":{},"createdAt":1,"absoluteExpiresAt":1,"principal":7}`, /principal must be/],
        [`{"v":1,"createdAt":1,"absoluteExpiresAt":1,"principal":null}`, /no data/]
      ] as const
    ) {
      const read = Record.readEnvelope(bad)
      expect(read._tag).toBe("Invalid")
      if (read._tag === "Invalid") {
        expect(String(read.error)).toMatch(why)
        if (!bad.startsWith("secret-value")) expect(String(read.error)).not.toMatch(/secret-value/)
      }
    }
  })

  it("stored JSON never chooses a prototype: __proto__ keys are dropped at any depth, escaped or not", () => {
    const parsed = Record.parseStoredJson(`{"a":{"__proto__":{"isAdmin":true}},"\\u005f_proto__":{"x":1}}`) as any
    expect(Object.getPrototypeOf(parsed.a)).toBe(Object.prototype)
    expect(parsed.a.isAdmin).toBeUndefined()
    expect(Object.keys(parsed)).toEqual(["a"])
  })

  it("sizes: a text is measured only when it may be over the limit", () => {
    expect(Record.textOverLimit("abc", 9)).toBeUndefined()
    expect(Record.textOverLimit("ééé", 5)).toEqual({ size: 6, exact: true })
    expect(Record.textOverLimit("a".repeat(20), 10)).toEqual({ size: 20, exact: false })
    expect(Record.utf8Length("😀é")).toBe(6)
  })

  it("the stored data is compared in place when the text has this layout", () => {
    const suffix = Record.envelopeSuffix(1, 2, null)
    const stored = Record.envelopePrefix + `{"a":1}` + suffix
    expect(Record.storesSameData(stored, `{"a":1}`, suffix)).toBe(true)
    expect(Record.storesSameData(stored, `{"a":2}`, suffix)).toBe(false)
    expect(Record.storesSameData(stored, `{"a":12}`, suffix)).toBe(false)
    expect(Record.storesSameData(` ${stored}`, `{"a":1}`, suffix)).toBeUndefined()
  })

  it("tombstones: moved to a key, or ended; read from text or bytes; nothing else is one", () => {
    const key = Ids.storageKeyFunction()(Ids.generateId())
    expect(Record.readTombstone({ text: Record.tombstoneText(key), data: new Uint8Array() })).toEqual({ movedTo: key })
    expect(Record.readTombstone({ data: new TextEncoder().encode(Record.tombstoneText(null)) })).toEqual({ movedTo: null })
    expect(Record.readTombstone({ text: `{"v":1,"tombstone":"not a key"}`, data: new Uint8Array() })).toEqual({
      movedTo: null
    })
    const session = Record.envelopePrefix + "{}" + Record.envelopeSuffix(1, 2, null)
    expect(Record.readTombstone({ text: session, data: new Uint8Array() })).toBeUndefined()
    const long = `{"v":1,"tombstone":null,"pad":"${"x".repeat(200)}"}`
    expect(Record.readTombstone({ text: long, data: new Uint8Array() })).toBeUndefined()
  })
})

describe("a middleware's timeouts and replay budget from its options", () => {
  it("defaults touchAfter to a tenth of the idle timeout (an hour at most) and keeps a given one", () => {
    expect(Core.makeTimeouts(60_000, 600_000, undefined)).toEqual({ idleMillis: 60_000, absoluteMillis: 600_000, touchAfterMillis: 6_000 })
    expect(Core.makeTimeouts(14 * 24 * 3_600_000, 30 * 24 * 3_600_000, undefined).touchAfterMillis).toBe(3_600_000)
    expect(Core.makeTimeouts(60_000, 600_000, 0).touchAfterMillis).toBe(0)
  })
  it("refuses timeouts that cannot work, and a negative conflict timeout, when the middleware is built", () => {
    expect(() => Core.makeTimeouts(0, 600_000, undefined)).toThrow(/must be positive/)
    expect(() => Core.makeTimeouts(60_000, Number.NaN, undefined)).toThrow(/must be positive/)
    expect(() => Core.makeReplayBudget(-1, undefined)).toThrow(/must not be negative/)
    expect(Core.makeReplayBudget(0, undefined)).toEqual({ conflictMillis: 0, maxConflictRetries: Number.POSITIVE_INFINITY })
    expect(Core.makeReplayBudget(5_000, 3).maxConflictRetries).toBe(3)
  })
})

describe("the session cookie from a middleware's options (cookieSettings)", () => {
  it("is secure by default, persistent, and carries Domain and Partitioned only when given", () => {
    expect(Core.cookieSettings(undefined)).toEqual({
      name: "session",
      persistent: true,
      attributes: { path: "/", httpOnly: true, secure: true, sameSite: "lax" }
    })
    const given = Core.cookieSettings({ name: "s", domain: "example.com", partitioned: true, persistent: false, sameSite: "strict" })
    expect(given.persistent).toBe(false)
    expect(given.attributes).toEqual({ path: "/", httpOnly: true, secure: true, sameSite: "strict", domain: "example.com", partitioned: true })
  })
  it("refuses, when the middleware is built, a cookie browsers would drop", () => {
    expect(() => Core.cookieSettings({ name: "__Host-s", path: "/app" })).toThrow(/Path=\//)
    expect(() => Core.cookieSettings({ sameSite: "none", secure: false })).toThrow(/SameSite=None requires Secure/)
    expect(Core.cookieSettings({ secure: false }).attributes.secure).toBe(false)
  })
})
