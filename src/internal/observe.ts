/**
 * The observation of a store's operations: each one's span and metrics
 * (`SessionStore.make` builds them for every operation of the service;
 * `counted` for an operation whose caller records its metrics).
 *
 * @internal
 */
import { Cause, Clock, Context, Effect, FiberRef, MetricLabel, Option, Predicate, RuntimeFlags } from "effect"
import type { Fiber, FiberStatus, Tracer } from "effect"
import * as Ids from "../core/ids.js"
import * as Metrics from "../core/metrics.js"
import type { StoreOperation } from "../SessionError.js"
import type { StorageKey } from "../SessionId.js"
import * as SessionMetrics from "../SessionMetrics.js"
import type { SessionStore, SessionStoreOperations } from "../SessionStore.js"

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
export interface Instrument {
  readonly store: string
  readonly spanName: string
  readonly record: (start: bigint, end: bigint, outcome: "success" | "conflict" | "failure") => void
}

export const instrument = (store: string, operation: StoreOperation): Instrument => {
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
export const observed = <A, E>(instrument: Instrument, key: string | undefined, effect: Effect.Effect<A, E>): Effect.Effect<A, E> =>
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

export const counting = Metrics.makeCounting<SessionStore["Type"], SessionStoreOperations, Instrument, Run, Cause.Cause<unknown>>(
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
