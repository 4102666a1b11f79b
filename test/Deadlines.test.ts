import { describe, expect, it } from "@effect/vitest"
import { Deadlines } from "../src/internal/deadlines.js"

const sleep = (millis: number) => new Promise((resolve) => setTimeout(resolve, millis))

describe("Deadlines (the store's one timer for every command in flight)", () => {
  it("expires exactly the calls that have not ended, each at its own deadline", async () => {
    const deadlines = new Deadlines(80)
    const expired: Array<string> = []
    const at = (name: string) => () => expired.push(`${name}@${Date.now() - start}`)
    const start = Date.now()
    const a = deadlines.start(at("a"))
    const b = deadlines.start(at("b"))
    await sleep(40)
    const c = deadlines.start(at("c"))
    // ended out of order: b before a
    expect(deadlines.end(b)).toBe(true)
    await sleep(60) // a is past its deadline, c is not
    expect(expired.map((e) => e.split("@")[0])).toEqual(["a"])
    expect(deadlines.end(a)).toBe(false) // too late: its outcome is ignored
    await sleep(60)
    expect(expired.map((e) => e.split("@")[0])).toEqual(["a", "c"])
    expect(deadlines.end(c)).toBe(false)
    const [aAt, cAt] = expired.map((e) => Number(e.split("@")[1]))
    expect(aAt).toBeGreaterThanOrEqual(79)
    expect(cAt).toBeGreaterThanOrEqual(119)
    expect(cAt).toBeLessThan(200)
    deadlines.close()
  })

  it("a call ended in time never expires, and an idle queue re-arms for the next call", async () => {
    const deadlines = new Deadlines(30)
    let expired = 0
    for (let i = 0; i < 1000; i++) expect(deadlines.end(deadlines.start(() => expired++))).toBe(true)
    await sleep(60)
    expect(expired).toBe(0)
    // after the queue went idle, a new call still gets its deadline
    const late = deadlines.start(() => expired++)
    await sleep(60)
    expect(expired).toBe(1)
    expect(deadlines.end(late)).toBe(false)
    deadlines.close()
  })

  it("close fails the calls still running, once, and stops the timer", async () => {
    const deadlines = new Deadlines(20)
    const outcomes: Array<string> = []
    const ended = deadlines.start(() => outcomes.push("ended call expired"))
    deadlines.start((closed) => outcomes.push(closed ? "closed" : "timed out"))
    deadlines.end(ended)
    deadlines.close()
    expect(outcomes).toEqual(["closed"])
    await sleep(50)
    expect(outcomes).toEqual(["closed"])
  })
})
