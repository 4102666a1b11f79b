/**
 * Session ids and storage keys: the id travels in the cookie, a store sees
 * only the storage key derived from it (the rules are the core's).
 *
 * @since 2.0.0
 */
import type { Brand } from "effect"
import { Effect, Option, Redacted } from "effect"
import * as Ids from "../../src/core/ids.js"

/**
 * An id as the client holds it: 43 base64url characters, 256 random bits.
 *
 * @since 2.0.0
 * @category models
 */
export type SessionId = string & Brand.Brand<"effect-session/SessionId">

/**
 * What a store keys a session by: SHA-256 (or HMAC with a pepper) of the id.
 *
 * @since 2.0.0
 * @category models
 */
export type StorageKey = string & Brand.Brand<"effect-session/StorageKey">

/**
 * A fresh id from the platform CSPRNG.
 *
 * @since 2.0.0
 * @category constructors
 */
export const generateUnsafe = (): SessionId => Ids.generateId() as SessionId

/**
 * A fresh id from the platform CSPRNG, as an effect.
 *
 * @since 2.0.0
 * @category constructors
 */
export const generate: Effect.Effect<SessionId> = Effect.sync(generateUnsafe)

/**
 * Whether a value is a well-formed id: 43 characters of the base64url alphabet.
 *
 * @since 2.0.0
 * @category refinements
 */
export const isSessionId = (value: unknown): value is SessionId => Ids.isId(value)

/**
 * The id in a cookie value, or none when it is not one (it then never
 * reaches a store).
 *
 * @since 2.0.0
 * @category constructors
 */
export const parse = (value: string | undefined): Option.Option<SessionId> =>
  Ids.isId(value) ? Option.some(value as SessionId) : Option.none()

/**
 * The function from ids to storage keys, with an optional pepper.
 *
 * @since 2.0.0
 * @category constructors
 */
export const makeStorageKey = (pepper?: Redacted.Redacted<string> | undefined): (id: SessionId) => StorageKey =>
  Ids.storageKeyFunction(pepper === undefined ? undefined : Redacted.value(pepper)) as unknown as (
    id: SessionId
  ) => StorageKey

/**
 * The storage key of an id without a pepper: base64url(SHA-256(id)).
 *
 * @since 2.0.0
 * @category constructors
 */
export const storageKey: (id: SessionId) => StorageKey = makeStorageKey()

/**
 * What logs and spans carry of a storage key: its first 8 characters, enough
 * to find the record, never the id or the whole key.
 *
 * @since 2.0.0
 * @category logging
 */
export const logPrefix = (key: StorageKey): string => Ids.logPrefix(key)

/**
 * A storage key read back from a store (a tombstone's target, a listing).
 *
 * @since 2.0.0
 * @category constructors
 */
export const storageKeyUnsafe = (key: string): StorageKey => key as StorageKey
