/**
 * The store contract on Effect 4. A store keeps a record's text under a
 * `StorageKey` with a version and an expiry; `update` is a compare-and-set on
 * the version, atomic in the backend. The record's text is the core's format
 * (an envelope or a tombstone): a store never reads it.
 *
 * @since 2.0.0
 */
import type { Option } from "effect"
import { Context, Effect, References, Tracer } from "effect"
import * as Ids from "../../src/core/ids.js"
import type { SessionConflict, SessionStoreError } from "./SessionError.js"
import type { StorageKey } from "./SessionId.js"

/**
 * What a store returns from `load`.
 *
 * @since 2.0.0
 * @category models
 */
export interface SessionRecord {
  readonly text: string
  /** 1 after `insert`, +1 for every successful `update`. `touch` leaves it. */
  readonly version: number
  /** Epoch milliseconds, on the application's `Clock`. */
  readonly expiresAt: number
  readonly principal: Option.Option<string>
}

/**
 * What `insert` and `update` write.
 *
 * @since 2.0.0
 * @category models
 */
export interface SessionWrite {
  readonly text: string
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
 * - `touch` sets the expiry of a live record and says whether there was one.
 * - `remove` is idempotent.
 *
 * @since 2.0.0
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
 * The store a session middleware saves to.
 *
 * @since 2.0.0
 * @category services
 */
export class SessionStore extends Context.Service<
  SessionStore,
  SessionStoreOperations & { readonly name: string }
>()("effect-session/SessionStore") {}

/**
 * Listing and revoking the sessions of a principal (the value passed to
 * `login`). Provided only by stores that can do it: a program that needs it
 * does not compile against a store that cannot.
 *
 * @since 2.0.0
 * @category models
 */
export interface SessionIndexOperations {
  /** Storage keys of the live sessions of a principal. */
  readonly keys: (principal: string) => Effect.Effect<ReadonlyArray<StorageKey>, SessionStoreError>
  /** Removes every session of a principal; returns how many were live. */
  readonly removeAll: (principal: string) => Effect.Effect<number, SessionStoreError>
}

/**
 * @since 2.0.0
 * @category services
 */
export class SessionIndex extends Context.Service<SessionIndex, SessionIndexOperations>()(
  "effect-session/SessionIndex"
) {}

// each operation runs in a span carrying the store's name and a prefix of the
// key (never the id): Effect's own `withSpan`, without the stack trace it
// captures by default (it would point here, not at the caller; an `Error`
// per operation, the largest single function in the middleware's profile).
// The span is made only when someone can see it: with tracing enabled and a
// tracer other than Effect's built-in one, which keeps a span in memory and
// reports it nowhere (`Tracer.nativeTracer`, documented for this check; see
// docs/design.md)
const traced = <A, E>(store: string, operation: string, key: string | undefined, effect: Effect.Effect<A, E>) =>
  Effect.withFiber((fiber) =>
    fiber.getRef(Tracer.Tracer) === Tracer.nativeTracer || !fiber.getRef(References.TracerEnabled)
      ? effect
      : Effect.withSpan(effect, `effect-session.${operation}`, {
        attributes: key === undefined
          ? { "effect-session.store": store }
          : { "effect-session.store": store, "effect-session.key": Ids.logPrefix(key) },
        captureStackTrace: false
      })
  )

/**
 * Builds the `SessionStore` service from a backend's operations, each run in
 * a span (`effect-session.load`, `.insert`, …).
 *
 * @since 2.0.0
 * @category constructors
 */
export const make = (name: string, operations: SessionStoreOperations): SessionStore["Service"] => ({
  name,
  load: (key) => traced(name, "load", key, operations.load(key)),
  insert: (key, write) => traced(name, "insert", key, operations.insert(key, write)),
  update: (key, write, expectedVersion) => traced(name, "update", key, operations.update(key, write, expectedVersion)),
  touch: (key, expiresAt) => traced(name, "touch", key, operations.touch(key, expiresAt)),
  remove: (key) => traced(name, "remove", key, operations.remove(key))
})

/**
 * Builds the `SessionIndex` service, with spans like `make`.
 *
 * @since 2.0.0
 * @category constructors
 */
export const makeIndex = (name: string, operations: SessionIndexOperations): SessionIndex["Service"] => ({
  keys: (principal) => traced(name, "keys", undefined, operations.keys(principal)),
  removeAll: (principal) => traced(name, "removeAll", undefined, operations.removeAll(principal))
})
