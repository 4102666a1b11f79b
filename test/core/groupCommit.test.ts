/**
 * Group commit in the core (src/core/lanes.ts's UpdateQueue, src/core/save.ts's
 * group rules): which updates form a group, the group's data, and what each
 * request's cookie does afterwards — plain code, tested without Effect.
 */
import { describe, expect, it } from "vitest"
import { UpdateQueue } from "../../src/core/lanes.js"
import { RequestState } from "../../src/core/request.js"
import * as Save from "../../src/core/save.js"

const key = "K".repeat(43)
const t = 1_000_000
const empty = { empty: { n: 0, tags: [] as ReadonlyArray<string> }, make: () => ({ n: 0, tags: [] as ReadonlyArray<string> }) }
type Data = typeof empty.empty
const timeouts = { idleMillis: 60_000, absoluteMillis: 600_000, touchAfterMillis: 6_000 }
const loadedAt = (version: number, expiresAt: number) => ({
  key,
  version,
  expiresAt,
  createdAt: t,
  absoluteExpiresAt: t + 600_000,
  principal: null,
  data: { n: version, tags: [] },
  text: ""
})

/** A request that loaded `version` and recorded `ops`, as a member of a group saving at `at`. */
const member = (version: number, at: number, ops: (state: RequestState<Data>) => void, clientId = "c".repeat(43)) => {
  const request = new RequestState<Data>(empty, timeouts)
  request.clientId = clientId
  const loaded = loadedAt(version, t + 60_000)
  request.adopt({ loaded })
  ops(request)
  return { request, loaded, t: at }
}

describe("the lane's queue of updates (UpdateQueue)", () => {
  it("asks the first update to start a writer, and no other while one runs", () => {
    const queue = new UpdateQueue<string>()
    expect(queue.enqueue("a")).toBe(true)
    expect(queue.enqueue("b")).toBe(false)
    expect(queue.size).toBe(2)
  })
  it("groups the first waiting update with those right after it of the same definition, in queue order", () => {
    const queue = new UpdateQueue<{ definition: string; n: number }>()
    for (const [definition, n] of [["A", 1], ["A", 2], ["B", 3], ["A", 4]] as const) queue.enqueue({ definition, n })
    const same = (a: { definition: string }, b: { definition: string }) => a.definition === b.definition
    expect(queue.nextGroup(same)?.map((u) => u.n)).toEqual([1, 2])
    expect(queue.nextGroup(same)?.map((u) => u.n)).toEqual([3])
    expect(queue.nextGroup(same)?.map((u) => u.n)).toEqual([4])
  })
  it("stops the writer when nothing waits: the next update starts one of its own", () => {
    const queue = new UpdateQueue<number>()
    queue.enqueue(1)
    expect(queue.nextGroup(() => true)).toEqual([1])
    expect(queue.nextGroup(() => true)).toBeUndefined()
    expect(queue.enqueue(2)).toBe(true)
  })
  it("hands every waiting update back when the writer is abandoned, and lets the next start a writer", () => {
    const queue = new UpdateQueue<number>()
    queue.enqueue(1)
    queue.enqueue(2)
    expect(queue.abandon()).toEqual([1, 2])
    expect(queue.size).toBe(0)
    expect(queue.enqueue(3)).toBe(true)
  })
})

describe("a group's write (save.ts)", () => {
  const increment = (state: RequestState<Data>) => state.record({ _tag: "Update", key: "n", f: (n: number) => n + 1 })
  const tag = (name: string) => (state: RequestState<Data>) =>
    state.record({ _tag: "Update", key: "tags", f: (tags: ReadonlyArray<string>) => [...tags, name] })
  it("starts from the newest session its members loaded, at the latest of their times", () => {
    const group = [member(3, t + 5, increment), member(7, t + 2, increment), member(5, t + 9, increment)]
    const start = Save.groupStart(group)
    expect(start.base.version).toBe(7)
    expect(start.t).toBe(t + 9)
  })
  it("replays every member's operations in queue order over the data it writes over: no write is lost", () => {
    const group = [member(1, t, tag("a")), member(1, t, (s) => { increment(s); tag("b")(s) }), member(1, t, tag("c"))]
    expect(Save.replayGroup(group, { n: 10, tags: ["x"] })).toEqual({ n: 11, tags: ["x", "a", "b", "c"] })
  })
  it("says per member what its cookie does: sent when its own deadline moved, expired when emptied, alone when dropped", () => {
    const moved = member(1, t, increment)
    const anonymous = member(1, t, increment)
    anonymous.request.clientId = undefined
    const written = Save.groupOutcome("Saved", t + 90_000)
    expect(written).toEqual({ _tag: "Written", expiresAt: t + 90_000 })
    expect(Save.cookieAfterGroup(moved, written)).toEqual({ _tag: "Set", id: "c".repeat(43), expiresAt: t + 90_000 })
    // the deadline this member loaded did not move: no cookie
    expect(Save.cookieAfterGroup(moved, Save.groupOutcome("Saved", t + 60_000))).toEqual({ _tag: "None" })
    expect(Save.cookieAfterGroup(anonymous, written)).toEqual({ _tag: "None" })
    expect(Save.cookieAfterGroup(moved, Save.groupOutcome("Ended", 0))).toEqual({ _tag: "Expire" })
    expect(Save.cookieAfterGroup(moved, Save.groupOutcome("Dropped", 0))).toEqual({ _tag: "None" })
  })
  it("falls back to one update at a time only for an encoding failure of a group of several", () => {
    expect(Save.afterGroupFailure(3, "SessionTooLarge")).toBe("OneAtATime")
    expect(Save.afterGroupFailure(3, "SessionEncodeError")).toBe("OneAtATime")
    expect(Save.afterGroupFailure(1, "SessionTooLarge")).toBe("FailAll")
    expect(Save.afterGroupFailure(3, "SessionStoreError")).toBe("FailAll")
    expect(Save.afterGroupFailure(3, undefined)).toBe("FailAll")
  })
  it("leaves the session it wrote for the next save in the lane: the base with the new version, deadline, data and text", () => {
    const base = loadedAt(4, t + 60_000)
    const saved = Save.savedSession(base, 5, t + 70_000, { n: 9, tags: [] }, "{}")
    expect(saved).toEqual({ ...base, version: 5, expiresAt: t + 70_000, data: { n: 9, tags: [] }, text: "{}" })
    expect(Save.handoffFrom(saved, 4)).toBe(saved)
  })
})
