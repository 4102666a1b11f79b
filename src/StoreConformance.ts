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
 * Effect 4 line runs; this module runs them on Effect 3.
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
  const context = { concurrency: options?.concurrency ?? 50 }
  return Conformance.casesFor(cases, "bytes").map((c) => ({
    name: c.name,
    run: Effect.zipRight(
      prepare,
      Effect.provide(
        Effect.flatMap(Effect.zip(SessionStore, Effect.serviceOption(SessionIndex)), ([store, index]) =>
          runner({ check: c.name, store, index: Option.getOrUndefined(index), advance })(c.program(context))),
        layer
      )
    )
  }))
}

const writeOf = (write: Conformance.Write): SessionWrite => ({
  data: typeof write.payload === "string" ? new TextEncoder().encode(write.payload) : write.payload,
  expiresAt: write.expiresAt,
  principal: Option.fromNullable(write.principal)
})

const storedOf = (record: SessionRecord): Conformance.Stored => ({
  payload: record.data,
  version: record.version,
  expiresAt: record.expiresAt,
  principal: Option.getOrUndefined(record.principal)
})

const attempt = <A, E>(effect: Effect.Effect<A, E>): Effect.Effect<Conformance.Outcome<A>> =>
  Effect.match(effect, {
    onSuccess: (value) => ({ ok: true, value }),
    onFailure: (error) => ({ ok: false, error, conflict: error instanceof SessionConflict ? error.reason : undefined })
  })

/** Runs a case's program, answering each of its steps with the store. */
const runner = (context: {
  readonly check: string
  readonly store: SessionStore["Type"]
  readonly index: SessionIndex["Type"] | undefined
  readonly advance: (millis: number) => Effect.Effect<void>
}) => {
  const { advance, check, store } = context
  const indexed = (): SessionIndex["Type"] => {
    if (context.index === undefined) throw new Error(`${check}: the case needs SessionIndex`)
    return context.index
  }
  const step = (s: Conformance.Step): Effect.Effect<unknown, unknown> => {
    switch (s._tag) {
      case "Now":
        return Clock.currentTimeMillis
      case "Advance":
        return advance(s.millis)
      case "Load":
        return Effect.map(store.load(s.key as StorageKey), (r) => Option.isSome(r) ? storedOf(r.value) : undefined)
      case "Insert": {
        const insert = store.insert(s.key as StorageKey, writeOf(s.write))
        return s.attempt ? attempt(insert) : insert
      }
      case "Update": {
        const update = store.update(s.key as StorageKey, writeOf(s.write), s.expectedVersion)
        return s.attempt ? attempt(update) : update
      }
      case "Touch":
        return store.touch(s.key as StorageKey, s.expiresAt)
      case "Remove":
        return store.remove(s.key as StorageKey)
      case "Keys":
        return Effect.suspend(() => indexed().keys(s.principal))
      case "RemoveAll":
        return Effect.suspend(() => indexed().removeAll(s.principal))
      case "All":
        return Effect.all(s.programs.map(run), { concurrency: "unbounded" })
      case "Fail":
        return Effect.fail(new ConformanceFailure({ check, detail: s.detail }))
      case "Raise":
        return Effect.fail(s.error)
    }
  }
  const run = <A>(program: Conformance.Program<A>): Effect.Effect<A, unknown> => {
    const resume = (answer: unknown): Effect.Effect<A, unknown> => {
      const next = program.next(answer)
      return next.done ? Effect.succeed(next.value) : Effect.flatMap(step(next.value), resume)
    }
    return Effect.suspend(() => resume(undefined))
  }
  return run
}
