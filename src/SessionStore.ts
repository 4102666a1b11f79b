/**
 * The store contract. A store keeps opaque bytes under a `StorageKey` with a
 * version and an expiry; `update` is a compare-and-set on the version, atomic
 * in the backend. See `docs/concepts.md` and DESIGN §4.
 *
 * @since 1.0.0
 */
import { Cause, Clock, Context, Effect, FiberRef, MetricLabel, Option, Predicate, RuntimeFlags } from "effect"
import type { Fiber, FiberStatus, Tracer } from "effect"
import * as Ids from "./core/ids.js"
import * as Metrics from "./core/metrics.js"
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
interface Instrument {
  readonly store: string
  readonly spanName: string
  readonly record: (start: bigint, end: bigint, outcome: "success" | "conflict" | "failure") => void
}

const instrument = (store: string, operation: StoreOperation): Instrument => {
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
  const outcomes = { success: countedBy("success"), conflict: countedBy("conflict"), failure: countedBy("failure") }
  // the labels of `storeOperationDuration` (a timer tags `time_unit` first)
  const timed: ReadonlyArray<MetricLabel.MetricLabel> = [MetricLabel.make("time_unit", "milliseconds"), storeLabel, operationLabel]
  return {
    store,
    spanName: `effect-session.${operation}`,
    record: (start, end, outcome) => {
      SessionMetrics.storeOperationDurationMillis.unsafeUpdate(Number(end - start) / 1e6, timed)
      SessionMetrics.storeOperations.unsafeUpdate(1, outcomes[outcome])
    }
  }
}

/** The operation in its span, when a tracer that reports spans can see it. */
const traced = <A, E>(
  fiber: Fiber.RuntimeFiber<unknown, unknown>,
  instrument: Instrument,
  key: string | undefined,
  effect: Effect.Effect<A, E>
): Effect.Effect<A, E> =>
  fiber.currentTracer === builtInTracer() || !fiber.getFiberRef(FiberRef.currentTracerEnabled)
    ? effect
    : Effect.withSpan(effect, instrument.spanName, {
      captureStackTrace: false,
      attributes: key === undefined
        ? { "effect-session.store": instrument.store }
        : { "effect-session.store": instrument.store, "effect-session.key": Ids.logPrefix(key) }
    })

const isConflict = (cause: Cause.Cause<unknown>): boolean =>
  Option.exists(Cause.failureOption(cause), (error) => Predicate.isTagged(error, "SessionConflict"))

// The fiber's observer of an interrupted call: a closure over what it
// records, not over the run, which holds the fiber and through it the whole
// request (a path from the fiber's observer list, which V8 may have moved to
// the old generation, to the request's objects; see the lane's observer)
const whenInterrupted = (instrument: Instrument, clock: Clock.Clock, start: bigint) => () =>
  instrument.record(start, clock.unsafeCurrentTimeNanos(), "failure")

/**
 * One call's metrics, recorded once: by a success or failure handler that
 * runs on the operation anyway (with `Metric`'s own synchronous update), or,
 * when the fiber is interrupted during it and skips those handlers, by the
 * fiber's end, as a failure (an observer, removed when a handler ran). The
 * common path needs no uninterruptible region (`Effect.onExit`: 7 runtime
 * steps more per operation). A call begun where the fiber cannot be
 * interrupted (the writer's region) always reaches its handlers, and needs
 * no observer.
 */
class Run {
  private fiber: Fiber.RuntimeFiber<unknown, unknown> | undefined = undefined
  private clock: Clock.Clock | undefined = undefined
  private start = BigInt(0)
  private interrupted: (() => void) | undefined = undefined
  constructor(readonly instrument: Instrument) {}

  begin(fiber: Fiber.RuntimeFiber<unknown, unknown>, status: FiberStatus.Running): void {
    this.fiber = fiber
    this.clock = Context.get(fiber.currentDefaultServices, Clock.Clock)
    this.start = this.clock.unsafeCurrentTimeNanos()
    if (RuntimeFlags.interruption(status.runtimeFlags)) {
      this.interrupted = whenInterrupted(this.instrument, this.clock, this.start)
      fiber.addObserver(this.interrupted)
    }
  }

  succeeded(): void {
    this.end("success")
  }

  failed(cause?: Cause.Cause<unknown>): void {
    this.end(cause !== undefined && isConflict(cause) ? "conflict" : "failure")
  }

  private end(outcome: "success" | "conflict" | "failure"): void {
    const fiber = this.fiber
    if (fiber === undefined) return
    this.fiber = undefined
    if (this.interrupted !== undefined) {
      fiber.removeObserver(this.interrupted)
      this.interrupted = undefined
    }
    this.instrument.record(this.start, this.clock!.unsafeCurrentTimeNanos(), outcome)
  }
}

/** An operation called through the service: its span, and its metrics recorded by handlers of its own. */
const observed = <A, E>(instrument: Instrument, key: string | undefined, effect: Effect.Effect<A, E>): Effect.Effect<A, E> =>
  Effect.withFiberRuntime((fiber, status) => {
    const run = new Run(instrument)
    run.begin(fiber, status)
    return traced(
      fiber,
      instrument,
      key,
      Effect.matchCauseEffect(effect, {
        onFailure: (cause) => {
          run.failed(cause)
          return Effect.failCause(cause)
        },
        onSuccess: (value) => {
          run.succeeded()
          return Effect.succeed(value)
        }
      })
    )
  })

const counting = Metrics.makeCounting<SessionStore["Type"], SessionStoreOperations, Instrument, Run, Cause.Cause<unknown>>(
  (instrument) => new Run(instrument)
)

/**
 * A store operation whose caller records its metrics (the core's
 * `CountedOperation`), in the store's span like a call through the service.
 *
 * @internal
 */
export const counted = <A, E>(
  store: SessionStore["Type"],
  operation: Metrics.CountedName,
  key: StorageKey,
  call: (operations: SessionStoreOperations) => Effect.Effect<A, E>
): Metrics.CountedOperation<Effect.Effect<A, E>, Cause.Cause<unknown>> =>
  counting.counted(store, operation, call, (run, effect) =>
    Effect.withFiberRuntime((fiber, status) => {
      run.begin(fiber, status)
      return traced(fiber, run.instrument, key, effect)
    }))

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
    keys: (principal) => observed(keys, undefined, operations.keys(principal)),
    removeAll: (principal) => observed(removeAll, undefined, operations.removeAll(principal))
  }
}
