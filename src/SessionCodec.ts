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
import * as Record from "./core/record.js"
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
export const version: number = Record.envelopeVersion

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

/**
 * The length of a string's UTF-8 encoding, as `TextEncoder` writes it,
 * without encoding it.
 *
 * @internal
 */
export const utf8Length: (text: string) => number = Record.utf8Length

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
    const text = Record.envelopeSuffix(createdAt, absoluteExpiresAt, name)
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
    const over = Record.textOverLimit(text, maxSize)
    return over === undefined ? parse(text) : tooLarge(over.size, over.exact)
  }
  const parse = (
    text: string
  ): Either.Either<{ readonly envelope: Envelope<A>; readonly text: string }, SessionDecodeError> => {
    // the envelope's fields are checked by the core, the data by the
    // session's schema
    const read = Record.readEnvelope(text)
    if (read._tag === "Invalid") return decodeFailure(read.error)
    const { absoluteExpiresAt, createdAt, principal } = read.fields
    const data = decodeData(read.fields.data)
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
    const text = Record.envelopePrefix + data.right +
      suffix(envelope.createdAt, envelope.absoluteExpiresAt, envelope.principal)
    const over = Record.textOverLimit(text, maxSize)
    return over === undefined
      ? Either.right(text)
      : Either.left(new SessionTooLarge({ size: over.exact ? over.size : Record.utf8Length(text), limit: maxSize }))
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
    const same = Record.storesSameData(text, json.right, suffix(loaded.createdAt, loaded.absoluteExpiresAt, loaded.principal))
    if (same !== undefined) return Either.right(same)
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
