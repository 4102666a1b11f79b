/**
 * How session data becomes bytes and back: an envelope
 * `{ v, data, createdAt, absoluteExpiresAt, principal }` whose `data` is
 * encoded with the user's Schema, serialized as JSON. Decoding uses
 * `JSON.parse` and the schema only — nothing that can execute code. The store
 * is not trusted to have written what this codec writes: a record over the
 * size limit is refused before it is parsed, and a `"__proto__"` key is
 * dropped, so stored data never chooses an object's prototype.
 *
 * @since 1.0.0
 */
import type { SchemaAST } from "effect"
import { Effect, Either, Option, ParseResult, Schema } from "effect"
import { Buffer } from "node:buffer"
import { SessionDecodeError, SessionEncodeError, SessionTooLarge } from "./SessionError.js"

/**
 * A decoded session.
 *
 * @since 1.0.0
 * @category models
 */
export interface Envelope<A> {
  readonly data: A
  /** Epoch milliseconds when the session was first stored. */
  readonly createdAt: number
  /** Epoch milliseconds after which the session is dead however active it is. */
  readonly absoluteExpiresAt: number
  /** Who the session belongs to, once `login` bound it. */
  readonly principal: Option.Option<string>
}

/**
 * @since 1.0.0
 * @category models
 */
export interface SessionCodec<A> {
  readonly encode: (envelope: Envelope<A>) => Effect.Effect<Uint8Array, SessionEncodeError | SessionTooLarge>
  /**
   * Fails with `SessionDecodeError`, without parsing, when `bytes` are over
   * the size limit; drops `"__proto__"` keys at any depth.
   */
  readonly decode: (bytes: Uint8Array) => Effect.Effect<Envelope<A>, SessionDecodeError>
  /**
   * The data in its encoded (JSON) form, as a string: two values of the
   * session are the same exactly when these strings are equal.
   */
  readonly fingerprint: (data: A) => Effect.Effect<string, SessionEncodeError>
}

/**
 * The default limit on an encoded session: 64 KiB.
 *
 * @since 1.0.0
 * @category constants
 */
export const defaultMaxSize = 64 * 1024

/**
 * The envelope version written by this release.
 *
 * @since 1.0.0
 * @category constants
 */
export const version = 1

/**
 * The codec with its synchronous cores, which the session lifecycle calls
 * directly (no effect per call on the hot path).
 *
 * @internal
 */
export interface SessionCodecImpl<A> extends SessionCodec<A> {
  readonly encodeEither: (envelope: Envelope<A>) => Either.Either<Uint8Array, SessionEncodeError | SessionTooLarge>
  /**
   * `encodeEither` before the text becomes bytes: the envelope's JSON, whose
   * UTF-8 encoding is within the size limit.
   */
  readonly encodeText: (envelope: Envelope<A>) => Either.Either<string, SessionEncodeError | SessionTooLarge>
  readonly decodeEither: (bytes: Uint8Array) => Either.Either<Envelope<A>, SessionDecodeError>
  readonly fingerprintEither: (data: A) => Either.Either<string, SessionEncodeError>
  /**
   * Whether writing `data` would store exactly the data of `loaded`, which
   * was decoded from `stored`. Compares with the stored text itself when it
   * has this codec's layout (no re-encoding of what was loaded), with the
   * encoding of `loaded` otherwise.
   */
  readonly unchanged: (data: A, loaded: Envelope<A>, stored: string) => Either.Either<boolean, SessionEncodeError>
  /** `decodeEither`, also giving the stored text (for `unchanged`). */
  readonly decodeText: (bytes: Uint8Array) => Either.Either<{ readonly envelope: Envelope<A>; readonly text: string }, SessionDecodeError>
  /** `decodeText` of data a store already read as text. */
  readonly decodeString: (text: string) => Either.Either<{ readonly envelope: Envelope<A>; readonly text: string }, SessionDecodeError>
}

const prefix = `{"v":${version},"data":`

/**
 * The length of a string's UTF-8 encoding, as `TextEncoder` writes it (a
 * lone surrogate becomes U+FFFD, 3 bytes), without encoding it. Node's
 * native count: about ten times faster than a loop over the code units on a
 * 30 KB text, which every load of a large session pays.
 *
 * @internal
 */
export const utf8Length = (text: string): number => Buffer.byteLength(text, "utf8")

/**
 * Whether a JSON text may hold a key that parses to `"__proto__"`: it is
 * written out, or hidden behind a `\u` escape (no other escape makes any
 * of its letters). `JSON.stringify` writes `\u` only for control
 * characters and lone surrogates, so session data almost never takes the
 * slower reviver path.
 */
const mayHavePrototypeKey = (text: string): boolean => text.includes("__proto__") || text.includes("\\u")

/**
 * `JSON.parse` keeps a `"__proto__"` key as an own property, but
 * `Schema.Record`'s parser copies every key into a new object by assignment,
 * and assigning `"__proto__"` sets the copy's prototype: with a
 * `Schema.Record` field, `{"prefs":{"__proto__":{"isAdmin":true}}}` decoded
 * to a `prefs` whose `isAdmin` was `true`. Such keys are dropped at any
 * depth, so stored data never chooses a prototype. (`constructor` and
 * `prototype` keys stay: as own data properties they change no prototype.)
 */
const dropPrototypeKey = (key: string, value: unknown): unknown => key === "__proto__" ? undefined : value

/** The property names of a struct schema, encoded and decoded side. */
const declaredFields = (ast: SchemaAST.AST): ReadonlySet<PropertyKey> => {
  switch (ast._tag) {
    case "TypeLiteral":
      return new Set(ast.propertySignatures.map((signature) => signature.name))
    case "Transformation":
      return new Set([...declaredFields(ast.from), ...declaredFields(ast.to)])
    case "Refinement":
      return declaredFields(ast.from)
    default:
      return new Set()
  }
}

/**
 * Builds a codec for a session schema. Build it once (per middleware), not
 * per request: the schema's parsers are compiled here.
 *
 * @since 1.0.0
 * @category constructors
 */
export const make = <A, I>(
  schema: Schema.Schema<A, I, never>,
  options?: { readonly maxSize?: number | undefined }
): SessionCodec<A> => makeImpl(schema, options)

/** @internal */
export const makeImpl = <A, I>(
  schema: Schema.Schema<A, I, never>,
  options?: { readonly maxSize?: number | undefined }
): SessionCodecImpl<A> => {
  const maxSize = options?.maxSize ?? defaultMaxSize
  const decodeData = Schema.decodeUnknownEither(schema)
  const encodeData = Schema.encodeEither(schema)
  // A schema error quotes the values it rejected, and record keys in its
  // paths are data too: errors name only the schema's own fields that
  // failed, so no session value reaches an error message or a log line.
  const fields = declaredFields(schema.ast)
  const failedFields = (error: ParseResult.ParseError): string => {
    const at = new Set<string>()
    for (const issue of ParseResult.ArrayFormatter.formatErrorSync(error)) {
      const field = issue.path[0]
      if (field !== undefined && fields.has(field)) at.add(String(field))
    }
    return [...at].join(", ")
  }
  const textEncoder = new TextEncoder()
  const textDecoder = new TextDecoder("utf-8", { fatal: true })

  // A save compares the data with what was loaded and then writes it, in
  // one synchronous run: the JSON of the last data object is kept for the
  // next call (data objects are never mutated: every write makes a new one).
  let lastData: unknown = undefined
  let lastJson = ""
  const dataJson = (data: A): Either.Either<string, SessionEncodeError> => {
    if (data === lastData && typeof data === "object" && data !== null) return Either.right(lastJson)
    const encoded = encodeData(data)
    if (Either.isLeft(encoded)) {
      const at = failedFields(encoded.left)
      return Either.left(new SessionEncodeError({ cause: new Error(at === "" ? "a value is invalid" : `invalid value at ${at}`) }))
    }
    const json = JSON.stringify(encoded.right)
    lastData = data
    lastJson = json
    return Either.right(json)
  }
  // A save builds the suffix of the same fields twice (to compare, then to
  // write): the last one is kept.
  let lastSuffix = { createdAt: NaN, absoluteExpiresAt: NaN, principal: null as string | null, text: "" }
  const suffix = (createdAt: number, absoluteExpiresAt: number, principal: Option.Option<string>) => {
    const name = Option.isSome(principal) ? principal.value : null
    const last = lastSuffix
    if (last.createdAt === createdAt && last.absoluteExpiresAt === absoluteExpiresAt && last.principal === name) {
      return last.text
    }
    const text = `,"createdAt":${JSON.stringify(createdAt)},"absoluteExpiresAt":${JSON.stringify(absoluteExpiresAt)},` +
      `"principal":${name === null ? "null" : JSON.stringify(name)}}`
    lastSuffix = { createdAt, absoluteExpiresAt, principal: name, text }
    return text
  }

  const decodeFailure = (cause: unknown) => Either.left(new SessionDecodeError({ cause }))

  // Checked before anything is parsed: a record over the limit (written
  // under a larger limit, or not by this codec) is refused at the cost of a
  // length check, as `encode` refuses to write one.
  const tooLarge = (size: number, exact: boolean) =>
    decodeFailure(
      new Error(`the stored record is ${exact ? "" : "at least "}${size} bytes, over the limit of ${maxSize} bytes (not parsed)`)
    )

  const decodeText = (
    bytes: Uint8Array
  ): Either.Either<{ readonly envelope: Envelope<A>; readonly text: string }, SessionDecodeError> => {
    if (bytes.length > maxSize) return tooLarge(bytes.length, true)
    let text: string
    try {
      text = textDecoder.decode(bytes)
    } catch (cause) {
      return decodeFailure(cause)
    }
    return parse(text)
  }
  const decodeString = (
    text: string
  ): Either.Either<{ readonly envelope: Envelope<A>; readonly text: string }, SessionDecodeError> => {
    // a UTF-16 code unit is 1 to 3 UTF-8 bytes: only a text that may be over
    // the limit is measured, and one longer than the limit in code units is
    // over it without measuring
    if (text.length * 3 > maxSize) {
      if (text.length > maxSize) return tooLarge(text.length, false)
      const size = utf8Length(text)
      if (size > maxSize) return tooLarge(size, true)
    }
    return parse(text)
  }
  const parse = (
    text: string
  ): Either.Either<{ readonly envelope: Envelope<A>; readonly text: string }, SessionDecodeError> => {
    let json: unknown
    try {
      json = mayHavePrototypeKey(text) ? JSON.parse(text, dropPrototypeKey) : JSON.parse(text)
    } catch (cause) {
      return decodeFailure(cause)
    }
    // the envelope's fields are checked by hand (a few typeofs), the data by
    // the session's schema
    if (typeof json !== "object" || json === null || Array.isArray(json)) {
      return decodeFailure(new Error("a session envelope must be a JSON object"))
    }
    const fields = json as Record<string, unknown>
    if (fields.v !== version) {
      return decodeFailure(new Error(`unsupported envelope version ${JSON.stringify(fields.v)} (this release reads ${version})`))
    }
    const { absoluteExpiresAt, createdAt, principal } = fields
    if (typeof createdAt !== "number" || typeof absoluteExpiresAt !== "number") {
      return decodeFailure(new Error("createdAt and absoluteExpiresAt must be numbers"))
    }
    if (principal !== null && typeof principal !== "string") {
      return decodeFailure(new Error("principal must be a string or null"))
    }
    if (!("data" in fields)) return decodeFailure(new Error("the envelope has no data"))
    const data = decodeData(fields.data)
    if (Either.isLeft(data)) {
      const at = failedFields(data.left)
      return decodeFailure(new Error(`the data does not match the schema${at === "" ? "" : ` at ${at}`}`))
    }
    const envelope: Envelope<A> = {
      data: data.right,
      createdAt,
      absoluteExpiresAt,
      principal: principal === null ? Option.none() : Option.some(principal)
    }
    return Either.right({ envelope, text })
  }
  const decodeEither = (bytes: Uint8Array): Either.Either<Envelope<A>, SessionDecodeError> =>
    Either.map(decodeText(bytes), (decoded) => decoded.envelope)

  // the envelope is assembled around the data's JSON, in the layout `decode`
  // recognises
  const encodeText = (envelope: Envelope<A>): Either.Either<string, SessionEncodeError | SessionTooLarge> => {
    const data = dataJson(envelope.data)
    if (Either.isLeft(data)) return Either.left(data.left)
    const text = prefix + data.right + suffix(envelope.createdAt, envelope.absoluteExpiresAt, envelope.principal)
    // a UTF-16 code unit is at most 3 UTF-8 bytes: only a text that may be
    // over the limit is measured
    if (text.length * 3 > maxSize) {
      const size = utf8Length(text)
      if (size > maxSize) return Either.left(new SessionTooLarge({ size, limit: maxSize }))
    }
    return Either.right(text)
  }
  const encodeEither = (envelope: Envelope<A>): Either.Either<Uint8Array, SessionEncodeError | SessionTooLarge> =>
    Either.map(encodeText(envelope), (text) => textEncoder.encode(text))

  // Only saves get here, so reads never pay for it. The stored text, when
  // `encode` laid it out, is the data's JSON between a known prefix and the
  // suffix the other fields give; equal to the new data's JSON means the
  // write would store the same bytes.
  const unchanged = (data: A, loaded: Envelope<A>, text: string): Either.Either<boolean, SessionEncodeError> => {
    if (data === loaded.data) return Either.right(true)
    const json = dataJson(data)
    if (Either.isLeft(json)) return Either.left(json.left)
    const end = suffix(loaded.createdAt, loaded.absoluteExpiresAt, loaded.principal)
    if (text.startsWith(prefix) && text.endsWith(end) && text.length === prefix.length + json.right.length + end.length) {
      // (compared in place: no copy of the stored data's JSON)
      return Either.right(text.startsWith(json.right, prefix.length))
    }
    if (text.startsWith(prefix) && text.endsWith(end)) return Either.right(false)
    return Either.map(dataJson(loaded.data), (loadedJson) => json.right === loadedJson)
  }

  return {
    encode: (envelope) => Effect.suspend(() => encodeEither(envelope)),
    decode: (bytes) => Effect.suspend(() => decodeEither(bytes)),
    fingerprint: (data) => Effect.suspend(() => dataJson(data)),
    encodeEither,
    encodeText,
    decodeEither,
    decodeText,
    decodeString,
    fingerprintEither: dataJson,
    unchanged
  }
}
