/**
 * An in-process store: for tests, development and a single-process app.
 * Sessions are lost on restart and not shared between processes. The table
 * — eviction order (anonymous sessions first), byte accounting, expiry
 * buckets, the principal index — is the core's (`src/core/memory.ts`), the
 * same as the Effect 3 line's; this module is its Effect 4 glue.
 *
 * @since 2.0.0
 */
import { Clock, Context, Duration, Effect, Layer, Option, Schedule } from "effect"
import * as Memory from "../../src/core/memory.js"
import * as Records from "../../src/core/memoryRecords.js"
import { SessionConflict } from "./SessionError.js"
import type { StorageKey } from "./SessionId.js"
import * as SessionStore from "./SessionStore.js"

/**
 * @since 2.0.0
 * @category models
 */
export interface Options extends Memory.MemoryOptions<Duration.Input> {}

/**
 * What `make` builds: the store, its index, the sweep the layer runs on a
 * schedule, and the store's current size.
 *
 * @since 2.0.0
 * @category models
 */
export interface MemoryStore extends
  Memory.MemoryStoreParts<
    SessionStore.SessionStore["Service"],
    SessionStore.SessionIndex["Service"],
    Effect.Effect<number>,
    Effect.Effect<Memory.MemorySize>
  >
{}

/**
 * Bytes counted per session on top of its text and key (the core's measure).
 *
 * @since 2.0.0
 * @category constants
 */
export const entryOverhead: number = Memory.entryOverhead

const name = "memory"

/**
 * Builds a memory store (without its sweep schedule: see `layer`).
 *
 * @since 2.0.0
 * @category constructors
 */
export const make = (options?: Options): MemoryStore => {
  const table = new Memory.MemoryTable<StorageKey>(Memory.memoryLimits(options))
  // every operation runs at the application's Clock (TestClock in tests)
  const at = <A, E>(f: (now: number) => Effect.Effect<A, E>): Effect.Effect<A, E> => Effect.flatMap(Clock.currentTimeMillis, f)
  // this line writes text only: an entry's value is the record's text
  const entryOf = (write: SessionStore.SessionWrite): Records.EntryWrite => ({
    value: write.text,
    expiresAt: write.expiresAt,
    principal: Option.getOrUndefined(write.principal)
  })
  const recordOf = (entry: Memory.MemoryEntry): SessionStore.SessionRecord => ({
    text: typeof entry.value === "string" ? entry.value : new TextDecoder().decode(entry.value),
    version: entry.version,
    expiresAt: entry.expiresAt,
    principal: Option.fromUndefinedOr(entry.principal)
  })

  // what each operation does to the table is the core's; here the clock and
  // the conflicts as errors
  const store = SessionStore.make(name, {
    load: (key) => at((now) => Effect.succeed(Option.map(Option.fromUndefinedOr(Records.loadEntry(table, key, now)), recordOf))),
    insert: (key, write) =>
      at((now) => {
        const conflict = Records.insertEntry(table, key, entryOf(write), now)
        return conflict === undefined ? Effect.void : Effect.fail(new SessionConflict({ reason: conflict }))
      }),
    update: (key, write, expectedVersion) =>
      at((now) => {
        const result = Records.updateEntry(table, key, entryOf(write), expectedVersion, now)
        return typeof result === "number" ? Effect.succeed(result) : Effect.fail(new SessionConflict({ reason: result }))
      }),
    touch: (key, expiresAt) => at((now) => Effect.succeed(Records.touchEntry(table, key, expiresAt, now))),
    remove: (key) => Effect.sync(() => table.remove(key))
  })
  const index = SessionStore.makeIndex(name, {
    keys: (principal) => at((now) => Effect.succeed(table.keysOf(principal, now))),
    removeAll: (principal) => at((now) => Effect.succeed(table.removeAll(principal, now)))
  })
  // slices of the core's sweep, yielding between them
  const sweep: Effect.Effect<number> = Effect.gen(function*() {
    let total = 0
    while (true) {
      const removed = table.sweepSlice(yield* Clock.currentTimeMillis)
      total += removed
      if (Records.sweepDone(table, removed)) return total
      yield* Effect.yieldNow
    }
  })
  return { store, index, sweep, size: Effect.sync(() => table.size) }
}

/**
 * The store and its index, with expired sessions swept on a schedule for
 * the layer's lifetime.
 *
 * @since 2.0.0
 * @category layers
 */
export const layer = (options?: Options): Layer.Layer<SessionStore.SessionStore | SessionStore.SessionIndex> =>
  Layer.effectContext(Effect.gen(function*() {
    const memory = make(options)
    yield* Effect.forkScoped(Effect.repeat(memory.sweep, Schedule.spaced(options?.cleanupInterval ?? Duration.minutes(1))))
    return Context.make(SessionStore.SessionStore, memory.store).pipe(Context.add(SessionStore.SessionIndex, memory.index))
  }))
