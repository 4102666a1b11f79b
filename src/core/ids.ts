/**
 * Session ids and storage keys, without Effect: what both Effect lines
 * share. An id is 32 bytes from the platform CSPRNG as base64url without
 * padding (43 characters); a store sees only its storage key,
 * base64url(SHA-256(id)), or HMAC-SHA-256 with a pepper.
 *
 * @internal
 */
import { createHash, createHmac, randomBytes } from "node:crypto"

/**
 * What an id and a storage key look like: 43 base64url characters.
 *
 * @internal
 */
export const idPattern = /^[A-Za-z0-9_-]{43}$/

/**
 * A fresh id: 256 bits from the CSPRNG.
 *
 * @internal
 */
export const generateId = (): string => randomBytes(32).toString("base64url")

/**
 * Whether a value (a cookie, an id from a WebSocket's query) is an id. Any
 * other value is treated as absent and never reaches a store.
 *
 * @internal
 */
export const isId = (value: unknown): value is string => typeof value === "string" && idPattern.test(value)

/**
 * The function from ids to storage keys: SHA-256, or HMAC-SHA-256 keyed by
 * the pepper (keys cannot then be recomputed from a list of stolen ids
 * without it).
 *
 * @internal
 */
export const storageKeyFunction = (pepper?: string | undefined): (id: string) => string =>
  pepper === undefined
    ? (id) => createHash("sha256").update(id).digest("base64url")
    : (id) => createHmac("sha256", pepper).update(id).digest("base64url")

/**
 * The first characters of a storage key: enough to correlate log lines and
 * spans, too few to be a credential.
 *
 * @internal
 */
export const logPrefix = (key: string): string => key.slice(0, 8)
