/**
 * The metrics effect-session records, with Effect's `Metric`: every store
 * operation (count by outcome, and latency) and what happened to sessions
 * (conflict replays, moves, revocations, undecodable and oversized sessions).
 * They reach whatever the application exports Effect metrics to (for example
 * `@effect/opentelemetry`'s metric exporter); `Metric.snapshot` reads them.
 *
 * | name | type | tags |
 * |---|---|---|
 * | `effect_session_store_operations_total` | counter | `store`, `operation`, `outcome` (`success`, `conflict`, `failure`) |
 * | `effect_session_store_operation_duration` | timer (histogram, milliseconds) | `store`, `operation` |
 * | `effect_session_conflict_replays_total` | counter | — |
 * | `effect_session_regenerations_total` | counter | — |
 * | `effect_session_revocations_total` | counter | `kind` (`logout`, `revokeAll`, `moveUndone`) |
 * | `effect_session_undecodable_total` | counter | — |
 * | `effect_session_too_large_total` | counter | — |
 *
 * @since 1.0.0
 */
import { Duration, Metric, MetricBoundaries } from "effect"
import type { MetricKeyType, MetricState } from "effect"
import * as Metrics from "./core/metrics.js"

const counter = (metric: Metrics.MetricName): Metric.Metric.Counter<number> =>
  Metric.counter(metric.name, { description: metric.description, incremental: true })

/**
 * Store operations by `store`, `operation` and `outcome`: `success`,
 * `conflict` (a `SessionConflict`: a compare-and-set that lost, an insert of
 * a live key) or `failure` (a `SessionStoreError`, a defect, an interruption).
 *
 * @since 1.0.0
 * @category metrics
 */
export const storeOperations: Metric.Metric.Counter<number> = counter(Metrics.storeOperations)

// One histogram under both: a metric's key compares its boundaries by
// identity, so a second `Metric.histogram` with the same name and buckets
// would be another metric
const durationHistogram = Metric.histogram(
  Metrics.storeOperationDuration.name,
  MetricBoundaries.fromIterable(Metrics.storeOperationDurationBoundaries),
  Metrics.storeOperationDuration.description
)

/**
 * How long store operations take, by `store` and `operation`, in
 * milliseconds (buckets from 0.1 ms to about 3 s).
 *
 * @since 1.0.0
 * @category metrics
 */
export const storeOperationDuration: Metric.Metric<
  MetricKeyType.MetricKeyType.Histogram,
  Duration.Duration,
  MetricState.MetricState.Histogram
> = durationHistogram.pipe(Metric.tagged("time_unit", "milliseconds"), Metric.mapInput(Duration.toMillis))

/**
 * The histogram under `storeOperationDuration`, in milliseconds, without the
 * `time_unit` tag the timer adds: `SessionStore.make` updates it with one
 * label array per store and operation (`time_unit`, `store`, `operation`, in
 * the timer's order) made once, so `Metric` finds its hook in its cache
 * instead of merging the tags into a new array and key on every operation.
 * The same metric, so the same values, as the timer's.
 *
 * @internal
 */
export const storeOperationDurationMillis: Metric.Metric.Histogram<number> = durationHistogram

/**
 * Replays of a save over the data a writer of another process saved first.
 *
 * @since 1.0.0
 * @category metrics
 */
export const conflictReplays: Metric.Metric.Counter<number> = counter(Metrics.conflictReplays)

/**
 * Sessions moved to a new id (`regenerate`, `login`).
 *
 * @since 1.0.0
 * @category metrics
 */
export const regenerations: Metric.Metric.Counter<number> = counter(Metrics.regenerations)

/**
 * Sessions ended by `kind`: `logout` (`invalidate`, `login` as another
 * principal), `revokeAll` (each session removed), `moveUndone` (a move whose
 * old session a concurrent logout ended: its new record is removed).
 *
 * @since 1.0.0
 * @category metrics
 */
export const revocations: Metric.Metric.Counter<number> = counter(Metrics.revocations)

/**
 * Stored sessions that could not be decoded (another schema, corrupted
 * data) and were treated as absent.
 *
 * @since 1.0.0
 * @category metrics
 */
export const undecodable: Metric.Metric.Counter<number> = counter(Metrics.undecodable)

/**
 * Saves refused with `SessionTooLarge`.
 *
 * @since 1.0.0
 * @category metrics
 */
export const tooLarge: Metric.Metric.Counter<number> = counter(Metrics.tooLarge)
