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
import type { StorageReply } from "./core/memcached.js"
import {
  afterRefusedAdd,
  contentionMessage,
  itemKey as itemKeyOf,
  liveRecord,
  maxRounds,
  negativeReply,
  serverAddress,
  updateStep
} from "./core/memcached.js"
import { decode, encode, exptime, keyPrefix } from "./internal/memcached.js"
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

const fail = (operation: StoreOperation, cause: unknown) => new SessionStoreError({ store: name, operation, cause })

const attempt = <A>(operation: StoreOperation, run: () => Promise<A>): Effect.Effect<A, SessionStoreError> =>
  Effect.tryPromise({ try: run, catch: (cause) => fail(operation, cause) })

/**
 * Runs a storage command; the negative replies a conditional command expects
 * become values, anything else stays a failure.
 */
const storage = (
  operation: StoreOperation,
  run: () => Promise<unknown>
): Effect.Effect<StorageReply, SessionStoreError> =>
  attempt(operation, () =>
    run().then(
      (): StorageReply => "STORED",
      (error: unknown) => {
        const reply = negativeReply(error)
        if (reply === undefined) throw error
        return reply
      }
    ))

// What the client's `gets` resolves to on a hit.
interface GetsReply {
  readonly value: unknown
  readonly casUniq: string | number
}

const now = Effect.clockWith((clock) => clock.currentTimeMillis)

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
      const address = serverAddress(options?.servers ?? "127.0.0.1:11211")
      if (address._tag === "Left") return Effect.fail(fail("setup", new Error(address.reason)))
      // the client's own timeouts: a command fails instead of holding the
      // request that needs the session
      const timeout = Math.max(1, Math.ceil(Duration.toMillis(options?.commandTimeout ?? "5 seconds")))
      return Effect.try({
        try: () =>
          new MemcacheClient({ server: address.server, cmdTimeout: timeout, connectTimeout: timeout, noDelay: true }),
        catch: (cause) => fail("setup", cause)
      })
    }),
    (client) => Effect.sync(() => client.shutdown())
  ))

  const itemKey = (operation: StoreOperation, key: StorageKey): Effect.Effect<string, SessionStoreError> => {
    const item = itemKeyOf(prefix, key)
    return item === undefined
      ? Effect.fail(fail(operation, new Error("not a storage key: it holds characters Memcached keys cannot")))
      : Effect.succeed(item)
  }

  const gets = (operation: StoreOperation, item: string) =>
    Effect.flatMap(
      // a miss resolves to undefined, whatever the declared type says
      attempt(operation, () => client.gets<Buffer>(item) as Promise<GetsReply | undefined>),
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
    storage(operation, () => client.cas(item, encode(record), { casUniq, lifetime: exptime(record.expiresAt, t) }))

  const contention = (operation: StoreOperation) => fail(operation, new Error(contentionMessage))

  return SessionStore.make(name, {
    load: (key) =>
      Effect.gen(function*() {
        const item = yield* itemKey("load", key)
        const stored = yield* gets("load", item)
        const t = yield* now
        return Option.fromNullable(liveRecord(stored?.record, t))
      }),

    // `add` stores only when no item exists; see `afterRefusedAdd` for when
    // it did not.
    insert: (key, write) =>
      Effect.gen(function*() {
        const item = yield* itemKey("insert", key)
        const record = { ...write, version: 1 }
        for (let round = 0; round < maxRounds; round++) {
          const t = yield* now
          const added = yield* storage(
            "insert",
            () => client.add(item, encode(record), { lifetime: exptime(record.expiresAt, t) })
          )
          if (added === "STORED") return
          const next = afterRefusedAdd(yield* gets("insert", item), t)
          if (next._tag === "Exists") return yield* new SessionConflict({ reason: "Exists" })
          if (next._tag === "Replace" && (yield* cas("insert", item, record, next.stored.casUniq, t)) === "STORED") {
            return
          }
        }
        return yield* contention("insert")
      }),

    update: (key, write, expectedVersion) =>
      Effect.gen(function*() {
        const item = yield* itemKey("update", key)
        for (let round = 0; round < maxRounds; round++) {
          const stored = yield* gets("update", item)
          const t = yield* now
          const step = updateStep(stored, expectedVersion, t)
          if (step._tag === "Conflict") return yield* new SessionConflict({ reason: step.reason })
          const written = yield* cas("update", item, { ...write, version: step.version }, step.stored.casUniq, t)
          if (written === "STORED") return step.version
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
          if (stored === undefined || liveRecord(stored.record, t) === undefined) return false
          const touched = yield* cas("touch", item, { ...stored.record, expiresAt }, stored.casUniq, t)
          if (touched === "STORED") return true
        }
        return yield* contention("touch")
      }),

    remove: (key) =>
      Effect.flatMap(itemKey("remove", key), (item) => Effect.asVoid(storage("remove", () => client.delete(item))))
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
