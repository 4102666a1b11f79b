/**
 * The metrics effect-session records, with Effect's `Metric`: every store
 * operation (count by outcome, and latency) and what happened to sessions
 * (conflict replays, moves, revocations, undecodable and oversized sessions).
 * The same names, types and attributes as on the Effect 3 line, so one
 * dashboard reads both. They reach whatever the application exports Effect
 * metrics to (for example `effect/observability`'s `OtlpMetrics` or
 * `PrometheusMetrics`); `Metric.snapshot` reads them.
 *
 * | name | type | attributes |
 * |---|---|---|
 * | `effect_session_store_operations_total` | counter | `store`, `operation`, `outcome` (`success`, `conflict`, `failure`) |
 * | `effect_session_store_operation_duration` | timer (histogram, milliseconds) | `time_unit`, `store`, `operation` |
 * | `effect_session_conflict_replays_total` | counter | — |
 * | `effect_session_regenerations_total` | counter | — |
 * | `effect_session_revocations_total` | counter | `kind` (`logout`, `revokeAll`, `moveUndone`) |
 * | `effect_session_undecodable_total` | counter | — |
 * | `effect_session_too_large_total` | counter | — |
 *
 * One series is read with `Metric.withAttributes`:
 *
 * ```ts
 * import { Effect, Metric } from "effect"
 * import { SessionMetrics } from "effect-session"
 *
 * const loads = Metric.value(
 *   Metric.withAttributes(SessionMetrics.storeOperations, { store: "redis", operation: "load", outcome: "success" })
 * )
 * ```
 *
 * @since 2.0.0
 */
import type { Duration } from "effect"
import { Metric } from "effect"
import * as Metrics from "../../src/core/metrics.js"

const counter = (metric: Metrics.MetricName): Metric.Counter<number> =>
  Metric.counter(metric.name, { description: metric.description, incremental: true })

/**
 * Store operations by `store`, `operation` and `outcome`: `success`,
 * `conflict` (a `SessionConflict`: a compare-and-set that lost, an insert of
 * a live key) or `failure` (a `SessionStoreError`, a defect, an interruption).
 *
 * @since 2.0.0
 * @category metrics
 */
export const storeOperations: Metric.Counter<number> = counter(Metrics.storeOperations)

const durationBoundaries = Metric.boundariesFromIterable(Metrics.storeOperationDurationBoundaries)

/**
 * How long store operations take, by `store` and `operation`, in
 * milliseconds (buckets from 0.1 ms to about 3 s; a timer, so its series
 * also carry `time_unit: "milliseconds"`).
 *
 * @since 2.0.0
 * @category metrics
 */
export const storeOperationDuration: Metric.Histogram<Duration.Duration> = Metric.timer(
  Metrics.storeOperationDuration.name,
  { description: Metrics.storeOperationDuration.description, boundaries: durationBoundaries }
)

/**
 * The series of one store's operation, made once per store and operation.
 * A metric's series is its name, description and attributes, so each of
 * these is the series `Metric.withAttributes` reaches on
 * `storeOperations` and `storeOperationDuration`; updating it directly
 * (`updateUnsafe` with the fiber's context, no effect) costs no runtime step.
 *
 * @internal
 */
export interface OperationMetrics {
  readonly success: Metric.Counter<number>
  readonly conflict: Metric.Counter<number>
  readonly failure: Metric.Counter<number>
  /** in milliseconds */
  readonly duration: Metric.Histogram<number>
}

/** @internal */
export const operationMetrics = (store: string, operation: string): OperationMetrics => {
  const outcome = (outcome: string) =>
    Metric.counter(Metrics.storeOperations.name, {
      description: Metrics.storeOperations.description,
      incremental: true,
      attributes: { store, operation, outcome }
    })
  return {
    success: outcome("success"),
    conflict: outcome("conflict"),
    failure: outcome("failure"),
    duration: Metric.histogram(Metrics.storeOperationDuration.name, {
      description: Metrics.storeOperationDuration.description,
      boundaries: durationBoundaries,
      attributes: { time_unit: "milliseconds", store, operation }
    })
  }
}

/**
 * Replays of a save over the data a writer of another process saved first.
 *
 * @since 2.0.0
 * @category metrics
 */
export const conflictReplays: Metric.Counter<number> = counter(Metrics.conflictReplays)

/**
 * Sessions moved to a new id (`regenerate`, `login`).
 *
 * @since 2.0.0
 * @category metrics
 */
export const regenerations: Metric.Counter<number> = counter(Metrics.regenerations)

/**
 * Sessions ended by `kind`: `logout` (`invalidate`, `login` as another
 * principal), `revokeAll` (each session removed), `moveUndone` (a move whose
 * old session a concurrent logout ended, or a login whose principal was
 * revoked meanwhile: its new record is removed).
 *
 * @since 2.0.0
 * @category metrics
 */
export const revocations: Metric.Counter<number> = counter(Metrics.revocations)

/**
 * Stored sessions that could not be decoded (another schema, corrupted
 * data) and were treated as absent.
 *
 * @since 2.0.0
 * @category metrics
 */
export const undecodable: Metric.Counter<number> = counter(Metrics.undecodable)

/**
 * Saves refused with `SessionTooLarge`.
 *
 * @since 2.0.0
 * @category metrics
 */
export const tooLarge: Metric.Counter<number> = counter(Metrics.tooLarge)
