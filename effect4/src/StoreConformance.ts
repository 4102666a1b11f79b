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
 * Effect 3 line runs too, less those about bytes a text record cannot carry;
 * this module runs them on Effect 4.
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
  const context = { concurrency: options?.concurrency ?? 50 }
  return Conformance.casesFor(cases, "text").map((c) => ({
    name: c.name,
    run: Effect.andThen(
      prepare,
      Effect.provide(
        Effect.gen(function*() {
          const store = yield* SessionStore
          const index = Option.getOrUndefined(yield* Effect.serviceOption(SessionIndex))
          return yield* interpreter({ check: c.name, store, index, advance })(c.program(context))
        }),
        layer
      )
    )
  }))
}

const writeOf = (write: Conformance.Write): SessionWrite => ({
  text: Conformance.textOf(write.payload),
  expiresAt: write.expiresAt,
  principal: Option.fromUndefinedOr(write.principal)
})

const storedOf = (record: SessionRecord): Conformance.Stored => ({
  payload: record.text,
  version: record.version,
  expiresAt: record.expiresAt,
  principal: Option.getOrUndefined(record.principal)
})

const outcome = <A, E>(effect: Effect.Effect<A, E>): Effect.Effect<Conformance.Outcome<A>> =>
  Effect.match(effect, {
    onSuccess: (value): Conformance.Outcome<A> => ({ ok: true, value }),
    onFailure: (error): Conformance.Outcome<A> => ({
      ok: false,
      error,
      conflict: error instanceof SessionConflict ? error.reason : undefined
    })
  })

/** Runs a case, answering each of its steps with the store. */
const interpreter = (context: {
  readonly check: string
  readonly store: SessionStore["Service"]
  readonly index: SessionIndex["Service"] | undefined
  readonly advance: (millis: number) => Effect.Effect<void>
}) => {
  const { advance, check, index, store } = context
  const needIndex = Effect.suspend(() =>
    index === undefined ? Effect.die(new Error(`${check}: the case needs SessionIndex`)) : Effect.succeed(index)
  )
  const answer = (step: Conformance.Step): Effect.Effect<unknown, unknown> => {
    switch (step._tag) {
      case "Now":
        return Clock.currentTimeMillis
      case "Advance":
        return advance(step.millis)
      case "Load":
        return Effect.map(store.load(step.key as StorageKey), (r) => Option.isSome(r) ? storedOf(r.value) : undefined)
      case "Insert": {
        const insert = store.insert(step.key as StorageKey, writeOf(step.write))
        return step.attempt ? outcome(insert) : insert
      }
      case "Update": {
        const update = store.update(step.key as StorageKey, writeOf(step.write), step.expectedVersion)
        return step.attempt ? outcome(update) : update
      }
      case "Touch":
        return store.touch(step.key as StorageKey, step.expiresAt)
      case "Remove":
        return store.remove(step.key as StorageKey)
      case "Keys":
        return Effect.flatMap(needIndex, (i) => i.keys(step.principal))
      case "RemoveAll":
        return Effect.flatMap(needIndex, (i) => i.removeAll(step.principal))
      case "All":
        return Effect.all(step.programs.map(run), { concurrency: "unbounded" })
      case "Fail":
        return Effect.fail(new ConformanceFailure({ check, detail: step.detail }))
      case "Raise":
        return Effect.fail(step.error)
    }
  }
  const run = <A>(program: Conformance.Program<A>): Effect.Effect<A, unknown> => {
    const resume = (input: unknown): Effect.Effect<A, unknown> => {
      const next = program.next(input)
      return next.done ? Effect.succeed(next.value) : Effect.flatMap(answer(next.value), resume)
    }
    return Effect.suspend(() => resume(undefined))
  }
  return run
}
