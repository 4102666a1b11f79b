/**
 * A lane's turn (src/core/lanes.ts's `Turn`): one holder at a time, waiters
 * woken in the order they asked, a cancelled wait that never holds it or
 * passes it on — plain code, tested without Effect.
 */
import { describe, expect, it } from "vitest"
import { Turn } from "../../src/core/lanes.js"

describe("Turn", () => {
  it("is taken at once when free, and not twice", () => {
    const turn = new Turn()
    expect(turn.tryTake()).toBe(true)
    expect(turn.isHeld).toBe(true)
    expect(turn.tryTake()).toBe(false)
    turn.release()
    expect(turn.isHeld).toBe(false)
    expect(turn.tryTake()).toBe(true)
  })

  it("hands itself to the waiters in the order they asked, one at a time", () => {
    const turn = new Turn()
    const woken: Array<number> = []
    turn.tryTake()
    for (const n of [1, 2, 3]) turn.wait(() => woken.push(n))
    expect(woken).toEqual([])
    turn.release()
    expect(woken).toEqual([1])
    expect(turn.isHeld).toBe(true)
    // a free-looking turn is still held by the woken waiter
    expect(turn.tryTake()).toBe(false)
    turn.release()
    turn.release()
    expect(woken).toEqual([1, 2, 3])
    turn.release()
    expect(turn.isHeld).toBe(false)
  })

  it("a cancelled wait is skipped; a wait cancelled after its wake passes the turn on", () => {
    const turn = new Turn()
    const woken: Array<number> = []
    turn.tryTake()
    const first = turn.wait(() => woken.push(1))
    turn.wait(() => woken.push(2))
    const third = turn.wait(() => woken.push(3))
    third.cancel()
    turn.release()
    expect(woken).toEqual([1])
    // the first waiter was handed the turn but gives it up (interrupted before it ran)
    first.cancel()
    expect(woken).toEqual([1, 2])
    // cancelling again does nothing; the second still holds it
    first.cancel()
    expect(woken).toEqual([1, 2])
    expect(turn.isHeld).toBe(true)
    turn.release()
    expect(woken).toEqual([1, 2])
    expect(turn.isHeld).toBe(false)
  })

  it("a wake that releases at once (a waiter with nothing to do) lets the next one in", () => {
    const turn = new Turn()
    const woken: Array<number> = []
    turn.tryTake()
    turn.wait(() => {
      woken.push(1)
      turn.release()
    })
    turn.wait(() => woken.push(2))
    turn.release()
    expect(woken).toEqual([1, 2])
    expect(turn.isHeld).toBe(true)
  })
})
