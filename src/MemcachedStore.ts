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
import type {
  Command,
  GetsReply,
  Gotten,
  MemcachedOptions,
  MemcachedRecord,
  Operation,
  Outcome,
  Reply,
  StorageReply
} from "./core/memcached.js"
import {
  clientSettings,
  contentionMessage,
  defaultPrefix,
  encode,
  foreignItemMessage,
  insertOperation,
  itemKey as itemKeyOf,
  liveRecord,
  readGets,
  storageReply,
  touchOperation,
  unsafeKeyMessage,
  updateOperation
} from "./core/memcached.js"
import { exptime, fromCore, keyPrefix, toCore } from "./internal/memcached.js"
import type { StoreOperation } from "./SessionError.js"
import { SessionConflict, SessionStoreError } from "./SessionError.js"
import type { StorageKey } from "./SessionId.js"
import * as SessionStore from "./SessionStore.js"

/**
 * @since 1.0.0
 * @category models
 */
export interface Options extends MemcachedOptions<Duration.DurationInput, MemcacheClient> {}

const name = "memcached"

const fail = (operation: StoreOperation, cause: unknown) => new SessionStoreError({ store: name, operation, cause })

const attempt = <A>(operation: StoreOperation, run: () => Promise<A>): Effect.Effect<A, SessionStoreError> =>
  Effect.tryPromise({ try: run, catch: (cause) => fail(operation, cause) })

/**
 * Runs a storage command; the negative replies a conditional command expects
 * become values (the core's `storageReply`), anything else stays a failure.
 */
const storage = (
  operation: StoreOperation,
  run: () => Promise<unknown>
): Effect.Effect<StorageReply, SessionStoreError> => attempt(operation, () => storageReply(run()))

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
  const prefixed = keyPrefix(options?.prefix ?? defaultPrefix)
  if (prefixed._tag === "Left") return yield* fail("setup", new Error(prefixed.reason))
  const prefix = prefixed.prefix

  const client = options?.client ?? (yield* Effect.acquireRelease(
    Effect.suspend(() => {
      const planned = clientSettings(options, Duration.toMillis)
      if (planned._tag === "Left") return Effect.fail(fail("setup", new Error(planned.reason)))
      return Effect.try({ try: () => new MemcacheClient(planned.settings), catch: (cause) => fail("setup", cause) })
    }),
    (client) => Effect.sync(() => client.shutdown())
  ))

  const itemKey = (operation: StoreOperation, key: StorageKey): Effect.Effect<string, SessionStoreError> => {
    const item = itemKeyOf(prefix, key)
    return item === undefined ? Effect.fail(fail(operation, new Error(unsafeKeyMessage))) : Effect.succeed(item)
  }

  const gets = (
    operation: StoreOperation,
    item: string
  ): Effect.Effect<Gotten<MemcachedRecord> | undefined, SessionStoreError> =>
    Effect.flatMap(
      // a miss resolves to undefined, whatever the declared type says
      attempt(operation, () => client.gets<Buffer>(item) as Promise<GetsReply | undefined>),
      (response) => {
        const stored = readGets(response)
        return stored === "Foreign" ? Effect.fail(fail(operation, new Error(foreignItemMessage))) : Effect.succeed(stored)
      }
    )

  // One command of an operation's conversation with the server. A read is
  // answered with the time after it; a storage command's exptime is taken
  // when it goes out.
  const send = (operation: StoreOperation, item: string, command: Command): Effect.Effect<Reply, SessionStoreError> =>
    command._tag === "Gets"
      ? Effect.zipWith(gets(operation, item), now, (stored, t): Reply => ({ _tag: "Read", stored, now: t }))
      : Effect.flatMap(now, (t) => {
        const value = encode(command.record)
        const lifetime = exptime(command.record.expiresAt, t)
        return Effect.map(
          storage(
            operation,
            () =>
              command._tag === "Add"
                ? client.add(item, value, { lifetime })
                : client.cas(item, value, { casUniq: command.casUniq, lifetime })
          ),
          (reply): Reply => ({ _tag: "Written", reply })
        )
      })

  const ended = <A>(operation: StoreOperation, outcome: Outcome<A>): Effect.Effect<A, SessionConflict | SessionStoreError> =>
    outcome._tag === "Done"
      ? Effect.succeed(outcome.value)
      : outcome._tag === "Conflict"
      ? Effect.fail(new SessionConflict({ reason: outcome.reason }))
      : Effect.fail(fail(operation, new Error(contentionMessage)))

  // Runs one of the core's conditional operations: sends what it asks for
  // and resumes it with the reply until it ends. The conversation begins when
  // the effect runs, so that running the effect again starts it over.
  const converse = <A>(
    operation: StoreOperation,
    key: StorageKey,
    begin: () => Operation<A>
  ): Effect.Effect<A, SessionConflict | SessionStoreError> =>
    Effect.flatMap(itemKey(operation, key), (item) => {
      const conversation = begin()
      const resume = (step: IteratorResult<Command, Outcome<A>>): Effect.Effect<A, SessionConflict | SessionStoreError> =>
        step.done
          ? ended(operation, step.value)
          : Effect.flatMap(send(operation, item, step.value), (reply) => resume(conversation.next(reply)))
      return resume(conversation.next())
    })

  return SessionStore.make(name, {
    load: (key) =>
      Effect.gen(function*() {
        const stored = yield* gets("load", yield* itemKey("load", key))
        const live = liveRecord(stored?.record, yield* now)
        return live === undefined ? Option.none() : Option.some(fromCore(live))
      }),
    insert: (key, write) => converse("insert", key, () => insertOperation({ ...toCore(write), version: 1 })),
    update: (key, write, expectedVersion) =>
      converse("update", key, () => updateOperation(toCore(write), expectedVersion)),
    // a touch never ends in a conflict (see `touchOperation` for why it is a cas)
    touch: (key, expiresAt) =>
      Effect.catchTag(converse("touch", key, () => touchOperation(expiresAt)), "SessionConflict", Effect.die),
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
