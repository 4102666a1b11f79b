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
 * with a `ConformanceFailure` that says what the store did wrong. The checks
 * themselves are the core's (`core/conformance.ts`), the same cases the
 * Effect 4 line runs, and so is the walk through their steps; this module
 * answers the steps on Effect 3.
 *
 * @since 1.0.0
 */
import type { Layer } from "effect"
import { Clock, Data, Effect, Option, TestClock } from "effect"
import * as Conformance from "./core/conformance.js"
import { SessionConflict } from "./SessionError.js"
import type { StorageKey } from "./SessionId.js"
import type { SessionRecord, SessionWrite } from "./SessionStore.js"
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
export interface Check<R> extends Conformance.ConformanceCheck<Effect.Effect<void, unknown, R>> {}

/**
 * @since 1.0.0
 * @category models
 */
export interface Options extends Conformance.ConformanceOptions<Effect.Effect<void>> {}

/**
 * The checks every store must pass.
 *
 * @since 1.0.0
 * @category checks
 */
export const checks = <E, R>(
  layer: Layer.Layer<SessionStore, E, R>,
  options?: Options
): ReadonlyArray<Check<R>> => build(layer, options, Conformance.storeCases)

/**
 * The checks of a store that provides `SessionIndex`.
 *
 * @since 1.0.0
 * @category checks
 */
export const indexChecks = <E, R>(
  layer: Layer.Layer<SessionStore | SessionIndex, E, R>,
  options?: Options
): ReadonlyArray<Check<R>> => build(layer, options, Conformance.indexCases)

// time is set before the layer is built, so that a store's sweep fiber does
// not replay every interval between the epoch and now
const defaultPrepare: Effect.Effect<void> = Effect.suspend(() => TestClock.setTime(Date.now()))

const build = <E, R>(
  layer: Layer.Layer<SessionStore, E, R>,
  options: Options | undefined,
  cases: ReadonlyArray<Conformance.Case>
): ReadonlyArray<Check<R>> => {
  const advance = options?.advance ?? TestClock.adjust
  const prepare = options?.prepare ?? defaultPrepare
  return Conformance.casesFor(cases, "bytes").map((c) => ({
    name: c.name,
    run: Effect.zipRight(
      prepare,
      Effect.provide(
        Effect.flatMap(Effect.zip(SessionStore, Effect.serviceOption(SessionIndex)), ([store, index]) =>
          Conformance.runCase(c, runner(store, Option.getOrUndefined(index), advance), options)),
        layer
      )
    )
  }))
}

/** The core's steps as Effect 3 operations on the store under test. */
const runner = (
  store: SessionStore["Type"],
  index: SessionIndex["Type"] | undefined,
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
    data: Conformance.bytesOf(write.payload),
    expiresAt: write.expiresAt,
    principal: Option.fromNullable(write.principal)
  }),
  loaded: (record) => Option.isSome(record) ? storedOf(record.value) : undefined,
  failure: (check, detail) => new ConformanceFailure({ check, detail }),
  conflictOf: (error) => error instanceof SessionConflict ? error.reason : undefined
})

const storedOf = (record: SessionRecord): Conformance.Stored => ({
  payload: record.data,
  version: record.version,
  expiresAt: record.expiresAt,
  principal: Option.getOrUndefined(record.principal)
})
