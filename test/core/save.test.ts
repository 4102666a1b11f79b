/**
 * The core modules added for the Effect 4 shell (src/core/save.ts,
 * request.ts, lanes.ts, redisWrites.ts, failure.ts): plain functions and
 * classes, tested without Effect.
 */
import { describe, expect, it } from "vitest"
import * as Failure from "../../src/core/failure.js"
import { handoff, handoverKeptFor, handoversKeptAtMost, Lanes } from "../../src/core/lanes.js"
import { readTombstone } from "../../src/core/record.js"
import { liveSession, RequestState } from "../../src/core/request.js"
import * as Writes from "../../src/core/redisWrites.js"
import * as Save from "../../src/core/save.js"

const key = "K".repeat(43)
const other = "M".repeat(43)
const t = 1_000_000

describe("ending a session (nextEndStep)", () => {
  const state = { version: 3, expiresAt: t + 10 * 60_000, movedTo: null }
  it("loads first when nothing is known, writes the ended tombstone on the known version otherwise", () => {
    expect(Save.nextEndStep({ _tag: "Start", known: undefined }, t, 0)).toEqual({ _tag: "Load" })
    const step = Save.nextEndStep({ _tag: "Start", known: state }, t, 0)
    expect(step._tag).toBe("WriteTombstone")
    if (step._tag !== "WriteTombstone") return
    expect(step.state.version).toBe(3)
    expect(readTombstone({ text: step.record.text, data: new Uint8Array() })).toEqual({ movedTo: null })
    // a tombstone stays 5 minutes at most, never longer than the session would have
    expect(step.record.expiresAt).toBe(t + 5 * 60_000)
  })
  it("stops when there is nothing (left) to end, retries a lost write after a pause", () => {
    expect(Save.nextEndStep({ _tag: "Loaded", state: undefined }, t, 0)).toEqual({ _tag: "Done" })
    expect(Save.nextEndStep({ _tag: "Wrote", outcome: "Missing", state }, t, 0)).toEqual({ _tag: "Done" })
    expect(Save.nextEndStep({ _tag: "Wrote", outcome: "VersionMismatch", state }, t, 0)).toEqual({ _tag: "Pause" })
    expect(Save.nextEndStep({ _tag: "Paused" }, t, 0)).toEqual({ _tag: "Load" })
  })
  it("follows a move before removing, up to maxEndHops", () => {
    const moved = { ...state, movedTo: other }
    expect(Save.nextEndStep({ _tag: "Wrote", outcome: "Written", state }, t, 0)).toEqual({ _tag: "Remove" })
    expect(Save.nextEndStep({ _tag: "Wrote", outcome: "Written", state: moved }, t, 0)).toEqual({ _tag: "EndMoved", key: other })
    expect(Save.nextEndStep({ _tag: "EndedMoved" }, t, 0)).toEqual({ _tag: "Remove" })
    expect(Save.nextEndStep({ _tag: "Wrote", outcome: "Written", state: moved }, t, Save.maxEndHops)).toEqual({ _tag: "Remove" })
  })
})

describe("revokeAll's passes", () => {
  it("passes again until one finds nothing, at most maxRevokePasses times", () => {
    expect(Save.anotherRevokePass(3, 1)).toBe(true)
    expect(Save.anotherRevokePass(0, 1)).toBe(false)
    expect(Save.anotherRevokePass(1, Save.maxRevokePasses - 1)).toBe(true)
    expect(Save.anotherRevokePass(1, Save.maxRevokePasses)).toBe(false)
  })
})

describe("updating and moving", () => {
  it("an emptied session is written as the ended tombstone, any other with its next deadline", () => {
    expect(Save.updateRecord(false, { expiresAt: t }, t + 5, t)).toEqual({ _tag: "Session", expiresAt: t + 5 })
    const emptied = Save.updateRecord(true, { expiresAt: t + 60_000 }, t + 5, t)
    expect(emptied._tag === "Tombstone" && readTombstone({ text: emptied.record.text, data: new Uint8Array() })).toEqual({ movedTo: null })
  })
  it("says what each compare-and-set answer means", () => {
    expect(Save.afterUpdate("Written", false)).toBe("Saved")
    expect(Save.afterUpdate("Written", true)).toBe("Ended")
    expect(Save.afterUpdate("Missing", false)).toBe("Dropped")
    expect(Save.afterUpdate("VersionMismatch", true)).toBe("Replay")
    expect(Save.afterMove("Written")).toBe("Moved")
    expect(Save.afterMove("Missing")).toBe("Undo")
    expect(Save.afterMove("VersionMismatch")).toBe("Replay")
  })
  it("a moved session keeps its absolute deadline; its tombstone points at the new key", () => {
    const timeouts = { idleMillis: 1000, absoluteMillis: 10_000, touchAfterMillis: 100 }
    expect(Save.movedExpiry(timeouts, t + 500, t)).toBe(t + 500)
    expect(Save.movedExpiry(timeouts, t + 5000, t)).toBe(t + 1000)
    const pointer = Save.tombstoneRecord(other, t + 60_000, t)
    expect(readTombstone({ text: pointer.text, data: new Uint8Array() })).toEqual({ movedTo: other })
  })
  it("an ending starts from a record's own version, and follows where its tombstone says it moved", () => {
    expect(Save.storedState({ version: 4, expiresAt: t }, undefined)).toEqual({ version: 4, expiresAt: t, movedTo: null })
    expect(Save.storedState({ version: 4, expiresAt: t }, { movedTo: other })).toEqual({ version: 4, expiresAt: t, movedTo: other })
  })
  it("a save starts from the lane's last session only when it is newer, and stops when it ended", () => {
    expect(Save.handoffFrom({ version: 4 }, 3)).toEqual({ version: 4 })
    expect(Save.handoffFrom({ version: 3 }, 3)).toBeUndefined()
    expect(Save.handoffFrom(undefined, 3)).toBeUndefined()
    expect(Save.handoffFrom("Ended", 3)).toBe("Ended")
  })
})

describe("lanes", () => {
  // a save of `key` that left `last`, done: the lane it used
  const saved = <Lock>(lanes: Lanes<Lock, string>, key: string, last: string) => {
    const use = lanes.join(key)
    use.lane.last = last
    use.release()
    return use.lane
  }
  it("one lane per key while it has users, gone with the last release (release is idempotent)", () => {
    let locks = 0
    const lanes = new Lanes<number, string>(() => ++locks)
    const a = lanes.join(key)
    const b = lanes.join(key)
    expect(a.lane).toBe(b.lane)
    expect(lanes.size).toBe(1)
    a.release()
    a.release()
    expect(lanes.size).toBe(1)
    b.release()
    expect(lanes.size).toBe(0)
    expect(lanes.join(key).lane.lock).toBe(2)
  })
  it("keeps what the last save left for a while after its lane empties, for the next save of the key (a request that loaded before it)", () => {
    let now = t
    const lanes = new Lanes<number, string>(() => 0, () => now)
    const save = lanes.join(key)
    save.lane.last = "stored v2"
    save.release()
    expect(lanes.size).toBe(0)
    expect(lanes.keptHandovers).toBe(1)
    now += handoverKeptFor - 1
    const next = lanes.join(key)
    expect(next.lane.last).toBe("stored v2")
    // taken: a lane holds it again while it has users
    expect(lanes.keptHandovers).toBe(0)
    next.release()
    // too old: a save that comes later reloads instead
    now += handoverKeptFor
    expect(lanes.join(key).lane.last).toBeUndefined()
  })
  it("keeps nothing for a lane no save left anything in, and drops old hand-overs as new ones come", () => {
    let now = t
    const lanes = new Lanes<number, string>(() => 0, () => now)
    lanes.join(key).release()
    expect(lanes.keptHandovers).toBe(0)
    saved(lanes, "a".repeat(43), "a")
    now += handoverKeptFor
    saved(lanes, "b".repeat(43), "b")
    expect(lanes.keptHandovers).toBe(1)
    // at most handoversKeptAtMost, the oldest dropped first
    for (let i = 0; i < handoversKeptAtMost + 5; i++) saved(lanes, `k${i}`, String(i))
    expect(lanes.keptHandovers).toBe(handoversKeptAtMost)
    expect(lanes.join("k0").lane.last).toBeUndefined()
    expect(lanes.join(`k${handoversKeptAtMost + 4}`).lane.last).toBe(String(handoversKeptAtMost + 4))
  })
  it("takes a lane emptied a moment ago up again (its turn and what it left), and sweeps lanes idle for handoverKeptFor", () => {
    let now = t
    let locks = 0
    const lanes = new Lanes<number, string>(() => ++locks, () => now)
    const first = saved(lanes, key, "stored v2")
    expect(lanes.size).toBe(0)
    now += handoverKeptFor - 1
    const again = lanes.join(key)
    expect(again.lane).toBe(first)
    expect(again.lane.last).toBe("stored v2")
    again.release()
    // a save of another key a second later sweeps this key's idle lane: the next one is made anew
    now += handoverKeptFor
    saved(lanes, "b".repeat(43), "b")
    expect(lanes.keptHandovers).toBe(1)
    const later = lanes.join(key)
    expect(later.lane.lock).toBe(3)
    expect(later.lane.last).toBeUndefined()
  })
  it("hands a save the session the last one stored only when newer and of the same definition; an ending stops it", () => {
    const definition = {}
    const last = { definition, session: { version: 4 } }
    expect(handoff(last, definition, 3)).toBe(last.session)
    expect(handoff(last, definition, 4)).toBeUndefined()
    // another middleware's data has another schema: never replayed over
    expect(handoff(last, {}, 3)).toBeUndefined()
    expect(handoff(undefined, definition, 3)).toBeUndefined()
    expect(handoff("Ended", {}, 3)).toBe("Ended")
  })
})

describe("the request's state", () => {
  const empty = { empty: { n: 0 }, make: () => ({ n: 0 }) }
  const timeouts = { idleMillis: 60_000, absoluteMillis: 600_000, touchAfterMillis: 6_000 }
  const loaded = { key, version: 1, expiresAt: t + 60_000, createdAt: t, absoluteExpiresAt: t + 600_000, principal: "alice", data: { n: 5 }, text: "" }
  const stateOf = () => {
    const state = new RequestState<{ n: number }>(empty, timeouts)
    state.clientId = "c".repeat(43)
    state.adopt({ loaded })
    return state
  }
  it("logging in as another principal starts from empty data; as the same one keeps it", () => {
    const switched = stateOf()
    switched.login("bob", false)
    expect([switched.data, switched.principal, switched.invalidated]).toEqual([{ n: 0 }, "bob", true])
    const same = stateOf()
    same.login("alice", false)
    expect([same.data, same.principal, same.invalidated]).toEqual([{ n: 5 }, "alice", false])
    const kept = stateOf()
    kept.login("bob", true)
    expect(kept.data).toEqual({ n: 5 })
  })
  it("keeps the client's id until the session moves, then one new id", () => {
    const state = stateOf()
    expect(state.id()).toBe("c".repeat(43))
    state.regenerate()
    const id = state.id()
    expect(id).not.toBe("c".repeat(43))
    expect(state.targetId()).toBe(id)
  })
  it("has nothing to save for a read that moves no deadline, and plans an update after a write", () => {
    const state = stateOf()
    state.used = true
    expect(state.nothingToSave(t + 1000)).toBe(true)
    expect(state.nothingToSave(t + 10_000)).toBe(false)
    state.record({ _tag: "Update", key: "n", f: (n: number) => n + 1 })
    expect(state.data).toEqual({ n: 6 })
    expect(state.replayOver({ n: 10 })).toEqual({ n: 11 })
    expect(state.plan(() => false, () => false)).toEqual({ _tag: "Update" })
  })
  it("replayed over the data it loaded, gives its own data (an update's function is not run again); over other data, runs them again", () => {
    const state = stateOf()
    let runs = 0
    state.record({ _tag: "Update", key: "n", f: (n: number) => (runs++, n + 1) })
    state.record({ _tag: "Set", key: "n", value: 7 })
    state.record({ _tag: "Update", key: "n", f: (n: number) => (runs++, n * 2) })
    expect([state.data, runs]).toEqual([{ n: 14 }, 2])
    expect(state.replayOver(loaded.data)).toBe(state.data)
    expect(runs).toBe(2)
    // an equal but other object is another writer's data: replayed
    const other = { n: 5 }
    const replayed = state.replayOver(other)
    expect(replayed).toEqual({ n: 14 })
    expect(replayed).not.toBe(state.data)
    expect(runs).toBe(4)
    // once something but its operations changed the data, the loaded data is replayed over too
    state.invalidate()
    expect(state.replayOver(loaded.data)).toEqual({ n: 5 })
    const moved = stateOf()
    moved.record({ _tag: "Update", key: "n", f: (n: number) => n + 1 })
    moved.data = moved.replayOver({ n: 100 })
    expect(moved.replayOver(loaded.data)).toEqual({ n: 6 })
    const fresh = new RequestState<{ n: number }>(empty, timeouts)
    fresh.adopt({})
    fresh.record({ _tag: "Set", key: "n", value: 1 })
    expect(fresh.replayOver(empty.empty)).toEqual({ n: 1 })
  })
  it("sends the cookie of a kept session only when its deadline moved, and never without the client's id", () => {
    const state = stateOf()
    expect(state.cookieFor(loaded, t + 90_000)).toEqual({ _tag: "Set", id: "c".repeat(43), expiresAt: t + 90_000 })
    expect(state.cookieFor(loaded, loaded.expiresAt)).toEqual({ _tag: "None" })
    state.clientId = undefined
    expect(state.cookieFor(loaded, t + 90_000)).toEqual({ _tag: "None" })
  })
  it("starts from a stored session only while it is alive (idle, stored absolute and today's absolute deadline)", () => {
    const record = { version: 2, expiresAt: t + 60_000 }
    const envelope = { createdAt: t, absoluteExpiresAt: t + 600_000, data: { n: 1 } }
    expect(liveSession(timeouts, key, record, envelope, "alice", "{}", t + 1)).toEqual({
      key,
      version: 2,
      expiresAt: t + 60_000,
      createdAt: t,
      absoluteExpiresAt: t + 600_000,
      principal: "alice",
      data: { n: 1 },
      text: "{}"
    })
    expect(liveSession(timeouts, key, record, envelope, null, "{}", t + 60_000)).toBeUndefined()
    expect(liveSession(timeouts, key, { version: 2, expiresAt: t + 900_000 }, envelope, null, "{}", t + 600_000)).toBeUndefined()
    // a shortened absoluteTimeout ends an older session whatever its stored deadlines
    expect(liveSession({ ...timeouts, absoluteMillis: 1000 }, key, record, envelope, null, "{}", t + 1000)).toBeUndefined()
  })
  it("after the response: nothing for an unused session, only a logout after a server error, else the save", () => {
    const state = stateOf()
    expect(state.afterResponse(200)).toBe("Unused")
    state.used = true
    expect(state.afterResponse(200)).toBe("Save")
    expect(state.afterResponse(404)).toBe("Save")
    expect(state.afterResponse(500)).toBe("Keep")
    state.invalidate()
    expect(state.afterResponse(503)).toBe("Logout")
  })
  it("a logout ends the loaded session, or follows the tombstone found under the client's id", () => {
    const state = stateOf()
    expect(state.endTarget((id) => `key of ${id}`)).toEqual({ key, known: { version: 1, expiresAt: t + 60_000, movedTo: null } })
    const moved = new RequestState<{ n: number }>(empty, timeouts)
    moved.clientId = "c".repeat(43)
    const tombstone = { version: 2, expiresAt: t, movedTo: other }
    moved.adopt({ tombstone })
    expect(moved.endTarget((id) => `key of ${id}`)).toEqual({ key: `key of ${"c".repeat(43)}`, known: tombstone })
  })
})

describe("after a Redis write script (redisWrites.ts)", () => {
  it("refuses a malformed reply, reports conflicts, and raises the index only on a cluster or after a touch", () => {
    expect(Writes.afterInsert("OK?", false, undefined)._tag).toBe("Malformed")
    expect(Writes.afterInsert(0, false, "alice")).toEqual({ _tag: "Conflict", reason: "Exists" })
    expect(Writes.afterInsert(1, false, "alice")).toEqual({ _tag: "Done", value: undefined, raise: undefined })
    expect(Writes.afterInsert(1, true, "alice")).toEqual({ _tag: "Done", value: undefined, raise: "alice" })
    expect(Writes.afterUpdateScript([-2, 0], true, "alice")).toEqual({ _tag: "Conflict", reason: "VersionMismatch" })
    expect(Writes.afterUpdateScript([3, 1], true, "alice")).toEqual({ _tag: "Done", value: 3, raise: "alice" })
    expect(Writes.afterUpdateScript([3, 0], true, "alice")).toEqual({ _tag: "Done", value: 3, raise: undefined })
    expect(Writes.afterTouch([1, "bob"])).toEqual({ _tag: "Done", value: true, raise: "bob" })
    expect(Writes.afterTouch(0)).toEqual({ _tag: "Done", value: false, raise: undefined })
  })
})

describe("what a failure answers (failure.ts)", () => {
  it("maps each error to its status, and follows a cause chain without looping", () => {
    expect(Failure.failureAnswer("SessionStoreError").status).toBe(503)
    expect(Failure.failureAnswer("SessionConflict").headers).toEqual({ "retry-after": "1" })
    expect(Failure.failureAnswer("SessionTooLarge").status).toBe(413)
    expect(Failure.failureAnswer("SessionEncodeError").status).toBe(500)
    const looped: { message: string; cause?: unknown } = { message: "outer" }
    looped.cause = looped
    expect(Failure.describeCause(looped)).toBe("outer")
    expect(Failure.describeCause(new AggregateError([new Error("a"), new Error("b")], ""))).toBe("a; b")
  })
})
