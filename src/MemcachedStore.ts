/**
 * A store on Memcached through `memcache-client`, whose `gets` / `cas` give
 * the atomic compare-and-set that `update` needs.
 *
 * It provides only `SessionStore`: Memcached cannot list keys, so there is no
 * `SessionIndex` (no `revokeAll`) — a program that needs one does not compile
 * against this layer. Memcached is a cache: under memory pressure it evicts
 * the least recently used items, and a server restart loses everything, so a
 * session may end before its expiry. See `docs/stores/memcached.md`.
 *
 * @since 1.0.0
 */
import type { ConfigError, Scope } from "effect"
import { Config, Duration, Effect, Layer, Option } from "effect"
import { MemcacheClient } from "memcache-client"
import { decode, encode, exptime, keyPrefix, maxKeyBytes, safeKeyCharacters } from "./internal/memcached.js"
import type { StoreOperation } from "./SessionError.js"
import { SessionConflict, SessionStoreError } from "./SessionError.js"
import type { StorageKey } from "./SessionId.js"
import * as SessionStore from "./SessionStore.js"

/**
 * @since 1.0.0
 * @category models
 */
export interface Options {
  /**
   * The server as `host:port` (a `memcached://` scheme is accepted). Default
   * `"127.0.0.1:11211"`. Ignored when a `client` is given. One server only: `memcache-client` treats several
   * servers as failover replicas and picks one at random per command, which
   * would break compare-and-set (use mcrouter in front of a pool instead).
   */
  readonly servers?: string | undefined
  /**
   * A client to use instead of one the layer creates. The layer never closes
   * it. It must talk to a single server (see `servers`).
   */
  readonly client?: MemcacheClient | undefined
  /**
   * Prepended to every storage key. Default `"session:"`. Printable ASCII
   * without spaces; a prefix too long to leave room for the 43-character
   * storage key within Memcached's 250 bytes is shortened to its head plus
   * its SHA-256.
   */
  readonly prefix?: string | undefined
  /**
   * How long a connection or a command may take before it fails with
   * `SessionStoreError`. Default 5 seconds. Ignored when a `client` is given.
   */
  readonly commandTimeout?: Duration.DurationInput | undefined
}

const name = "memcached"

/**
 * A compare-and-set that loses to a write leaving the version as it was (a
 * touch, a replaced expired record) is retried; every lost round means another
 * writer made progress, so this bound is only a safety valve.
 */
const maxRounds = 100

type Reply = "STORED" | "NOT_STORED" | "EXISTS" | "NOT_FOUND"

/**
 * Runs a storage command, turning the negative replies a conditional command
 * expects into values; anything else stays a rejection.
 */
const reply = (run: () => Promise<unknown>) => (): Promise<Reply> =>
  run().then(
    () => "STORED" as const,
    (error: unknown) => {
      if (
        error instanceof Error &&
        (error.message === "NOT_STORED" || error.message === "EXISTS" || error.message === "NOT_FOUND")
      ) {
        return error.message as Reply
      }
      throw error
    }
  )

const fail = (operation: StoreOperation, cause: unknown) => new SessionStoreError({ store: name, operation, cause })

/**
 * @since 1.0.0
 * @category constructors
 */
export const make = Effect.fnUntraced(function*(options?: Options): Effect.fn.Return<
  SessionStore.SessionStore["Type"],
  SessionStoreError,
  Scope.Scope
> {
  const prefixed = keyPrefix(options?.prefix ?? "session:")
  if (prefixed._tag === "Left") return yield* fail("setup", new Error(prefixed.reason))
  const prefix = prefixed.prefix

  const client = options?.client ?? (yield* Effect.acquireRelease(
    Effect.suspend(() => {
      const server = (options?.servers ?? "127.0.0.1:11211").trim().replace(/^memcached?:\/\//, "")
      if (!/^[^\s,;]+:\d+$/.test(server)) {
        return Effect.fail(
          fail("setup", new Error(`servers must be one "host:port" (got ${JSON.stringify(server)})`))
        )
      }
      const timeout = Math.max(1, Math.ceil(Duration.toMillis(options?.commandTimeout ?? "5 seconds")))
      return Effect.try({
        try: () => new MemcacheClient({ server, cmdTimeout: timeout, connectTimeout: timeout, noDelay: true }),
        catch: (cause) => fail("setup", cause)
      })
    }),
    (client) => Effect.sync(() => client.shutdown())
  ))

  const now = Effect.clockWith((clock) => clock.currentTimeMillis)

  // Storage keys are digests, but the store is public API: a key that could
  // split a protocol line never reaches the socket.
  const itemKey = (operation: StoreOperation, key: StorageKey): Effect.Effect<string, SessionStoreError> =>
    key.length > 0 && safeKeyCharacters.test(key) && prefix.length + key.length <= maxKeyBytes
      ? Effect.succeed(prefix + key)
      : Effect.fail(fail(operation, new Error("not a storage key: it holds characters Memcached keys cannot")))

  const attempt = <A>(operation: StoreOperation, run: () => Promise<A>): Effect.Effect<A, SessionStoreError> =>
    Effect.tryPromise({ try: run, catch: (cause) => fail(operation, cause) })

  const gets = (operation: StoreOperation, item: string) =>
    Effect.flatMap(
      // a miss resolves to undefined, whatever the declared type says
      attempt(operation, () => client.gets<Buffer>(item) as Promise<{ value: unknown; casUniq: string | number } | undefined>),
      (response) => {
        if (response === undefined) return Effect.succeed(undefined)
        const record = decode(response.value)
        return record === undefined
          ? Effect.fail(fail(operation, new Error("the item under this key is not an effect-session record")))
          : Effect.succeed({ record, casUniq: response.casUniq })
      }
    )

  const cas = (
    operation: StoreOperation,
    item: string,
    record: SessionStore.SessionRecord,
    casUniq: string | number,
    t: number
  ) =>
    attempt(
      operation,
      reply(() => client.cas(item, encode(record), { casUniq, lifetime: exptime(record.expiresAt, t) }))
    )

  const contention = (operation: StoreOperation) =>
    fail(operation, new Error(`the item kept changing during ${maxRounds} compare-and-set rounds`))

  return SessionStore.make(name, {
    load: (key) =>
      Effect.gen(function*() {
        const item = yield* itemKey("load", key)
        const stored = yield* gets("load", item)
        const t = yield* now
        return stored !== undefined && stored.record.expiresAt > t ? Option.some(stored.record) : Option.none()
      }),

    // `add` stores only when no item exists. An item can outlive its
    // `expiresAt` (native expiry is rounded up, and the application's clock
    // rules): then it is replaced with `cas`, so that a concurrent writer who
    // got there first still wins.
    insert: (key, write) =>
      Effect.gen(function*() {
        const item = yield* itemKey("insert", key)
        const record = { ...write, version: 1 }
        for (let round = 0; round < maxRounds; round++) {
          const t = yield* now
          const added = yield* attempt(
            "insert",
            reply(() => client.add(item, encode(record), { lifetime: exptime(record.expiresAt, t) }))
          )
          if (added === "STORED") return
          const stored = yield* gets("insert", item)
          // gone since `add` (removed or evicted): add again
          if (stored === undefined) continue
          if (stored.record.expiresAt > t) return yield* new SessionConflict({ reason: "Exists" })
          if ((yield* cas("insert", item, record, stored.casUniq, t)) === "STORED") return
        }
        return yield* contention("insert")
      }),

    update: (key, write, expectedVersion) =>
      Effect.gen(function*() {
        const item = yield* itemKey("update", key)
        for (let round = 0; round < maxRounds; round++) {
          const stored = yield* gets("update", item)
          const t = yield* now
          if (stored === undefined || stored.record.expiresAt <= t) {
            return yield* new SessionConflict({ reason: "Missing" })
          }
          if (stored.record.version !== expectedVersion) {
            return yield* new SessionConflict({ reason: "VersionMismatch" })
          }
          const version = expectedVersion + 1
          if ((yield* cas("update", item, { ...write, version }, stored.casUniq, t)) === "STORED") return version
          // EXISTS: written since `gets`, perhaps only touched; NOT_FOUND:
          // removed. The next round reads which.
        }
        return yield* contention("update")
      }),

    // Not Memcached's `touch`: that would move only the native expiry, while
    // `load` judges by the `expiresAt` inside the value, and it would also
    // extend an item that is already expired for the application. Rewriting
    // the value with `cas` checks liveness and moves both expiries at once,
    // without losing an update that lands in between.
    touch: (key, expiresAt) =>
      Effect.gen(function*() {
        const item = yield* itemKey("touch", key)
        for (let round = 0; round < maxRounds; round++) {
          const stored = yield* gets("touch", item)
          const t = yield* now
          if (stored === undefined || stored.record.expiresAt <= t) return false
          const touched = yield* cas("touch", item, { ...stored.record, expiresAt }, stored.casUniq, t)
          if (touched === "STORED") return true
        }
        return yield* contention("touch")
      }),

    remove: (key) =>
      Effect.flatMap(itemKey("remove", key), (item) =>
        Effect.asVoid(attempt("remove", reply(() => client.delete(item)))))
  })
})

/**
 * The store, alive for the layer's scope; a client the layer created is shut
 * down with it. Fails with `SessionStoreError` when the options cannot work
 * (an unusable prefix, several servers).
 *
 * @example
 * ```ts
 * import * as MemcachedStore from "effect-session/MemcachedStore"
 *
 * const StoreLive = MemcachedStore.layer({ servers: "127.0.0.1:11211", prefix: "myapp:session:" })
 * ```
 *
 * @since 1.0.0
 * @category layers
 */
export const layer = (options?: Options): Layer.Layer<SessionStore.SessionStore, SessionStoreError> =>
  Layer.scoped(SessionStore.SessionStore, make(options))

/**
 * The store with its options read from `Config`.
 *
 * @example
 * ```ts
 * import { Config } from "effect"
 * import * as MemcachedStore from "effect-session/MemcachedStore"
 *
 * const StoreLive = MemcachedStore.layerConfig({
 *   servers: Config.withDefault(Config.string("MEMCACHED_URL"), "127.0.0.1:11211")
 * })
 * ```
 *
 * @since 1.0.0
 * @category layers
 */
export const layerConfig = (
  options: Config.Config.Wrap<Options>
): Layer.Layer<SessionStore.SessionStore, SessionStoreError | ConfigError.ConfigError> =>
  Layer.unwrapEffect(Effect.map(Config.unwrap(options), layer))
