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
  const encodeEnvelope = Schema.encode(envelopeSchema)
  const decodeEnvelope = Schema.decodeUnknownEither(envelopeSchema)
  const encodeData = Schema.encode(schema)
  const textEncoder = new TextEncoder()
  const textDecoder = new TextDecoder("utf-8", { fatal: true })

  return {
    encode: (envelope) =>
      encodeEnvelope({ v: version, ...envelope }).pipe(
        Effect.mapError((cause) => new SessionEncodeError({ cause: ParseResult.TreeFormatter.formatErrorSync(cause) })),
        Effect.flatMap((encoded) => {
          const bytes = textEncoder.encode(JSON.stringify(encoded))
          return bytes.length > maxSize
            ? Effect.fail(new SessionTooLarge({ size: bytes.length, limit: maxSize }))
            : Effect.succeed(bytes)
        })
      ),
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
    fingerprint: (data) =>
      encodeData(data).pipe(
        Effect.map((encoded) => JSON.stringify(encoded)),
        Effect.mapError((cause) => new SessionEncodeError({ cause: ParseResult.TreeFormatter.formatErrorSync(cause) }))
      )
  }
}
