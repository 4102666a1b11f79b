/**
 * The store contract as runnable cases, without Effect: each case is a
 * program that asks for store operations (load, insert, update, touch,
 * remove, keys, removeAll), the time, moving the time and racing
 * sub-programs, and says what it expected. A case is a generator of
 * `Step`s, and `runCase` walks it: each step becomes an operation of the
 * line's `Runner` (its Effect, over its `SessionStore`) and the case resumes
 * with the answer. The cases, how their steps are run and the suite's
 * options are written once; each line's `StoreConformance` is Effect glue,
 * and both lines check every store against the same cases.
 *
 * A record's payload is text or bytes: the Effect 3 line stores bytes, the
 * Effect 4 line text. A case that needs bytes no text can carry is marked
 * `needs: "bytes"` and runs only where the line stores bytes.
 *
 * @internal
 */
import { generateId, storageKeyFunction } from "./ids.js"

/** @internal */
export type ConflictReason = "Exists" | "VersionMismatch" | "Missing"

/** @internal */
export type Payload = string | Uint8Array

/** What a case writes with `insert` and `update`. @internal */
export interface Write {
  readonly payload: Payload
  readonly expiresAt: number
  readonly principal: string | undefined
}

/** What a case sees of a loaded record. @internal */
export interface Stored {
  readonly payload: Payload
  readonly version: number
  readonly expiresAt: number
  readonly principal: string | undefined
}

/**
 * The result of an operation a case expects may fail: the value, or the
 * error with the conflict's reason when it is a `SessionConflict`.
 *
 * @internal
 */
export type Outcome<A> =
  | { readonly ok: true; readonly value: A }
  | { readonly ok: false; readonly conflict: ConflictReason | undefined; readonly error: unknown }

/**
 * What a case asks of the runner. A store operation without `attempt`
 * fails the case with the store's own error; with `attempt` it answers an
 * `Outcome`. `Fail` ends the case with a `ConformanceFailure` carrying the
 * detail; `Raise` ends it with an error an `Outcome` carried.
 *
 * @internal
 */
export type Step =
  | { readonly _tag: "Now" }
  | { readonly _tag: "Advance"; readonly millis: number }
  | { readonly _tag: "Load"; readonly key: string }
  | { readonly _tag: "Insert"; readonly key: string; readonly write: Write; readonly attempt: boolean }
  | {
    readonly _tag: "Update"
    readonly key: string
    readonly write: Write
    readonly expectedVersion: number
    readonly attempt: boolean
  }
  | { readonly _tag: "Touch"; readonly key: string; readonly expiresAt: number }
  | { readonly _tag: "Remove"; readonly key: string }
  | { readonly _tag: "Keys"; readonly principal: string }
  | { readonly _tag: "RemoveAll"; readonly principal: string }
  | { readonly _tag: "All"; readonly programs: ReadonlyArray<Program<unknown>> }
  | { readonly _tag: "Fail"; readonly detail: string }
  | { readonly _tag: "Raise"; readonly error: unknown }

/**
 * A case or a part of one: the runner answers each step; the answer's type
 * is the one the step's helper below declares.
 *
 * @internal
 */
export type Program<A> = Generator<Step, A, unknown>

/** @internal */
export interface CaseContext {
  /** How many fibers race in the racing cases. */
  readonly concurrency: number
}

/** @internal */
export interface Case {
  readonly name: string
  /** Runs only where the line's store keeps bytes (text cannot carry them). */
  readonly needs?: "bytes" | undefined
  readonly program: (context: CaseContext) => Program<void>
}

// the steps, typed by what the runner answers

function* now(): Program<number> {
  return (yield { _tag: "Now" }) as number
}

function* advance(millis: number): Program<void> {
  yield { _tag: "Advance", millis }
}

function* load(key: string): Program<Stored | undefined> {
  return (yield { _tag: "Load", key }) as Stored | undefined
}

function* insert(key: string, write: Write): Program<void> {
  yield { _tag: "Insert", key, write, attempt: false }
}

function* tryInsert(key: string, write: Write): Program<Outcome<void>> {
  return (yield { _tag: "Insert", key, write, attempt: true }) as Outcome<void>
}

function* update(key: string, write: Write, expectedVersion: number): Program<number> {
  return (yield { _tag: "Update", key, write, expectedVersion, attempt: false }) as number
}

function* tryUpdate(key: string, write: Write, expectedVersion: number): Program<Outcome<number>> {
  return (yield { _tag: "Update", key, write, expectedVersion, attempt: true }) as Outcome<number>
}

function* touch(key: string, expiresAt: number): Program<boolean> {
  return (yield { _tag: "Touch", key, expiresAt }) as boolean
}

function* remove(key: string): Program<void> {
  yield { _tag: "Remove", key }
}

function* keys(principal: string): Program<ReadonlyArray<string>> {
  return (yield { _tag: "Keys", principal }) as ReadonlyArray<string>
}

function* removeAll(principal: string): Program<number> {
  return (yield { _tag: "RemoveAll", principal }) as number
}

function* all<A>(programs: ReadonlyArray<Program<A>>): Program<ReadonlyArray<A>> {
  return (yield { _tag: "All", programs }) as ReadonlyArray<A>
}

function* expect(condition: boolean, detail: string): Program<void> {
  if (!condition) yield { _tag: "Fail", detail }
}

function* raise(error: unknown): Program<never> {
  yield { _tag: "Raise", error }
  throw new Error("a Raise step was resumed")
}

/** A record the case just wrote and must find: a failed check when absent. */
function* loaded(key: string, detail: string): Program<Stored> {
  const record = yield* load(key)
  if (record === undefined) {
    yield { _tag: "Fail", detail }
    throw new Error("a Fail step was resumed")
  }
  return record
}

function* expectConflict(attempt: Program<Outcome<unknown>>, reason: ConflictReason, what: string): Program<void> {
  const outcome = yield* attempt
  if (!outcome.ok && outcome.conflict === reason) return
  yield* expect(false, `${what}: expected SessionConflict(${reason}), got ${outcome.ok ? "success" : String(outcome.error)}`)
}

// the record's contents

const minute = 60_000
const day = 24 * 60 * minute

const encoder = new TextEncoder()
const decoder = new TextDecoder()

/** A payload as bytes (text as UTF-8). @internal */
export const bytesOf = (payload: Payload): Uint8Array => typeof payload === "string" ? encoder.encode(payload) : payload

/** A payload as text, for comparisons and messages. @internal */
export const textOf = (payload: Payload): string => typeof payload === "string" ? payload : decoder.decode(payload)

const sameBytes = (a: Uint8Array, b: Uint8Array): boolean => a.length === b.length && a.every((byte, i) => byte === b[i])

const same = (a: Payload, b: Payload): boolean =>
  typeof a === "string" && typeof b === "string" ? a === b : sameBytes(bytesOf(a), bytesOf(b))

const write = (payload: Payload, expiresAt: number, principal?: string): Write => ({ payload, expiresAt, principal })

// keys as the session middleware makes them: hashes of fresh ids
const storageKey = storageKeyFunction()
const freshKey = (): string => storageKey(generateId())
const freshPrincipal = (): string => `user-${generateId().slice(0, 12)}`
const sorted = (list: ReadonlyArray<string>): string => JSON.stringify([...list].sort())

/**
 * The cases of the `SessionStore` contract.
 *
 * @internal
 */
export const storeCases: ReadonlyArray<Case> = [
  {
    name: "load of an unknown key is None",
    *program() {
      yield* expect((yield* load(freshKey())) === undefined, "load returned a record for a key never written")
    }
  },
  {
    name: "insert then load round-trips data, version 1, expiry and principal",
    *program() {
      const key = freshKey()
      const expiresAt = (yield* now()) + 10 * minute
      yield* insert(key, write("hello", expiresAt, "alice"))
      const r = yield* loaded(key, "load after insert returned None")
      yield* expect(same(r.payload, "hello"), `data: got ${JSON.stringify(textOf(r.payload))}`)
      yield* expect(r.version === 1, `version after insert: expected 1, got ${r.version}`)
      yield* expect(r.expiresAt === expiresAt, `expiresAt: expected ${expiresAt}, got ${r.expiresAt}`)
      yield* expect(r.principal === "alice", `principal: expected alice, got ${r.principal}`)
    }
  },
  {
    name: "insert without a principal loads with principal None",
    *program() {
      const key = freshKey()
      yield* insert(key, write("x", (yield* now()) + minute))
      const r = yield* loaded(key, "load after insert returned None")
      yield* expect(r.principal === undefined, "principal should be None")
    }
  },
  {
    name: "arbitrary bytes round-trip exactly",
    needs: "bytes",
    *program() {
      const key = freshKey()
      const data = new Uint8Array(1024).map((_, i) => (i * 7 + 3) % 256)
      yield* insert(key, write(data, (yield* now()) + minute))
      const r = yield* loaded(key, "load after insert returned None")
      yield* expect(same(r.payload, data), "binary data changed on the way through the store")
    }
  },
  {
    name: "64 KiB of data round-trips",
    needs: "bytes",
    *program() {
      const key = freshKey()
      const data = new Uint8Array(64 * 1024).map((_, i) => (i * 31) % 251)
      yield* insert(key, write(data, (yield* now()) + minute))
      const r = yield* loaded(key, "load after insert returned None")
      yield* expect(same(r.payload, data), "large data changed on the way through the store")
    }
  },
  {
    name: "64 KiB of text with any characters round-trips",
    *program() {
      const key = freshKey()
      const text = `"${"é\u0000\"\\😀".repeat(64 * 1024 / 12)}"`
      yield* insert(key, write(text, (yield* now()) + minute))
      const r = yield* loaded(key, "load after insert returned None")
      yield* expect(same(r.payload, text), "the text came back changed")
      yield* expect(r.principal === undefined, "a principal appeared")
    }
  },
  {
    name: "insert on a live key conflicts with Exists and keeps the stored record",
    *program() {
      const key = freshKey()
      const t = yield* now()
      yield* insert(key, write("first", t + minute))
      yield* expectConflict(tryInsert(key, write("second", t + minute)), "Exists", "second insert")
      const r = yield* loaded(key, "the record is gone after a conflicting insert")
      yield* expect(same(r.payload, "first"), "a conflicting insert overwrote the record")
    }
  },
  {
    name: "insert over an expired record succeeds with version 1",
    *program() {
      const key = freshKey()
      yield* insert(key, write("old", (yield* now()) + 1000))
      yield* advance(2000)
      yield* insert(key, write("new", (yield* now()) + minute))
      const r = yield* loaded(key, "load after insert returned None")
      yield* expect(same(r.payload, "new"), "insert over an expired record did not write")
      yield* expect(r.version === 1, `version: expected 1, got ${r.version}`)
    }
  },
  {
    name: "update with the current version writes and returns version + 1",
    *program() {
      const key = freshKey()
      const t = yield* now()
      yield* insert(key, write("v1", t + minute))
      const v2 = yield* update(key, write("v2", t + 2 * minute, "bob"), 1)
      yield* expect(v2 === 2, `update returned ${v2}, expected 2`)
      const v3 = yield* update(key, write("v3", t + 3 * minute, "bob"), 2)
      yield* expect(v3 === 3, `second update returned ${v3}, expected 3`)
      const r = yield* loaded(key, "load after update returned None")
      yield* expect(same(r.payload, "v3"), `data: got ${textOf(r.payload)}`)
      yield* expect(r.version === 3, `version: got ${r.version}`)
      yield* expect(r.expiresAt === t + 3 * minute, "update did not write expiresAt")
      yield* expect(r.principal === "bob", "update did not write the principal")
    }
  },
  {
    name: "update with a stale version conflicts with VersionMismatch and writes nothing",
    *program() {
      const key = freshKey()
      const t = yield* now()
      yield* insert(key, write("v1", t + minute))
      yield* update(key, write("v2", t + minute), 1)
      yield* expectConflict(tryUpdate(key, write("stale", t + minute), 1), "VersionMismatch", "stale update")
      const r = yield* loaded(key, "the record is gone after a stale update")
      yield* expect(same(r.payload, "v2") && r.version === 2, "a stale update changed the record")
    }
  },
  {
    name: "update of a removed key conflicts with Missing and does not recreate it",
    *program() {
      const key = freshKey()
      const t = yield* now()
      yield* insert(key, write("v1", t + minute))
      yield* remove(key)
      yield* expectConflict(tryUpdate(key, write("zombie", t + minute), 1), "Missing", "update after remove")
      yield* expect((yield* load(key)) === undefined, "update after remove recreated the record")
    }
  },
  {
    name: "update of a key never written conflicts with Missing",
    *program() {
      const key = freshKey()
      yield* expectConflict(tryUpdate(key, write("x", (yield* now()) + minute), 1), "Missing", "update of unknown key")
      yield* expect((yield* load(key)) === undefined, "update of an unknown key created a record")
    }
  },
  {
    name: "update of an expired record conflicts with Missing",
    *program() {
      const key = freshKey()
      yield* insert(key, write("v1", (yield* now()) + 1000))
      yield* advance(1500)
      yield* expectConflict(tryUpdate(key, write("late", (yield* now()) + minute), 1), "Missing", "update after expiry")
      yield* expect((yield* load(key)) === undefined, "update after expiry revived the record")
    }
  },
  {
    name: "an expired record is never returned",
    *program() {
      const key = freshKey()
      yield* insert(key, write("short", (yield* now()) + 5000))
      yield* advance(4000)
      yield* expect((yield* load(key)) !== undefined, "record vanished before its expiry")
      yield* advance(1000)
      yield* expect((yield* load(key)) === undefined, "record returned at its expiry time")
    }
  },
  {
    name: "touch extends a live record without changing data or version",
    *program() {
      const key = freshKey()
      const t = yield* now()
      yield* insert(key, write("kept", t + 5000))
      yield* update(key, write("kept2", t + 5000), 1)
      yield* expect(yield* touch(key, t + 20_000), "touch of a live record returned false")
      yield* advance(10_000)
      const record = yield* loaded(key, "touched record expired at its old expiry")
      yield* expect(same(record.payload, "kept2"), "touch changed the data")
      yield* expect(record.version === 2, `touch changed the version to ${record.version}`)
      yield* expect(record.expiresAt === t + 20_000, `expiresAt after touch: ${record.expiresAt}`)
    }
  },
  {
    name: "touch never creates a record",
    *program() {
      const key = freshKey()
      yield* expect(!(yield* touch(key, (yield* now()) + minute)), "touch of an unknown key returned true")
      yield* expect((yield* load(key)) === undefined, "touch created a record")
    }
  },
  {
    name: "touch does not revive an expired record",
    *program() {
      const key = freshKey()
      yield* insert(key, write("old", (yield* now()) + 1000))
      yield* advance(2000)
      yield* expect(!(yield* touch(key, (yield* now()) + minute)), "touch of an expired record returned true")
      yield* expect((yield* load(key)) === undefined, "touch revived an expired record")
    }
  },
  {
    name: "a long expiry (60 days) is kept",
    *program() {
      const key = freshKey()
      const expiresAt = (yield* now()) + 60 * day
      yield* insert(key, write("long", expiresAt))
      yield* advance(minute)
      const r = yield* loaded(key, "a record with a 60-day expiry was not found a minute later")
      yield* expect(r.expiresAt === expiresAt, "expiresAt changed")
    }
  },
  {
    name: "remove deletes and is idempotent",
    *program() {
      const key = freshKey()
      yield* insert(key, write("x", (yield* now()) + minute))
      yield* remove(key)
      yield* expect((yield* load(key)) === undefined, "record still there after remove")
      yield* remove(key)
      yield* remove(freshKey())
    }
  },
  {
    name: "a removed key can be inserted again",
    *program() {
      const key = freshKey()
      const t = yield* now()
      yield* insert(key, write("a", t + minute))
      yield* remove(key)
      yield* insert(key, write("b", t + minute))
      const r = yield* loaded(key, "load after the second insert returned None")
      yield* expect(same(r.payload, "b") && r.version === 1, "re-insert after remove did not start over")
    }
  },
  {
    name: "keys are independent",
    *program() {
      const a = freshKey()
      const b = freshKey()
      const t = yield* now()
      yield* insert(a, write("a", t + minute))
      yield* insert(b, write("b", t + minute))
      yield* update(a, write("a2", t + minute), 1)
      yield* remove(b)
      const r = yield* loaded(a, "writing one key removed another")
      yield* expect(same(r.payload, "a2"), "writing one key changed another")
      yield* expect((yield* load(b)) === undefined, "remove of one key left it")
    }
  },
  {
    name: "of N racing inserts of one key exactly one wins, over nothing and over an expired record",
    *program({ concurrency: n }) {
      const key = freshKey()
      function* race(round: string): Program<void> {
        const expiresAt = (yield* now()) + 1000
        const outcomes = yield* all(Array.from({ length: n }, (_, i) => tryInsert(key, write(`${round} ${i}`, expiresAt))))
        const winners = outcomes.flatMap((outcome, i) => outcome.ok ? [`${round} ${i}`] : [])
        yield* expect(winners.length === 1, `${round}: ${winners.length} of ${n} racing inserts succeeded`)
        const other = outcomes.find((outcome) => !outcome.ok && outcome.conflict !== "Exists")
        yield* expect(
          other === undefined,
          `${round}: a losing insert failed with ${other?.ok === false ? String(other.error) : ""}, not SessionConflict(Exists)`
        )
        const r = yield* loaded(key, `${round}: no record after the race`)
        yield* expect(
          same(r.payload, winners[0] ?? "") && r.version === 1,
          `${round}: stored ${JSON.stringify(textOf(r.payload))} version ${r.version}, the winner wrote ${winners[0]}`
        )
      }
      yield* race("over nothing")
      yield* advance(2000)
      yield* race("over an expired record")
    }
  },
  {
    name: "of N racing updates on one version exactly one wins",
    *program({ concurrency: n }) {
      const key = freshKey()
      const expiresAt = (yield* now()) + 10 * minute
      yield* insert(key, write("v1", expiresAt))
      const outcomes = yield* all(Array.from({ length: n }, (_, i) => tryUpdate(key, write(`writer ${i}`, expiresAt), 1)))
      const winners = outcomes.flatMap((outcome, i) => outcome.ok ? [`writer ${i}`] : [])
      yield* expect(winners.length === 1, `${winners.length} of ${n} racing updates succeeded`)
      const other = outcomes.find((outcome) => !outcome.ok && outcome.conflict !== "VersionMismatch")
      yield* expect(
        other === undefined,
        `a losing update failed with ${other?.ok === false ? String(other.error) : ""}, not SessionConflict(VersionMismatch)`
      )
      const r = yield* loaded(key, "no record after the race")
      yield* expect(
        same(r.payload, winners[0] ?? "") && r.version === 2,
        `stored ${JSON.stringify(textOf(r.payload))} version ${r.version}, the winner wrote ${winners[0]}`
      )
    }
  },
  {
    name: "touch to the expiry already stored returns true and changes nothing",
    *program() {
      const key = freshKey()
      const expiresAt = (yield* now()) + minute
      yield* insert(key, write("same", expiresAt))
      // a backend that reports "rows changed" rather than "rows matched"
      // sees nothing to change here, yet the record is live
      yield* expect(yield* touch(key, expiresAt), "touch to the stored expiry returned false for a live record")
      const r = yield* loaded(key, "the record is gone after touch")
      yield* expect(
        same(r.payload, "same") && r.version === 1 && r.expiresAt === expiresAt,
        `after touch: ${JSON.stringify(textOf(r.payload))} version ${r.version} expiresAt ${r.expiresAt}`
      )
    }
  },
  {
    name: "a record expired long ago is invisible to every operation, and an insert replaces it",
    *program() {
      const key = freshKey()
      // an hour's expiry, two hours later: a backend whose own expiry runs
      // late or on another clock (TTL monitors, native TTL in seconds)
      // may still hold the record, and the store alone must hide it
      yield* insert(key, write("old", (yield* now()) + 60 * minute, `expired-${key.slice(0, 8)}`))
      yield* advance(120 * minute)
      const t = yield* now()
      yield* expect((yield* load(key)) === undefined, "load returned the expired record")
      yield* expect(!(yield* touch(key, t + minute)), "touch of the expired record returned true")
      yield* expectConflict(tryUpdate(key, write("late", t + minute), 1), "Missing", "update of the expired record")
      yield* expect((yield* load(key)) === undefined, "touch or update revived the expired record")
      yield* insert(key, write("new", t + minute))
      const r = yield* loaded(key, "load after the insert returned None")
      yield* expect(
        same(r.payload, "new") && r.version === 1 && r.principal === undefined,
        `insert over the expired record left ${JSON.stringify(textOf(r.payload))} version ${r.version}`
      )
    }
  },
  {
    name: "concurrent compare-and-set increments lose nothing",
    *program({ concurrency: n }) {
      const key = freshKey()
      const expiresAt = (yield* now()) + 10 * minute
      // with a principal, so that a store keeping an index updates it in
      // the same compare-and-set
      const owner = `counter-${key.slice(0, 8)}`
      yield* insert(key, write("0", expiresAt, owner))
      function* increment(): Program<void> {
        for (let attempt = 0; attempt <= 10_000; attempt++) {
          const record = yield* loaded(key, "the counter vanished")
          const next = Number(textOf(record.payload)) + 1
          const outcome = yield* tryUpdate(key, write(String(next), expiresAt, owner), record.version)
          if (outcome.ok) return
          if (outcome.conflict !== "VersionMismatch") yield* raise(outcome.error)
        }
        yield* expect(false, "an increment lost 10,000 compare-and-sets in a row")
      }
      yield* all(Array.from({ length: n }, increment))
      const r = yield* loaded(key, "the counter vanished")
      yield* expect(textOf(r.payload) === String(n), `after ${n} increments the counter is ${textOf(r.payload)}`)
      yield* expect(r.version === n + 1, `after ${n} updates the version is ${r.version}, expected ${n + 1}`)
    }
  }
]

/**
 * The cases of `SessionIndex`, for stores that provide it.
 *
 * @internal
 */
export const indexCases: ReadonlyArray<Case> = [
  {
    name: "index lists the live sessions of a principal and only those",
    *program() {
      const alice = freshPrincipal()
      const bob = freshPrincipal()
      const t = yield* now()
      const [a1, a2, a3, b1, anon] = [freshKey(), freshKey(), freshKey(), freshKey(), freshKey()]
      yield* insert(a1, write("a1", t + 10 * minute, alice))
      yield* insert(a2, write("a2", t + 10 * minute, alice))
      yield* insert(a3, write("a3", t + minute, alice))
      yield* insert(b1, write("b1", t + 10 * minute, bob))
      yield* insert(anon, write("anon", t + 10 * minute))
      const listed = yield* keys(alice)
      yield* expect(sorted(listed) === sorted([a1, a2, a3]), `keys(alice) returned ${listed.length} keys, expected her 3`)
      yield* advance(2 * minute)
      const live = yield* keys(alice)
      yield* expect(sorted(live) === sorted([a1, a2]), `keys(alice) after one expired returned ${live.length} keys, expected 2`)
      yield* remove(a2)
      const afterRemove = yield* keys(alice)
      yield* expect(sorted(afterRemove) === sorted([a1]), `keys(alice) after a remove returned ${afterRemove.length} keys, expected 1`)
      yield* expect((yield* keys(freshPrincipal())).length === 0, "keys of an unknown principal is not empty")
    }
  },
  {
    name: "removeAll removes every session of a principal and no other",
    *program() {
      const alice = freshPrincipal()
      const bob = freshPrincipal()
      const t = yield* now()
      const [a1, a2, b1] = [freshKey(), freshKey(), freshKey()]
      yield* insert(a1, write("a1", t + minute, alice))
      yield* insert(a2, write("a2", t + minute, alice))
      yield* insert(b1, write("b1", t + minute, bob))
      const removed = yield* removeAll(alice)
      yield* expect(removed === 2, `removeAll returned ${removed}, expected 2`)
      yield* expect((yield* load(a1)) === undefined, "a1 survived removeAll")
      yield* expect((yield* load(a2)) === undefined, "a2 survived removeAll")
      yield* expect((yield* load(b1)) !== undefined, "removeAll(alice) removed bob's session")
      yield* expect((yield* keys(alice)).length === 0, "keys(alice) not empty after removeAll")
      yield* expectConflict(tryUpdate(a1, write("zombie", t + minute, alice), 1), "Missing", "update after removeAll")
      const again = yield* removeAll(alice)
      yield* expect(again === 0, `second removeAll returned ${again}, expected 0`)
    }
  },
  {
    name: "an update that changes the principal moves the session in the index",
    *program() {
      const alice = freshPrincipal()
      const bob = freshPrincipal()
      const t = yield* now()
      const key = freshKey()
      yield* insert(key, write("x", t + minute, alice))
      yield* update(key, write("x", t + minute, bob), 1)
      yield* expect((yield* keys(alice)).length === 0, "old principal still lists the session")
      yield* expect(sorted(yield* keys(bob)) === sorted([key]), "new principal does not list the session")
      const removed = yield* removeAll(alice)
      yield* expect(removed === 0, `removeAll of the old principal returned ${removed}, expected 0`)
      yield* expect((yield* load(key)) !== undefined, "removeAll of the old principal removed the moved session")
    }
  },
  {
    name: "an update that drops the principal (Some to None) takes the session out of the index",
    *program() {
      const alice = freshPrincipal()
      const t = yield* now()
      const key = freshKey()
      yield* insert(key, write("x", t + minute, alice))
      yield* update(key, write("y", t + minute), 1)
      const listed = yield* keys(alice)
      yield* expect(listed.length === 0, `keys(alice) lists ${listed.length} sessions after her logout`)
      const removed = yield* removeAll(alice)
      yield* expect(removed === 0, `removeAll after the logout returned ${removed}, expected 0`)
      const r = yield* load(key)
      yield* expect(
        r !== undefined && r.principal === undefined && r.version === 2,
        "removeAll of the former principal removed the anonymous session, or the update did not clear the principal"
      )
    }
  },
  {
    name: "removeAll counts only the live sessions, and leaves none of the expired ones listed",
    *program() {
      const alice = freshPrincipal()
      const t = yield* now()
      const live = [freshKey(), freshKey(), freshKey()]
      const expired = [freshKey(), freshKey()]
      for (const key of live) yield* insert(key, write("live", t + 10 * minute, alice))
      // expired a second later, before any sweep a store may run: the
      // records are still there to be miscounted
      for (const key of expired) yield* insert(key, write("short", t + 1000, alice))
      yield* advance(2000)
      const removed = yield* removeAll(alice)
      yield* expect(removed === live.length, `removeAll returned ${removed}, expected the ${live.length} live sessions`)
      yield* expect((yield* keys(alice)).length === 0, "keys(alice) not empty after removeAll")
      for (const key of [...live, ...expired]) {
        yield* expect((yield* load(key)) === undefined, "a session of alice survived removeAll")
      }
      const again = yield* removeAll(alice)
      yield* expect(again === 0, `second removeAll returned ${again}, expected 0`)
    }
  }
]

/**
 * The cases a line runs: those its payload can carry.
 *
 * @internal
 */
export const casesFor = (cases: ReadonlyArray<Case>, payload: "bytes" | "text"): ReadonlyArray<Case> =>
  payload === "bytes" ? cases : cases.filter((c) => c.needs !== "bytes")

/**
 * The options of the suite, as both lines' `StoreConformance.Options` take
 * them: each line's public interface extends this with its effect `F` (a
 * parameter, so that the core does not import Effect).
 *
 * @internal
 */
export interface ConformanceOptions<F> {
  /**
   * Moves the store's `Clock` forward. Defaults to `TestClock.adjust`.
   */
  readonly advance?: ((millis: number) => F) | undefined
  /**
   * Runs before every check. Defaults to setting `TestClock` to the wall
   * clock, so that backends with a server-side clock (Memcached's absolute
   * expiry times) see realistic times.
   */
  readonly prepare?: F | undefined
  /**
   * How many fibers race in the concurrent-update and the racing-insert
   * checks. Default 50.
   */
  readonly concurrency?: number | undefined
}

/**
 * One check as both lines' `StoreConformance.Check` hands it out, with the
 * line's effect as `Run`.
 *
 * @internal
 */
export interface ConformanceCheck<Run> {
  readonly name: string
  /** The check with the store layer provided. */
  readonly run: Run
}

/**
 * A line's `SessionStore` as the runner sees it: its operations `M` over
 * the line's storage key `K` and write `W`. Each fails with the store's own
 * error.
 *
 * @internal
 */
export interface StoreOperations<M, K, W> {
  readonly load: (key: K) => M
  readonly insert: (key: K, write: W) => M
  readonly update: (key: K, write: W, expectedVersion: number) => M
  readonly touch: (key: K, expiresAt: number) => M
  readonly remove: (key: K) => M
}

/** A line's `SessionIndex` as the runner sees it. @internal */
export interface IndexOperations<M> {
  readonly keys: (principal: string) => M
  readonly removeAll: (principal: string) => M
}

/**
 * What a line gives `runCase`: how its operations `M` (an Effect answering
 * `unknown`) are made, chained and raced, its clock, its store with how a
 * case's key and write become the store's and what the store's `load`
 * answers (`L`) becomes for a case, and its errors. Nothing here knows a
 * case.
 *
 * @internal
 */
export interface Runner<M, K, W, L> {
  readonly succeed: (value: unknown) => M
  readonly fail: (error: unknown) => M
  readonly flatMap: (operation: M, next: (answer: unknown) => M) => M
  /** Answers `onSuccess` of the value or `onFailure` of the error; never fails. */
  readonly match: (
    operation: M,
    onSuccess: (value: unknown) => unknown,
    onFailure: (error: unknown) => unknown
  ) => M
  /** Calls `operation` when run; a throw in it is a defect. */
  readonly suspend: (operation: () => M) => M
  /** Runs the operations concurrently, answering their answers in order. */
  readonly all: (operations: ReadonlyArray<M>) => M
  readonly now: M
  readonly advance: (millis: number) => M
  readonly store: StoreOperations<M, K, W>
  /** Undefined where the store provides no `SessionIndex`. */
  readonly index: IndexOperations<M> | undefined
  /** A case's key, made as the middleware makes storage keys, as the store's key. */
  readonly storageKey: (key: string) => K
  readonly write: (write: Write) => W
  readonly loaded: (answer: L) => Stored | undefined
  /** The line's `ConformanceFailure`. */
  readonly failure: (check: string, detail: string) => unknown
  /** The reason of a `SessionConflict`; undefined for any other error. */
  readonly conflictOf: (error: unknown) => ConflictReason | undefined
}

/**
 * A case as one operation of the runner: each step is answered by the
 * operation it names and the case resumes with the answer; an expectation
 * the store does not meet fails it with the line's `ConformanceFailure`.
 *
 * @internal
 */
export const runCase = <M, K, W, L>(
  c: Case,
  runner: Runner<M, K, W, L>,
  options?: { readonly concurrency?: number | undefined }
): M => {
  const { index, storageKey, store, write } = runner
  // a defect rather than a failed check: the suite was given a store
  // without the index the case is about
  const indexed = (): IndexOperations<M> => {
    if (index === undefined) throw new Error(`${c.name}: the case needs SessionIndex`)
    return index
  }
  const attempt = (operation: M): M =>
    runner.match(
      operation,
      (value): Outcome<unknown> => ({ ok: true, value }),
      (error): Outcome<unknown> => ({ ok: false, error, conflict: runner.conflictOf(error) })
    )
  const answer = (step: Step): M => {
    switch (step._tag) {
      case "Now":
        return runner.now
      case "Advance":
        return runner.advance(step.millis)
      case "Load":
        // M answers unknown: that its load answers L is the line's word
        return runner.flatMap(
          store.load(storageKey(step.key)),
          (answer) => runner.succeed(runner.loaded(answer as L))
        )
      case "Insert": {
        const insert = store.insert(storageKey(step.key), write(step.write))
        return step.attempt ? attempt(insert) : insert
      }
      case "Update": {
        const update = store.update(storageKey(step.key), write(step.write), step.expectedVersion)
        return step.attempt ? attempt(update) : update
      }
      case "Touch":
        return store.touch(storageKey(step.key), step.expiresAt)
      case "Remove":
        return store.remove(storageKey(step.key))
      case "Keys":
        return runner.suspend(() => indexed().keys(step.principal))
      case "RemoveAll":
        return runner.suspend(() => indexed().removeAll(step.principal))
      case "All":
        return runner.all(step.programs.map(run))
      case "Fail":
        return runner.fail(runner.failure(c.name, step.detail))
      case "Raise":
        return runner.fail(step.error)
    }
  }
  const run = <A>(program: Program<A>): M => {
    const resume = (input: unknown): M => {
      const next = program.next(input)
      return next.done ? runner.succeed(next.value) : runner.flatMap(answer(next.value), resume)
    }
    return runner.suspend(() => resume(undefined))
  }
  return run(c.program({ concurrency: options?.concurrency ?? 50 }))
}
