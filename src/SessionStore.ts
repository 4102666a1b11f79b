/**
 * The store contract. A store keeps opaque bytes under a `StorageKey` with a
 * version and an expiry; `update` is a compare-and-set on the version, atomic
 * in the backend. See `docs/concepts.md` and DESIGN §4.
 *
 * @since 1.0.0
 */
import type { Option } from "effect"
import { Context, Effect } from "effect"
import type { SessionConflict, SessionStoreError } from "./SessionError.js"
import type { StorageKey } from "./SessionId.js"

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
 * and a short prefix of the storage key — never the id.
 *
 * @since 1.0.0
 * @category constructors
 */
export const make = (name: string, operations: SessionStoreOperations): SessionStore["Type"] => {
  // No stack trace per span: it would cost an Error per store call, and the
  // caller's own span already locates the request. The span is not made the
  // parent of the operation's effects (`useSpan`, not `withSpan`): an
  // operation is one round trip with nothing inside to trace, and providing
  // the span as a service would copy the request's context on every call.
  const traced = <A, E>(span: string, key: StorageKey, operation: Effect.Effect<A, E>): Effect.Effect<A, E> =>
    Effect.useSpan(span, {
      captureStackTrace: false,
      attributes: { "effect-session.store": name, "effect-session.key": key.slice(0, 8) }
    }, () => operation)
  return {
    name,
    load: (key) => traced("effect-session.load", key, operations.load(key)),
    insert: (key, write) => traced("effect-session.insert", key, operations.insert(key, write)),
    update: (key, write, expectedVersion) =>
      traced("effect-session.update", key, operations.update(key, write, expectedVersion)),
    touch: (key, expiresAt) => traced("effect-session.touch", key, operations.touch(key, expiresAt)),
    remove: (key) => traced("effect-session.remove", key, operations.remove(key))
  }
}

/**
 * Builds the `SessionIndex` service, with spans like `make`.
 *
 * @since 1.0.0
 * @category constructors
 */
export const makeIndex = (name: string, operations: SessionIndexOperations): SessionIndex["Type"] => ({
  keys: (principal) =>
    Effect.withSpan(operations.keys(principal), "effect-session.keys", {
      captureStackTrace: false,
      attributes: { "effect-session.store": name }
    }),
  removeAll: (principal) =>
    Effect.withSpan(operations.removeAll(principal), "effect-session.removeAll", {
      captureStackTrace: false,
      attributes: { "effect-session.store": name }
    })
})
