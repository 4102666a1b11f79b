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
export interface Options {
  /**
   * The most sessions kept. Beyond it the least recently used session
   * without a principal goes first, and a session with a principal only
   * when none without is left. Default 100,000.
   */
  readonly maxEntries?: number | undefined
  /**
   * The most bytes of sessions kept, counted as each session's data (its
   * text length, or its byte length when it has no text) plus
   * `entryOverhead` for the key, the entry and its index slots. Evicts in
   * the same order as `maxEntries`. Default 256 MiB.
   */
  readonly maxBytes?: number | undefined
  /** How often expired sessions are swept. Default 1 minute (jittered). */
  readonly cleanupInterval?: Duration.DurationInput | undefined
  /**
   * The most expired sessions one slice of the sweep removes before it
   * yields to the event loop. Default 1,000 (a fraction of a millisecond).
   */
  readonly sweepSliceSize?: number | undefined
}

/**
 * What `make` builds: the store, its index, the sweep the layer runs on a
 * schedule, and the store's current size.
 *
 * @since 1.0.0
 * @category models
 */
export interface MemoryStore {
  readonly store: SessionStore.SessionStore["Type"]
  readonly index: SessionStore.SessionIndex["Type"]
  /**
   * Removes the sessions expired by now, a slice of `sweepSliceSize` at a
   * time with a turn of the event loop between slices; returns how many.
   */
  readonly sweep: Effect.Effect<number>
  /** The sessions held and their counted bytes, expired ones not yet swept included. */
  readonly size: Effect.Effect<{ readonly entries: number; readonly bytes: number }>
}

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
export const entryOverhead = 384

// One representation per session: the write's text when it has one (what
// the session middleware writes), else its bytes. A load of text hands the
// session the text, and the bytes are made only if something reads them.
class Entry {
  constructor(
    readonly value: string | Uint8Array,
    readonly version: number,
    readonly expiresAt: number,
    readonly principal: Option.Option<string>,
    readonly bucket: number,
    readonly bytes: number
  ) {}
}

const name = "memory"

// Expiry buckets: a session expiring at t is filed under floor(t / width).
// The sweep visits only buckets that ended, every entry of which has
// expired, so its work follows what expired rather than what is stored; a
// session is removed at most one width after it expired (a load hides it
// from the moment it expires).
const bucketWidth = 10_000

const yieldToEventLoop: Effect.Effect<void> = Effect.async<void>((resume) => {
  const handle = setImmediate(() => resume(Effect.void))
  return Effect.sync(() => clearImmediate(handle))
})

/**
 * @since 1.0.0
 * @category constructors
 */
export const make = Effect.fnUntraced(function*(options?: Options): Effect.fn.Return<MemoryStore, never, Scope.Scope> {
  const maxEntries = Math.max(1, options?.maxEntries ?? 100_000)
  const maxBytes = Math.max(1, options?.maxBytes ?? 256 * 1024 * 1024)
  const sliceSize = Math.max(1, options?.sweepSliceSize ?? 1_000)
  // Two LRU orders, by Map insertion order (re-inserting on use keeps the
  // least recently used first): sessions without a principal are evicted
  // before any with one, so anonymous traffic cannot push out logged-in users.
  const anonymous = new Map<StorageKey, Entry>()
  const bound = new Map<StorageKey, Entry>()
  const byPrincipal = new Map<string, Set<StorageKey>>()
  const buckets = new Map<number, Set<StorageKey>>()
  let bytes = 0

  const lookup = (key: StorageKey): Entry | undefined => anonymous.get(key) ?? bound.get(key)
  const orderOf = (entry: Entry) => Option.isNone(entry.principal) ? anonymous : bound

  const unindex = (key: StorageKey, entry: Entry) => {
    bytes -= entry.bytes
    const bucket = buckets.get(entry.bucket)
    if (bucket !== undefined) {
      bucket.delete(key)
      if (bucket.size === 0) buckets.delete(entry.bucket)
    }
    if (Option.isNone(entry.principal)) return
    const keys = byPrincipal.get(entry.principal.value)
    if (keys === undefined) return
    keys.delete(key)
    if (keys.size === 0) byPrincipal.delete(entry.principal.value)
  }
  const drop = (key: StorageKey, entry: Entry) => {
    orderOf(entry).delete(key)
    unindex(key, entry)
  }
  const evictOne = () => {
    const order = anonymous.size > 0 ? anonymous : bound
    const oldest = order.keys().next().value as StorageKey
    drop(oldest, order.get(oldest)!)
  }
  const put = (key: StorageKey, entry: Entry, previous: Entry | undefined) => {
    if (previous !== undefined) drop(key, previous)
    orderOf(entry).set(key, entry)
    bytes += entry.bytes
    let bucket = buckets.get(entry.bucket)
    if (bucket === undefined) buckets.set(entry.bucket, bucket = new Set())
    bucket.add(key)
    if (Option.isSome(entry.principal)) {
      let keys = byPrincipal.get(entry.principal.value)
      if (keys === undefined) byPrincipal.set(entry.principal.value, keys = new Set())
      keys.add(key)
    }
    // the entry just written is the most recently used of its order, so it
    // goes last (and goes only if it alone exceeds the budget)
    while (anonymous.size + bound.size > maxEntries || (bytes > maxBytes && anonymous.size + bound.size > 0)) {
      evictOne()
    }
  }
  const entryOf = (
    key: StorageKey,
    value: string | Uint8Array,
    version: number,
    expiresAt: number,
    principal: Option.Option<string>
  ) =>
    new Entry(
      value,
      version,
      expiresAt,
      principal,
      Math.floor(expiresAt / bucketWidth),
      (typeof value === "string" ? value.length : value.byteLength) + key.length + entryOverhead
    )
  const valueOf = (write: SessionStore.SessionWrite): string | Uint8Array => write.text ?? write.data

  const live = (key: StorageKey, now: number): Entry | undefined => {
    const entry = lookup(key)
    if (entry === undefined) return undefined
    if (entry.expiresAt <= now) {
      drop(key, entry)
      return undefined
    }
    return entry
  }

  const now = Effect.clockWith((clock) => clock.currentTimeMillis)

  const store = SessionStore.make(name, {
    load: (key) =>
      Effect.map(now, (t) => {
        const entry = live(key, t)
        if (entry === undefined) return Option.none()
        const order = orderOf(entry)
        order.delete(key)
        order.set(key, entry)
        return Option.some(
          typeof entry.value === "string"
            ? new TextRecord(entry.value, entry.version, entry.expiresAt, entry.principal)
            : { data: entry.value, version: entry.version, expiresAt: entry.expiresAt, principal: entry.principal }
        )
      }),
    insert: (key, write) =>
      Effect.flatMap(now, (t) => {
        if (live(key, t) !== undefined) return Effect.fail(new SessionConflict({ reason: "Exists" }))
        put(key, entryOf(key, valueOf(write), 1, write.expiresAt, write.principal), undefined)
        return Effect.void
      }),
    update: (key, write, expectedVersion) =>
      Effect.flatMap(now, (t) => {
        const entry = live(key, t)
        if (entry === undefined) return Effect.fail(new SessionConflict({ reason: "Missing" }))
        if (entry.version !== expectedVersion) return Effect.fail(new SessionConflict({ reason: "VersionMismatch" }))
        const version = entry.version + 1
        put(key, entryOf(key, valueOf(write), version, write.expiresAt, write.principal), entry)
        return Effect.succeed(version)
      }),
    touch: (key, expiresAt) =>
      Effect.map(now, (t) => {
        const entry = live(key, t)
        if (entry === undefined) return false
        put(key, entryOf(key, entry.value, entry.version, expiresAt, entry.principal), entry)
        return true
      }),
    remove: (key) =>
      Effect.sync(() => {
        const entry = lookup(key)
        if (entry !== undefined) drop(key, entry)
      })
  }, { readsText: true })

  const index = SessionStore.makeIndex(name, {
    keys: (principal) =>
      Effect.map(now, (t) => {
        const keys = byPrincipal.get(principal)
        return keys === undefined ? [] : [...keys].filter((key) => live(key, t) !== undefined)
      }),
    removeAll: (principal) =>
      Effect.map(now, (t) => {
        const keys = byPrincipal.get(principal)
        if (keys === undefined) return 0
        let removed = 0
        for (const key of [...keys]) {
          const entry = lookup(key)!
          if (entry.expiresAt > t) removed++
          drop(key, entry)
        }
        return removed
      })
  })

  // One slice: up to `sliceSize` sessions of buckets that ended by now.
  // Entries are only ever removed from a bucket here, so iterating a bucket
  // while deleting its current element is safe; writes between slices file
  // their sessions under buckets that have not ended.
  const sweepSlice = (t: number): number => {
    const ended = Math.floor(t / bucketWidth)
    let removed = 0
    for (const [id, bucket] of buckets) {
      if (id >= ended) continue
      for (const key of bucket) {
        const entry = lookup(key)!
        drop(key, entry)
        if (++removed >= sliceSize) return removed
      }
    }
    return removed
  }

  const sweep: Effect.Effect<number> = Effect.gen(function*() {
    let total = 0
    while (true) {
      const removed = sweepSlice(yield* now)
      total += removed
      if (removed < sliceSize) return total
      yield* yieldToEventLoop
    }
  })

  yield* forkSweeper(name, options?.cleanupInterval ?? "1 minute", sweep)

  return {
    store,
    index,
    sweep,
    size: Effect.sync(() => ({ entries: anonymous.size + bound.size, bytes }))
  }
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
