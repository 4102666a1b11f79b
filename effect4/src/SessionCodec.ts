/**
 * The session codec on Effect 4's Schema: the session's data through its
 * schema, inside the core's envelope (`src/core/record.ts`). Results, not
 * effects: a save encodes and compares in one synchronous step.
 *
 * @since 2.0.0
 */
import { Option, Result, Schema, SchemaIssue } from "effect"
import * as Record from "../../src/core/record.js"
import { SessionDecodeError, SessionEncodeError, SessionTooLarge } from "./SessionError.js"

/**
 * A decoded record: the session's data and the envelope's fields.
 *
 * @since 2.0.0
 * @category models
 */
export interface Envelope<A> {
  readonly data: A
  readonly createdAt: number
  readonly absoluteExpiresAt: number
  readonly principal: Option.Option<string>
}

/**
 * The largest encoded session by default: 64 KiB.
 *
 * @since 2.0.0
 * @category constants
 */
export const defaultMaxSize = 64 * 1024

/**
 * The codec of one session schema.
 *
 * @since 2.0.0
 * @category models
 */
export interface SessionCodec<A> {
  /** The envelope's text, within the size limit. */
  readonly encodeText: (envelope: Envelope<A>) => Result.Result<string, SessionEncodeError | SessionTooLarge>
  /** The envelope in stored text; a text over the size limit is not parsed. */
  readonly decodeText: (text: string) => Result.Result<Envelope<A>, SessionDecodeError>
  /** The data's JSON: two values of the session are the same exactly when these are equal. */
  readonly fingerprint: (data: A) => Result.Result<string, SessionEncodeError>
  /** `encodeText` of an envelope whose data's `fingerprint` is `json` (the data encoded once for both). */
  readonly encodeFingerprint: (json: string, envelope: Envelope<A>) => Result.Result<string, SessionTooLarge>
  /** Whether writing `data` would store exactly the data of `stored` (decoded as `loaded`). */
  readonly unchanged: (data: A, loaded: Envelope<A>, stored: string) => Result.Result<boolean, SessionEncodeError>
}

const issues = SchemaIssue.makeFormatterStandardSchemaV1()

/**
 * Builds the codec of a session schema. Errors name the schema's own fields
 * that failed, never a value (session values are personal data).
 *
 * @since 2.0.0
 * @category constructors
 */
export const make = <A>(
  schema: Schema.Codec<A, unknown>,
  options?: { readonly maxSize?: number | undefined; readonly fields?: ReadonlyArray<PropertyKey> | undefined }
): SessionCodec<A> => {
  const maxSize = options?.maxSize ?? defaultMaxSize
  const fields = new Set(options?.fields ?? [])
  const encodeData = Schema.encodeResult(schema)
  const decodeData = Schema.decodeUnknownResult(schema)
  const failedAt = (error: Schema.SchemaError): string => {
    const at = new Set<string>()
    for (const issue of issues(error.issue).issues) {
      const segment = issue.path?.[0]
      const field = typeof segment === "object" ? segment.key : segment
      if (field !== undefined && fields.has(field)) at.add(String(field))
    }
    return [...at].join(", ")
  }
  const fingerprint = (data: A): Result.Result<string, SessionEncodeError> =>
    Result.match(encodeData(data), {
      onFailure: (error) => {
        const at = failedAt(error)
        return Result.fail(
          new SessionEncodeError({ cause: new Error(at === "" ? "a value is invalid" : `invalid value at ${at}`) })
        )
      },
      onSuccess: (encoded) => Result.succeed(JSON.stringify(encoded))
    })
  const suffixOf = (envelope: Envelope<unknown>) =>
    Record.envelopeSuffix(envelope.createdAt, envelope.absoluteExpiresAt, Option.getOrNull(envelope.principal))
  const decodeFailure = (cause: unknown) => Result.fail(new SessionDecodeError({ cause }))
  const encodeFingerprint = (json: string, envelope: Envelope<A>): Result.Result<string, SessionTooLarge> => {
    const text = Record.envelopePrefix + json + suffixOf(envelope)
    const over = Record.textOverLimit(text, maxSize)
    return over === undefined
      ? Result.succeed(text)
      : Result.fail(new SessionTooLarge({ size: over.exact ? over.size : Record.utf8Length(text), limit: maxSize }))
  }
  return {
    fingerprint,
    encodeFingerprint,
    encodeText: (envelope) => Result.flatMap(fingerprint(envelope.data), (json) => encodeFingerprint(json, envelope)),
    decodeText: (text) => {
      const over = Record.textOverLimit(text, maxSize)
      if (over !== undefined) {
        return decodeFailure(
          new Error(`the stored record is ${over.exact ? "" : "at least "}${over.size} bytes, over the limit of ${maxSize} bytes (not parsed)`)
        )
      }
      const read = Record.readEnvelope(text)
      if (read._tag === "Invalid") return decodeFailure(read.error)
      const data = decodeData(read.fields.data)
      if (Result.isFailure(data)) {
        const at = failedAt(data.failure)
        return decodeFailure(new Error(`the data does not match the schema${at === "" ? "" : ` at ${at}`}`))
      }
      return Result.succeed({
        data: data.success,
        createdAt: read.fields.createdAt,
        absoluteExpiresAt: read.fields.absoluteExpiresAt,
        principal: Option.fromNullishOr(read.fields.principal)
      })
    },
    unchanged: (data, loaded, stored) =>
      Result.flatMap(fingerprint(data), (json) => {
        const inPlace = Record.storesSameData(stored, json, suffixOf(loaded))
        if (inPlace !== undefined) return Result.succeed(inPlace)
        // not this layout (written by hand or another release): compare encodings
        return Result.map(fingerprint(loaded.data), (before) => before === json)
      })
  }
}
