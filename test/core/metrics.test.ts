/**
 * The metrics' names, descriptions and buckets (src/core/metrics.ts), which
 * both lines make their `Metric`s from: a dashboard reads them, so they are
 * pinned here.
 */
import { describe, expect, it } from "vitest"
import * as Metrics from "../../src/core/metrics.js"

describe("the metrics' names", () => {
  it("are the ones the docs list, counters ending in _total", () => {
    expect([
      Metrics.storeOperations,
      Metrics.storeOperationDuration,
      Metrics.conflictReplays,
      Metrics.regenerations,
      Metrics.revocations,
      Metrics.undecodable,
      Metrics.tooLarge
    ].map((metric) => metric.name)).toEqual([
      "effect_session_store_operations_total",
      "effect_session_store_operation_duration",
      "effect_session_conflict_replays_total",
      "effect_session_regenerations_total",
      "effect_session_revocations_total",
      "effect_session_undecodable_total",
      "effect_session_too_large_total"
    ])
  })
})

describe("the duration's buckets", () => {
  it("are 16, from 0.1 ms, each twice the one before, the last about 3 s", () => {
    const boundaries = Metrics.storeOperationDurationBoundaries
    expect(boundaries).toHaveLength(16)
    expect(boundaries[0]).toBe(0.1)
    for (let i = 1; i < boundaries.length; i++) expect(boundaries[i]).toBeCloseTo(boundaries[i - 1] * 2, 9)
    expect(boundaries.at(-1)).toBeCloseTo(3276.8, 6)
  })
})
