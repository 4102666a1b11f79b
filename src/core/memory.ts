/**
 * The in-process store's table without Effect: two least-recently-used
 * orders (sessions without a principal evicted before any with one), the
 * byte accounting, the principal index and the expiry buckets a sweep
 * visits. Plain maps and arithmetic; the shells add the clock, the
 * conflicts and the yielding sweep loop.
 *
 * @internal
 */

/**
 * Bytes counted per session on top of its data and key: the entry object,
 * the string headers and its slots in the LRU map and the expiry bucket.
 * Measured as the heap growth per session at 100,000 sessions of 200 bytes
 * (616 bytes each, Node 20, 64-bit), minus the data and the key.
 *
 * @internal
 */
export const entryOverhead = 384

/**
 * Width of an expiry bucket: a session expiring at t is filed under
 * floor(t / width). The sweep visits only buckets that ended, every entry of
 * which has expired, so its work follows what expired rather than what is
 * stored; a session is removed at most one width after it expired (a load
 * hides it from the moment it expires).
 *
 * @internal
 */
export const expiryBucketWidth = 10_000

/** @internal */
export const expiryBucketOf = (expiresAt: number): number => Math.floor(expiresAt / expiryBucketWidth)

/**
 * The options of a memory store, as both lines' `MemoryStore.Options` take
 * them: each line's public interface extends this with its duration input
 * `D` (a parameter, so that the core does not import Effect).
 *
 * @internal
 */
export interface MemoryOptions<D> {
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
  /** How often expired sessions are swept. Default 1 minute (jittered on the Effect 3 line). */
  readonly cleanupInterval?: D | undefined
  /**
   * The most expired sessions one slice of the sweep removes before it
   * yields (to the event loop on the Effect 3 line). Default 1,000 (a
   * fraction of a millisecond).
   */
  readonly sweepSliceSize?: number | undefined
}

/**
 * The sessions a memory store holds and their counted bytes, expired ones
 * not yet swept included.
 *
 * @internal
 */
export interface MemorySize {
  readonly entries: number
  readonly bytes: number
}

/**
 * What a memory store's `make` builds, as both lines' `MemoryStore` declare
 * it: `Store` and `Index` are the line's services, `Sweep` and `Size` its
 * effects answering a count and a `MemorySize` (parameters, so that the core
 * does not import Effect).
 *
 * @internal
 */
export interface MemoryStoreParts<Store, Index, Sweep, Size> {
  readonly store: Store
  readonly index: Index
  /**
   * Removes the sessions expired by now, a slice of `sweepSliceSize` at a
   * time, yielding between slices (to the event loop on the Effect 3 line);
   * returns how many.
   */
  readonly sweep: Sweep
  /** The sessions held and their counted bytes, expired ones not yet swept included. */
  readonly size: Size
}

/** @internal */
export interface MemoryLimits {
  readonly maxEntries: number
  readonly maxBytes: number
  /** The most sessions one slice of the sweep removes before the shell yields. */
  readonly sliceSize: number
}

/**
 * The limits with their defaults (100,000 entries, 256 MiB, slices of
 * 1,000), each at least 1 so that a misconfiguration cannot make every
 * write evict itself or a sweep loop without progress.
 *
 * @internal
 */
export const memoryLimits = (options?: {
  readonly maxEntries?: number | undefined
  readonly maxBytes?: number | undefined
  readonly sweepSliceSize?: number | undefined
}): MemoryLimits => ({
  maxEntries: Math.max(1, options?.maxEntries ?? 100_000),
  maxBytes: Math.max(1, options?.maxBytes ?? 256 * 1024 * 1024),
  sliceSize: Math.max(1, options?.sweepSliceSize ?? 1_000)
})

/**
 * What a session counts against `maxBytes`: its text length (or byte length
 * when it has no text), its key and `entryOverhead`.
 *
 * @internal
 */
export const entryBytes = (key: string, value: string | Uint8Array): number =>
  (typeof value === "string" ? value.length : value.byteLength) + key.length + entryOverhead

/**
 * One session. One representation: the write's text when it has one (what
 * the session middleware writes), else its bytes.
 *
 * @internal
 */
export class MemoryEntry {
  constructor(
    readonly value: string | Uint8Array,
    readonly version: number,
    readonly expiresAt: number,
    readonly principal: string | undefined,
    readonly bucket: number,
    readonly bytes: number
  ) {}
}

/**
 * The table: entries in two LRU orders by Map insertion order (re-inserting
 * on use keeps the least recently used first), a principal index and
 * expiry buckets. Anonymous sessions are evicted before any bound to a
 * principal, so anonymous traffic cannot push out logged-in users.
 *
 * @internal
 */
export class MemoryTable<K extends string> {
  private readonly anonymous = new Map<K, MemoryEntry>()
  private readonly bound = new Map<K, MemoryEntry>()
  private readonly byPrincipal = new Map<string, Set<K>>()
  private readonly buckets = new Map<number, Set<K>>()
  private bytes = 0

  constructor(readonly limits: MemoryLimits) {}

  get size(): MemorySize {
    return { entries: this.count(), bytes: this.bytes }
  }

  private count(): number {
    return this.anonymous.size + this.bound.size
  }

  /** The entry under `key`, expired or not. */
  lookup(key: K): MemoryEntry | undefined {
    return this.anonymous.get(key) ?? this.bound.get(key)
  }

  /** The entry if live at `now`; an expired one is dropped on the way. */
  live(key: K, now: number): MemoryEntry | undefined {
    const entry = this.lookup(key)
    if (entry === undefined) return undefined
    if (entry.expiresAt <= now) {
      this.drop(key, entry)
      return undefined
    }
    return entry
  }

  /** Marks a read: the entry becomes the most recently used of its order. */
  use(key: K, entry: MemoryEntry): void {
    const order = this.orderOf(entry)
    order.delete(key)
    order.set(key, entry)
  }

  /** Stores a session (replacing `previous`), then evicts down to the limits. */
  put(
    key: K,
    value: string | Uint8Array,
    version: number,
    expiresAt: number,
    principal: string | undefined,
    previous: MemoryEntry | undefined
  ): void {
    const entry = new MemoryEntry(
      value,
      version,
      expiresAt,
      principal,
      expiryBucketOf(expiresAt),
      entryBytes(key, value)
    )
    if (previous !== undefined) this.drop(key, previous)
    this.orderOf(entry).set(key, entry)
    this.bytes += entry.bytes
    addTo(this.buckets, entry.bucket, key)
    if (principal !== undefined) addTo(this.byPrincipal, principal, key)
    // the entry just written is the most recently used of its order, so it
    // goes last (and goes only if it alone exceeds the budget)
    const { maxBytes, maxEntries } = this.limits
    while (this.count() > maxEntries || (this.bytes > maxBytes && this.count() > 0)) this.evictOne()
  }

  drop(key: K, entry: MemoryEntry): void {
    this.orderOf(entry).delete(key)
    this.bytes -= entry.bytes
    removeFrom(this.buckets, entry.bucket, key)
    if (entry.principal !== undefined) removeFrom(this.byPrincipal, entry.principal, key)
  }

  remove(key: K): void {
    const entry = this.lookup(key)
    if (entry !== undefined) this.drop(key, entry)
  }

  /** The principal's live sessions at `now`. */
  keysOf(principal: string, now: number): Array<K> {
    const keys = this.byPrincipal.get(principal)
    return keys === undefined ? [] : [...keys].filter((key) => this.live(key, now) !== undefined)
  }

  /** Drops every session of the principal; returns how many were live at `now`. */
  removeAll(principal: string, now: number): number {
    const keys = this.byPrincipal.get(principal)
    if (keys === undefined) return 0
    let removed = 0
    for (const key of [...keys]) {
      const entry = this.lookup(key)!
      if (entry.expiresAt > now) removed++
      this.drop(key, entry)
    }
    return removed
  }

  /**
   * One slice of the sweep: up to `sliceSize` sessions of buckets that
   * ended by `now`. Entries are only ever removed from a bucket here, so
   * iterating a bucket while deleting its current element is safe; writes
   * between slices file their sessions under buckets that have not ended.
   * Fewer than `sliceSize` removed means the sweep is done.
   */
  sweepSlice(now: number): number {
    const current = expiryBucketOf(now)
    let removed = 0
    for (const [id, bucket] of this.buckets) {
      if (id >= current) continue
      for (const key of bucket) {
        this.drop(key, this.lookup(key)!)
        if (++removed >= this.limits.sliceSize) return removed
      }
    }
    return removed
  }

  private orderOf(entry: MemoryEntry): Map<K, MemoryEntry> {
    return entry.principal === undefined ? this.anonymous : this.bound
  }

  // the least recently used anonymous session, or, when none is left, the
  // least recently used bound one
  private evictOne(): void {
    const order = this.anonymous.size > 0 ? this.anonymous : this.bound
    const oldest = order.keys().next().value as K
    this.drop(oldest, order.get(oldest)!)
  }
}

const addTo = <I, K>(index: Map<I, Set<K>>, id: I, key: K): void => {
  let keys = index.get(id)
  if (keys === undefined) index.set(id, keys = new Set())
  keys.add(key)
}

const removeFrom = <I, K>(index: Map<I, Set<K>>, id: I, key: K): void => {
  const keys = index.get(id)
  if (keys === undefined) return
  keys.delete(key)
  if (keys.size === 0) index.delete(id)
}
