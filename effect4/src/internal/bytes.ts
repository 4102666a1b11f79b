/**
 * This line's records are text (`SessionCodec` writes JSON text); the stores
 * that hold bytes (files, SQL, DynamoDB) keep its UTF-8 bytes, as the Effect 3
 * line's JSON codec writes them.
 *
 * @internal
 */
import { Option } from "effect"
import type { SessionRecord, SessionWrite } from "../SessionStore.js"

const encoder = new TextEncoder()
const decoder = new TextDecoder()

/** A write as a byte store keeps it. @internal */
export const bytesWrite = (write: SessionWrite): {
  readonly data: Uint8Array
  readonly expiresAt: number
  readonly principal: string | undefined
} => ({
  data: encoder.encode(write.text),
  expiresAt: write.expiresAt,
  principal: Option.getOrUndefined(write.principal)
})

/** A record a byte store read, as this line's store contract gives it. @internal */
export const textRecord = (record: {
  readonly data: Uint8Array
  readonly version: number
  readonly expiresAt: number
  readonly principal?: string | null | undefined
}): SessionRecord => ({
  text: decoder.decode(record.data),
  version: record.version,
  expiresAt: record.expiresAt,
  principal: Option.fromNullishOr(record.principal)
})
