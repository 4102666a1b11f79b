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
