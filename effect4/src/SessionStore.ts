/**
 * The store contract on Effect 4. A store keeps a record's text under a
 * `StorageKey` with a version and an expiry; `update` is a compare-and-set on
 * the version, atomic in the backend. The record's text is the core's format
 * (an envelope or a tombstone): a store never reads it.
 *
 * @since 2.0.0
 */
import type { Fiber, Metric } from "effect"
import { Cause, Clock, Context, Effect, Exit, Option, Predicate, References, Tracer } from "effect"
import * as Ids from "../../src/core/ids.js"
import * as Metrics from "../../src/core/metrics.js"
import * as SessionMetrics from "./SessionMetrics.js"
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

type StoreOperation = "load" | "insert" | "update" | "touch" | "remove" | "keys" | "removeAll"

/** One operation of one store: its span's name and its metrics' series, made once. */
interface Instrument {
  readonly store: string
  readonly spanName: string
  readonly metrics: SessionMetrics.OperationMetrics
}

const instrument = (store: string, operation: StoreOperation): Instrument => ({
  store,
  spanName: `effect-session.${operation}`,
  metrics: SessionMetrics.operationMetrics(store, operation)
})

// each operation runs in a span carrying the store's name and a prefix of the
// key (never the id): Effect's own `withSpan`, without the stack trace it
// captures by default (it would point here, not at the caller; an `Error`
// per operation, the largest single function in the middleware's profile).
// The span is made only when someone can see it: with tracing enabled and a
// tracer other than Effect's built-in one, which keeps a span in memory and
// reports it nowhere (`Tracer.nativeTracer`, documented for this check; see
// docs/design.md)
const traced = <A, E>(
  fiber: Fiber.Fiber<unknown, unknown>,
  instrument: Instrument,
  key: string | undefined,
  effect: Effect.Effect<A, E>
): Effect.Effect<A, E> =>
  fiber.getRef(Tracer.Tracer) === Tracer.nativeTracer || !fiber.getRef(References.TracerEnabled)
    ? effect
    : Effect.withSpan(effect, instrument.spanName, {
      attributes: key === undefined
        ? { "effect-session.store": instrument.store }
        : { "effect-session.store": instrument.store, "effect-session.key": Ids.logPrefix(key) },
      captureStackTrace: false
    })

const isConflict = (cause: Cause.Cause<unknown>): boolean =>
  Option.exists(Cause.findErrorOption(cause), (error) => Predicate.isTagged(error, "SessionConflict"))

/**
 * One run of a store operation, counted and timed: started on its fiber
 * (the fiber's `Clock` and the context that holds its `MetricRegistry`),
 * ended once, by whichever handler sees the operation's outcome first. The
 * metrics are updated synchronously, with `Metric`'s `updateUnsafe`: no
 * runtime step of their own.
 */
class Run {
  private context: Context.Context<never> | undefined
  private clock: Clock.Clock | undefined
  private start = BigInt(0)
  private removeObserver: (() => void) | undefined
  constructor(readonly instrument: Instrument) {}

  begin(fiber: Fiber.Fiber<unknown, unknown>, observeInterruption: boolean): void {
    this.context = fiber.context
    this.clock = fiber.getRef(Clock.Clock)
    this.start = this.clock.currentTimeNanosUnsafe()
    // an interrupted operation skips its caller's handlers: its fiber's end
    // counts it then, as a failure (removed once a handler ran)
    if (observeInterruption) this.removeObserver = fiber.addObserver(() => this.failed())
  }

  succeeded(): void {
    this.end(this.instrument.metrics.success)
  }

  failed(cause?: Cause.Cause<unknown>): void {
    const { metrics } = this.instrument
    this.end(cause !== undefined && isConflict(cause) ? metrics.conflict : metrics.failure)
  }

  private end(outcome: Metric.Counter<number>): void {
    const context = this.context
    if (context === undefined) return
    this.context = undefined
    this.removeObserver?.()
    this.removeObserver = undefined
    const millis = Number(this.clock!.currentTimeNanosUnsafe() - this.start) / 1e6
    this.instrument.metrics.duration.updateUnsafe(millis, context)
    outcome.updateUnsafe(1, context)
  }
}

/**
 * An operation called through the service: its span and its metrics, the
 * metrics recorded by the operation's own exit handler (whatever calls it).
 */
const observed = <A, E>(instrument: Instrument, key: string | undefined, effect: Effect.Effect<A, E>): Effect.Effect<A, E> =>
  Effect.withFiber((fiber) => {
    const run = new Run(instrument)
    run.begin(fiber, false)
    return Effect.onExitPrimitive(traced(fiber, instrument, key, effect), (exit) => {
      if (Exit.isSuccess(exit)) run.succeeded()
      else run.failed(exit.cause)
      return undefined
    })
  })

const counting = Metrics.makeCounting<SessionStore["Service"], SessionStoreOperations, Instrument, Run, Cause.Cause<unknown>>(
  (instrument) => new Run(instrument)
)

/**
 * A store operation whose caller records its metrics (the core's
 * `CountedOperation`), in the store's span like a call through the service:
 * counting it costs no runtime step.
 *
 * @internal
 */
export type CountedOperation<A, E> = Metrics.CountedOperation<Effect.Effect<A, E>, Cause.Cause<unknown>>

/** @internal */
export const counted = <A, E>(
  store: SessionStore["Service"],
  operation: Metrics.CountedName,
  key: StorageKey,
  call: (operations: SessionStoreOperations) => Effect.Effect<A, E>
): CountedOperation<A, E> =>
  counting.counted(store, operation, call, (run, effect) =>
    Effect.withFiber((fiber) => {
      run.begin(fiber, true)
      return traced(fiber, run.instrument, key, effect)
    }))

/**
 * Builds the `SessionStore` service from a backend's operations, each run in
 * a span (`effect-session.load`, `.insert`, …) and counted and timed in the
 * metrics of `SessionMetrics`.
 *
 * @since 2.0.0
 * @category constructors
 */
export const make = (name: string, operations: SessionStoreOperations): SessionStore["Service"] => {
  const parts = {
    load: instrument(name, "load"),
    insert: instrument(name, "insert"),
    update: instrument(name, "update"),
    touch: instrument(name, "touch")
  }
  const remove = instrument(name, "remove")
  const service: SessionStore["Service"] = {
    name,
    load: (key) => observed(parts.load, key, operations.load(key)),
    insert: (key, write) => observed(parts.insert, key, operations.insert(key, write)),
    update: (key, write, expectedVersion) => observed(parts.update, key, operations.update(key, write, expectedVersion)),
    touch: (key, expiresAt) => observed(parts.touch, key, operations.touch(key, expiresAt)),
    remove: (key) => observed(remove, key, operations.remove(key))
  }
  counting.register(service, operations, parts)
  return service
}

/**
 * Builds the `SessionIndex` service, with spans and metrics like `make`.
 *
 * @since 2.0.0
 * @category constructors
 */
export const makeIndex = (name: string, operations: SessionIndexOperations): SessionIndex["Service"] => {
  const keys = instrument(name, "keys")
  const removeAll = instrument(name, "removeAll")
  return {
    keys: (principal) => observed(keys, undefined, operations.keys(principal)),
    removeAll: (principal) => observed(removeAll, undefined, operations.removeAll(principal))
  }
}
