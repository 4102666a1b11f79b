import { expect } from "@effect/vitest"
import { Effect } from "effect"

/**
 * The window in which a wait that a timeout of `timeoutMs` ends must end:
 * not before the timeout (timers never fire early; 20 ms allow for clocks
 * read in different places), and within `headroomMs` after it. The default
 * headroom is as long again as the timeout, and at least a second, for a
 * machine busy with other test files.
 */
export const timeoutWindow = (timeoutMs: number, headroomMs = Math.max(timeoutMs, 1_000)) => ({
  min: timeoutMs - 20,
  max: timeoutMs + headroomMs
})

/** Asserts that `elapsedMs` lies in the window of a timeout of `timeoutMs`. */
export const expectEndedAtTimeout = (elapsedMs: number, timeoutMs: number, headroomMs?: number): void => {
  const { max, min } = timeoutWindow(timeoutMs, headroomMs)
  expect(elapsedMs, `ended after ${elapsedMs.toFixed(0)} ms, expected at the ${timeoutMs} ms timeout`)
    .toBeGreaterThanOrEqual(min)
  expect(elapsedMs, `ended after ${elapsedMs.toFixed(0)} ms, expected at the ${timeoutMs} ms timeout`).toBeLessThan(max)
}

/**
 * Asserts that a wait ended well before a timeout of `timeoutMs` (by half of
 * it): what another event ended, not the timeout.
 */
export const expectEndedBeforeTimeout = (elapsedMs: number, timeoutMs: number): void => {
  expect(elapsedMs, `ended after ${elapsedMs.toFixed(0)} ms, expected well before the ${timeoutMs} ms timeout`)
    .toBeLessThan(timeoutMs / 2)
}

/**
 * Polls `condition` on the real clock (I/O completes in real time, whatever
 * clock the test's effects use) until it holds or `timeoutMs` passed; says
 * whether it held.
 */
export const eventually = (condition: () => boolean, timeoutMs: number) =>
  Effect.promise(async () => {
    const deadline = Date.now() + timeoutMs
    while (!condition()) {
      if (Date.now() > deadline) return false
      await new Promise((resolve) => setTimeout(resolve, 20))
    }
    return true
  })
