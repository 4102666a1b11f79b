/**
 * An in-process store: a map bounded by entries and by bytes, with
 * least-recently-used eviction that takes sessions without a principal
 * before sessions with one, expiry by `Clock`, an incremental sweep fiber in
 * the layer's scope and the principal index. For tests, development and
 * single-instance apps; sessions are lost when the process exits. See
 * `docs/stores/memory.md`.
 *
 * @since 1.0.0
 */
import type { ConfigError, Duration, Scope } from "effect"
import { Config, Effect, Layer, Option } from "effect"
import * as Memory from "./core/memory.js"
import * as Records from "./core/memoryRecords.js"
import { forkSweeper } from "./internal/cleanup.js"
import { storeAndIndex } from "./internal/layer.js"
import { TextRecord } from "./internal/text.js"
import { SessionConflict } from "./SessionError.js"
import type { StorageKey } from "./SessionId.js"
import * as SessionStore from "./SessionStore.js"

/**
 * @since 1.0.0
 * @category models
 */
export interface Options extends Memory.MemoryOptions<Duration.DurationInput> {}

/**
 * What `make` builds: the store, its index, the sweep the layer runs on a
 * schedule, and the store's current size.
 *
 * @since 1.0.0
 * @category models
 */
export interface MemoryStore extends
  Memory.MemoryStoreParts<
    SessionStore.SessionStore["Type"],
    SessionStore.SessionIndex["Type"],
    Effect.Effect<number>,
    Effect.Effect<Memory.MemorySize>
  >
{}

/**
 * Bytes counted per session on top of its data and key: the entry object,
 * the string headers and its slots in the LRU map and the expiry bucket.
 * Measured as the heap growth per session at 100,000 sessions of 200 bytes
 * (616 bytes each, Node 20, 64-bit), minus the data and the key; see
 * `docs/stores/memory.md`.
 *
 * @since 1.0.0
 * @category constants
 */
export const entryOverhead = Memory.entryOverhead

const name = "memory"

const yieldToEventLoop: Effect.Effect<void> = Effect.async<void>((resume) => {
  const handle = setImmediate(() => resume(Effect.void))
  return Effect.sync(() => clearImmediate(handle))
})

const recordOf = (entry: Memory.MemoryEntry): SessionStore.SessionRecord => {
  const principal = Option.fromNullable(entry.principal)
  return typeof entry.value === "string"
    ? new TextRecord(entry.value, entry.version, entry.expiresAt, principal)
    : { data: entry.value, version: entry.version, expiresAt: entry.expiresAt, principal }
}

/**
 * @since 1.0.0
 * @category constructors
 */
export const make = Effect.fnUntraced(function*(options?: Options): Effect.fn.Return<MemoryStore, never, Scope.Scope> {
  // the eviction order, byte accounting and expiry buckets are the core's
  const table = new Memory.MemoryTable<StorageKey>(Memory.memoryLimits(options))
  const entryOf = (write: SessionStore.SessionWrite): Records.EntryWrite => ({
    value: write.text ?? write.data,
    expiresAt: write.expiresAt,
    principal: Option.getOrUndefined(write.principal)
  })
  const now = Effect.clockWith((clock) => clock.currentTimeMillis)

  // what each operation does to the table is the core's; here the clock and
  // the conflicts as errors
  const store = SessionStore.make(name, {
    load: (key) =>
      Effect.map(now, (t) => {
        const entry = Records.loadEntry(table, key, t)
        return entry === undefined ? Option.none() : Option.some(recordOf(entry))
      }),
    insert: (key, write) =>
      Effect.flatMap(now, (t) => {
        const conflict = Records.insertEntry(table, key, entryOf(write), t)
        return conflict === undefined ? Effect.void : Effect.fail(new SessionConflict({ reason: conflict }))
      }),
    update: (key, write, expectedVersion) =>
      Effect.flatMap(now, (t) => {
        const result = Records.updateEntry(table, key, entryOf(write), expectedVersion, t)
        return typeof result === "number" ? Effect.succeed(result) : Effect.fail(new SessionConflict({ reason: result }))
      }),
    touch: (key, expiresAt) => Effect.map(now, (t) => Records.touchEntry(table, key, expiresAt, t)),
    remove: (key) => Effect.sync(() => table.remove(key))
  }, { readsText: true })

  const index = SessionStore.makeIndex(name, {
    keys: (principal) => Effect.map(now, (t) => table.keysOf(principal, t)),
    removeAll: (principal) => Effect.map(now, (t) => table.removeAll(principal, t))
  })

  // slices of the core's sweep with a turn of the event loop between them
  const sweep: Effect.Effect<number> = Effect.gen(function*() {
    let total = 0
    while (true) {
      const removed = table.sweepSlice(yield* now)
      total += removed
      if (Records.sweepDone(table, removed)) return total
      yield* yieldToEventLoop
    }
  })

  yield* forkSweeper(name, options?.cleanupInterval ?? "1 minute", sweep)

  return { store, index, sweep, size: Effect.sync(() => table.size) }
})

/**
 * The store and its index, alive for the layer's scope.
 *
 * @since 1.0.0
 * @category layers
 */
export const layer = (options?: Options): Layer.Layer<SessionStore.SessionStore | SessionStore.SessionIndex> =>
  storeAndIndex(make(options))

/**
 * @since 1.0.0
 * @category layers
 */
export const layerConfig = (
  options: Config.Config.Wrap<Options>
): Layer.Layer<SessionStore.SessionStore | SessionStore.SessionIndex, ConfigError.ConfigError> =>
  Layer.unwrapEffect(Effect.map(Config.unwrap(options), layer))
