/**
 * The record format: what a store holds under a storage key, as text. A
 * session is the envelope
 * `{"v":1,"data":<data JSON>,"createdAt":…,"absoluteExpiresAt":…,"principal":…}`
 * (the data's JSON is made and checked by each line's schema); a session
 * that moved or ended is a tombstone, `{"v":1,"tombstone":<key or null>}`.
 *
 * @internal
 */
import { Buffer } from "node:buffer"

/**
 * The envelope version written by this release.
 *
 * @internal
 */
export const envelopeVersion = 1

/**
 * The envelope's text before the data's JSON.
 *
 * @internal
 */
export const envelopePrefix = `{"v":${envelopeVersion},"data":`

/**
 * The envelope's text after the data's JSON.
 *
 * @internal
 */
export const envelopeSuffix = (createdAt: number, absoluteExpiresAt: number, principal: string | null): string =>
  `,"createdAt":${JSON.stringify(createdAt)},"absoluteExpiresAt":${JSON.stringify(absoluteExpiresAt)},` +
  `"principal":${principal === null ? "null" : JSON.stringify(principal)}}`

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
 * The UTF-8 size of a text when it is over `limit` (`exact: false` when it
 * is over by its length alone, and was not measured), else `undefined`. A
 * UTF-16 code unit is 1 to 3 UTF-8 bytes: only a text that may be over the
 * limit is measured.
 *
 * @internal
 */
export const textOverLimit = (
  text: string,
  limit: number
): { readonly size: number; readonly exact: boolean } | undefined => {
  if (text.length * 3 <= limit) return undefined
  if (text.length > limit) return { size: text.length, exact: false }
  const size = utf8Length(text)
  return size > limit ? { size, exact: true } : undefined
}

/**
 * Whether a JSON text may hold a key that parses to `"__proto__"`: it is
 * written out, or hidden behind a `\u` escape (no other escape makes any
 * of its letters). `JSON.stringify` writes `\u` only for control
 * characters and lone surrogates, so session data almost never takes the
 * slower reviver path.
 */
const mayHavePrototypeKey = (text: string): boolean => text.includes("__proto__") || text.includes("\\u")

/**
 * `JSON.parse` keeps a `"__proto__"` key as an own property, but a schema
 * that copies keys into a new object by assignment (Effect 3's
 * `Schema.Record`) sets the copy's prototype with it: stored data must never
 * choose a prototype. Such keys are dropped at any depth. (`constructor` and
 * `prototype` keys stay: as own data properties they change no prototype.)
 */
const dropPrototypeKey = (key: string, value: unknown): unknown => key === "__proto__" ? undefined : value

/**
 * `JSON.parse` of stored text, with `"__proto__"` keys dropped at any depth.
 * Throws what `JSON.parse` throws.
 *
 * @internal
 */
export const parseStoredJson = (text: string): unknown =>
  mayHavePrototypeKey(text) ? JSON.parse(text, dropPrototypeKey) : JSON.parse(text)

/**
 * The envelope's own fields, checked (the data is left to the schema).
 *
 * @internal
 */
export interface EnvelopeFields {
  readonly data: unknown
  readonly createdAt: number
  readonly absoluteExpiresAt: number
  readonly principal: string | null
}

/**
 * Reads an envelope from stored text: its fields, or the reason it is not
 * one (the reason never quotes the stored values).
 *
 * @internal
 */
export const readEnvelope = (
  text: string
): { readonly _tag: "Envelope"; readonly fields: EnvelopeFields } | { readonly _tag: "Invalid"; readonly error: unknown } => {
  let json: unknown
  try {
    json = parseStoredJson(text)
  } catch (error) {
    return { _tag: "Invalid", error }
  }
  if (typeof json !== "object" || json === null || Array.isArray(json)) {
    return { _tag: "Invalid", error: new Error("a session envelope must be a JSON object") }
  }
  const fields = json as Record<string, unknown>
  if (fields.v !== envelopeVersion) {
    return {
      _tag: "Invalid",
      error: new Error(
        `unsupported envelope version ${JSON.stringify(fields.v)} (this release reads ${envelopeVersion})`
      )
    }
  }
  const { absoluteExpiresAt, createdAt, principal } = fields
  if (typeof createdAt !== "number" || typeof absoluteExpiresAt !== "number") {
    return { _tag: "Invalid", error: new Error("createdAt and absoluteExpiresAt must be numbers") }
  }
  if (principal !== null && typeof principal !== "string") {
    return { _tag: "Invalid", error: new Error("principal must be a string or null") }
  }
  if (!("data" in fields)) return { _tag: "Invalid", error: new Error("the envelope has no data") }
  return { _tag: "Envelope", fields: { data: fields.data, createdAt, absoluteExpiresAt, principal } }
}

/**
 * Whether stored text holds exactly `dataJson` as its data, given the suffix
 * its other fields give; `undefined` when the text is not in this layout
 * (written by hand or by another release: then compare decoded values).
 * Compared in place: no copy of the stored data's JSON.
 *
 * @internal
 */
export const storesSameData = (stored: string, dataJson: string, suffix: string): boolean | undefined => {
  if (!stored.startsWith(envelopePrefix) || !stored.endsWith(suffix)) return undefined
  return stored.length === envelopePrefix.length + dataJson.length + suffix.length &&
    stored.startsWith(dataJson, envelopePrefix.length)
}

// --- Tombstones --------------------------------------------------------------

const tombstonePrefix = `{"v":${envelopeVersion},"tombstone":`
const tombstonePrefixBytes = new TextEncoder().encode(tombstonePrefix)
// a tombstone is under 70 bytes: anything longer is not parsed as one
const tombstoneMaxLength = 128
const textDecoder = new TextDecoder()

/**
 * The record that replaces a session that moved to the storage key
 * `movedTo` (a `regenerate` or `login`) or ended (`null`). An older
 * release reads it as an undecodable record, that is, no session.
 *
 * @internal
 */
export const tombstoneText = (movedTo: string | null): string =>
  `${tombstonePrefix}${movedTo === null ? "null" : JSON.stringify(movedTo)}}`

/**
 * The tombstone in stored text or bytes: where the session moved (`null`:
 * it ended), or `undefined` when the record is not a tombstone.
 *
 * @internal
 */
export const readTombstone = (stored: { readonly text?: string | undefined; readonly data: Uint8Array }): {
  readonly movedTo: string | null
} | undefined => {
  let text: string
  if (stored.text !== undefined) {
    if (stored.text.length > tombstoneMaxLength || !stored.text.startsWith(tombstonePrefix)) return undefined
    text = stored.text
  } else {
    const bytes = stored.data
    if (bytes.length < tombstonePrefixBytes.length || bytes.length > tombstoneMaxLength) return undefined
    for (let i = 0; i < tombstonePrefixBytes.length; i++) if (bytes[i] !== tombstonePrefixBytes[i]) return undefined
    text = textDecoder.decode(bytes)
  }
  let movedTo: unknown
  try {
    movedTo = (JSON.parse(text) as { tombstone: unknown }).tombstone
  } catch {
    return undefined
  }
  return { movedTo: typeof movedTo === "string" && /^[A-Za-z0-9_-]{43}$/.test(movedTo) ? movedTo : null }
}

// --- Revocation markers ------------------------------------------------------

const revocationPrefix = `{"v":${envelopeVersion},"revoked":`
// a marker is under 40 bytes: anything longer is not parsed as one
const revocationMaxLength = 64

/**
 * The record that says every session of a principal was revoked at
 * `revokedAt` (epoch milliseconds): `{"v":1,"revoked":<ms>}`. It has no
 * principal, so no index lists it; an older release reads it as an
 * undecodable record, and no session ever has its key (see
 * `revocation.ts`).
 *
 * @internal
 */
export const revocationText = (revokedAt: number): string => `${revocationPrefix}${JSON.stringify(revokedAt)}}`

/**
 * The time of the revocation marker in stored text or bytes, or
 * `undefined` when the record is not one.
 *
 * @internal
 */
export const readRevocation = (stored: { readonly text?: string | undefined; readonly data?: Uint8Array | undefined }): number | undefined => {
  const text = stored.text ?? (stored.data !== undefined && stored.data.length <= revocationMaxLength ? textDecoder.decode(stored.data) : "")
  if (text.length > revocationMaxLength || !text.startsWith(revocationPrefix)) return undefined
  let revokedAt: unknown
  try {
    revokedAt = (JSON.parse(text) as { revoked: unknown }).revoked
  } catch {
    return undefined
  }
  return typeof revokedAt === "number" && Number.isFinite(revokedAt) ? revokedAt : undefined
}
