/**
 * How session data becomes bytes and back: an envelope
 * `{ v, data, createdAt, absoluteExpiresAt, principal }` whose `data` is
 * encoded with the user's Schema, serialized as JSON. Decoding uses
 * `JSON.parse` and the schema only — nothing that can execute code.
 *
 * @since 1.0.0
 */
import { Effect, Either, Option, ParseResult, Schema } from "effect"
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
 * Builds a codec for a session schema. Build it once (per middleware), not
 * per request: the schema's parsers are compiled here.
 *
 * @since 1.0.0
 * @category constructors
 */
export const make = <A, I>(
  schema: Schema.Schema<A, I, never>,
  options?: { readonly maxSize?: number | undefined }
): SessionCodec<A> => {
  const maxSize = options?.maxSize ?? defaultMaxSize
  const envelopeSchema = Schema.Struct({
    v: Schema.Literal(version),
    data: schema,
    createdAt: Schema.Number,
    absoluteExpiresAt: Schema.Number,
    principal: Schema.OptionFromNullOr(Schema.String)
  })
  const decodeEnvelope = Schema.decodeUnknownEither(envelopeSchema)
  const encodeData = Schema.encodeEither(schema)
  const textEncoder = new TextEncoder()
  const textDecoder = new TextDecoder("utf-8", { fatal: true })

  // A save compares the data with what was loaded and then writes it: the
  // JSON of one data object is computed once (data objects are never mutated:
  // every write makes a new one).
  const jsonCache = new WeakMap<object, string>()
  const dataJson = (data: A): Either.Either<string, SessionEncodeError> => {
    const cacheable = typeof data === "object" && data !== null
    const cached = cacheable ? jsonCache.get(data) : undefined
    if (cached !== undefined) return Either.right(cached)
    const encoded = encodeData(data)
    if (Either.isLeft(encoded)) {
      return Either.left(new SessionEncodeError({ cause: ParseResult.TreeFormatter.formatErrorSync(encoded.left) }))
    }
    const json = JSON.stringify(encoded.right)
    if (cacheable) jsonCache.set(data, json)
    return Either.right(json)
  }

  return {
    // the envelope is assembled around the data's JSON, in the field order of
    // `envelopeSchema`, which `decode` checks
    encode: (envelope) =>
      Effect.suspend((): Effect.Effect<Uint8Array, SessionEncodeError | SessionTooLarge> => {
        const data = dataJson(envelope.data)
        if (Either.isLeft(data)) return Effect.fail(data.left)
        const principal = Option.isSome(envelope.principal) ? JSON.stringify(envelope.principal.value) : "null"
        const bytes = textEncoder.encode(
          `{"v":${version},"data":${data.right},"createdAt":${JSON.stringify(envelope.createdAt)},` +
            `"absoluteExpiresAt":${JSON.stringify(envelope.absoluteExpiresAt)},"principal":${principal}}`
        )
        return bytes.length > maxSize
          ? Effect.fail(new SessionTooLarge({ size: bytes.length, limit: maxSize }))
          : Effect.succeed(bytes)
      }),
    // synchronous all the way: one effect per decode on the hot path of every read
    decode: (bytes) =>
      Effect.suspend(() => {
        let json: unknown
        try {
          json = JSON.parse(textDecoder.decode(bytes))
        } catch (cause) {
          return Effect.fail(new SessionDecodeError({ cause }))
        }
        const decoded = decodeEnvelope(json)
        if (Either.isLeft(decoded)) {
          return Effect.fail(new SessionDecodeError({ cause: ParseResult.TreeFormatter.formatErrorSync(decoded.left) }))
        }
        const { v: _, ...envelope } = decoded.right
        return Effect.succeed(envelope)
      }),
    fingerprint: (data) => Effect.suspend(() => dataJson(data))
  }
}
