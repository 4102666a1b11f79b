/**
 * The checks every store must pass, runnable in any test framework: each
 * check is an Effect that fails with `ConformanceFailure` saying what the
 * store did wrong. Time moves with `TestClock` unless `advance` says how.
 *
 * ```ts
 * for (const check of StoreConformance.checks(MemoryStore.layer())) {
 *   it.effect(check.name, () => check.run)
 * }
 * ```
 *
 * @since 2.0.0
 */
import type { Layer } from "effect"
import { Clock, Data, Effect, Option, Result } from "effect"
import { TestClock } from "effect/testing"
import * as Ids from "../../src/core/ids.js"
import { SessionConflict } from "./SessionError.js"
import type { StorageKey } from "./SessionId.js"
import type { SessionWrite } from "./SessionStore.js"
import { SessionIndex, SessionStore } from "./SessionStore.js"

/**
 * A check found the store breaking the contract.
 *
 * @since 2.0.0
 * @category errors
 */
export class ConformanceFailure extends Data.TaggedError("ConformanceFailure")<{
  readonly check: string
  readonly detail: string
}> {
  override get message(): string {
    return `${this.check}: ${this.detail}`
  }
}

/**
 * One check, with the store layer provided.
 *
 * @since 2.0.0
 * @category models
 */
export interface Check<R> {
  readonly name: string
  readonly run: Effect.Effect<void, unknown, R>
}

/**
 * @since 2.0.0
 * @category models
 */
export interface Options {
  /** Moves the store's `Clock` forward. Default `TestClock.adjust`. */
  readonly advance?: ((millis: number) => Effect.Effect<void>) | undefined
  /** Runs before every check. Default: `TestClock` set to the wall clock. */
  readonly prepare?: Effect.Effect<void> | undefined
  /** How many fibers race in the racing checks. Default 50. */
  readonly concurrency?: number | undefined
}

const minute = 60_000
const day = 24 * 60 * minute

// keys as the session middleware makes them: hashes of fresh ids
const storageKey = Ids.storageKeyFunction()
const freshKey = Effect.sync(() => storageKey(Ids.generateId()) as StorageKey)

const writeOf = (text: string, expiresAt: number, principal?: string): SessionWrite => ({
  text,
  expiresAt,
  principal: Option.fromUndefinedOr(principal)
})

/** What a check asserts with: its failures name the check. */
interface Expect {
  readonly that: (condition: boolean, detail: string) => Effect.Effect<void, ConformanceFailure>
  readonly conflict: <A, E, R>(
    effect: Effect.Effect<A, E, R>,
    reason: SessionConflict["reason"],
    what: string
  ) => Effect.Effect<void, ConformanceFailure, R>
}

const expectFor = (check: string): Expect => ({
  that: (condition, detail) => condition ? Effect.void : Effect.fail(new ConformanceFailure({ check, detail })),
  conflict: (effect, reason, what) =>
    Effect.flatMap(Effect.result(effect), (result) =>
      Result.isFailure(result) && result.failure instanceof SessionConflict && result.failure.reason === reason
        ? Effect.void
        : Effect.fail(
          new ConformanceFailure({
            check,
            detail: `${what}: expected SessionConflict(${reason}), got ${
              Result.isSuccess(result) ? "success" : String(result.failure)
            }`
          })
        ))
})

type Body<S> = (expect: Expect, advance: (millis: number) => Effect.Effect<void>, concurrency: number) => Effect.Effect<void, unknown, S>

const assemble = <S, E, R>(
  layer: Layer.Layer<S, E, R>,
  options: Options | undefined,
  bodies: ReadonlyArray<readonly [string, Body<S>]>
): ReadonlyArray<Check<R>> => {
  const advance = options?.advance ?? TestClock.adjust
  // the time is set before the layer is built: a store's sweep does not replay
  // every interval since the epoch
  const prepare = options?.prepare ?? Effect.suspend(() => TestClock.setTime(Date.now()))
  const concurrency = options?.concurrency ?? 50
  return bodies.map(([name, body]) => ({
    name,
    run: Effect.andThen(prepare, Effect.provide(body(expectFor(name), advance, concurrency), layer))
  }))
}

/** A live record under a fresh key: its key, text and expiry. */
const inserted = (minutes: number, principal?: string) =>
  Effect.gen(function*() {
    const store = yield* SessionStore
    const key = yield* freshKey
    const text = `{"record":"${key}"}`
    const expiresAt = (yield* Clock.currentTimeMillis) + minutes * minute
    yield* store.insert(key, writeOf(text, expiresAt, principal))
    return { store, key, text, expiresAt }
  })

/**
 * The checks of the `SessionStore` contract.
 *
 * @since 2.0.0
 * @category checks
 */
export const checks = <E, R>(layer: Layer.Layer<SessionStore, E, R>, options?: Options): ReadonlyArray<Check<R>> =>
  assemble(layer, options, [
    ["load of an unknown key is None", (expect) =>
      Effect.gen(function*() {
        const store = yield* SessionStore
        yield* expect.that(Option.isNone(yield* store.load(yield* freshKey)), "load found a record never written")
      })],
    ["insert then load gives the text, version 1, the expiry and the principal", (expect) =>
      Effect.gen(function*() {
        const { expiresAt, key, store, text } = yield* inserted(10, "alice")
        const record = yield* store.load(key)
        yield* expect.that(Option.isSome(record), "the inserted record is not loaded")
        const loaded = Option.getOrThrow(record)
        yield* expect.that(loaded.text === text, "the text differs")
        yield* expect.that(loaded.version === 1, `version ${loaded.version}, expected 1`)
        yield* expect.that(loaded.expiresAt === expiresAt, `expiresAt ${loaded.expiresAt}, expected ${expiresAt}`)
        yield* expect.that(Option.getOrUndefined(loaded.principal) === "alice", "the principal differs")
      })],
    ["64 KiB of text with any characters round-trips", (expect) =>
      Effect.gen(function*() {
        const store = yield* SessionStore
        const key = yield* freshKey
        const text = `"${"é\u0000\"\\😀".repeat(64 * 1024 / 12)}"`
        yield* store.insert(key, writeOf(text, (yield* Clock.currentTimeMillis) + minute))
        const loaded = yield* store.load(key)
        yield* expect.that(Option.isSome(loaded) && loaded.value.text === text, "the text came back changed")
        yield* expect.that(Option.isSome(loaded) && Option.isNone(loaded.value.principal), "a principal appeared")
      })],
    ["insert on a live key conflicts with Exists and keeps the record", (expect) =>
      Effect.gen(function*() {
        const { key, store, text } = yield* inserted(10)
        yield* expect.conflict(store.insert(key, writeOf("other", Date.now() + day)), "Exists", "second insert")
        const loaded = yield* store.load(key)
        yield* expect.that(Option.isSome(loaded) && loaded.value.text === text, "the losing insert wrote")
      })],
    ["insert over an expired record succeeds with version 1", (expect, advance) =>
      Effect.gen(function*() {
        const { key, store } = yield* inserted(1)
        yield* advance(2 * minute)
        yield* store.insert(key, writeOf("again", (yield* Clock.currentTimeMillis) + minute))
        const loaded = yield* store.load(key)
        yield* expect.that(Option.isSome(loaded) && loaded.value.version === 1 && loaded.value.text === "again", "not a fresh record")
      })],
    ["update with the current version writes and returns version + 1", (expect) =>
      Effect.gen(function*() {
        const { expiresAt, key, store } = yield* inserted(10)
        const version = yield* store.update(key, writeOf("second", expiresAt + minute, "bob"), 1)
        yield* expect.that(version === 2, `update returned ${version}, expected 2`)
        const loaded = Option.getOrThrow(yield* store.load(key))
        yield* expect.that(loaded.text === "second" && loaded.version === 2, "the update is not what load returns")
        yield* expect.that(loaded.expiresAt === expiresAt + minute, "the expiry was not written")
        yield* expect.that(Option.getOrUndefined(loaded.principal) === "bob", "the principal was not written")
      })],
    ["update with a stale version conflicts with VersionMismatch and writes nothing", (expect) =>
      Effect.gen(function*() {
        const { expiresAt, key, store } = yield* inserted(10)
        yield* store.update(key, writeOf("second", expiresAt), 1)
        yield* expect.conflict(store.update(key, writeOf("stale", expiresAt), 1), "VersionMismatch", "stale update")
        const loaded = Option.getOrThrow(yield* store.load(key))
        yield* expect.that(loaded.text === "second" && loaded.version === 2, "the stale update wrote")
      })],
    ["update of a removed, never written or expired key conflicts with Missing and creates nothing", (expect, advance) =>
      Effect.gen(function*() {
        const store = yield* SessionStore
        const removed = yield* inserted(10)
        yield* store.remove(removed.key)
        yield* expect.conflict(store.update(removed.key, writeOf("x", removed.expiresAt), 1), "Missing", "update after remove")
        yield* expect.that(Option.isNone(yield* store.load(removed.key)), "the update recreated the record")
        const never = yield* freshKey
        yield* expect.conflict(store.update(never, writeOf("x", removed.expiresAt), 1), "Missing", "update of a new key")
        const expired = yield* inserted(1)
        yield* advance(2 * minute)
        yield* expect.conflict(
          store.update(expired.key, writeOf("x", (yield* Clock.currentTimeMillis) + minute), 1),
          "Missing",
          "update of an expired record"
        )
      })],
    ["an expired record is never loaded", (expect, advance) =>
      Effect.gen(function*() {
        const { key, store } = yield* inserted(1)
        yield* advance(minute)
        yield* expect.that(Option.isNone(yield* store.load(key)), "a record was loaded at its expiry")
      })],
    ["touch extends a live record, keeps its text and version, and creates or revives nothing", (expect, advance) =>
      Effect.gen(function*() {
        const { expiresAt, key, store, text } = yield* inserted(1)
        yield* expect.that(yield* store.touch(key, expiresAt + 10 * minute), "touch of a live record returned false")
        yield* advance(5 * minute)
        const loaded = yield* store.load(key)
        yield* expect.that(
          Option.isSome(loaded) && loaded.value.text === text && loaded.value.version === 1 &&
            loaded.value.expiresAt === expiresAt + 10 * minute,
          "touch changed more than the expiry, or did not move it"
        )
        const never = yield* freshKey
        yield* expect.that(!(yield* store.touch(never, expiresAt + day)), "touch of a key never written returned true")
        yield* expect.that(Option.isNone(yield* store.load(never)), "touch created a record")
        yield* advance(10 * minute)
        yield* expect.that(!(yield* store.touch(key, expiresAt + day)), "touch of an expired record returned true")
        yield* expect.that(Option.isNone(yield* store.load(key)), "touch revived an expired record")
      })],
    ["a 60-day expiry is kept", (expect, advance) =>
      Effect.gen(function*() {
        const { key, store } = yield* inserted(60 * 24 * 60)
        yield* advance(59 * day)
        yield* expect.that(Option.isSome(yield* store.load(key)), "the record expired early")
      })],
    ["remove deletes, is idempotent, and the key can be inserted again", (expect) =>
      Effect.gen(function*() {
        const { expiresAt, key, store } = yield* inserted(10)
        yield* store.remove(key)
        yield* store.remove(key)
        yield* expect.that(Option.isNone(yield* store.load(key)), "the record survived remove")
        yield* store.insert(key, writeOf("again", expiresAt))
        const loaded = yield* store.load(key)
        yield* expect.that(Option.isSome(loaded) && loaded.value.version === 1, "the insert after remove is not version 1")
      })],
    ["of racing inserts of one key exactly one wins", (expect, _advance, concurrency) =>
      Effect.gen(function*() {
        const store = yield* SessionStore
        const key = yield* freshKey
        const expiresAt = (yield* Clock.currentTimeMillis) + minute
        const outcomes = yield* Effect.forEach(
          Array.from({ length: concurrency }, (_, i) => i),
          (i) => Effect.result(store.insert(key, writeOf(`writer ${i}`, expiresAt))),
          { concurrency: "unbounded" }
        )
        const winners = outcomes.filter(Result.isSuccess).length
        yield* expect.that(winners === 1, `${winners} inserts won`)
      })],
    ["of racing updates on one version exactly one wins", (expect, _advance, concurrency) =>
      Effect.gen(function*() {
        const { expiresAt, key, store } = yield* inserted(10)
        const outcomes = yield* Effect.forEach(
          Array.from({ length: concurrency }, (_, i) => i),
          (i) => Effect.result(store.update(key, writeOf(`writer ${i}`, expiresAt), 1)),
          { concurrency: "unbounded" }
        )
        const winners = outcomes.filter(Result.isSuccess).length
        yield* expect.that(winners === 1, `${winners} updates won`)
        const loaded = Option.getOrThrow(yield* store.load(key))
        yield* expect.that(loaded.version === 2, `version ${loaded.version} after one winning update`)
      })]
  ])

/**
 * The checks of `SessionIndex`, for stores that provide it.
 *
 * @since 2.0.0
 * @category checks
 */
export const indexChecks = <E, R>(
  layer: Layer.Layer<SessionStore | SessionIndex, E, R>,
  options?: Options
): ReadonlyArray<Check<R>> => {
  const principal = Effect.sync(() => `user-${Ids.generateId().slice(0, 12)}`)
  const sorted = (keys: ReadonlyArray<string>) => [...keys].sort().join(",")
  return assemble(layer, options, [
    ["keys lists the live sessions of a principal and only those", (expect, advance) =>
      Effect.gen(function*() {
        const index = yield* SessionIndex
        const [alice, bob] = [yield* principal, yield* principal]
        const a1 = yield* inserted(10, alice)
        const a2 = yield* inserted(10, alice)
        yield* inserted(10, bob)
        yield* inserted(10)
        const short = yield* inserted(1, alice)
        yield* expect.that(
          sorted(yield* index.keys(alice)) === sorted([a1.key, a2.key, short.key]),
          "keys differ from the sessions inserted for the principal"
        )
        yield* advance(2 * minute)
        yield* expect.that(sorted(yield* index.keys(alice)) === sorted([a1.key, a2.key]), "an expired session is listed")
      })],
    ["removeAll removes every live session of a principal, counts them, and no other", (expect, advance) =>
      Effect.gen(function*() {
        const index = yield* SessionIndex
        const [alice, bob] = [yield* principal, yield* principal]
        const a1 = yield* inserted(10, alice)
        yield* inserted(10, alice)
        yield* inserted(1, alice)
        const b = yield* inserted(10, bob)
        yield* advance(2 * minute)
        const removed = yield* index.removeAll(alice)
        yield* expect.that(removed === 2, `removeAll counted ${removed}, expected the 2 live sessions`)
        yield* expect.that(Option.isNone(yield* a1.store.load(a1.key)), "a session of the principal survived")
        yield* expect.that(Option.isSome(yield* b.store.load(b.key)), "another principal's session was removed")
        yield* expect.that((yield* index.keys(alice)).length === 0, "keys still lists sessions after removeAll")
      })],
    ["an update that changes or drops the principal moves the session in the index", (expect) =>
      Effect.gen(function*() {
        const index = yield* SessionIndex
        const [alice, bob] = [yield* principal, yield* principal]
        const { expiresAt, key, store } = yield* inserted(10, alice)
        yield* store.update(key, writeOf("now bob's", expiresAt, bob), 1)
        yield* expect.that((yield* index.keys(alice)).length === 0, "still listed under the old principal")
        yield* expect.that(sorted(yield* index.keys(bob)) === key, "not listed under the new principal")
        yield* store.update(key, writeOf("nobody's", expiresAt), 2)
        yield* expect.that((yield* index.keys(bob)).length === 0, "listed after the principal was dropped")
      })]
  ])
}
