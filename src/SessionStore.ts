/**
 * The store contract. A store keeps opaque bytes under a `StorageKey` with a
 * version and an expiry; `update` is a compare-and-set on the version, atomic
 * in the backend. See `docs/concepts.md` and DESIGN §4.
 *
 * @since 1.0.0
 */
import { Context } from "effect"
import type { Effect, Option } from "effect"
import type { SessionConflict, SessionStoreError } from "./SessionError.js"
import type { StorageKey } from "./SessionId.js"
import { counting, instrument, observed } from "./internal/observe.js"
import { plainWrite } from "./internal/text.js"

/**
 * What a store returns from `load`.
 *
 * @since 1.0.0
 * @category models
 */
export interface SessionRecord {
  readonly data: Uint8Array
  /** 1 after `insert`, +1 for every successful `update`. `touch` leaves it. */
  readonly version: number
  /** Epoch milliseconds, on the application's `Clock`. */
  readonly expiresAt: number
  readonly principal: Option.Option<string>
  /**
   * The same data as text, when the store read it as text (`data` is then
   * exactly its UTF-8 encoding, and may be made when first read: read it as
   * a property rather than copying the record with a spread): the session
   * decodes it without decoding `data`. Optional: a store that reads bytes
   * leaves it out.
   */
  readonly text?: string | undefined
}

/**
 * What `insert` and `update` write.
 *
 * @since 1.0.0
 * @category models
 */
export interface SessionWrite {
  readonly data: Uint8Array
  readonly expiresAt: number
  readonly principal: Option.Option<string>
  /**
   * The same data as text, when it is UTF-8 text (what the session
   * middleware writes always is): `data` is exactly its UTF-8 encoding. A
   * store that sends strings uses it instead of decoding `data` (and says
   * so with `make`'s `readsText`); one that stores bytes ignores it. A
   * write's `data` may be made when first read: a store built with `make`
   * gets it as an own property.
   */
  readonly text?: string | undefined
}

/**
 * The operations every store implements.
 *
 * - `load` never returns a record whose `expiresAt` is at or before `Clock`'s now.
 * - `insert` fails with `SessionConflict("Exists")` when a live record is
 *   stored under the key; it replaces an expired one. The new version is 1.
 * - `update` writes only if the stored live record has `expectedVersion`, and
 *   returns the new version; otherwise `SessionConflict("VersionMismatch")`,
 *   or `SessionConflict("Missing")` when there is no live record.
 * - `touch` sets the expiry of a live record (data and version unchanged) and
 *   says whether there was one; it never creates a record.
 * - `remove` is idempotent.
 *
 * @since 1.0.0
 * @category models
 */
export interface SessionStoreOperations {
  readonly load: (key: StorageKey) => Effect.Effect<Option.Option<SessionRecord>, SessionStoreError>
  readonly insert: (key: StorageKey, write: SessionWrite) => Effect.Effect<void, SessionConflict | SessionStoreError>
  readonly update: (
    key: StorageKey,
    write: SessionWrite,
    expectedVersion: number
  ) => Effect.Effect<number, SessionConflict | SessionStoreError>
  readonly touch: (key: StorageKey, expiresAt: number) => Effect.Effect<boolean, SessionStoreError>
  readonly remove: (key: StorageKey) => Effect.Effect<void, SessionStoreError>
}

/**
 * @since 1.0.0
 * @category tags
 */
export class SessionStore extends Context.Tag("effect-session/SessionStore")<
  SessionStore,
  SessionStoreOperations & { readonly name: string }
>() {}

/**
 * Listing and revoking the sessions of a principal (the value passed to
 * `login`). Provided only by stores that can do it; a program that needs it
 * does not compile against a store that cannot.
 *
 * @since 1.0.0
 * @category models
 */
export interface SessionIndexOperations {
  /** Storage keys of the live sessions of a principal. */
  readonly keys: (principal: string) => Effect.Effect<ReadonlyArray<StorageKey>, SessionStoreError>
  /** Removes every session of a principal; returns how many were live. */
  readonly removeAll: (principal: string) => Effect.Effect<number, SessionStoreError>
}

/**
 * @since 1.0.0
 * @category tags
 */
export class SessionIndex extends Context.Tag("effect-session/SessionIndex")<
  SessionIndex,
  SessionIndexOperations
>() {}

/**
 * Builds the `SessionStore` service from a backend's operations, running each
 * in a span (`effect-session.load`, `.insert`, …) that carries the store name
 * and a short prefix of the storage key — never the id — and recording it in
 * the metrics of `SessionMetrics` (count by outcome, and latency).
 *
 * @since 1.0.0
 * @category constructors
 */
export const make = (
  name: string,
  operations: SessionStoreOperations,
  options?: {
    /**
     * The backend's `insert` and `update` use a write's `text` when it has
     * one, and read its `data` only when it has none. Writes then reach it
     * as they are; otherwise every write reaches it with its bytes as an own
     * property.
     */
    readonly readsText?: boolean | undefined
  }
): SessionStore["Type"] => {
  const prepare = options?.readsText === true ? (write: SessionWrite) => write : plainWrite
  const prepared: SessionStoreOperations = {
    load: operations.load,
    insert: (key, write) => operations.insert(key, prepare(write)),
    update: (key, write, expectedVersion) => operations.update(key, prepare(write), expectedVersion),
    touch: operations.touch,
    remove: operations.remove
  }
  const parts = {
    load: instrument(name, "load"),
    insert: instrument(name, "insert"),
    update: instrument(name, "update"),
    touch: instrument(name, "touch")
  }
  const remove = instrument(name, "remove")
  const service: SessionStore["Type"] = {
    name,
    load: (key) => observed(parts.load, key, prepared.load(key)),
    insert: (key, write) => observed(parts.insert, key, prepared.insert(key, write)),
    update: (key, write, expectedVersion) => observed(parts.update, key, prepared.update(key, write, expectedVersion)),
    touch: (key, expiresAt) => observed(parts.touch, key, prepared.touch(key, expiresAt)),
    remove: (key) => observed(remove, key, prepared.remove(key))
  }
  counting.register(service, prepared, parts)
  return service
}

/**
 * Builds the `SessionIndex` service, with spans and metrics like `make`.
 *
 * @since 1.0.0
 * @category constructors
 */
export const makeIndex = (name: string, operations: SessionIndexOperations): SessionIndex["Type"] => {
  const keys = instrument(name, "keys")
  const removeAll = instrument(name, "removeAll")
  return {
    keys: (principal) => observed(keys, undefined, operations.keys(principal)),
    removeAll: (principal) => observed(removeAll, undefined, operations.removeAll(principal))
  }
}
