/**
 * An in-process store: one `Map` per layer, for tests, development and a
 * single-process app. Sessions are lost on restart and not shared between
 * processes.
 *
 * @since 2.0.0
 */
import { Clock, Context, Duration, Effect, Layer, Option, Schedule } from "effect"
import { SessionConflict } from "./SessionError.js"
import type { StorageKey } from "./SessionId.js"
import * as SessionStore from "./SessionStore.js"

/**
 * @since 2.0.0
 * @category models
 */
export interface Options {
  /**
   * The most sessions kept. Beyond it the least recently used session goes
   * first (one without a principal before one with). Default 100,000.
   */
  readonly maxEntries?: number | undefined
  /** How often expired sessions are swept. Default 1 minute. */
  readonly cleanupInterval?: Duration.Input | undefined
}

/**
 * What `make` builds: the store, its index, the sweep the layer runs on a
 * schedule, and the number of sessions held.
 *
 * @since 2.0.0
 * @category models
 */
export interface MemoryStore {
  readonly store: SessionStore.SessionStore["Service"]
  readonly index: SessionStore.SessionIndex["Service"]
  /** Removes the sessions expired by now; returns how many. */
  readonly sweep: Effect.Effect<number>
  /** The sessions held, expired ones not yet swept included. */
  readonly size: Effect.Effect<number>
}

interface Entry {
  readonly text: string
  readonly version: number
  readonly expiresAt: number
  readonly principal: Option.Option<string>
}

/**
 * Builds a memory store (without its sweep schedule: see `layer`).
 *
 * @since 2.0.0
 * @category constructors
 */
export const make = (options?: Options): MemoryStore => {
  const maxEntries = options?.maxEntries ?? 100_000
  // insertion order is use order: a read or write moves the key to the end
  const entries = new Map<StorageKey, Entry>()
  const byPrincipal = new Map<string, Set<StorageKey>>()

  const unindex = (key: StorageKey, entry: Entry) => {
    if (Option.isNone(entry.principal)) return
    const keys = byPrincipal.get(entry.principal.value)
    keys?.delete(key)
    if (keys?.size === 0) byPrincipal.delete(entry.principal.value)
  }
  const drop = (key: StorageKey) => {
    const entry = entries.get(key)
    if (entry === undefined) return
    entries.delete(key)
    unindex(key, entry)
  }
  const put = (key: StorageKey, entry: Entry) => {
    drop(key)
    entries.set(key, entry)
    if (Option.isSome(entry.principal)) {
      let keys = byPrincipal.get(entry.principal.value)
      if (keys === undefined) byPrincipal.set(entry.principal.value, keys = new Set())
      keys.add(key)
    }
    if (entries.size > maxEntries) evict()
  }
  const evict = () => {
    let victim: StorageKey | undefined
    for (const [key, entry] of entries) {
      if (Option.isNone(entry.principal)) {
        victim = key
        break
      }
      victim ??= key
    }
    if (victim !== undefined) drop(victim)
  }
  /** The live entry under `key` at `now`; an expired one is dropped on sight. */
  const live = (key: StorageKey, now: number): Entry | undefined => {
    const entry = entries.get(key)
    if (entry === undefined) return undefined
    if (entry.expiresAt <= now) {
      drop(key)
      return undefined
    }
    return entry
  }
  // every operation runs at the application's Clock (TestClock in tests)
  const at = <A, E>(f: (now: number) => Effect.Effect<A, E>): Effect.Effect<A, E> =>
    Effect.flatMap(Clock.currentTimeMillis, f)

  const store = SessionStore.make("memory", {
    load: (key) =>
      at((now) => {
        const entry = live(key, now)
        if (entry === undefined) return Effect.succeedNone
        entries.delete(key)
        entries.set(key, entry)
        return Effect.succeedSome(entry)
      }),
    insert: (key, write) =>
      at((now) => {
        if (live(key, now) !== undefined) return Effect.fail(new SessionConflict({ reason: "Exists" }))
        put(key, { text: write.text, version: 1, expiresAt: write.expiresAt, principal: write.principal })
        return Effect.void
      }),
    update: (key, write, expectedVersion) =>
      at((now) => {
        const entry = live(key, now)
        if (entry === undefined) return Effect.fail(new SessionConflict({ reason: "Missing" }))
        if (entry.version !== expectedVersion) return Effect.fail(new SessionConflict({ reason: "VersionMismatch" }))
        const version = entry.version + 1
        put(key, { text: write.text, version, expiresAt: write.expiresAt, principal: write.principal })
        return Effect.succeed(version)
      }),
    touch: (key, expiresAt) =>
      at((now) => {
        const entry = live(key, now)
        if (entry === undefined) return Effect.succeed(false)
        entries.set(key, { ...entry, expiresAt })
        return Effect.succeed(true)
      }),
    remove: (key) => Effect.sync(() => drop(key))
  })

  const keysOf = (principal: string, now: number): Array<StorageKey> =>
    [...byPrincipal.get(principal) ?? []].filter((key) => live(key, now) !== undefined)
  const index = SessionStore.makeIndex("memory", {
    keys: (principal) => at((now) => Effect.succeed(keysOf(principal, now))),
    removeAll: (principal) =>
      at((now) => {
        const keys = keysOf(principal, now)
        for (const key of keys) drop(key)
        return Effect.succeed(keys.length)
      })
  })

  const sweep = at((now) => {
    let removed = 0
    for (const [key, entry] of entries) {
      if (entry.expiresAt <= now) {
        drop(key)
        removed++
      }
    }
    return Effect.succeed(removed)
  })
  return { store, index, sweep, size: Effect.sync(() => entries.size) }
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
    yield* Effect.forkScoped(
      Effect.repeat(memory.sweep, Schedule.spaced(options?.cleanupInterval ?? Duration.minutes(1)))
    )
    return Context.make(SessionStore.SessionStore, memory.store).pipe(
      Context.add(SessionStore.SessionIndex, memory.index)
    )
  }))
