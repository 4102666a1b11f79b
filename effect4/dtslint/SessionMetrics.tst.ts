/**
 * Type tests of the Effect 4 line's SessionMetrics (tstyche): counters of
 * numbers and a latency timer of durations, each read and updated with
 * Effect's own `Metric`.
 */
import { Duration, Effect, Metric } from "effect"
import { describe, expect, test } from "tstyche"
import * as SessionMetrics from "../src/SessionMetrics.js"

describe("SessionMetrics", () => {
  test("the counters count numbers", () => {
    expect(SessionMetrics.storeOperations).type.toBe<Metric.Counter<number>>()
    expect(SessionMetrics.conflictReplays).type.toBe<Metric.Counter<number>>()
    expect(SessionMetrics.regenerations).type.toBe<Metric.Counter<number>>()
    expect(SessionMetrics.revocations).type.toBe<Metric.Counter<number>>()
    expect(SessionMetrics.undecodable).type.toBe<Metric.Counter<number>>()
    expect(SessionMetrics.tooLarge).type.toBe<Metric.Counter<number>>()
  })

  test("the latency is a histogram of durations", () => {
    expect(SessionMetrics.storeOperationDuration).type.toBe<Metric.Histogram<Duration.Duration>>()
    expect(Metric.update(SessionMetrics.storeOperationDuration, Duration.millis(5))).type.toBe<Effect.Effect<void>>()
    expect(Metric.update(SessionMetrics.storeOperationDuration, 5)).type.toRaiseError()
  })

  test("one series is read with its attributes", () => {
    const loads = Metric.value(
      Metric.withAttributes(SessionMetrics.storeOperations, { store: "redis", operation: "load", outcome: "success" })
    )
    expect(Effect.map(loads, (state) => state.count)).type.toBe<Effect.Effect<number>>()
  })
})
