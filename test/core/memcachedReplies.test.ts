/**
 * How both lines' Memcached stores read the client's answers with the core
 * (`src/core/memcached.ts`): a storage command's reply, a `gets`, and the
 * Effect 4 line's text records in the value's bytes.
 */
import { Buffer } from "node:buffer"
import { describe, expect, it } from "vitest"
import { decode, encode, readGets, storageReply, textOf, textWrite } from "../../src/core/memcached.js"

describe("storageReply", () => {
  it("a command that resolves stored", async () => {
    await expect(storageReply(Promise.resolve(undefined))).resolves.toBe("STORED")
  })

  it("a negative reply is a value", async () => {
    for (const reply of ["NOT_STORED", "EXISTS", "NOT_FOUND"]) {
      await expect(storageReply(Promise.reject(new Error(reply)))).resolves.toBe(reply)
    }
  })

  it("any other rejection stays one", async () => {
    const lost = new Error("connection closed")
    await expect(storageReply(Promise.reject(lost))).rejects.toBe(lost)
  })
})

describe("readGets", () => {
  const record = { data: new Uint8Array([1, 2, 3]), version: 2, expiresAt: 1_800_000_000_000, principal: "alice" }

  it("a miss is undefined", () => {
    expect(readGets(undefined)).toBeUndefined()
  })

  it("a hit is the record with its compare-and-set token", () => {
    expect(readGets({ value: encode(record), casUniq: 17 })).toEqual({ record, casUniq: 17 })
  })

  it("a value this store did not write is Foreign", () => {
    expect(readGets({ value: Buffer.from("hello"), casUniq: 1 })).toBe("Foreign")
    expect(readGets({ value: "not a buffer", casUniq: 1 })).toBe("Foreign")
  })
})

describe("text records", () => {
  it("the text is stored as its UTF-8 bytes and read back as the same text", () => {
    const write = textWrite(`{"name":"Zoë ☃"}`, 1_800_000_000_000, undefined)
    expect(Buffer.from(write.data).toString("utf8")).toBe(`{"name":"Zoë ☃"}`)
    const read = decode(encode({ ...write, version: 4 }))!
    expect(textOf(read)).toEqual({ text: `{"name":"Zoë ☃"}`, version: 4, expiresAt: 1_800_000_000_000 })
  })

  it("carries the principal in the write, and leaves it out of the text view", () => {
    expect(textWrite("{}", 1, "alice").principal).toBe("alice")
    expect(textOf({ data: new Uint8Array(), version: 1, expiresAt: 1, principal: "alice" })).not.toHaveProperty("principal")
  })
})
