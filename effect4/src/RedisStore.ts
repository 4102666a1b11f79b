/**
 * A store on Redis or Redis Cluster, through `ioredis`: the Effect 4 glue
 * over the core's Redis protocol (`src/core/redis.ts`: key layout, the Lua
 * scripts, their calls and how each reply is read) and client handling
 * (`src/core/redisClient.ts`), so both lines store the same records.
 *
 * ```ts
 * import { Config, Redacted } from "effect"
 * import * as RedisStore from "effect-session/RedisStore"
 *
 * const StoreLive = RedisStore.layerConfig({
 *   url: Config.Redacted("REDIS_URL").pipe(Config.withDefault(Redacted.make("redis://127.0.0.1:6379"))),
 *   commandTimeout: Config.Duration("SESSION_REDIS_TIMEOUT").pipe(Config.withDefault("2 seconds"))
 * })
 * ```
 *
 * @since 2.0.0
 */
import { Cause, Clock, Config, Duration, Effect, Layer, Option, Redacted } from "effect"
import type { Cluster, RedisOptions } from "ioredis"
import { Redis } from "ioredis"
import * as EffectRedis from "effect/persistence/Redis"
import * as Protocol from "../../src/core/redis.js"
import * as RedisClient from "../../src/core/redisClient.js"
import * as Writes from "../../src/core/redisWrites.js"
import { storeAndIndex } from "./internal/layer.js"
import type { StoreOperation } from "./SessionError.js"
import { SessionConflict, SessionStoreError } from "./SessionError.js"
import type { StorageKey } from "./SessionId.js"
import * as SessionId from "./SessionId.js"
import * as SessionStore from "./SessionStore.js"

/**
 * Either a client to use (`client`, which the layer never closes) or the
 * options of one the layer creates and closes with its scope.
 *
 * @since 2.0.0
 * @category models
 */
export interface Options
  extends Omit<RedisOptions, "commandTimeout">, Protocol.StoreOptions<Duration.Input, Redis | Cluster>
{}

const name = "redis"

type Sent<A> = Effect.Effect<A, SessionStoreError>
type Conflicting<A> = Effect.Effect<A, SessionConflict | SessionStoreError>
type After<A> = (reply: unknown, cluster: boolean, principal: string | undefined) => Writes.WriteDecision<A>

/**
 * How the store reaches Redis: an ioredis client, or Effect's `Redis` service
 * (`effect/persistence/Redis`). Each operation is a core script call or one command.
 */
interface Transport {
  readonly cluster: boolean
  readonly script: (operation: StoreOperation, call: Protocol.ScriptCall) => Sent<unknown>
  /** Script calls sent together (the index checks), their replies in order. */
  readonly scripts: (operation: StoreOperation, calls: ReadonlyArray<Protocol.ScriptCall>) => Sent<ReadonlyArray<unknown>>
  readonly get: (key: string) => Sent<string | null>
  /** A record whose string cannot hold its bytes exactly, as bytes. */
  readonly getBytes: (key: string, asString: string) => Sent<Buffer | null>
  readonly command: (operation: StoreOperation, command: "DEL" | "ZREM", ...args: ReadonlyArray<string>) => Sent<unknown>
}

const failure = (operation: StoreOperation, cause: unknown) => new SessionStoreError({ store: name, operation, cause })

/** The ioredis transport: scripts with `defineCommand`, the timeout ioredis's own or Effect's. */
const ioredisTransport = Effect.fnUntraced(function*(options: Options | undefined) {
  const timeoutMillis = Math.max(1, Duration.toMillis(options?.commandTimeout ?? "2 seconds"))
  const owned = options?.client === undefined
  const { beforeSend, client, lastError } = options?.client === undefined
    ? yield* connect(options ?? {}, timeoutMillis)
    : { client: options.client, lastError: () => undefined, beforeSend: undefined }
  const cluster = client.isCluster
  const run = RedisClient.defineScripts(client)
  // one view of the commands both client classes share (their overloads'
  // union is not callable)
  const commands = client as Redis
  // the layer's own client gathers each busy turn's commands into one write
  const waiting = new Protocol.WaitingReplies(beforeSend)
  yield* Effect.addFinalizer(() => Effect.sync(() => waiting.close()))
  const explain = (cause: unknown) => {
    const kind = Protocol.rejectionKind(cause, client.status === "ready")
    if (kind === "timeout") return new Cause.TimeoutError(Protocol.didNotAnswer(timeoutMillis))
    return kind === "other" ? cause : Protocol.notConnectedError(cluster ? "cluster" : (client as Redis).options, lastError())
  }
  // the layer's own client has ioredis's commandTimeout; a client passed in
  // (whose options are the application's) gets the timeout here
  const send = <A>(operation: StoreOperation, request: () => Promise<A>): Sent<A> => {
    const sent = Effect.tryPromise({ try: () => waiting.track(request), catch: (cause) => failure(operation, explain(cause)) })
    return owned ? sent : Effect.timeoutOrElse(sent, {
      duration: timeoutMillis,
      orElse: () => Effect.fail(failure(operation, new Cause.TimeoutError(Protocol.didNotAnswer(timeoutMillis))))
    })
  }
  const transport: Transport = {
    cluster,
    script: (operation, call) => send(operation, () => run(call)),
    scripts: (operation, calls) => send(operation, () => Promise.all(calls.map(run))),
    get: (key) => send("load", () => commands.get(key)),
    getBytes: (key) => send("load", () => commands.getBuffer(key)),
    command: (operation, command, ...args) =>
      send(operation, () => command === "DEL" ? commands.del(...args) : commands.zrem(args[0]!, ...args.slice(1)))
  }
  return transport
})

// The layer's own client (see the core's open), watched for connection errors
// for its life and awaited briefly (in real time: the connection is I/O) at start-up.
const connect = Effect.fnUntraced(function*(options: Options, timeoutMillis: number) {
  const run = Effect.runForkWith(yield* Effect.context<never>())
  const opened = yield* Effect.acquireRelease(
    Effect.try({
      try: () => RedisClient.open(options, timeoutMillis, Redis, (level, ...message) => run(Effect.logWithLevel(level)(...message))),
      catch: (error) => failure("setup", error)
    }),
    (opened) => Effect.promise(opened.close)
  )
  yield* Effect.callback<void>((resume) =>
    Effect.sync(RedisClient.awaitReady(opened.client, timeoutMillis, (connected) =>
      resume(connected ? Effect.void : Effect.logWarning(RedisClient.notConnectedAfter(timeoutMillis)))))
  )
  return opened
})

/**
 * The transport over Effect's `Redis` service: scripts through its `eval`
 * (EVALSHA, loading the script on NOSCRIPT), everything as strings.
 */
const serviceTransport = (redis: EffectRedis.Redis["Service"], cluster: boolean): Transport => {
  const scripts = new Map(Protocol.sessionScripts().map((script) => [
    script.name,
    redis.eval(EffectRedis.script(
      (keys: ReadonlyArray<string>, args: ReadonlyArray<string | Buffer>) => [...keys, ...args.map(String)],
      { lua: script.lua, numberOfKeys: (keys) => keys.length }
    ).withReturnType<unknown>())
  ]))
  const mapError = <A>(operation: StoreOperation, effect: Effect.Effect<A, EffectRedis.RedisError>) =>
    Effect.mapError(effect, (error) => failure(operation, error.cause ?? error))
  const script = (operation: StoreOperation, call: Protocol.ScriptCall) =>
    mapError(operation, scripts.get(call.script.name)!(call.keys, call.args))
  return {
    cluster,
    script,
    scripts: (operation, calls) => Effect.forEach(calls, (call) => script(operation, call), { concurrency: "unbounded" }),
    get: (key) => mapError("load", redis.send<string | null>("GET", key)),
    // the service answers strings: the UTF-8 text this line writes is its own bytes
    getBytes: (_key, asString) => Effect.succeed(Buffer.from(asString, "utf8")),
    command: (operation, command, ...args) => mapError(operation, redis.send(command, ...args))
  }
}

/**
 * The store and its index over one ioredis client, for the scope.
 *
 * @since 2.0.0
 * @category constructors
 */
export const make = (options?: Options) => Effect.flatMap(ioredisTransport(options), (transport) => makeWith(transport, options?.prefix))

/**
 * The store and its index over Effect's `Redis` service (for example
 * `NodeRedis.layer` of `@effect/platform-node`): an app that provides one
 * already reuses its connections. `cluster` when the service talks to a
 * Redis Cluster (the principal index is then raised by a second script).
 *
 * @since 2.0.0
 * @category constructors
 */
export const makeFromService = Effect.fnUntraced(function*(options?: { readonly prefix?: string | undefined; readonly cluster?: boolean | undefined }) {
  return yield* makeWith(serviceTransport(yield* EffectRedis.Redis, options?.cluster ?? false), options?.prefix)
})

const makeWith = Effect.fnUntraced(function*(transport: Transport, prefixOption: string | undefined) {
  const prefix = prefixOption ?? Protocol.defaultPrefix
  const { cluster } = transport
  if (cluster && Protocol.hasHashTag(prefix)) return yield* Effect.fail(failure("setup", new Error(Protocol.hashTagMessage(prefix))))
  const malformed = (operation: StoreOperation, detail: string) => failure(operation, new Error(Protocol.unexpectedReply(detail)))
  const now = Clock.currentTimeMillis

  // a write's script call and the core's decision on its reply in one step
  // after the reply (the clock read synchronously: fewer runtime steps)
  const write = <A>(operation: "insert" | "update", key: StorageKey, w: SessionStore.SessionWrite, version: number | undefined, after: After<A>) =>
    Effect.clockWith((clock) => {
      const t = clock.currentTimeMillisUnsafe()
      const principal = Option.getOrUndefined(w.principal)
      const call = Protocol.writeCall(prefix, cluster, key, t, { expiresAt: w.expiresAt, data: w.text, principal }, version)
      return Effect.flatMap(transport.script(operation, call), (reply) => decide(operation, key, w.expiresAt, t, after(reply, cluster, principal)))
    })
  // acts on the core's decision after a write script answered; on a cluster
  // the principal's index lives in another slot: raised after the record
  const decide = <A>(operation: StoreOperation, key: StorageKey, expiresAt: number, t: number, decision: Writes.WriteDecision<A>): Conflicting<A> =>
    decision._tag === "Malformed"
      ? Effect.fail(malformed(operation, decision.detail))
      : decision._tag === "Conflict"
      ? Effect.fail(new SessionConflict({ reason: decision.reason }))
      : decision.raise === undefined
      ? Effect.succeed(decision.value)
      : Effect.as(transport.script(operation, Protocol.raiseCall(prefix, key, decision.raise, expiresAt, t)), decision.value)

  const readIndex = (operation: "keys" | "removeAll", principal: string, revoke: boolean) =>
    Effect.gen(function*() {
      const t = yield* now
      const listed = Protocol.readMembersReply(yield* transport.script(operation, Protocol.membersCall(prefix, principal, t)))
      if (listed === undefined) return yield* Effect.fail(malformed(operation, Protocol.notMembers))
      const plan = Protocol.planIndexRead({ prefix, principal, now: t, revoke, cluster, listed })
      const live: Array<boolean> = []
      for (const group of plan.groups) {
        const flags = plan.readReplies(group, yield* transport.scripts(operation, group))
        if (typeof flags === "string") return yield* Effect.fail(malformed(operation, flags))
        live.push(...flags)
      }
      const dropped = plan.dropped(live)
      if (dropped.length > 0) yield* transport.command(operation, "ZREM", Protocol.principalIndexKey(prefix, principal), ...dropped)
      return plan.members.filter((_, i) => live[i]).map(SessionId.storageKeyUnsafe)
    })

  const recordAt = (t: number, record: { readonly version: number; readonly expiresAt: number; readonly principal: string | undefined; readonly text: string }) =>
    Protocol.isLive(record.expiresAt, t)
      ? Option.some({ text: record.text, version: record.version, expiresAt: record.expiresAt, principal: Option.fromUndefinedOr(record.principal) })
      : Option.none()
  // the rare record whose string cannot hold its bytes exactly is read again as bytes
  const loadBytes = (key: StorageKey, t: number, asString: string) =>
    Effect.flatMap(transport.getBytes(Protocol.recordKey(prefix, key), asString), (value) => {
      if (value === null) return Effect.succeedNone
      const parsed = Protocol.parseRecordAsText(value)
      return parsed === undefined ? Effect.fail(malformed("load", Protocol.notARecord)) : Effect.succeed(recordAt(t, parsed))
    })

  const store = SessionStore.make(name, {
    load: (key) =>
      Effect.clockWith((clock) => {
        const t = clock.currentTimeMillisUnsafe()
        return Effect.flatMap(transport.get(Protocol.recordKey(prefix, key)), (value) => {
          if (value === null) return Effect.succeedNone
          const parsed = Protocol.parseRecordText(value)
          if (parsed === undefined) return Effect.fail(malformed("load", Protocol.notARecord))
          return parsed === "bytes" ? loadBytes(key, t, value) : Effect.succeed(recordAt(t, parsed))
        })
      }),
    insert: (key, w) => write("insert", key, w, undefined, Writes.afterInsert),
    update: (key, w, expectedVersion) => write("update", key, w, expectedVersion, Writes.afterUpdateScript),
    touch: (key, expiresAt) =>
      Effect.flatMap(now, (t) =>
        Effect.flatMap(transport.script("touch", Protocol.touchCall(prefix, key, t, expiresAt)), (reply) =>
          // (the core never makes a touch a conflict)
          Effect.catchTag(decide("touch", key, expiresAt, t, Writes.afterTouch(reply)), "SessionConflict", Effect.die))),
    remove: (key) => Effect.asVoid(transport.command("remove", "DEL", Protocol.recordKey(prefix, key)))
  })
  const index = SessionStore.makeIndex(name, {
    keys: (principal) => readIndex("keys", principal, false),
    // only the members read are removed: a concurrent login's session stays
    // listed, for a second revocation to find
    removeAll: (principal) => Effect.map(readIndex("removeAll", principal, true), (revoked) => revoked.length)
  })
  return { store, index }
})

/**
 * The store and its index, alive for the layer's scope.
 *
 * @since 2.0.0
 * @category layers
 */
export const layer = (options?: Options): Layer.Layer<SessionStore.SessionStore | SessionStore.SessionIndex, SessionStoreError> =>
  storeAndIndex(make(options))

/**
 * `layer` with its options but `client` read from `Config` (see the module's
 * example), the URL `Redacted` (without one, ioredis's default
 * `localhost:6379`). A value missing or invalid fails the layer with
 * `ConfigError`, a URL ioredis cannot use with `SessionStoreError`.
 *
 * @since 2.0.0
 * @category layers
 */
export const layerConfig = (
  options: Config.Wrap<Omit<Options, "client" | "url"> & { readonly url?: Redacted.Redacted<string> | undefined }>
): Layer.Layer<SessionStore.SessionStore | SessionStore.SessionIndex, SessionStoreError | Config.ConfigError> =>
  Layer.unwrap(Effect.map(Config.unwrap(options), ({ url, ...rest }) => layer(url === undefined ? rest : { ...rest, url: Redacted.value(url) })))

/**
 * The store and its index over the `Redis` service the app provides.
 *
 * @since 2.0.0
 * @category layers
 */
export const layerFromService = (
  options?: { readonly prefix?: string | undefined; readonly cluster?: boolean | undefined }
): Layer.Layer<SessionStore.SessionStore | SessionStore.SessionIndex, SessionStoreError, EffectRedis.Redis> =>
  storeAndIndex(makeFromService(options))
