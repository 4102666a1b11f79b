/**
 * The store contract. A store keeps opaque bytes under a `StorageKey` with a
 * version and an expiry; `update` is a compare-and-set on the version, atomic
 * in the backend. See `docs/concepts.md` and DESIGN §4.
 *
 * @since 1.0.0
 */
import { Cause, Clock, Context, Effect, FiberRef, MetricLabel, Option, Predicate } from "effect"
import type { Fiber, Tracer } from "effect"
import * as Ids from "./core/ids.js"
import type { SessionConflict, SessionStoreError, StoreOperation } from "./SessionError.js"
import * as SessionMetrics from "./SessionMetrics.js"
import type { StorageKey } from "./SessionId.js"
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
  const load = instrument(name, "load")
  const insert = instrument(name, "insert")
  const update = instrument(name, "update")
  const touch = instrument(name, "touch")
  const remove = instrument(name, "remove")
  const prepare = options?.readsText === true ? (write: SessionWrite) => write : plainWrite
  return {
    name,
    load: (key) => load(key, operations.load(key)),
    insert: (key, write) => insert(key, operations.insert(key, prepare(write))),
    update: (key, write, expectedVersion) => update(key, operations.update(key, prepare(write), expectedVersion)),
    touch: (key, expiresAt) => touch(key, operations.touch(key, expiresAt)),
    remove: (key) => remove(key, operations.remove(key))
  }
}

/**
 * One operation of one store, observed: a span (the caller's span is its
 * parent; no stack trace, which would cost an `Error` per call), a latency
 * histogram and a count by outcome, all with Effect's own `withSpan` and
 * `Metric`. The metrics' labels are made once per store and operation.
 *
 * The span is made only when someone can see it: with tracing enabled and a
 * tracer other than Effect's built-in one, which keeps each span in memory
 * and reports it nowhere (a store span parents nothing the application sees).
 * `withSpan` costs about 25 runtime steps per operation; skipping it under
 * the built-in tracer keeps a request that has no tracer installed as cheap
 * as before it had spans (see docs/design.md).
 */
const instrument = (store: string, operation: StoreOperation) => {
  // one label array per outcome, and one for the latency, made once:
  // `Metric` caches a metric's hook by its labels array, so updating the
  // untagged metric with the same array finds its hook at once, where
  // `Metric.tagged` makes a new array, `MetricKey` and hash on every update
  const storeLabel = MetricLabel.make("store", store)
  const operationLabel = MetricLabel.make("operation", operation)
  const countedBy = (outcome: string): ReadonlyArray<MetricLabel.MetricLabel> => [
    storeLabel,
    operationLabel,
    MetricLabel.make("outcome", outcome)
  ]
  const success = countedBy("success")
  const conflict = countedBy("conflict")
  const failure = countedBy("failure")
  // the labels of `storeOperationDuration` (a timer tags `time_unit` first)
  const timed: ReadonlyArray<MetricLabel.MetricLabel> = [MetricLabel.make("time_unit", "milliseconds"), storeLabel, operationLabel]
  const spanName = `effect-session.${operation}`
  const record = (start: bigint, end: bigint, outcome: ReadonlyArray<MetricLabel.MetricLabel>) => {
    SessionMetrics.storeOperationDurationMillis.unsafeUpdate(Number(end - start) / 1e6, timed)
    SessionMetrics.storeOperations.unsafeUpdate(1, outcome)
  }
  // the operation's success and failure handlers record both metrics, with
  // `Metric`'s own synchronous update (every request runs one or two of
  // these). An interruption skips those handlers: the fiber's end records
  // it then, as a failure (an observer, removed when a handler ran), so the
  // common path needs no uninterruptible region (`Effect.onExit`: 7 runtime
  // steps more per operation)
  // made outside `observe`, so that the observer holds the clock and the
  // start only, not the fiber it observes and, through it, the request
  const whenInterrupted = (clock: Clock.Clock, start: bigint) => () => record(start, clock.unsafeCurrentTimeNanos(), failure)
  const observe = <A, E>(fiber: Fiber.RuntimeFiber<unknown, unknown>, effect: Effect.Effect<A, E>): Effect.Effect<A, E> => {
    const clock = Context.get(fiber.currentDefaultServices, Clock.Clock)
    const start = clock.unsafeCurrentTimeNanos()
    const interrupted = whenInterrupted(clock, start)
    fiber.addObserver(interrupted)
    return Effect.matchCauseEffect(effect, {
      onFailure: (cause) => {
        fiber.removeObserver(interrupted)
        const conflicted = Option.exists(Cause.failureOption(cause), (error) => Predicate.isTagged(error, "SessionConflict"))
        record(start, clock.unsafeCurrentTimeNanos(), conflicted ? conflict : failure)
        return Effect.failCause(cause)
      },
      onSuccess: (value) => {
        fiber.removeObserver(interrupted)
        record(start, clock.unsafeCurrentTimeNanos(), success)
        return Effect.succeed(value)
      }
    })
  }
  return <A, E>(key: string | undefined, effect: Effect.Effect<A, E>): Effect.Effect<A, E> =>
    Effect.withFiberRuntime((fiber) => {
      const observed = observe(fiber, effect)
      return fiber.currentTracer === builtInTracer() || !fiber.getFiberRef(FiberRef.currentTracerEnabled)
        ? observed
        : Effect.withSpan(observed, spanName, {
          captureStackTrace: false,
          attributes: key === undefined
            ? { "effect-session.store": store }
            : { "effect-session.store": store, "effect-session.key": Ids.logPrefix(key) }
        })
    })
}

/** Effect's built-in tracer, the one a fiber has when the application installs none. */
let builtIn: Tracer.Tracer | undefined
const builtInTracer = (): Tracer.Tracer => builtIn ??= Effect.runSync(Effect.tracer)

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
    keys: (principal) => keys(undefined, operations.keys(principal)),
    removeAll: (principal) => removeAll(undefined, operations.removeAll(principal))
  }
}
