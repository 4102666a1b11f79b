/**
 * Session ids and the keys they are stored under.
 *
 * An id is 32 bytes from the platform CSPRNG, written as base64url without
 * padding (43 characters). Stores never see it: they see the `StorageKey`,
 * base64url(SHA-256(id)) — or HMAC-SHA-256 with a pepper — so a leaked store
 * dump does not hand out live cookies.
 *
 * @since 1.0.0
 */
import type { Brand } from "effect"
import { Effect, Option, Redacted } from "effect"
import * as Ids from "./core/ids.js"

/**
 * @since 1.0.0
 * @category models
 */
export type SessionId = string & Brand.Brand<"effect-session/SessionId">

/**
 * What a store keys a record by: a digest of the id, never the id itself.
 *
 * @since 1.0.0
 * @category models
 */
export type StorageKey = string & Brand.Brand<"effect-session/StorageKey">

/**
 * A fresh id: 256 bits from the CSPRNG.
 *
 * @since 1.0.0
 * @category constructors
 */
export const generate: Effect.Effect<SessionId> = Effect.sync(unsafeGenerate)

/**
 * @since 1.0.0
 * @category constructors
 */
export function unsafeGenerate(): SessionId {
  return Ids.generateId() as SessionId
}

/**
 * Reads a cookie value as an id. Anything that is not exactly 43 base64url
 * characters is `None`: it never reaches a store.
 *
 * @since 1.0.0
 * @category parsing
 */
export const parse = (value: string | undefined): Option.Option<SessionId> =>
  Ids.isId(value) ? Option.some(value as SessionId) : Option.none()

/**
 * @since 1.0.0
 * @category refinements
 */
export const isSessionId = (value: unknown): value is SessionId => Ids.isId(value)

/**
 * Builds the function from ids to storage keys: SHA-256, or HMAC-SHA-256
 * when a pepper is given (so keys cannot be recomputed from a stolen id
 * list without the pepper).
 *
 * @since 1.0.0
 * @category storage keys
 */
export const makeStorageKey = (pepper?: Redacted.Redacted<string> | undefined): (id: SessionId) => StorageKey =>
  Ids.storageKeyFunction(pepper === undefined ? undefined : Redacted.value(pepper)) as unknown as (
    id: SessionId
  ) => StorageKey

/**
 * The unpeppered storage key of an id.
 *
 * @since 1.0.0
 * @category storage keys
 */
export const storageKey: (id: SessionId) => StorageKey = makeStorageKey()

/**
 * A storage key as a `StorageKey`, for stores that read keys back from their
 * backend (an index, a directory listing).
 *
 * @since 1.0.0
 * @category storage keys
 */
export const unsafeStorageKey = (key: string): StorageKey => key as StorageKey

/**
 * The first characters of a storage key: enough to correlate log lines and
 * spans, too few to be a credential.
 *
 * @since 1.0.0
 * @category observability
 */
export const logPrefix = (key: StorageKey): string => Ids.logPrefix(key)
