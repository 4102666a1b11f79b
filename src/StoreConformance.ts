/**
 * The store contract as a runnable suite. Every store of this package passes
 * it; authors of other stores can run it over theirs:
 *
 * ```ts
 * import { it } from "@effect/vitest"
 * import { Effect } from "effect"
 * import * as StoreConformance from "effect-session/StoreConformance"
 *
 * for (const check of StoreConformance.checks(MyStore.layer(options))) {
 *   it.effect(check.name, () => check.run)
 * }
 * ```
 *
 * Each check builds the layer afresh (and releases it), moves time with
 * `TestClock` by default (so run them with `it.effect`), uses fresh random
 * keys (so a shared backend may serve them all, even concurrently) and fails
 * with a `ConformanceFailure` that says what the store did wrong.
 *
 * @since 1.0.0
 */
import type { Layer } from "effect"
import { Data, Effect, Option, TestClock } from "effect"
import { SessionConflict } from "./SessionError.js"
import type { StorageKey } from "./SessionId.js"
import * as SessionId from "./SessionId.js"
import type { SessionWrite } from "./SessionStore.js"
import { SessionIndex, SessionStore } from "./SessionStore.js"

/**
 * @since 1.0.0
 * @category errors
 */
export class ConformanceFailure extends Data.TaggedError("ConformanceFailure")<{
  readonly check: string
  readonly detail: string
}> {
  /**
   * @since 1.0.0
   */
  override get message(): string {
    return `${this.check}: ${this.detail}`
  }
}

/**
 * @since 1.0.0
 * @category models
 */
export interface Check<R> {
  readonly name: string
  /** The check with the store layer provided. */
  readonly run: Effect.Effect<void, unknown, R>
}

/**
 * @since 1.0.0
 * @category models
 */
export interface Options {
  /**
   * Moves the store's `Clock` forward. Defaults to `TestClock.adjust`.
   */
  readonly advance?: ((millis: number) => Effect.Effect<void>) | undefined
  /**
   * Runs before every check. Defaults to setting `TestClock` to the wall
   * clock, so that backends with a server-side clock (Memcached's absolute
   * expiry times) see realistic times.
   */
  readonly prepare?: Effect.Effect<void> | undefined
  /**
   * How many fibers race in the concurrent-update and the racing-insert
   * checks. Default 50.
   */
  readonly concurrency?: number | undefined
}

const minute = 60_000
const day = 24 * 60 * minute

const text = (s: string): Uint8Array => new TextEncoder().encode(s)
const read = (bytes: Uint8Array): string => new TextDecoder().decode(bytes)

const freshKey = Effect.map(SessionId.generate, SessionId.storageKey)

const now = Effect.clockWith((clock) => clock.currentTimeMillis)

const write = (data: string, expiresAt: number, principal?: string): SessionWrite => ({
  data: text(data),
  expiresAt,
  principal: Option.fromNullable(principal)
})

const sameBytes = (a: Uint8Array, b: Uint8Array): boolean =>
  a.length === b.length && a.every((byte, i) => byte === b[i])

const makeAssert = (check: string) => ({
  that: (condition: boolean, detail: string): Effect.Effect<void, ConformanceFailure> =>
    condition ? Effect.void : Effect.fail(new ConformanceFailure({ check, detail })),
  conflict: <A, E, R>(
    effect: Effect.Effect<A, E, R>,
    reason: SessionConflict["reason"],
    what: string
  ): Effect.Effect<void, unknown, R> =>
    Effect.flatMap(Effect.either(effect), (result) => {
      if (result._tag === "Left" && result.left instanceof SessionConflict && result.left.reason === reason) {
        return Effect.void
      }
      const got = result._tag === "Right" ? "success" : String(result.left)
      return Effect.fail(new ConformanceFailure({ check, detail: `${what}: expected SessionConflict(${reason}), got ${got}` }))
    })
})

type Assert = ReturnType<typeof makeAssert>

const defaultPrepare: Effect.Effect<void> = Effect.suspend(() => TestClock.setTime(Date.now()))

type Definition<S> = readonly [
  string,
  (assert: Assert, advance: (millis: number) => Effect.Effect<void>) => Effect.Effect<void, unknown, S>
]

const build = <S, E, R>(
  layer: Layer.Layer<S, E, R>,
  options: Options | undefined,
  definitions: ReadonlyArray<Definition<S>>
): ReadonlyArray<Check<R>> => {
  const advance = options?.advance ?? TestClock.adjust
  const prepare = options?.prepare ?? defaultPrepare
  // time is set before the layer is built, so that a store's sweep fiber
  // does not replay every interval between the epoch and now
  return definitions.map(([name, body]) => ({
    name,
    run: Effect.zipRight(prepare, Effect.provide(body(makeAssert(name), advance), layer))
  }))
}

/**
 * The checks every store must pass.
 *
 * @since 1.0.0
 * @category checks
 */
export const checks = <E, R>(
  layer: Layer.Layer<SessionStore, E, R>,
  options?: Options
): ReadonlyArray<Check<R>> =>
  build(layer, options, [
    ["load of an unknown key is None", (assert) =>
      Effect.gen(function*() {
        const store = yield* SessionStore
        const result = yield* store.load(yield* freshKey)
        yield* assert.that(Option.isNone(result), "load returned a record for a key never written")
      })],

    ["insert then load round-trips data, version 1, expiry and principal", (assert) =>
      Effect.gen(function*() {
        const store = yield* SessionStore
        const key = yield* freshKey
        const expiresAt = (yield* now) + 10 * minute
        yield* store.insert(key, write("hello", expiresAt, "alice"))
        const record = yield* store.load(key)
        yield* assert.that(Option.isSome(record), "load after insert returned None")
        const r = Option.getOrThrow(record)
        yield* assert.that(read(r.data) === "hello", `data: got ${JSON.stringify(read(r.data))}`)
        yield* assert.that(r.version === 1, `version after insert: expected 1, got ${r.version}`)
        yield* assert.that(r.expiresAt === expiresAt, `expiresAt: expected ${expiresAt}, got ${r.expiresAt}`)
        yield* assert.that(
          Option.getOrUndefined(r.principal) === "alice",
          `principal: expected alice, got ${Option.getOrUndefined(r.principal)}`
        )
      })],

    ["insert without a principal loads with principal None", (assert) =>
      Effect.gen(function*() {
        const store = yield* SessionStore
        const key = yield* freshKey
        yield* store.insert(key, write("x", (yield* now) + minute))
        const r = Option.getOrThrow(yield* store.load(key))
        yield* assert.that(Option.isNone(r.principal), "principal should be None")
      })],

    ["arbitrary bytes round-trip exactly", (assert) =>
      Effect.gen(function*() {
        const store = yield* SessionStore
        const key = yield* freshKey
        const data = new Uint8Array(1024).map((_, i) => (i * 7 + 3) % 256)
        yield* store.insert(key, { data, expiresAt: (yield* now) + minute, principal: Option.none() })
        const r = Option.getOrThrow(yield* store.load(key))
        yield* assert.that(sameBytes(r.data, data), "binary data changed on the way through the store")
      })],

    ["64 KiB of data round-trips", (assert) =>
      Effect.gen(function*() {
        const store = yield* SessionStore
        const key = yield* freshKey
        const data = new Uint8Array(64 * 1024).map((_, i) => (i * 31) % 251)
        yield* store.insert(key, { data, expiresAt: (yield* now) + minute, principal: Option.none() })
        const r = Option.getOrThrow(yield* store.load(key))
        yield* assert.that(sameBytes(r.data, data), "large data changed on the way through the store")
      })],

    ["insert on a live key conflicts with Exists and keeps the stored record", (assert) =>
      Effect.gen(function*() {
        const store = yield* SessionStore
        const key = yield* freshKey
        const t = yield* now
        yield* store.insert(key, write("first", t + minute))
        yield* assert.conflict(store.insert(key, write("second", t + minute)), "Exists", "second insert")
        const r = Option.getOrThrow(yield* store.load(key))
        yield* assert.that(read(r.data) === "first", "a conflicting insert overwrote the record")
      })],

    ["insert over an expired record succeeds with version 1", (assert, advance) =>
      Effect.gen(function*() {
        const store = yield* SessionStore
        const key = yield* freshKey
        yield* store.insert(key, write("old", (yield* now) + 1000))
        yield* advance(2000)
        yield* store.insert(key, write("new", (yield* now) + minute))
        const r = Option.getOrThrow(yield* store.load(key))
        yield* assert.that(read(r.data) === "new", "insert over an expired record did not write")
        yield* assert.that(r.version === 1, `version: expected 1, got ${r.version}`)
      })],

    ["update with the current version writes and returns version + 1", (assert) =>
      Effect.gen(function*() {
        const store = yield* SessionStore
        const key = yield* freshKey
        const t = yield* now
        yield* store.insert(key, write("v1", t + minute))
        const v2 = yield* store.update(key, write("v2", t + 2 * minute, "bob"), 1)
        yield* assert.that(v2 === 2, `update returned ${v2}, expected 2`)
        const v3 = yield* store.update(key, write("v3", t + 3 * minute, "bob"), 2)
        yield* assert.that(v3 === 3, `second update returned ${v3}, expected 3`)
        const r = Option.getOrThrow(yield* store.load(key))
        yield* assert.that(read(r.data) === "v3", `data: got ${read(r.data)}`)
        yield* assert.that(r.version === 3, `version: got ${r.version}`)
        yield* assert.that(r.expiresAt === t + 3 * minute, "update did not write expiresAt")
        yield* assert.that(Option.getOrUndefined(r.principal) === "bob", "update did not write the principal")
      })],

    ["update with a stale version conflicts with VersionMismatch and writes nothing", (assert) =>
      Effect.gen(function*() {
        const store = yield* SessionStore
        const key = yield* freshKey
        const t = yield* now
        yield* store.insert(key, write("v1", t + minute))
        yield* store.update(key, write("v2", t + minute), 1)
        yield* assert.conflict(store.update(key, write("stale", t + minute), 1), "VersionMismatch", "stale update")
        const r = Option.getOrThrow(yield* store.load(key))
        yield* assert.that(read(r.data) === "v2" && r.version === 2, "a stale update changed the record")
      })],

    ["update of a removed key conflicts with Missing and does not recreate it", (assert) =>
      Effect.gen(function*() {
        const store = yield* SessionStore
        const key = yield* freshKey
        const t = yield* now
        yield* store.insert(key, write("v1", t + minute))
        yield* store.remove(key)
        yield* assert.conflict(store.update(key, write("zombie", t + minute), 1), "Missing", "update after remove")
        yield* assert.that(Option.isNone(yield* store.load(key)), "update after remove recreated the record")
      })],

    ["update of a key never written conflicts with Missing", (assert) =>
      Effect.gen(function*() {
        const store = yield* SessionStore
        const key = yield* freshKey
        yield* assert.conflict(store.update(key, write("x", (yield* now) + minute), 1), "Missing", "update of unknown key")
        yield* assert.that(Option.isNone(yield* store.load(key)), "update of an unknown key created a record")
      })],

    ["update of an expired record conflicts with Missing", (assert, advance) =>
      Effect.gen(function*() {
        const store = yield* SessionStore
        const key = yield* freshKey
        yield* store.insert(key, write("v1", (yield* now) + 1000))
        yield* advance(1500)
        yield* assert.conflict(store.update(key, write("late", (yield* now) + minute), 1), "Missing", "update after expiry")
        yield* assert.that(Option.isNone(yield* store.load(key)), "update after expiry revived the record")
      })],

    ["an expired record is never returned", (assert, advance) =>
      Effect.gen(function*() {
        const store = yield* SessionStore
        const key = yield* freshKey
        yield* store.insert(key, write("short", (yield* now) + 5000))
        yield* advance(4000)
        yield* assert.that(Option.isSome(yield* store.load(key)), "record vanished before its expiry")
        yield* advance(1000)
        yield* assert.that(Option.isNone(yield* store.load(key)), "record returned at its expiry time")
      })],

    ["touch extends a live record without changing data or version", (assert, advance) =>
      Effect.gen(function*() {
        const store = yield* SessionStore
        const key = yield* freshKey
        const t = yield* now
        yield* store.insert(key, write("kept", t + 5000))
        yield* store.update(key, write("kept2", t + 5000), 1)
        const touched = yield* store.touch(key, t + 20_000)
        yield* assert.that(touched, "touch of a live record returned false")
        yield* advance(10_000)
        const r = yield* store.load(key)
        yield* assert.that(Option.isSome(r), "touched record expired at its old expiry")
        const record = Option.getOrThrow(r)
        yield* assert.that(read(record.data) === "kept2", "touch changed the data")
        yield* assert.that(record.version === 2, `touch changed the version to ${record.version}`)
        yield* assert.that(record.expiresAt === t + 20_000, `expiresAt after touch: ${record.expiresAt}`)
      })],

    ["touch never creates a record", (assert) =>
      Effect.gen(function*() {
        const store = yield* SessionStore
        const key = yield* freshKey
        const touched = yield* store.touch(key, (yield* now) + minute)
        yield* assert.that(!touched, "touch of an unknown key returned true")
        yield* assert.that(Option.isNone(yield* store.load(key)), "touch created a record")
      })],

    ["touch does not revive an expired record", (assert, advance) =>
      Effect.gen(function*() {
        const store = yield* SessionStore
        const key = yield* freshKey
        yield* store.insert(key, write("old", (yield* now) + 1000))
        yield* advance(2000)
        const touched = yield* store.touch(key, (yield* now) + minute)
        yield* assert.that(!touched, "touch of an expired record returned true")
        yield* assert.that(Option.isNone(yield* store.load(key)), "touch revived an expired record")
      })],

    ["a long expiry (60 days) is kept", (assert, advance) =>
      Effect.gen(function*() {
        const store = yield* SessionStore
        const key = yield* freshKey
        const expiresAt = (yield* now) + 60 * day
        yield* store.insert(key, write("long", expiresAt))
        yield* advance(minute)
        const r = yield* store.load(key)
        yield* assert.that(Option.isSome(r), "a record with a 60-day expiry was not found a minute later")
        yield* assert.that(Option.getOrThrow(r).expiresAt === expiresAt, "expiresAt changed")
      })],

    ["remove deletes and is idempotent", (assert) =>
      Effect.gen(function*() {
        const store = yield* SessionStore
        const key = yield* freshKey
        yield* store.insert(key, write("x", (yield* now) + minute))
        yield* store.remove(key)
        yield* assert.that(Option.isNone(yield* store.load(key)), "record still there after remove")
        yield* store.remove(key)
        yield* store.remove(yield* freshKey)
      })],

    ["a removed key can be inserted again", (assert) =>
      Effect.gen(function*() {
        const store = yield* SessionStore
        const key = yield* freshKey
        const t = yield* now
        yield* store.insert(key, write("a", t + minute))
        yield* store.remove(key)
        yield* store.insert(key, write("b", t + minute))
        const r = Option.getOrThrow(yield* store.load(key))
        yield* assert.that(read(r.data) === "b" && r.version === 1, "re-insert after remove did not start over")
      })],

    ["keys are independent", (assert) =>
      Effect.gen(function*() {
        const store = yield* SessionStore
        const a = yield* freshKey
        const b = yield* freshKey
        const t = yield* now
        yield* store.insert(a, write("a", t + minute))
        yield* store.insert(b, write("b", t + minute))
        yield* store.update(a, write("a2", t + minute), 1)
        yield* store.remove(b)
        const r = Option.getOrThrow(yield* store.load(a))
        yield* assert.that(read(r.data) === "a2", "writing one key changed another")
        yield* assert.that(Option.isNone(yield* store.load(b)), "remove of one key left it")
      })],

    ["of N racing inserts of one key exactly one wins, over nothing and over an expired record", (assert, advance) =>
      Effect.gen(function*() {
        const store = yield* SessionStore
        const key = yield* freshKey
        const n = options?.concurrency ?? 50
        const race = (round: string) =>
          Effect.gen(function*() {
            const expiresAt = (yield* now) + 1000
            const outcomes = yield* Effect.all(
              Array.from({ length: n }, (_, i) => Effect.either(store.insert(key, write(`${round} ${i}`, expiresAt)))),
              { concurrency: "unbounded" }
            )
            const winners = outcomes.flatMap((outcome, i) => outcome._tag === "Right" ? [`${round} ${i}`] : [])
            yield* assert.that(winners.length === 1, `${round}: ${winners.length} of ${n} racing inserts succeeded`)
            const other = outcomes.find((outcome) =>
              outcome._tag === "Left" && !(outcome.left instanceof SessionConflict && outcome.left.reason === "Exists")
            )
            yield* assert.that(
              other === undefined,
              `${round}: a losing insert failed with ${other?._tag === "Left" ? String(other.left) : ""}, not SessionConflict(Exists)`
            )
            const r = Option.getOrThrow(yield* store.load(key))
            yield* assert.that(
              read(r.data) === winners[0] && r.version === 1,
              `${round}: stored ${JSON.stringify(read(r.data))} version ${r.version}, the winner wrote ${winners[0]}`
            )
          })
        yield* race("over nothing")
        yield* advance(2000)
        yield* race("over an expired record")
      })],

    ["touch to the expiry already stored returns true and changes nothing", (assert) =>
      Effect.gen(function*() {
        const store = yield* SessionStore
        const key = yield* freshKey
        const expiresAt = (yield* now) + minute
        yield* store.insert(key, write("same", expiresAt))
        // a backend that reports "rows changed" rather than "rows matched"
        // sees nothing to change here, yet the record is live
        const touched = yield* store.touch(key, expiresAt)
        yield* assert.that(touched, "touch to the stored expiry returned false for a live record")
        const r = Option.getOrThrow(yield* store.load(key))
        yield* assert.that(
          read(r.data) === "same" && r.version === 1 && r.expiresAt === expiresAt,
          `after touch: ${JSON.stringify(read(r.data))} version ${r.version} expiresAt ${r.expiresAt}`
        )
      })],

    ["a record expired long ago is invisible to every operation, and an insert replaces it", (assert, advance) =>
      Effect.gen(function*() {
        const store = yield* SessionStore
        const key = yield* freshKey
        // an hour's expiry, two hours later: a backend whose own expiry runs
        // late or on another clock (TTL monitors, native TTL in seconds)
        // may still hold the record, and the store alone must hide it
        yield* store.insert(key, write("old", (yield* now) + 60 * minute, `expired-${key.slice(0, 8)}`))
        yield* advance(120 * minute)
        const t = yield* now
        yield* assert.that(Option.isNone(yield* store.load(key)), "load returned the expired record")
        yield* assert.that(!(yield* store.touch(key, t + minute)), "touch of the expired record returned true")
        yield* assert.conflict(store.update(key, write("late", t + minute), 1), "Missing", "update of the expired record")
        yield* assert.that(Option.isNone(yield* store.load(key)), "touch or update revived the expired record")
        yield* store.insert(key, write("new", t + minute))
        const r = Option.getOrThrow(yield* store.load(key))
        yield* assert.that(
          read(r.data) === "new" && r.version === 1 && Option.isNone(r.principal),
          `insert over the expired record left ${JSON.stringify(read(r.data))} version ${r.version}`
        )
      })],

    [`concurrent compare-and-set increments lose nothing`, (assert) =>
      Effect.gen(function*() {
        const store = yield* SessionStore
        const key = yield* freshKey
        const n = options?.concurrency ?? 50
        const expiresAt = (yield* now) + 10 * minute
        // with a principal, so that a store keeping an index updates it in
        // the same compare-and-set
        const owner = `counter-${key.slice(0, 8)}`
        yield* store.insert(key, write("0", expiresAt, owner))
        const increment = Effect.gen(function*() {
          const record = Option.getOrThrow(yield* store.load(key))
          const next = Number(read(record.data)) + 1
          yield* store.update(key, write(String(next), expiresAt, owner), record.version)
        }).pipe(
          Effect.retry({
            while: (e) => e instanceof SessionConflict && e.reason === "VersionMismatch",
            times: 10_000
          })
        )
        yield* Effect.all(Array.from({ length: n }, () => increment), { concurrency: "unbounded", discard: true })
        const r = Option.getOrThrow(yield* store.load(key))
        yield* assert.that(read(r.data) === String(n), `after ${n} increments the counter is ${read(r.data)}`)
        yield* assert.that(r.version === n + 1, `after ${n} updates the version is ${r.version}, expected ${n + 1}`)
      })]
  ])

/**
 * The checks of a store that provides `SessionIndex`.
 *
 * @since 1.0.0
 * @category checks
 */
export const indexChecks = <E, R>(
  layer: Layer.Layer<SessionStore | SessionIndex, E, R>,
  options?: Options
): ReadonlyArray<Check<R>> => {
  const principal = Effect.map(SessionId.generate, (id) => `user-${id.slice(0, 12)}`)
  const sorted = (keys: ReadonlyArray<StorageKey>) => [...keys].sort()
  return build(layer, options, [
    ["index lists the live sessions of a principal and only those", (assert, advance) =>
      Effect.gen(function*() {
        const store = yield* SessionStore
        const index = yield* SessionIndex
        const alice = yield* principal
        const bob = yield* principal
        const t = yield* now
        const [a1, a2, a3, b1, anon] = yield* Effect.all([freshKey, freshKey, freshKey, freshKey, freshKey])
        yield* store.insert(a1, write("a1", t + 10 * minute, alice))
        yield* store.insert(a2, write("a2", t + 10 * minute, alice))
        yield* store.insert(a3, write("a3", t + minute, alice))
        yield* store.insert(b1, write("b1", t + 10 * minute, bob))
        yield* store.insert(anon, write("anon", t + 10 * minute))
        const all = yield* index.keys(alice)
        yield* assert.that(
          JSON.stringify(sorted(all)) === JSON.stringify(sorted([a1, a2, a3])),
          `keys(alice) returned ${all.length} keys, expected her 3`
        )
        yield* advance(2 * minute)
        const live = yield* index.keys(alice)
        yield* assert.that(
          JSON.stringify(sorted(live)) === JSON.stringify(sorted([a1, a2])),
          `keys(alice) after one expired returned ${live.length} keys, expected 2`
        )
        yield* store.remove(a2)
        const afterRemove = yield* index.keys(alice)
        yield* assert.that(
          JSON.stringify(afterRemove) === JSON.stringify([a1]),
          `keys(alice) after a remove returned ${afterRemove.length} keys, expected 1`
        )
        const unknown = yield* index.keys(yield* principal)
        yield* assert.that(unknown.length === 0, "keys of an unknown principal is not empty")
      })],

    ["removeAll removes every session of a principal and no other", (assert) =>
      Effect.gen(function*() {
        const store = yield* SessionStore
        const index = yield* SessionIndex
        const alice = yield* principal
        const bob = yield* principal
        const t = yield* now
        const [a1, a2, b1] = yield* Effect.all([freshKey, freshKey, freshKey])
        yield* store.insert(a1, write("a1", t + minute, alice))
        yield* store.insert(a2, write("a2", t + minute, alice))
        yield* store.insert(b1, write("b1", t + minute, bob))
        const removed = yield* index.removeAll(alice)
        yield* assert.that(removed === 2, `removeAll returned ${removed}, expected 2`)
        yield* assert.that(Option.isNone(yield* store.load(a1)), "a1 survived removeAll")
        yield* assert.that(Option.isNone(yield* store.load(a2)), "a2 survived removeAll")
        yield* assert.that(Option.isSome(yield* store.load(b1)), "removeAll(alice) removed bob's session")
        yield* assert.that((yield* index.keys(alice)).length === 0, "keys(alice) not empty after removeAll")
        yield* assert.conflict(store.update(a1, write("zombie", t + minute, alice), 1), "Missing", "update after removeAll")
        const again = yield* index.removeAll(alice)
        yield* assert.that(again === 0, `second removeAll returned ${again}, expected 0`)
      })],

    ["an update that changes the principal moves the session in the index", (assert) =>
      Effect.gen(function*() {
        const store = yield* SessionStore
        const index = yield* SessionIndex
        const alice = yield* principal
        const bob = yield* principal
        const t = yield* now
        const key = yield* freshKey
        yield* store.insert(key, write("x", t + minute, alice))
        yield* store.update(key, write("x", t + minute, bob), 1)
        yield* assert.that((yield* index.keys(alice)).length === 0, "old principal still lists the session")
        const keys = yield* index.keys(bob)
        yield* assert.that(JSON.stringify(keys) === JSON.stringify([key]), "new principal does not list the session")
        const removed = yield* index.removeAll(alice)
        yield* assert.that(removed === 0, `removeAll of the old principal returned ${removed}, expected 0`)
        yield* assert.that(Option.isSome(yield* store.load(key)), "removeAll of the old principal removed the moved session")
      })],

    ["an update that drops the principal (Some to None) takes the session out of the index", (assert) =>
      Effect.gen(function*() {
        const store = yield* SessionStore
        const index = yield* SessionIndex
        const alice = yield* principal
        const t = yield* now
        const key = yield* freshKey
        yield* store.insert(key, write("x", t + minute, alice))
        yield* store.update(key, write("y", t + minute), 1)
        const keys = yield* index.keys(alice)
        yield* assert.that(keys.length === 0, `keys(alice) lists ${keys.length} sessions after her logout`)
        const removed = yield* index.removeAll(alice)
        yield* assert.that(removed === 0, `removeAll after the logout returned ${removed}, expected 0`)
        const r = yield* store.load(key)
        yield* assert.that(
          Option.isSome(r) && Option.isNone(r.value.principal) && r.value.version === 2,
          "removeAll of the former principal removed the anonymous session, or the update did not clear the principal"
        )
      })],

    ["removeAll counts only the live sessions, and leaves none of the expired ones listed", (assert, advance) =>
      Effect.gen(function*() {
        const store = yield* SessionStore
        const index = yield* SessionIndex
        const alice = yield* principal
        const t = yield* now
        const live = yield* Effect.all([freshKey, freshKey, freshKey])
        const expired = yield* Effect.all([freshKey, freshKey])
        for (const key of live) yield* store.insert(key, write("live", t + 10 * minute, alice))
        // expired a second later, before any sweep a store may run: the
        // records are still there to be miscounted
        for (const key of expired) yield* store.insert(key, write("short", t + 1000, alice))
        yield* advance(2000)
        const removed = yield* index.removeAll(alice)
        yield* assert.that(removed === live.length, `removeAll returned ${removed}, expected the ${live.length} live sessions`)
        yield* assert.that((yield* index.keys(alice)).length === 0, "keys(alice) not empty after removeAll")
        for (const key of [...live, ...expired]) {
          yield* assert.that(Option.isNone(yield* store.load(key)), "a session of alice survived removeAll")
        }
        const again = yield* index.removeAll(alice)
        yield* assert.that(again === 0, `second removeAll returned ${again}, expected 0`)
      })]
  ])
}
