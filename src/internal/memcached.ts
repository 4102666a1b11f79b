import { Option } from "effect"
import { createHash } from "node:crypto"
import type { SessionRecord } from "../SessionStore.js"

/**
 * Memcached rejects keys over 250 bytes.
 *
 * @internal
 */
export const maxKeyBytes = 250

/**
 * Storage keys are base64url SHA-256 digests: always 43 ASCII bytes.
 *
 * @internal
 */
export const storageKeyBytes = 43

/**
 * An exptime up to 30 days is relative seconds; anything larger is read by
 * Memcached as an absolute Unix time.
 *
 * @internal
 */
export const maxRelativeSeconds = 30 * 24 * 60 * 60

/**
 * The ASCII protocol splits commands on spaces and ends them on CR LF: a key
 * may hold only printable ASCII without the space.
 *
 * @internal
 */
export const safeKeyCharacters = /^[\x21-\x7e]*$/

/**
 * Turns the configured prefix into the one keys are built with, or says why
 * it cannot be used. A prefix too long to leave room for a storage key is
 * shortened to its head plus its SHA-256, so that distinct prefixes still
 * give distinct keys and every key fits in 250 bytes.
 *
 * @internal
 */
export const keyPrefix = (prefix: string): { readonly _tag: "Right"; readonly prefix: string } | {
  readonly _tag: "Left"
  readonly reason: string
} => {
  if (!safeKeyCharacters.test(prefix)) {
    return {
      _tag: "Left",
      reason: `prefix ${
        JSON.stringify(prefix)
      } holds a space, a control or a non-ASCII character, which Memcached keys cannot contain`
    }
  }
  const room = maxKeyBytes - storageKeyBytes
  if (prefix.length <= room) return { _tag: "Right", prefix }
  const digest = createHash("sha256").update(prefix).digest("base64url")
  return { _tag: "Right", prefix: `${prefix.slice(0, room - digest.length - 1)}${digest}:` }
}

/**
 * The native expiry of a record, in Memcached's terms: relative seconds when
 * at most 30 days away, an absolute Unix time otherwise (a relative count over
 * 30 days would be read as a date in January 1970 and the item would expire at
 * once). It is rounded up and given one more second, because Memcached's clock
 * ticks in whole seconds and may otherwise drop an item up to a second before
 * its `expiresAt`. A deadline already passed still gets a short life: `load`
 * hides the record, and the item must not be immortal (exptime 0).
 *
 * @internal
 */
export const exptime = (expiresAt: number, now: number): number => {
  const seconds = Math.max(1, Math.ceil((expiresAt - now) / 1000)) + 1
  return seconds <= maxRelativeSeconds ? seconds : Math.ceil(expiresAt / 1000) + 1
}

const format = 1
const headerBytes = 1 + 1 + 8 + 8 + 4

/**
 * The stored value: a format byte, a flags byte (bit 0: a principal is
 * present), the version and `expiresAt` as big-endian float64, the principal's
 * UTF-8 length as uint32 and its bytes, then the session data as is.
 *
 * @internal
 */
export const encode = (record: SessionRecord): Buffer => {
  const principal = Option.isSome(record.principal) ? Buffer.from(record.principal.value, "utf8") : undefined
  const principalBytes = principal?.length ?? 0
  const buffer = Buffer.allocUnsafe(headerBytes + principalBytes + record.data.length)
  buffer.writeUInt8(format, 0)
  buffer.writeUInt8(principal === undefined ? 0 : 1, 1)
  buffer.writeDoubleBE(record.version, 2)
  buffer.writeDoubleBE(record.expiresAt, 10)
  buffer.writeUInt32BE(principalBytes, 18)
  if (principal !== undefined) principal.copy(buffer, headerBytes)
  buffer.set(record.data, headerBytes + principalBytes)
  return buffer
}

/**
 * Reads a stored value back, or `undefined` when it is not one written by
 * `encode` (another program's item under the same key, a truncated value).
 *
 * @internal
 */
export const decode = (value: unknown): SessionRecord | undefined => {
  if (!Buffer.isBuffer(value) || value.length < headerBytes || value.readUInt8(0) !== format) return undefined
  const flags = value.readUInt8(1)
  const version = value.readDoubleBE(2)
  const expiresAt = value.readDoubleBE(10)
  const principalBytes = value.readUInt32BE(18)
  if (
    flags > 1 || !Number.isSafeInteger(version) || !Number.isFinite(expiresAt) ||
    headerBytes + principalBytes > value.length || (flags === 0 && principalBytes !== 0)
  ) {
    return undefined
  }
  const principal = flags === 1
    ? Option.some(value.toString("utf8", headerBytes, headerBytes + principalBytes))
    : Option.none()
  // a copy: the client may reuse the memory of the buffer it read into
  const data = new Uint8Array(value.subarray(headerBytes + principalBytes))
  return { data, version, expiresAt, principal }
}
