/**
 * A store on Memcached through `memcache-client`, whose `gets` / `cas` give
 * the atomic compare-and-set that `update` needs: the Effect 4 glue over the
 * core's Memcached protocol (`src/core/memcached.ts`: key layout, exptime,
 * the value's framing and the conversation of every conditional operation),
 * so both lines store the same values and read each other's.
 *
 * It provides only `SessionStore`: Memcached cannot list keys, so there is no
 * `SessionIndex` (no `revokeAll`) — a program that needs one does not compile
 * against this layer. Memcached is a cache: under memory pressure it evicts
 * the least recently used items, and a restart loses everything, so a
 * session may end before its expiry. See `docs/stores/memcached.md`.
 *
 * ```ts
 * import * as MemcachedStore from "effect-session/MemcachedStore"
 *
 * const StoreLive = MemcachedStore.layer({ servers: "127.0.0.1:11211", prefix: "myapp:session:" })
 * ```
 *
 * @since 2.0.0
 */
import type { Scope } from "effect"
import { Clock, Config, Duration, Effect, Layer, Option } from "effect"
import { MemcacheClient } from "memcache-client"
import * as Protocol from "../../src/core/memcached.js"
import type { StoreOperation } from "./SessionError.js"
import { SessionConflict, SessionStoreError } from "./SessionError.js"
import type { StorageKey } from "./SessionId.js"
import * as SessionStore from "./SessionStore.js"

/**
 * The options of `docs/stores/memcached.md`, as on the Effect 3 line.
 *
 * @since 2.0.0
 * @category models
 */
export interface Options extends Protocol.MemcachedOptions<Duration.Input, MemcacheClient> {}

const name = "memcached"

const failure = (operation: StoreOperation, cause: unknown) => new SessionStoreError({ store: name, operation, cause })

// this line's records are text, which the value carries as its UTF-8 bytes
const toProtocol = (write: SessionStore.SessionWrite): Omit<Protocol.MemcachedRecord, "version"> =>
  Protocol.textWrite(write.text, write.expiresAt, Option.getOrUndefined(write.principal))

const fromProtocol = (record: Protocol.MemcachedRecord): SessionStore.SessionRecord => ({
  ...Protocol.textOf(record),
  principal: Option.fromUndefinedOr(record.principal)
})

/**
 * The store over one Memcached server, for the scope: a client the layer
 * creates is shut down when the scope closes. Fails with `SessionStoreError`
 * (operation `setup`) when the options cannot work: an unusable prefix,
 * several servers.
 *
 * @since 2.0.0
 * @category constructors
 */
export const make = Effect.fnUntraced(function*(
  options?: Options
): Effect.fn.Return<SessionStore.SessionStore["Service"], SessionStoreError, Scope.Scope> {
  const prefixed = Protocol.keyPrefix(options?.prefix ?? Protocol.defaultPrefix)
  if (prefixed._tag === "Left") return yield* Effect.fail(failure("setup", new Error(prefixed.reason)))
  const prefix = prefixed.prefix
  const client = options?.client ?? (yield* connect(options))

  const itemKey = (operation: StoreOperation, key: StorageKey): Effect.Effect<string, SessionStoreError> => {
    const item = Protocol.itemKey(prefix, key)
    return item === undefined
      ? Effect.fail(failure(operation, new Error(Protocol.unsafeKeyMessage)))
      : Effect.succeed(item)
  }

  const send = <A>(operation: StoreOperation, command: () => Promise<A>): Effect.Effect<A, SessionStoreError> =>
    Effect.tryPromise({ try: command, catch: (cause) => failure(operation, cause) })

  // a miss resolves to undefined, whatever the client's declared type says
  const gets = (operation: StoreOperation, item: string) =>
    Effect.flatMap(send(operation, () => client.gets<Buffer>(item) as Promise<Protocol.GetsReply | undefined>), (response) => {
      const stored = Protocol.readGets(response)
      return stored === "Foreign" ? Effect.fail(failure(operation, new Error(Protocol.foreignItemMessage))) : Effect.succeed(stored)
    })

  // a conditional command that did not store answers with its reply: a
  // value here (the core's storageReply), any other rejection a failure
  const store = (operation: StoreOperation, command: () => Promise<unknown>) => send(operation, () => Protocol.storageReply(command()))

  const written = (operation: StoreOperation, command: () => Promise<unknown>) =>
    Effect.map(store(operation, command), (reply): Protocol.Reply => ({ _tag: "Written", reply }))

  // the exptime is taken at the time the command goes out
  const reply = (operation: StoreOperation, item: string, command: Protocol.Command): Effect.Effect<Protocol.Reply, SessionStoreError> => {
    switch (command._tag) {
      case "Gets":
        return Effect.flatMap(gets(operation, item), (stored) =>
          Effect.map(Clock.currentTimeMillis, (now): Protocol.Reply => ({ _tag: "Read", stored, now })))
      case "Add":
        return Effect.flatMap(Clock.currentTimeMillis, (now) => {
          const lifetime = Protocol.exptime(command.record.expiresAt, now)
          return written(operation, () => client.add(item, Protocol.encode(command.record), { lifetime }))
        })
      case "Cas":
        return Effect.flatMap(Clock.currentTimeMillis, (now) => {
          const options = { casUniq: command.casUniq, lifetime: Protocol.exptime(command.record.expiresAt, now) }
          return written(operation, () => client.cas(item, Protocol.encode(command.record), options))
        })
    }
  }

  // sends what the core's operation asks for until it ends; a conversation
  // is begun on every run, so that the effect can be run again (a retry)
  const converse = <A>(
    operation: StoreOperation,
    key: StorageKey,
    begin: () => Protocol.Operation<A>
  ): Effect.Effect<A, SessionConflict | SessionStoreError> =>
    Effect.gen(function*() {
      const item = yield* itemKey(operation, key)
      const conversation = begin()
      let step = conversation.next()
      while (!step.done) step = conversation.next(yield* reply(operation, item, step.value))
      const outcome = step.value
      switch (outcome._tag) {
        case "Done":
          return outcome.value
        case "Conflict":
          return yield* Effect.fail(new SessionConflict({ reason: outcome.reason }))
        case "Contention":
          return yield* Effect.fail(failure(operation, new Error(Protocol.contentionMessage)))
      }
    })

  return SessionStore.make(name, {
    load: (key) =>
      Effect.gen(function*() {
        const stored = yield* gets("load", yield* itemKey("load", key))
        const live = Protocol.liveRecord(stored?.record, yield* Clock.currentTimeMillis)
        return live === undefined ? Option.none() : Option.some(fromProtocol(live))
      }),
    insert: (key, write) =>
      converse("insert", key, () => Protocol.insertOperation({ ...toProtocol(write), version: 1 })),
    update: (key, write, expectedVersion) =>
      converse("update", key, () => Protocol.updateOperation(toProtocol(write), expectedVersion)),
    // (the core never makes a touch a conflict)
    touch: (key, expiresAt) =>
      Effect.catchTag(converse("touch", key, () => Protocol.touchOperation(expiresAt)), "SessionConflict", Effect.die),
    remove: (key) =>
      Effect.flatMap(itemKey("remove", key), (item) => Effect.asVoid(store("remove", () => client.delete(item))))
  })
})

// the layer's own client, with its timeouts set to commandTimeout
const connect = (options: Options | undefined): Effect.Effect<MemcacheClient, SessionStoreError, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.suspend(() => {
      const planned = Protocol.clientSettings(options, Duration.toMillis)
      if (planned._tag === "Left") return Effect.fail(failure("setup", new Error(planned.reason)))
      return Effect.try({ try: () => new MemcacheClient(planned.settings), catch: (cause) => failure("setup", cause) })
    }),
    (client) => Effect.sync(() => client.shutdown())
  )

/**
 * The store, alive for the layer's scope.
 *
 * @since 2.0.0
 * @category layers
 */
export const layer = (options?: Options): Layer.Layer<SessionStore.SessionStore, SessionStoreError> =>
  Layer.effect(SessionStore.SessionStore, make(options))

/**
 * The store with its options read from `Config`.
 *
 * ```ts
 * import { Config } from "effect"
 * import * as MemcachedStore from "effect-session/MemcachedStore"
 *
 * const StoreLive = MemcachedStore.layerConfig({
 *   servers: Config.withDefault(Config.string("MEMCACHED_URL"), "127.0.0.1:11211")
 * })
 * ```
 *
 * @since 2.0.0
 * @category layers
 */
export const layerConfig = (
  options: Config.Wrap<Options>
): Layer.Layer<SessionStore.SessionStore, SessionStoreError | Config.ConfigError> =>
  Layer.effect(SessionStore.SessionStore, Effect.flatMap(Config.unwrap(options), make))
