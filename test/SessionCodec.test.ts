import { assert, describe, expect, it, vi } from "@effect/vitest"
import { Effect, Either, Option, Redacted, Schema } from "effect"
import { createHash, createHmac } from "node:crypto"
import * as SessionCodec from "../src/SessionCodec.js"
import type { SessionDecodeError } from "../src/SessionError.js"
import * as SessionId from "../src/SessionId.js"

const Data = Schema.Struct({
  username: Schema.optional(Schema.String),
  visits: Schema.optionalWith(Schema.Number, { default: () => 0 }),
  count: Schema.optional(Schema.Int),
  since: Schema.optional(Schema.DateFromString),
  prefs: Schema.optional(Schema.Record({ key: Schema.String, value: Schema.Unknown }))
})
type Data = typeof Data.Type

const codec = SessionCodec.make(Data as unknown as Schema.Schema<Data, unknown, never>)
const utf8 = new TextEncoder()

const envelope = (data: Data, principal: Option.Option<string> = Option.none()): SessionCodec.Envelope<Data> => ({
  data,
  createdAt: 1_700_000_000_000,
  absoluteExpiresAt: 1_700_000_000_000 + 30 * 24 * 3600 * 1000,
  principal
})

/** The codec's internal form (its text and bytes read paths), with a size limit. */
const codec_ = (maxSize: number) => SessionCodec.makeImpl(Data as unknown as Schema.Schema<Data, unknown, never>, { maxSize })

/** Bytes of a hand-written stored envelope. */
const raw = (json: string) => utf8.encode(json)

const decodeFailure = (bytes: Uint8Array) =>
  Effect.map(Effect.either(codec.decode(bytes)), (result) => {
    assert(Either.isLeft(result), "expected the bytes not to decode")
    expect(result.left._tag).toBe("SessionDecodeError")
    return result.left
  })

describe("SessionCodec", () => {
  it.effect("round trips data, timestamps and the principal (Some and None)", () =>
    Effect.gen(function*() {
      const samples: ReadonlyArray<SessionCodec.Envelope<Data>> = [
        envelope({ visits: 0 }),
        envelope({ username: "ünïcödé ✓ 🎉", visits: 3, count: 7, since: new Date("2024-02-29T12:00:00.000Z") }, Option.some("alice")),
        envelope({ visits: -1.5, prefs: { nested: { deep: [1, "two", null] }, "": true } }, Option.some(""))
      ]
      for (const sample of samples) {
        const bytes = yield* codec.encode(sample)
        expect(yield* codec.decode(bytes)).toEqual(sample)
      }
    }))

  it.effect("the stored form is JSON with the envelope version, the encoded data and a null principal", () =>
    Effect.gen(function*() {
      const bytes = yield* codec.encode(envelope({ visits: 2, since: new Date("2024-01-01T00:00:00.000Z") }))
      expect(JSON.parse(new TextDecoder().decode(bytes))).toEqual({
        v: SessionCodec.version,
        data: { visits: 2, since: "2024-01-01T00:00:00.000Z" },
        createdAt: 1_700_000_000_000,
        absoluteExpiresAt: 1_700_000_000_000 + 30 * 24 * 3600 * 1000,
        principal: null
      })
    }))

  it.effect("only the envelope version this release writes is accepted", () =>
    Effect.gen(function*() {
      const body = `"data":{},"createdAt":0,"absoluteExpiresAt":1,"principal":null`
      expect(yield* codec.decode(raw(`{"v":1,${body}}`))).toEqual({
        data: { visits: 0 },
        createdAt: 0,
        absoluteExpiresAt: 1,
        principal: Option.none()
      })
      for (const v of [`"v":2,`, `"v":0,`, `"v":"1",`, `"v":null,`, ``]) {
        yield* decodeFailure(raw(`{${v}${body}}`))
      }
    }))

  it.effect("envelopes with missing or mistyped fields do not decode", () =>
    Effect.gen(function*() {
      const bad = [
        `null`,
        `[]`,
        `"a string"`,
        `{"v":1}`,
        `{"v":1,"data":{},"createdAt":"0","absoluteExpiresAt":1,"principal":null}`,
        `{"v":1,"data":{},"createdAt":0,"absoluteExpiresAt":1,"principal":42}`,
        `{"v":1,"data":{"visits":"many"},"createdAt":0,"absoluteExpiresAt":1,"principal":null}`,
        `{"v":1,"data":{"count":1.5},"createdAt":0,"absoluteExpiresAt":1,"principal":null}`,
        `{"v":1,"data":null,"createdAt":0,"absoluteExpiresAt":1,"principal":null}`
      ]
      for (const json of bad) yield* decodeFailure(raw(json))
    }))

  it.effect("a stored value that fails the schema is reported by field name, never with the value or a record key", () =>
    Effect.gen(function*() {
      const error = yield* decodeFailure(raw(
        `{"v":1,"data":{"visits":"secret-visits","username":"alice","prefs":{"alice@example.com":1}},` +
          `"createdAt":0,"absoluteExpiresAt":1,"principal":null}`
      ))
      expect(error.message).toBe("stored session could not be decoded: the data does not match the schema at visits")
      const invalidNumber = SessionCodec.make(Schema.Struct({
        prefs: Schema.Record({ key: Schema.String, value: Schema.Number })
      }))
      const nested = yield* Effect.flip(invalidNumber.decode(raw(
        `{"v":1,"data":{"prefs":{"alice@example.com":"secret-pref"}},"createdAt":0,"absoluteExpiresAt":1,"principal":null}`
      )))
      expect(nested.message).toBe("stored session could not be decoded: the data does not match the schema at prefs")
    }))

  it.effect("__proto__, constructor and prototype keys in stored JSON pollute nothing", () =>
    Effect.gen(function*() {
      const json = `{"v":1,"__proto__":{"polluted":"envelope"},"constructor":{"prototype":{"polluted":"ctor"}},` +
        `"data":{"__proto__":{"polluted":"data","isAdmin":true},"visits":1,` +
        `"prefs":{"__proto__":{"polluted":"record","isAdmin":true},"constructor":{"prototype":{"polluted":"x"}},"theme":"dark"}},` +
        `"createdAt":0,"absoluteExpiresAt":1,"principal":null}`
      const decoded = yield* codec.decode(raw(json))
      // nothing leaked into the global prototype
      expect(({} as Record<string, unknown>)["polluted"]).toBeUndefined()
      expect(({} as Record<string, unknown>)["isAdmin"]).toBeUndefined()
      expect(Object.prototype).not.toHaveProperty("polluted")
      // nor into the decoded objects' prototypes
      expect(Object.getPrototypeOf(decoded)).toBe(Object.prototype)
      expect(Object.getPrototypeOf(decoded.data)).toBe(Object.prototype)
      expect((decoded.data as Record<string, unknown>)["isAdmin"]).toBeUndefined()
      expect((decoded.data as Record<string, unknown>)["polluted"]).toBeUndefined()
      expect(decoded.data.visits).toBe(1)
      const prefs = decoded.data.prefs
      assert(prefs !== undefined)
      expect(Object.getPrototypeOf(prefs)).toBe(Object.prototype)
      expect(prefs["theme"]).toBe("dark")
      // a record key named like a prototype slot may be kept as data, never as an inherited value
      expect("isAdmin" in prefs).toBe(false)
      expect("polluted" in prefs).toBe(false)
    }))

  describe("a __proto__ key in a field the schema copies key by key", () => {
    // No transformation on the struct: its parser assigns every key of a
    // record into a new object, and assigning "__proto__" sets a prototype.
    const Plain = Schema.Struct({
      prefs: Schema.Record({ key: Schema.String, value: Schema.Unknown }),
      profile: Schema.optional(Schema.Struct({ name: Schema.optional(Schema.String) }))
    })
    const plain = SessionCodec.makeImpl(Plain)
    const stored = (data: string) => `{"v":1,"data":${data},"createdAt":0,"absoluteExpiresAt":1,"principal":null}`
    // both read paths: the text a store read as a string, and bytes
    const readPaths = [
      ["text", (text: string) => plain.decodeString(text)],
      ["bytes", (text: string) => plain.decodeText(utf8.encode(text))]
    ] as const

    for (const [path, read] of readPaths) {
      it(`changes no prototype and adds no key (${path})`, () => {
        // written out, and hidden behind \u escapes
        for (const key of [`"__proto__"`, `"\\u005f_proto__"`, `"__pr\\u006fto__"`]) {
          const decoded = read(stored(`{"prefs":{${key}:{"isAdmin":true},"theme":"dark"},"profile":{${key}:{"isAdmin":true}}}`))
          assert(Either.isRight(decoded), `${key}: ${Either.isLeft(decoded) ? decoded.left.message : ""}`)
          const { prefs, profile } = decoded.right.envelope.data as { prefs: Record<string, unknown>; profile?: object }
          expect(Object.getPrototypeOf(prefs), key).toBe(Object.prototype)
          expect(prefs["isAdmin"], key).toBeUndefined()
          expect(Object.keys(prefs), key).toEqual(["theme"])
          assert(profile !== undefined)
          expect(Object.getPrototypeOf(profile), key).toBe(Object.prototype)
          expect((profile as Record<string, unknown>)["isAdmin"], key).toBeUndefined()
          expect(Object.getPrototypeOf(decoded.right.envelope)).toBe(Object.prototype)
        }
        expect(({} as Record<string, unknown>)["isAdmin"]).toBeUndefined()
      })

      it(`keeps constructor and prototype keys as own data, changing no prototype (${path})`, () => {
        const decoded = read(stored(`{"prefs":{"constructor":{"prototype":{"isAdmin":true}},"prototype":{"isAdmin":true}}}`))
        assert(Either.isRight(decoded))
        const prefs = decoded.right.envelope.data.prefs
        expect(Object.getPrototypeOf(prefs)).toBe(Object.prototype)
        expect(Object.keys(prefs)).toEqual(["constructor", "prototype"])
        expect(prefs["constructor"]).toEqual({ prototype: { isAdmin: true } })
        expect(({} as Record<string, unknown>)["isAdmin"]).toBeUndefined()
        expect(Object.prototype.constructor).toBe(Object)
      })
    }
  })

  it.effect("invalid UTF-8 never decodes (no replacement characters slip through)", () =>
    Effect.gen(function*() {
      const valid = yield* codec.encode(envelope({ username: "é", visits: 0 }))
      const at = valid.indexOf(0xc3) // the first byte of "é"
      expect(at).toBeGreaterThan(0)
      const lone = valid.slice()
      lone[at + 1] = 0x22 // a lead byte followed by ASCII: an invalid sequence inside a JSON string
      yield* decodeFailure(lone)
      yield* decodeFailure(new Uint8Array([0xff, 0xfe, 0xfd]))
      yield* decodeFailure(new Uint8Array([0x7b, 0x22, 0xed, 0xa0, 0x80, 0x22, 0x7d])) // an encoded surrogate
      yield* decodeFailure(new Uint8Array([0x7b, 0x22, 0xc0, 0xaf, 0x22, 0x7d])) // an overlong "/"
      yield* decodeFailure(new Uint8Array([]))
    }))

  it.effect("every truncation of a stored session fails with SessionDecodeError (never a defect)", () =>
    Effect.gen(function*() {
      const valid = yield* codec.encode(envelope({ username: "trunc€ated 🎉", visits: 5, prefs: { a: [1, 2] } }, Option.some("p")))
      for (let length = 0; length < valid.length; length++) {
        yield* decodeFailure(valid.slice(0, length))
      }
      yield* codec.decode(valid)
    }))

  it.effect("the size limit is exact and counts bytes: limit bytes are stored, limit + 1 fail with SessionTooLarge", () =>
    Effect.gen(function*() {
      // 3 bytes per "€", 4 per "🎉" (a surrogate pair): a limit counted in UTF-16 units would be far off
      for (const username of ["€".repeat(100), "🎉".repeat(40)]) {
        const sample = envelope({ username, visits: 1 })
        const size = (yield* codec.encode(sample)).length
        expect(size).toBe(utf8.encode(JSON.stringify({ v: 1, data: { username, visits: 1 }, createdAt: sample.createdAt, absoluteExpiresAt: sample.absoluteExpiresAt, principal: null })).length)
        const atLimit = SessionCodec.make(Data as unknown as Schema.Schema<Data, unknown, never>, { maxSize: size })
        expect((yield* atLimit.encode(sample)).length).toBe(size)
        const under = SessionCodec.make(Data as unknown as Schema.Schema<Data, unknown, never>, { maxSize: size - 1 })
        const error = yield* Effect.flip(under.encode(sample))
        assert(error._tag === "SessionTooLarge")
        expect(error.size).toBe(size)
        expect(error.limit).toBe(size - 1)
        expect(error.message).toBe(`session data encodes to ${size} bytes, over the limit of ${size - 1} bytes`)
      }
    }))

  it("a stored record over the size limit is refused before it is parsed, on both read paths; one at the limit loads", () => {
    const parse = vi.spyOn(JSON, "parse")
    try {
      // ASCII; 3 bytes per UTF-16 unit ("€": the text is within the limit in
      // units, over it in bytes); 2 units and 4 bytes per "🎉"
      for (const username of ["x".repeat(300), "€".repeat(100), "🎉".repeat(40)]) {
        const text = Either.getOrThrow(codec_(Infinity).encodeText(envelope({ username, visits: 1 })))
        const bytes = utf8.encode(text)
        const size = bytes.length
        const atLimit = codec_(size)
        const loaded = [
          atLimit.decodeString(text),
          atLimit.decodeText(bytes),
          Either.map(atLimit.decodeEither(bytes), (envelope) => ({ envelope }))
        ]
        for (const decoded of loaded) {
          assert(Either.isRight(decoded))
          expect(decoded.right.envelope.data).toEqual({ username, visits: 1 })
        }
        for (const limit of [size - 1, Math.floor(size / 2), text.length - 1]) {
          const under = codec_(limit)
          parse.mockClear()
          const refused = [under.decodeString(text), under.decodeText(bytes), under.decodeEither(bytes)]
          expect(parse).not.toHaveBeenCalled()
          for (const decoded of refused as ReadonlyArray<Either.Either<unknown, SessionDecodeError>>) {
            assert(Either.isLeft(decoded), `${username.slice(0, 4)}… at limit ${limit}`)
            expect(decoded.left._tag).toBe("SessionDecodeError")
            expect(decoded.left.message).toMatch(new RegExp(`bytes, over the limit of ${limit} bytes \\(not parsed\\)$`))
            // the message tells the size, never the stored values
            expect(decoded.left.message).not.toContain(username.slice(0, 4))
          }
        }
      }
    } finally {
      parse.mockRestore()
    }
  })

  it("the size is counted in UTF-8 bytes exactly as TextEncoder writes them, without encoding", () => {
    const samples = [
      "",
      "ascii only",
      "é and € and 𝄞 (a surrogate pair)",
      "🎉".repeat(50),
      "lone \ud800 high, lone \udc00 low, reversed \udc00\ud800, at the end \ud83d",
      "\u007f\u0080\u07ff\u0800\uffff"
    ]
    for (const sample of samples) expect(SessionCodec.utf8Length(sample)).toBe(utf8.encode(sample).length)
  })

  it.effect("the default limit is 64 KiB", () =>
    Effect.gen(function*() {
      expect(SessionCodec.defaultMaxSize).toBe(65536)
      const overhead = (yield* codec.encode(envelope({ username: "", visits: 0 }))).length
      const fits = envelope({ username: "x".repeat(65536 - overhead), visits: 0 })
      expect((yield* codec.encode(fits)).length).toBe(65536)
      const error = yield* Effect.flip(codec.encode(envelope({ username: "x".repeat(65537 - overhead), visits: 0 })))
      expect(error._tag).toBe("SessionTooLarge")
    }))

  it.effect("a value that fails a refinement fails encode and fingerprint with SessionEncodeError", () =>
    Effect.gen(function*() {
      const encodeError = yield* Effect.flip(codec.encode(envelope({ visits: 0, count: 1.5 })))
      expect(encodeError._tag).toBe("SessionEncodeError")
      // the field, not the value (it is the app's data, and the message is logged)
      expect(encodeError.message).toBe("session data does not match its schema: invalid value at count")
      const fingerprintError = yield* Effect.flip(codec.fingerprint({ visits: 0, count: 1.5 }))
      expect(fingerprintError._tag).toBe("SessionEncodeError")
    }))

  it.effect("fingerprints: equal data gives equal strings, any change gives a different one, and a decoded value matches its original", () =>
    Effect.gen(function*() {
      const a: Data = { username: "u", visits: 1, since: new Date(0) }
      expect(yield* codec.fingerprint(a)).toBe(yield* codec.fingerprint({ username: "u", visits: 1, since: new Date(0) }))
      expect(yield* codec.fingerprint(a)).not.toBe(yield* codec.fingerprint({ ...a, visits: 2 }))
      expect(yield* codec.fingerprint(a)).not.toBe(yield* codec.fingerprint({ ...a, since: new Date(1) }))
      expect(yield* codec.fingerprint(a)).not.toBe(yield* codec.fingerprint({ visits: 1, since: new Date(0) }))
      const decoded = yield* codec.decode(yield* codec.encode(envelope(a)))
      expect(yield* codec.fingerprint(decoded.data)).toBe(yield* codec.fingerprint(a))
    }))
})

describe("SessionId", () => {
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

  it("parse accepts exactly 43 characters of the base64url alphabet", () => {
    for (const c of alphabet) {
      expect(Option.isSome(SessionId.parse(c.repeat(43)))).toBe(true)
    }
    const base = "A".repeat(43)
    for (let code = 0; code < 256; code++) {
      const c = String.fromCharCode(code)
      if (alphabet.includes(c)) continue
      for (const at of [0, 21, 42]) {
        const candidate = base.slice(0, at) + c + base.slice(at + 1)
        expect(SessionId.parse(candidate), `char ${code} at ${at}`).toEqual(Option.none())
      }
    }
    for (const c of ["é", "\u{1F389}", "\u0130", "\u212A", "\uFF21"]) {
      expect(SessionId.parse(c + "A".repeat(42))).toEqual(Option.none())
    }
    expect(SessionId.parse(undefined)).toEqual(Option.none())
    expect(SessionId.parse("")).toEqual(Option.none())
    expect(SessionId.parse("A".repeat(42))).toEqual(Option.none())
    expect(SessionId.parse("A".repeat(44))).toEqual(Option.none())
    expect(SessionId.parse(base + "\n")).toEqual(Option.none())
    expect(SessionId.parse("\n" + base)).toEqual(Option.none())
    expect(SessionId.parse(base + "=")).toEqual(Option.none())
    expect(SessionId.parse(` ${base}`)).toEqual(Option.none())
    expect(SessionId.isSessionId(base)).toBe(true)
    expect(SessionId.isSessionId(43)).toBe(false)
  })

  it("generated ids are 32 random bytes in base64url, distinct over many draws", () => {
    const draws = 20_000
    const ids = new Set<string>()
    const seenAt = Array.from({ length: 43 }, () => new Set<string>())
    for (let i = 0; i < draws; i++) {
      const id = SessionId.unsafeGenerate()
      expect(Option.isSome(SessionId.parse(id))).toBe(true)
      ids.add(id)
      for (let j = 0; j < 43; j++) seenAt[j].add(id[j])
    }
    expect(ids.size).toBe(draws)
    expect(Buffer.from(SessionId.unsafeGenerate(), "base64url").length).toBe(32)
    // every position but the last (which carries 4 bits) sees the whole alphabet
    for (let j = 0; j < 42; j++) expect(seenAt[j].size).toBe(64)
    expect(seenAt[42].size).toBe(16)
  })

  it.effect("generate is an effect giving a fresh id each run", () =>
    Effect.gen(function*() {
      const a = yield* SessionId.generate
      const b = yield* SessionId.generate
      expect(SessionId.isSessionId(a)).toBe(true)
      expect(a).not.toBe(b)
    }))

  it("the storage key is base64url(SHA-256(id)), or HMAC-SHA-256 with a pepper", () => {
    const id = SessionId.unsafeGenerate()
    const sha = createHash("sha256").update(id, "utf8").digest("base64url")
    expect(SessionId.storageKey(id)).toBe(sha)
    expect(SessionId.makeStorageKey()(id)).toBe(sha)
    expect(sha).toMatch(/^[A-Za-z0-9_-]{43}$/)
    const pepper = Redacted.make("pepper one")
    const hmac = createHmac("sha256", "pepper one").update(id, "utf8").digest("base64url")
    expect(SessionId.makeStorageKey(pepper)(id)).toBe(hmac)
    expect(hmac).not.toBe(sha)
    expect(SessionId.makeStorageKey(Redacted.make("pepper two"))(id)).not.toBe(hmac)
    // the key never contains the id
    expect(SessionId.storageKey(id)).not.toContain(id)
    // deterministic, and distinct for distinct ids
    expect(SessionId.storageKey(id)).toBe(SessionId.storageKey(id))
    expect(SessionId.storageKey(SessionId.unsafeGenerate())).not.toBe(SessionId.storageKey(id))
  })

  it("the log prefix is 8 characters of the storage key", () => {
    const key = SessionId.storageKey(SessionId.unsafeGenerate())
    expect(SessionId.logPrefix(key)).toBe(key.slice(0, 8))
    expect(SessionId.logPrefix(key).length).toBe(8)
  })
})
