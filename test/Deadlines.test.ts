import { afterEach, beforeEach, describe, expect, it, vi } from "@effect/vitest"
import { Deadlines } from "../src/internal/deadlines.js"

// Deadlines runs on `setTimeout` and `performance.now()`: both are faked, so
// time moves only when a test moves it and every instant below is exact.
beforeEach(() => {
  vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout", "performance"] })
})
afterEach(() => {
  vi.useRealTimers()
})

const elapsed = (start: number) => performance.now() - start

describe("Deadlines (the store's one timer for every command in flight)", () => {
  it("expires exactly the calls that have not ended, each at its own deadline", () => {
    const deadlines = new Deadlines(80)
    const start = performance.now()
    const expired: Array<readonly [string, number]> = []
    const at = (name: string) => () => expired.push([name, elapsed(start)])
    const a = deadlines.start(at("a"))
    const b = deadlines.start(at("b"))
    vi.advanceTimersByTime(40)
    const c = deadlines.start(at("c"))
    // ended out of order: b before a
    expect(deadlines.end(b)).toBe(true)
    vi.advanceTimersByTime(39)
    expect(expired).toEqual([])
    vi.advanceTimersByTime(1)
    expect(expired).toEqual([["a", 80]])
    expect(deadlines.end(a)).toBe(false) // too late: its outcome is ignored
    vi.advanceTimersByTime(39)
    expect(expired).toEqual([["a", 80]])
    vi.advanceTimersByTime(1)
    expect(expired).toEqual([["a", 80], ["c", 120]])
    expect(deadlines.end(c)).toBe(false)
    deadlines.close()
  })

  it("a call ended in time never expires, and an idle queue re-arms for the next call", () => {
    const deadlines = new Deadlines(30)
    let expired = 0
    for (let i = 0; i < 1000; i++) expect(deadlines.end(deadlines.start(() => expired++))).toBe(true)
    vi.advanceTimersByTime(60)
    expect(expired).toBe(0)
    // after the queue went idle, a new call still gets its full deadline
    const late = deadlines.start(() => expired++)
    vi.advanceTimersByTime(29)
    expect(expired).toBe(0)
    vi.advanceTimersByTime(1)
    expect(expired).toBe(1)
    expect(deadlines.end(late)).toBe(false)
    deadlines.close()
  })

  it("close fails the calls still running, once, and stops the timer", () => {
    const deadlines = new Deadlines(20)
    const outcomes: Array<string> = []
    const ended = deadlines.start(() => outcomes.push("ended call expired"))
    deadlines.start((closed) => outcomes.push(closed ? "closed" : "timed out"))
    deadlines.end(ended)
    deadlines.close()
    expect(outcomes).toEqual(["closed"])
    expect(vi.getTimerCount()).toBe(0)
    vi.advanceTimersByTime(50)
    expect(outcomes).toEqual(["closed"])
  })
})
