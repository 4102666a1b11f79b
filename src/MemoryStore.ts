/**
 * An in-process store: a bounded map with least-recently-used eviction,
 * expiry by `Clock`, a sweep fiber in the layer's scope and the principal
 * index. For tests, development and single-instance apps; sessions are lost
 * when the process exits.
 *
 * @since 1.0.0
 */
import type { ConfigError, Duration, Scope } from "effect"
import { Config, Effect, Layer, Option } from "effect"
import { forkSweeper } from "./internal/cleanup.js"
import { storeAndIndex } from "./internal/layer.js"
import { SessionConflict } from "./SessionError.js"
import type { StorageKey } from "./SessionId.js"
import * as SessionStore from "./SessionStore.js"

/**
 * @since 1.0.0
 * @category models
 */
export interface Options {
  /** The most sessions kept; the least recently used goes first. Default 100,000. */
  readonly maxEntries?: number | undefined
  /** How often expired sessions are swept. Default 1 minute (jittered). */
  readonly cleanupInterval?: Duration.DurationInput | undefined
}

interface Entry {
  readonly data: Uint8Array
  readonly version: number
  readonly expiresAt: number
  readonly principal: Option.Option<string>
}

const name = "memory"

/**
 * @since 1.0.0
 * @category constructors
 */
export const make = Effect.fnUntraced(function*(options?: Options): Effect.fn.Return<
  { readonly store: SessionStore.SessionStore["Type"]; readonly index: SessionStore.SessionIndex["Type"] },
  never,
  Scope.Scope
> {
  const maxEntries = Math.max(1, options?.maxEntries ?? 100_000)
  // Map iteration order is insertion order: re-inserting on use keeps the
  // least recently used entry first.
  const entries = new Map<StorageKey, Entry>()
  const byPrincipal = new Map<string, Set<StorageKey>>()

  const unindex = (key: StorageKey, entry: Entry) => {
    if (Option.isNone(entry.principal)) return
    const keys = byPrincipal.get(entry.principal.value)
    if (keys === undefined) return
    keys.delete(key)
    if (keys.size === 0) byPrincipal.delete(entry.principal.value)
  }
  const drop = (key: StorageKey) => {
    const entry = entries.get(key)
    if (entry === undefined) return false
    entries.delete(key)
    unindex(key, entry)
    return true
  }
  const put = (key: StorageKey, entry: Entry) => {
    const previous = entries.get(key)
    if (previous !== undefined) {
      entries.delete(key)
      unindex(key, previous)
    }
    entries.set(key, entry)
    if (Option.isSome(entry.principal)) {
      let keys = byPrincipal.get(entry.principal.value)
      if (keys === undefined) byPrincipal.set(entry.principal.value, keys = new Set())
      keys.add(key)
    }
    while (entries.size > maxEntries) {
      const oldest = entries.keys().next().value as StorageKey
      drop(oldest)
    }
  }
  const live = (key: StorageKey, now: number): Entry | undefined => {
    const entry = entries.get(key)
    if (entry === undefined) return undefined
    if (entry.expiresAt <= now) {
      drop(key)
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
        entries.delete(key)
        entries.set(key, entry)
        return Option.some({ ...entry })
      }),
    insert: (key, write) =>
      Effect.flatMap(now, (t) => {
        if (live(key, t) !== undefined) return Effect.fail(new SessionConflict({ reason: "Exists" }))
        put(key, { ...write, version: 1 })
        return Effect.void
      }),
    update: (key, write, expectedVersion) =>
      Effect.flatMap(now, (t) => {
        const entry = live(key, t)
        if (entry === undefined) return Effect.fail(new SessionConflict({ reason: "Missing" }))
        if (entry.version !== expectedVersion) return Effect.fail(new SessionConflict({ reason: "VersionMismatch" }))
        const version = entry.version + 1
        put(key, { ...write, version })
        return Effect.succeed(version)
      }),
    touch: (key, expiresAt) =>
      Effect.map(now, (t) => {
        const entry = live(key, t)
        if (entry === undefined) return false
        put(key, { ...entry, expiresAt })
        return true
      }),
    remove: (key) =>
      Effect.sync(() => {
        drop(key)
      })
  })

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
          if (live(key, t) !== undefined) removed++
          drop(key)
        }
        return removed
      })
  })

  yield* forkSweeper(
    name,
    options?.cleanupInterval ?? "1 minute",
    Effect.map(now, (t) => {
      let removed = 0
      for (const [key, entry] of entries) {
        if (entry.expiresAt <= t) {
          drop(key)
          removed++
        }
      }
      return removed
    })
  )

  return { store, index }
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
