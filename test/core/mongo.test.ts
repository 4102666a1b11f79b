/**
 * The MongoDB protocol of the core (`src/core/mongo.ts`), without a server:
 * filters, updates, the indexes, the principal check and the reading of a
 * document. Without MONGODB_URL the store's tests skip; these still run.
 */
import { describe, expect, it } from "vitest"
import * as Mongo from "../../src/core/mongo.js"

const key = "k".repeat(43)
const data = new TextEncoder().encode(`{"n":1}`)
const t = 1_800_000_000_000

describe("filters", () => {
  it("a live session: under its key, expiring after now", () => {
    expect(Mongo.liveFilter(key, t)).toEqual({ _id: key, expiresAt: { $gt: new Date(t) } })
  })

  it("insert's upsert matches only an expired document under the key", () => {
    expect(Mongo.expiredFilter(key, t)).toEqual({ _id: key, expiresAt: { $lte: new Date(t) } })
  })

  it("update's compare-and-set: the live document at the expected version", () => {
    expect(Mongo.versionFilter(key, 4, t)).toEqual({ _id: key, version: 4, expiresAt: { $gt: new Date(t) } })
  })

  it("a principal is compared with $eq, so that even an object is a value, never an operator", () => {
    expect(Mongo.principalFilter("alice", t)).toEqual({ principal: { $eq: "alice" }, expiresAt: { $gt: new Date(t) } })
    const operator = { $ne: null } as unknown as string
    expect(Mongo.principalFilter(operator, t).principal).toEqual({ $eq: { $ne: null } })
  })

  it("only strings pass the principal check", () => {
    expect(Mongo.isStringPrincipal("alice")).toBe(true)
    for (const bad of [{ $ne: null }, 42, null, undefined, ["alice"]]) expect(Mongo.isStringPrincipal(bad)).toBe(false)
  })
})

describe("updates and indexes", () => {
  it("a write sets the whole record; an anonymous one removes a previous principal", () => {
    expect(Mongo.writeUpdate({ data, expiresAt: t, principal: "alice" }, 2)).toEqual({
      $set: { data, version: 2, expiresAt: new Date(t), principal: "alice" }
    })
    expect(Mongo.writeUpdate({ data, expiresAt: t, principal: undefined }, 1)).toEqual({
      $set: { data, version: 1, expiresAt: new Date(t) },
      $unset: { principal: "" }
    })
  })

  it("touch sets the expiry only", () => {
    expect(Mongo.touchUpdate(t + 5)).toEqual({ $set: { expiresAt: new Date(t + 5) } })
  })

  it("a TTL index on expiresAt and a sparse index on principal", () => {
    expect(Mongo.indexSpecs).toEqual([
      { key: { expiresAt: 1 }, name: "effect_session_expiresAt_ttl", expireAfterSeconds: 0 },
      { key: { principal: 1 }, name: "effect_session_principal", sparse: true }
    ])
  })
})

describe("documents", () => {
  // what the driver returns for a Binary, duck-typed like the core reads it
  const binary = (bytes: Uint8Array, length = bytes.length) => ({
    _bsontype: "Binary",
    buffer: bytes,
    length: () => length
  })

  it("reads a record back, from a Binary or a Buffer", () => {
    const document = { _id: key, data: binary(data), version: 3, expiresAt: new Date(t), principal: "alice" }
    expect(Mongo.recordOfDocument(document)).toEqual({ data, version: 3, expiresAt: t, principal: "alice" })
    const promoted = { ...document, data: Buffer.from(data), principal: undefined }
    expect(Mongo.recordOfDocument(promoted)).toEqual({ data, version: 3, expiresAt: t, principal: undefined })
  })

  it("a Binary's bytes stop at its length, and are copied", () => {
    const backing = new Uint8Array([1, 2, 3, 4, 5, 6])
    const read = Mongo.bytes(binary(backing, 3))!
    expect([...read]).toEqual([1, 2, 3])
    backing[0] = 9
    expect(read[0]).toBe(1)
  })

  it("refuses a document it did not write", () => {
    const document = { _id: key, data: binary(data), version: 3, expiresAt: new Date(t) }
    expect(Mongo.recordOfDocument({ ...document, data: "text" })).toBeUndefined()
    expect(Mongo.recordOfDocument({ ...document, data: { _bsontype: "ObjectId", buffer: data } })).toBeUndefined()
    expect(Mongo.recordOfDocument({ ...document, version: "3" })).toBeUndefined()
    expect(Mongo.recordOfDocument({ ...document, expiresAt: t })).toBeUndefined()
    expect(Mongo.recordOfDocument({ _id: key })).toBeUndefined()
    expect(Mongo.recordOfDocument(null)).toBeUndefined()
  })

  it("a principal that is not a string is not read as one", () => {
    const document = { _id: key, data, version: 1, expiresAt: new Date(t), principal: { $ne: null } }
    expect(Mongo.recordOfDocument(document)?.principal).toBeUndefined()
  })
})

describe("outcomes", () => {
  it("a duplicate _id is E11000, read from the code", () => {
    expect(Mongo.isDuplicateKey(Object.assign(new Error("E11000 duplicate key"), { code: 11000 }))).toBe(true)
    expect(Mongo.isDuplicateKey({ code: 11000 })).toBe(true)
    expect(Mongo.isDuplicateKey({ code: 112 })).toBe(false)
    expect(Mongo.isDuplicateKey(new Error("E11000 duplicate key"))).toBe(false)
    expect(Mongo.isDuplicateKey(null)).toBe(false)
  })

  it("a lost update: VersionMismatch while the session lives, else Missing", () => {
    expect(Mongo.lostUpdateReason(true)).toBe("VersionMismatch")
    expect(Mongo.lostUpdateReason(false)).toBe("Missing")
  })
})
