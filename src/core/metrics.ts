/**
 * The metrics both Effect lines record, without Effect: their names,
 * descriptions and buckets, declared once, so that one dashboard reads
 * either line. Each line makes its `Metric`s from these with its own Effect.
 *
 * @internal
 */

/**
 * A metric's name and description (Effect keys a metric by both).
 *
 * @internal
 */
export interface MetricName {
  readonly name: string
  readonly description: string
}

const metric = (name: string, description: string): MetricName => ({ name, description })

/** @internal */
export const storeOperations = metric(
  "effect_session_store_operations_total",
  "store operations of effect-session, by store, operation and outcome"
)

/** @internal */
export const storeOperationDuration = metric(
  "effect_session_store_operation_duration",
  "duration of the store operations of effect-session, by store and operation"
)

/**
 * The buckets of `storeOperationDuration`, in milliseconds: 16, from 0.1 ms
 * doubling to about 3 s.
 *
 * @internal
 */
export const storeOperationDurationBoundaries: ReadonlyArray<number> = Array.from({ length: 16 }, (_, i) => 0.1 * 2 ** i)

/** @internal */
export const conflictReplays = metric("effect_session_conflict_replays_total", "replays of a save over a concurrent writer's data")

/** @internal */
export const regenerations = metric("effect_session_regenerations_total", "sessions moved to a new id by regenerate or login")

/** @internal */
export const revocations = metric(
  "effect_session_revocations_total",
  "sessions ended by a logout, revokeAll, or a move undone by a concurrent logout"
)

/** @internal */
export const undecodable = metric("effect_session_undecodable_total", "stored sessions that could not be decoded and were treated as absent")

/** @internal */
export const tooLarge = metric("effect_session_too_large_total", "saves refused because the session encoded to more than maxSize")

// -- the middleware's own count of its store operations

/** The operations whose caller may count them. @internal */
export type CountedName = "load" | "insert" | "update" | "touch"

/**
 * A store operation whose caller records its metrics: `succeeded` and
 * `failed` are called by the caller's own success and failure handlers,
 * which the middleware has on every operation of a request anyway. The
 * operation runs as through the service (its span included) without
 * handlers of its own, two runtime steps fewer. An interrupted operation is
 * counted when its fiber ends; `failed` and `succeeded` after the first have
 * no effect. On a service its line's `SessionStore.make` did not build (a
 * wrapper), the service's own operation runs, and counting is left to it.
 *
 * @internal
 */
export interface CountedOperation<Op, Cause> {
  readonly effect: Op
  readonly succeeded: () => void
  readonly failed: (cause?: Cause) => void
}

/** A line's record of one call's metrics. @internal */
export interface CallRun<Cause> {
  succeeded(): void
  failed(cause?: Cause): void
}

const notCounted = (): void => undefined

/** A counted operation: its effect, and its run's record (one object per call, no closures). */
class Counted<Op, Cause> implements CountedOperation<Op, Cause> {
  constructor(readonly effect: Op, private readonly run: CallRun<Cause>) {}
  succeeded(): void {
    this.run.succeeded()
  }
  failed(cause?: Cause): void {
    this.run.failed(cause)
  }
}

/**
 * The services a line's `SessionStore.make` built, each with the backend's
 * operations and the instruments of the operations a caller may count; and
 * `counted`, which runs one of them with `newRun`'s record begun by `begin`
 * (the line's Effect glue).
 *
 * @internal
 */
export const makeCounting = <Service extends Operations & object, Operations, Instrument, Run extends CallRun<Cause>, Cause>(
  newRun: (instrument: Instrument) => Run
) => {
  const built = new WeakMap<Service, { readonly operations: Operations; readonly instruments: Record<CountedName, Instrument> }>()
  return {
    register: (service: Service, operations: Operations, instruments: Record<CountedName, Instrument>): void => {
      built.set(service, { operations, instruments })
    },
    counted: <Op>(
      service: Service,
      operation: CountedName,
      call: (operations: Operations) => Op,
      begin: (run: Run, effect: Op) => Op
    ): CountedOperation<Op, Cause> => {
      const parts = built.get(service)
      if (parts === undefined) return { effect: call(service), succeeded: notCounted, failed: notCounted }
      const run = newRun(parts.instruments[operation])
      return new Counted(begin(run, call(parts.operations)), run)
    }
  }
}
