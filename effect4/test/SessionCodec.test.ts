/**
 * The codec and the ids of the Effect 4 line: what is stored, what a stored
 * record must be to load, what a hostile one cannot do (pollute prototypes,
 * be parsed when oversized), the exact size limit, what errors tell, and the
 * ids and storage keys.
 */
import { assert, describe, expect, it, vi } from "@effect/vitest"
import { Effect, Option, Redacted, Result, Schema } from "effect"
import { createHash, createHmac } from "node:crypto"
import * as SessionCodec from "../src/SessionCodec.js"
import type { SessionDecodeError } from "../src/SessionError.js"
import * as SessionId from "../src/SessionId.js"

const fields = {
  username: Schema.optional(Schema.String),
  visits: Schema.Number.pipe(Schema.withDecodingDefault(Effect.succeed(0))),
  count: Schema.optional(Schema.Int),
  since: Schema.optional(Schema.DateFromString),
  prefs: Schema.optional(Schema.Record(Schema.String, Schema.Unknown))
}
const Data = Schema.Struct(fields)
type Data = typeof Data.Type

const codecOf = <A>(schema: Schema.Codec<A, any>, maxSize?: number) =>
  SessionCodec.make(schema as unknown as Schema.Codec<A, unknown>, { maxSize, fields: Object.keys((schema as any).fields ?? {}) })

const codec = codecOf(Data)

const envelope = (data: Data, principal: Option.Option<string> = Option.none()): SessionCodec.Envelope<Data> => ({
  data,
  createdAt: 1_700_000_000_000,
  absoluteExpiresAt: 1_700_000_000_000 + 30 * 24 * 3600 * 1000,
  principal
})

const encoded = (sample: SessionCodec.Envelope<Data>, over = codec): string => Result.getOrThrow(over.encodeText(sample))

const decodeFailure = (text: string, over: SessionCodec.SessionCodec<any> = codec): SessionDecodeError => {
  const result = over.decodeText(text)
  assert(Result.isFailure(result), `expected ${text.slice(0, 60)} not to decode`)
  expect(result.failure._tag).toBe("SessionDecodeError")
  return result.failure
}

const decoded = <A>(text: string, over: SessionCodec.SessionCodec<A>): SessionCodec.Envelope<A> => {
  const result = over.decodeText(text)
  assert(Result.isSuccess(result), Result.isFailure(result) ? result.failure.message : "")
  return result.success
}

describe("SessionCodec", () => {
  it("round trips data, timestamps and the principal (Some and None)", () => {
    const samples: ReadonlyArray<SessionCodec.Envelope<Data>> = [
      envelope({ visits: 0 }),
      envelope({ username: "ünïcödé ✓ 🎉", visits: 3, count: 7, since: new Date("2024-02-29T12:00:00.000Z") }, Option.some("alice")),
      envelope({ visits: -1.5, prefs: { nested: { deep: [1, "two", null] }, "": true } }, Option.some("p"))
    ]
    for (const sample of samples) expect(decoded(encoded(sample), codec)).toEqual(sample)
  })

  it("the stored form is JSON with the envelope version, the encoded data and a null principal", () => {
    const text = encoded(envelope({ visits: 2, since: new Date("2024-01-01T00:00:00.000Z") }))
    expect(JSON.parse(text)).toEqual({
      v: 1,
      data: { visits: 2, since: "2024-01-01T00:00:00.000Z" },
      createdAt: 1_700_000_000_000,
      absoluteExpiresAt: 1_700_000_000_000 + 30 * 24 * 3600 * 1000,
      principal: null
    })
  })

  it("only the envelope version this release writes is accepted", () => {
    const body = `"data":{},"createdAt":0,"absoluteExpiresAt":1,"principal":null`
    expect(decoded(`{"v":1,${body}}`, codec)).toEqual({ data: { visits: 0 }, createdAt: 0, absoluteExpiresAt: 1, principal: Option.none() })
    for (const v of [`"v":2,`, `"v":0,`, `"v":"1",`, `"v":null,`, ``]) decodeFailure(`{${v}${body}}`)
  })

  it("envelopes with missing or mistyped fields do not decode", () => {
    const bad = [
      `null`,
      `[]`,
      `"a string"`,
      `{"v":1}`,
      `{"v":1,"data":{},"createdAt":"0","absoluteExpiresAt":1,"principal":null}`,
      `{"v":1,"data":{},"createdAt":0,"absoluteExpiresAt":1,"principal":42}`,
      `{"v":1,"data":{"visits":"many"},"createdAt":0,"absoluteExpiresAt":1,"principal":null}`,
      `{"v":1,"data":{"count":1.5},"createdAt":0,"absoluteExpiresAt":1,"principal":null}`,
      `{"v":1,"data":null,"createdAt":0,"absoluteExpiresAt":1,"principal":null}`,
      ``,
      `not json {{`
    ]
    for (const json of bad) decodeFailure(json)
  })

  it("a stored value that fails the schema is reported by field name, never with the value or a record key", () => {
    const error = decodeFailure(
      `{"v":1,"data":{"visits":"secret-visits","username":"alice","prefs":{"alice@example.com":1}},` +
        `"createdAt":0,"absoluteExpiresAt":1,"principal":null}`
    )
    expect(error.message).toBe("stored session could not be decoded: the data does not match the schema at visits")
    const numbers = codecOf(Schema.Struct({ prefs: Schema.Record(Schema.String, Schema.Number) }))
    const nested = decodeFailure(
      `{"v":1,"data":{"prefs":{"alice@example.com":"secret-pref"}},"createdAt":0,"absoluteExpiresAt":1,"principal":null}`,
      numbers
    )
    expect(nested.message).toBe("stored session could not be decoded: the data does not match the schema at prefs")
  })

  it("__proto__, constructor and prototype keys in stored JSON pollute nothing", () => {
    const json = `{"v":1,"__proto__":{"polluted":"envelope"},"constructor":{"prototype":{"polluted":"ctor"}},` +
      `"data":{"__proto__":{"polluted":"data","isAdmin":true},"visits":1,` +
      `"prefs":{"__proto__":{"polluted":"record","isAdmin":true},"constructor":{"prototype":{"polluted":"x"}},"theme":"dark"}},` +
      `"createdAt":0,"absoluteExpiresAt":1,"principal":null}`
    const result = decoded(json, codec)
    // nothing leaked into the global prototype
    expect(({} as Record<string, unknown>)["polluted"]).toBeUndefined()
    expect(({} as Record<string, unknown>)["isAdmin"]).toBeUndefined()
    expect(Object.prototype).not.toHaveProperty("polluted")
    // nor into the decoded objects' prototypes
    expect(Object.getPrototypeOf(result)).toBe(Object.prototype)
    expect(Object.getPrototypeOf(result.data)).toBe(Object.prototype)
    expect((result.data as Record<string, unknown>)["isAdmin"]).toBeUndefined()
    expect((result.data as Record<string, unknown>)["polluted"]).toBeUndefined()
    expect(result.data.visits).toBe(1)
    const prefs = result.data.prefs
    assert(prefs !== undefined)
    expect(Object.getPrototypeOf(prefs)).toBe(Object.prototype)
    expect(prefs["theme"]).toBe("dark")
    // a record key named like a prototype slot may be kept as data, never as an inherited value
    expect("isAdmin" in prefs).toBe(false)
    expect("polluted" in prefs).toBe(false)
  })

  describe("a __proto__ key in a field the schema copies key by key", () => {
    const plain = codecOf(Schema.Struct({
      prefs: Schema.Record(Schema.String, Schema.Unknown),
      profile: Schema.optional(Schema.Struct({ name: Schema.optional(Schema.String) }))
    }))
    const stored = (data: string) => `{"v":1,"data":${data},"createdAt":0,"absoluteExpiresAt":1,"principal":null}`

    it("changes no prototype and adds no key, written out or behind \\u escapes", () => {
      for (const key of [`"__proto__"`, `"\\u005f_proto__"`, `"__pr\\u006fto__"`]) {
        const result = decoded(stored(`{"prefs":{${key}:{"isAdmin":true},"theme":"dark"},"profile":{${key}:{"isAdmin":true}}}`), plain)
        const { prefs, profile } = result.data as { prefs: Record<string, unknown>; profile?: object }
        expect(Object.getPrototypeOf(prefs), key).toBe(Object.prototype)
        expect(prefs["isAdmin"], key).toBeUndefined()
        expect(Object.keys(prefs), key).toEqual(["theme"])
        assert(profile !== undefined)
        expect(Object.getPrototypeOf(profile), key).toBe(Object.prototype)
        expect((profile as Record<string, unknown>)["isAdmin"], key).toBeUndefined()
        expect(Object.getPrototypeOf(result)).toBe(Object.prototype)
      }
      expect(({} as Record<string, unknown>)["isAdmin"]).toBeUndefined()
    })

    it("keeps constructor and prototype keys as own data, changing no prototype", () => {
      const result = decoded(stored(`{"prefs":{"constructor":{"prototype":{"isAdmin":true}},"prototype":{"isAdmin":true}}}`), plain)
      const prefs = result.data.prefs
      expect(Object.getPrototypeOf(prefs)).toBe(Object.prototype)
      expect(Object.keys(prefs)).toEqual(["constructor", "prototype"])
      expect(prefs["constructor"]).toEqual({ prototype: { isAdmin: true } })
      expect(({} as Record<string, unknown>)["isAdmin"]).toBeUndefined()
      expect(Object.prototype.constructor).toBe(Object)
    })
  })

  it("every truncation of a stored session fails with SessionDecodeError (never a defect)", () => {
    const valid = encoded(envelope({ username: "trunc€ated 🎉", visits: 5, prefs: { a: [1, 2] } }, Option.some("p")))
    for (let length = 0; length < valid.length; length++) decodeFailure(valid.slice(0, length))
    decoded(valid, codec)
  })

  it("the size limit is exact and counts UTF-8 bytes: limit bytes are stored, limit + 1 fail with SessionTooLarge", () => {
    // 3 bytes per "€", 4 per "🎉" (a surrogate pair): a limit counted in UTF-16 units would be far off
    for (const username of ["€".repeat(100), "🎉".repeat(40)]) {
      const sample = envelope({ username, visits: 1 })
      const size = Buffer.byteLength(encoded(sample), "utf8")
      expect(encoded(sample, codecOf(Data, size))).toBe(encoded(sample))
      const under = codecOf(Data, size - 1).encodeText(sample)
      assert(Result.isFailure(under))
      const error = under.failure
      assert(error._tag === "SessionTooLarge")
      expect(error.size).toBe(size)
      expect(error.limit).toBe(size - 1)
      expect(error.message).toBe(`session data encodes to ${size} bytes, over the limit of ${size - 1} bytes`)
    }
  })

  it("encodeFingerprint of the data's fingerprint writes what encodeText writes, under the same size limit", () => {
    const sample = envelope({ username: "ann", visits: 2 }, Option.some("ann"))
    const json = Result.getOrThrow(codec.fingerprint(sample.data))
    const text = Result.getOrThrow(codec.encodeFingerprint(json, sample))
    expect(text).toBe(encoded(sample))
    // the envelope around the data is all there: it reads back as what was written
    expect(Result.getOrThrow(codec.decodeText(text))).toEqual(sample)
    const size = Buffer.byteLength(encoded(sample), "utf8")
    const over = codecOf(Data, size - 1).encodeFingerprint(json, sample)
    assert(Result.isFailure(over))
    expect(over.failure._tag).toBe("SessionTooLarge")
    expect(Result.isSuccess(codecOf(Data, size).encodeFingerprint(json, sample))).toBe(true)
  })

  it("a stored record over the size limit is refused before it is parsed; one at the limit loads", () => {
    const parse = vi.spyOn(JSON, "parse")
    try {
      // ASCII; 3 bytes per UTF-16 unit ("€": the text is within the limit in
      // units, over it in bytes); 2 units and 4 bytes per "🎉"
      for (const username of ["x".repeat(300), "€".repeat(100), "🎉".repeat(40)]) {
        const text = encoded(envelope({ username, visits: 1 }))
        const size = Buffer.byteLength(text, "utf8")
        expect(decoded(text, codecOf(Data, size)).data).toEqual({ username, visits: 1 })
        for (const limit of [size - 1, Math.floor(size / 2), text.length - 1]) {
          parse.mockClear()
          const error = decodeFailure(text, codecOf(Data, limit))
          expect(parse).not.toHaveBeenCalled()
          expect(error.message).toMatch(new RegExp(`bytes, over the limit of ${limit} bytes \\(not parsed\\)$`))
          // the message tells the size, never the stored values
          expect(error.message).not.toContain(username.slice(0, 4))
        }
      }
    } finally {
      parse.mockRestore()
    }
  })

  it("the default limit is 64 KiB", () => {
    expect(SessionCodec.defaultMaxSize).toBe(65536)
    const overhead = Buffer.byteLength(encoded(envelope({ username: "", visits: 0 })), "utf8")
    expect(Buffer.byteLength(encoded(envelope({ username: "x".repeat(65536 - overhead), visits: 0 })), "utf8")).toBe(65536)
    const over = codec.encodeText(envelope({ username: "x".repeat(65537 - overhead), visits: 0 }))
    assert(Result.isFailure(over))
    expect(over.failure._tag).toBe("SessionTooLarge")
  })

  it("a value that fails a refinement fails encode and fingerprint with SessionEncodeError, naming the field", () => {
    const encode = codec.encodeText(envelope({ visits: 0, count: 1.5 }))
    assert(Result.isFailure(encode))
    expect(encode.failure._tag).toBe("SessionEncodeError")
    // the field, not the value (it is the app's data, and the message is logged)
    expect(encode.failure.message).toBe("session data does not match its schema: invalid value at count")
    const fingerprint = codec.fingerprint({ visits: 0, count: 1.5 })
    assert(Result.isFailure(fingerprint))
    expect(fingerprint.failure._tag).toBe("SessionEncodeError")
  })

  it("fingerprints: equal data gives equal strings, any change gives a different one, and a decoded value matches its original", () => {
    const print = (data: Data) => Result.getOrThrow(codec.fingerprint(data))
    const a: Data = { username: "u", visits: 1, since: new Date(0) }
    expect(print(a)).toBe(print({ username: "u", visits: 1, since: new Date(0) }))
    expect(print(a)).not.toBe(print({ ...a, visits: 2 }))
    expect(print(a)).not.toBe(print({ ...a, since: new Date(1) }))
    expect(print(a)).not.toBe(print({ visits: 1, since: new Date(0) }))
    expect(print(decoded(encoded(envelope(a)), codec).data)).toBe(print(a))
  })

  it("unchanged: the loaded data written back is unchanged, any change is not, also for a record in another layout", () => {
    const sample = envelope({ username: "u", visits: 1 }, Option.some("alice"))
    const text = encoded(sample)
    const loaded = decoded(text, codec)
    expect(Result.getOrThrow(codec.unchanged({ username: "u", visits: 1 }, loaded, text))).toBe(true)
    expect(Result.getOrThrow(codec.unchanged({ username: "v", visits: 1 }, loaded, text))).toBe(false)
    // the same envelope with its keys in another order (written by hand, or another release)
    const reordered = `{"principal":"alice","createdAt":${sample.createdAt},"absoluteExpiresAt":${sample.absoluteExpiresAt},"v":1,"data":{"visits":1,"username":"u"}}`
    const other = decoded(reordered, codec)
    expect(Result.getOrThrow(codec.unchanged({ username: "u", visits: 1 }, other, reordered))).toBe(true)
    expect(Result.getOrThrow(codec.unchanged({ username: "u", visits: 2 }, other, reordered))).toBe(false)
  })
})

// The id rules (alphabet, length, randomness, key derivation) are the core's
// and tested there; these check that this line's SessionId applies them.
describe("SessionId", () => {
  it("parse takes a generated id and refuses what is not 43 base64url characters", () => {
    const id = SessionId.generateUnsafe()
    expect(SessionId.parse(id)).toEqual(Option.some(id))
    expect(Buffer.from(id, "base64url").length).toBe(32)
    for (const value of [undefined, "", id.slice(1), `${id}A`, `${id.slice(1)}=`, `${id.slice(1)}.`, `${id.slice(1)}\n`, `é${id.slice(1)}`]) {
      expect(SessionId.parse(value), JSON.stringify(value)).toEqual(Option.none())
    }
    expect(SessionId.isSessionId(id)).toBe(true)
    expect(SessionId.isSessionId(43)).toBe(false)
  })

  it.effect("generate is an effect giving a fresh id each run", () =>
    Effect.gen(function*() {
      const a = yield* SessionId.generate
      const b = yield* SessionId.generate
      expect(SessionId.isSessionId(a)).toBe(true)
      expect(a).not.toBe(b)
    }))

  it("the storage key is base64url(SHA-256(id)), or HMAC-SHA-256 with a pepper; logs carry 8 characters of it", () => {
    const id = SessionId.generateUnsafe()
    const sha = createHash("sha256").update(id, "utf8").digest("base64url")
    expect(SessionId.storageKey(id)).toBe(sha)
    expect(SessionId.makeStorageKey()(id)).toBe(sha)
    const hmac = createHmac("sha256", "pepper one").update(id, "utf8").digest("base64url")
    expect(SessionId.makeStorageKey(Redacted.make("pepper one"))(id)).toBe(hmac)
    expect(SessionId.makeStorageKey(Redacted.make("pepper two"))(id)).not.toBe(hmac)
    expect(SessionId.logPrefix(SessionId.storageKey(id))).toBe(sha.slice(0, 8))
  })
})
