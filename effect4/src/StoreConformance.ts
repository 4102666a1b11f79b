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
 * The checks are the core's (`src/core/conformance.ts`), the cases the
 * Effect 3 line runs too, less those about bytes a text record cannot carry,
 * and so is the walk through their steps; this module answers the steps on
 * Effect 4.
 *
 * @since 2.0.0
 */
import type { Layer } from "effect"
import { Clock, Data, Effect, Option } from "effect"
import { TestClock } from "effect/testing"
import * as Conformance from "../../src/core/conformance.js"
import { SessionConflict } from "./SessionError.js"
import type { StorageKey } from "./SessionId.js"
import type { SessionRecord, SessionWrite } from "./SessionStore.js"
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
export interface Check<R> extends Conformance.ConformanceCheck<Effect.Effect<void, unknown, R>> {}

/**
 * @since 2.0.0
 * @category models
 */
export interface Options extends Conformance.ConformanceOptions<Effect.Effect<void>> {}

/**
 * The checks of the `SessionStore` contract.
 *
 * @since 2.0.0
 * @category checks
 */
export const checks = <E, R>(layer: Layer.Layer<SessionStore, E, R>, options?: Options): ReadonlyArray<Check<R>> =>
  assemble(layer, options, Conformance.storeCases)

/**
 * The checks of `SessionIndex`, for stores that provide it.
 *
 * @since 2.0.0
 * @category checks
 */
export const indexChecks = <E, R>(
  layer: Layer.Layer<SessionStore | SessionIndex, E, R>,
  options?: Options
): ReadonlyArray<Check<R>> => assemble(layer, options, Conformance.indexCases)

const assemble = <E, R>(
  layer: Layer.Layer<SessionStore, E, R>,
  options: Options | undefined,
  cases: ReadonlyArray<Conformance.Case>
): ReadonlyArray<Check<R>> => {
  const advance = options?.advance ?? TestClock.adjust
  // the time is set before the layer is built: a store's sweep does not
  // replay every interval since the epoch
  const prepare = options?.prepare ?? Effect.suspend(() => TestClock.setTime(Date.now()))
  return Conformance.casesFor(cases, "text").map((c) => ({
    name: c.name,
    run: Effect.andThen(
      prepare,
      Effect.provide(
        Effect.gen(function*() {
          const store = yield* SessionStore
          const index = Option.getOrUndefined(yield* Effect.serviceOption(SessionIndex))
          return yield* Conformance.runCase(c, runner(store, index, advance), options)
        }),
        layer
      )
    )
  }))
}

/** The core's steps as Effect 4 operations on the store under test. */
const runner = (
  store: SessionStore["Service"],
  index: SessionIndex["Service"] | undefined,
  advance: (millis: number) => Effect.Effect<void>
): Conformance.Runner<Effect.Effect<unknown, unknown>, StorageKey, SessionWrite, Option.Option<SessionRecord>> => ({
  succeed: Effect.succeed,
  fail: Effect.fail,
  flatMap: (operation, next) => Effect.flatMap(operation, next),
  match: (operation, onSuccess, onFailure) => Effect.match(operation, { onSuccess, onFailure }),
  suspend: Effect.suspend,
  all: (operations) => Effect.all(operations, { concurrency: "unbounded" }),
  now: Clock.currentTimeMillis,
  advance,
  store,
  index,
  storageKey: (key) => key as StorageKey,
  write: (write) => ({
    text: Conformance.textOf(write.payload),
    expiresAt: write.expiresAt,
    principal: Option.fromUndefinedOr(write.principal)
  }),
  loaded: (record) => Option.isSome(record) ? storedOf(record.value) : undefined,
  failure: (check, detail) => new ConformanceFailure({ check, detail }),
  conflictOf: (error) => error instanceof SessionConflict ? error.reason : undefined
})

const storedOf = (record: SessionRecord): Conformance.Stored => ({
  payload: record.text,
  version: record.version,
  expiresAt: record.expiresAt,
  principal: Option.getOrUndefined(record.principal)
})
