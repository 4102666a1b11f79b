/**
 * A store on Redis or Redis Cluster, through `ioredis`.
 *
 * A session is one string value under `prefix + storageKey` holding its
 * version, expiry, principal and data, with a native TTL that only collects
 * garbage: expiry is decided against the application's `Clock`. A session
 * operation is one round trip (`load` one GET; `insert`, `update`, `touch`
 * one Lua script each, `remove` one DEL), plus one when the principal index
 * must follow: a touch that extends a session with a principal, and on a
 * cluster, where the index lives in another slot, a write that gives a
 * session a principal or a later expiry. On a cluster every script's keys
 * are in one slot. The principal index is a sorted set per principal,
 * scored by expiry and pruned by score as it is written; `keys` and
 * `removeAll` check each member's record.
 *
 * ```ts
 * import { Config } from "effect"
 * import * as RedisStore from "effect-session/RedisStore"
 *
 * const StoreLive = RedisStore.layerConfig({
 *   url: Config.string("REDIS_URL").pipe(Config.withDefault("redis://127.0.0.1:6379"))
 * })
 * ```
 *
 * See `docs/stores/redis.md`.
 *
 * @since 1.0.0
 */
import type { Clock, ConfigError, Scope } from "effect"
import { Cause, Config, Duration, Effect, Layer, Option, Runtime } from "effect"
import type { Cluster, RedisOptions } from "ioredis"
import { Redis } from "ioredis"
import * as Protocol from "./core/redis.js"
import * as RedisClient from "./core/redisClient.js"
import * as Writes from "./core/redisWrites.js"
import { storeAndIndex } from "./internal/layer.js"
import { notAString } from "./internal/principal.js"
import { TextRecord } from "./internal/text.js"
import type { StoreOperation } from "./SessionError.js"
import { SessionConflict, SessionStoreError } from "./SessionError.js"
import type { StorageKey } from "./SessionId.js"
import * as SessionId from "./SessionId.js"
import * as SessionStore from "./SessionStore.js"

/**
 * Either a client to use (`client`: a `Redis` or a `Cluster`, which the
 * layer never closes) or the options of one for the layer to create and to
 * close with its scope (`url` and/or any `ioredis` `RedisOptions`).
 *
 * @since 1.0.0
 * @category models
 */
export interface Options
  extends Omit<RedisOptions, "commandTimeout">, Protocol.StoreOptions<Duration.DurationInput, Redis | Cluster>
{}

const name = "redis"

type Conflict = SessionConflict | SessionStoreError

const failure = (operation: StoreOperation, cause: unknown) => new SessionStoreError({ store: name, operation, cause })

/**
 * @since 1.0.0
 * @category constructors
 */
export const make = Effect.fnUntraced(function*(options?: Options): Effect.fn.Return<
  { readonly store: SessionStore.SessionStore["Type"]; readonly index: SessionStore.SessionIndex["Type"] },
  SessionStoreError,
  Scope.Scope
> {
  const prefix = options?.prefix ?? Protocol.defaultPrefix
  const timeoutMillis = Math.max(1, Duration.toMillis(Duration.decode(options?.commandTimeout ?? "2 seconds")))
  const passedIn = options?.client
  const { beforeSend, client, lastError } = passedIn === undefined
    ? yield* connect(options ?? {}, timeoutMillis)
    : { client: passedIn, lastError: () => undefined, beforeSend: undefined }
  const cluster = client.isCluster
  if (cluster && Protocol.hasHashTag(prefix)) {
    return yield* failure("setup", new Error(Protocol.hashTagMessage(prefix)))
  }

  const run = RedisClient.defineScripts(client)
  // Both client classes share these command signatures; the union of their
  // overloads is not callable in TypeScript, so commands go through one view.
  const commands = client as Redis
  // the layer's own client gathers each busy turn's commands into one write
  const waiting = new Protocol.WaitingReplies(beforeSend)
  yield* Effect.addFinalizer(() => Effect.sync(() => waiting.close()))
  const timedOut = () => new Cause.TimeoutException(Protocol.didNotAnswer(timeoutMillis))
  // ioredis's timeout as a TimeoutException; a command refused while
  // disconnected as the address and the connection's last error code
  const explain = (cause: unknown) => {
    const kind = Protocol.rejectionKind(cause, client.status === "ready")
    if (kind === "other") return cause
    return kind === "timeout" ? timedOut() : Protocol.notConnectedError(cluster ? "cluster" : commands.options, lastError())
  }
  // The layer's own client has ioredis's `commandTimeout`; a client passed
  // in (whose options are the application's) gets the timeout here. `then`
  // turns the reply into the result as the fiber resumes (one runtime step,
  // where a `flatMap` after the call takes two); a throw in it is a defect.
  const callThen = <A, B, E>(
    operation: StoreOperation,
    send: () => Promise<A>,
    then: (reply: A) => Effect.Effect<B, E>
  ): Effect.Effect<B, E | SessionStoreError> => {
    const sent = Effect.async<B, E | SessionStoreError>((resume) =>
      waiting.watch(send, (reply) => {
        let result: Effect.Effect<B, E>
        try {
          result = then(reply)
        } catch (defect) {
          result = Effect.die(defect)
        }
        resume(result)
      }, (cause) => resume(Effect.fail(failure(operation, explain(cause)))))
    )
    return passedIn === undefined
      ? sent
      : Effect.timeoutFail(sent, { duration: timeoutMillis, onTimeout: () => failure(operation, timedOut()) })
  }
  const call = <A>(operation: StoreOperation, send: () => Promise<A>): Effect.Effect<A, SessionStoreError> =>
    callThen(operation, send, Effect.succeed)
  const malformed = (operation: StoreOperation, detail: string) =>
    failure(operation, new Error(Protocol.unexpectedReply(detail)))

  // ioredis spreads an array argument into several, which would shift a script's arguments:
  // a principal that is not a string is refused first. The core's decision on the reply is
  // acted on in the same step as the call's result.
  const write = <A>(
    operation: "insert" | "update",
    key: StorageKey,
    w: SessionStore.SessionWrite,
    version: number | undefined,
    after: (reply: unknown, cluster: boolean, principal: string | undefined) => Writes.WriteDecision<A>
  ) =>
    Effect.clockWith((clock) => {
      if (Option.isSome(w.principal) && typeof w.principal.value !== "string") {
        return Effect.fail(notAString(name, operation, w.principal.value))
      }
      const t = clock.unsafeCurrentTimeMillis()
      const principal = Option.getOrUndefined(w.principal)
      const data = w.text ?? Protocol.dataArgument(w.data)
      const script = Protocol.writeCall(prefix, cluster, key, t, { expiresAt: w.expiresAt, data, principal }, version)
      return callThen(operation, () => run(script), (reply): Effect.Effect<A, Conflict> => {
        const decision = after(reply, cluster, principal)
        if (decision._tag !== "Conflict") return settle(operation, key, w.expiresAt, t, decision)
        return Effect.fail(new SessionConflict({ reason: decision.reason }))
      })
    })

  // A write's decision that is not a conflict: a malformed reply fails, and
  // a principal to raise is raised (see raise) before the value is returned.
  const settle = <A>(
    operation: StoreOperation,
    key: StorageKey,
    expiresAt: number,
    t: number,
    decision: Writes.Settled<A>
  ): Effect.Effect<A, SessionStoreError> => {
    if (decision._tag === "Malformed") return Effect.fail(malformed(operation, decision.detail))
    if (decision.raise === undefined) return Effect.succeed(decision.value)
    return Effect.as(raise(operation, key, decision.raise, expiresAt, t), decision.value)
  }

  // On a cluster the principal's index usually lives in another slot: it is
  // raised by a second script after the record. If that fails the operation
  // fails: the request gets an error and no cookie, so an unlisted new record
  // is never used and expires. Raising the index first instead would let a
  // concurrent read see a member without its record yet and drop it.
  const raise = (operation: StoreOperation, key: StorageKey, principal: string, expiresAt: number, t: number) =>
    Effect.asVoid(call(operation, () => run(Protocol.raiseCall(prefix, key, principal, expiresAt, t))))

  // The live members of a principal's index; with `revoke`, their records
  // deleted (see planIndexRead). The checks are sent together, a bounded
  // number at a time, from one promise: no fiber per script.
  const readIndex = (operation: "keys" | "removeAll", principal: string, revoke: boolean) =>
    Effect.gen(function*() {
      if (typeof principal !== "string") return yield* notAString(name, operation, principal)
      const now = yield* Effect.clockWith((clock) => clock.currentTimeMillis)
      const listed = Protocol.readMembersReply(yield* call(operation, () => run(Protocol.membersCall(prefix, principal, now))))
      if (listed === undefined) return yield* malformed(operation, Protocol.notMembers)
      const plan = Protocol.planIndexRead({ prefix, principal, now, revoke, cluster, listed })
      const live: Array<boolean> = []
      for (const group of plan.groups) {
        const replies = yield* call(operation, () => Promise.all(group.map(run)))
        const flags = plan.readReplies(group, replies)
        if (typeof flags === "string") return yield* malformed(operation, flags)
        live.push(...flags)
      }
      const dropped = plan.dropped(live)
      const set = Protocol.principalIndexKey(prefix, principal)
      if (dropped.length > 0) yield* call(operation, () => commands.zrem(set, ...dropped))
      return plan.members.filter((_, i) => live[i]).map(SessionId.unsafeStorageKey)
    })

  // A record read at the application's "now": none once it has expired.
  const live = <R extends SessionStore.SessionRecord>(clock: Clock.Clock, record: R) =>
    Effect.succeed(
      Protocol.isLive(record.expiresAt, clock.unsafeCurrentTimeMillis()) ? Option.some(record) : Option.none()
    )

  // The rare record whose string cannot hold its bytes exactly (see
  // parseRecordText) is read again as bytes.
  const loadBytes = (clock: Clock.Clock, key: StorageKey) =>
    callThen("load", () => commands.getBuffer(Protocol.recordKey(prefix, key)), (value) => {
      if (value === null) return Effect.succeedNone
      const parsed = Protocol.parseRecord(value)
      if (parsed === undefined) return Effect.fail(malformed("load", Protocol.notARecord))
      const { data, expiresAt, principal, version } = parsed
      return live(clock, { data, version, expiresAt, principal: Option.fromNullable(principal) })
    })

  const store = SessionStore.make(name, {
    // one GET, read as a string (no Buffer per read), handed over as text
    load: (key) =>
      Effect.clockWith((clock) =>
        callThen(
          "load",
          () => commands.get(Protocol.recordKey(prefix, key)),
          (value): Effect.Effect<Option.Option<SessionStore.SessionRecord>, SessionStoreError> => {
            if (value === null) return Effect.succeedNone
            const parsed = Protocol.parseRecordText(value)
            if (parsed === undefined) return Effect.fail(malformed("load", Protocol.notARecord))
            if (parsed === "bytes") return loadBytes(clock, key)
            const { expiresAt, principal, text, version } = parsed
            return live(clock, new TextRecord(text, version, expiresAt, Option.fromNullable(principal)))
          }
        )
      ),
    insert: (key, w) => write("insert", key, w, undefined, Writes.afterInsert),
    update: (key, w, expectedVersion) => write("update", key, w, expectedVersion, Writes.afterUpdateScript),
    // A touch that extends a session with a principal raises the session in
    // that principal's index: a second script, since the index's key is only
    // known once the record is read.
    touch: (key, expiresAt) =>
      Effect.clockWith((clock) => {
        const t = clock.unsafeCurrentTimeMillis()
        return callThen(
          "touch",
          () => run(Protocol.touchCall(prefix, key, t, expiresAt)),
          (reply) => settle("touch", key, expiresAt, t, Writes.afterTouch(reply))
        )
      }),
    remove: (key) => Effect.asVoid(call("remove", () => commands.del(Protocol.recordKey(prefix, key))))
  }, { readsText: true })

  const index = SessionStore.makeIndex(name, {
    keys: (principal) => readIndex("keys", principal, false),
    // Only the members read are removed from the index: a session added by
    // a concurrent login stays listed, so a second revocation finds it.
    removeAll: (principal) => Effect.map(readIndex("removeAll", principal, true), (revoked) => revoked.length)
  })
  return { store, index }
})

// the core's log levels, as Effect 3 names them
const logAt = { Warn: Effect.logWarning, Debug: Effect.logDebug, Info: Effect.logInfo }

// The layer's own client (see the core's open: a URL it cannot use fails
// here), watched for connection errors for its life and awaited briefly (in
// real time: the connection is I/O) at start-up.
const connect = Effect.fnUntraced(function*(options: Options, timeoutMillis: number) {
  const runFork = Runtime.runFork(yield* Effect.runtime<never>())
  const opened = yield* Effect.acquireRelease(
    Effect.try({
      try: () => RedisClient.open(options, timeoutMillis, Redis, (level, ...message) => runFork(logAt[level](...message))),
      catch: (error) => failure("setup", error)
    }),
    (opened) => Effect.promise(opened.close)
  )
  yield* Effect.async<void>((resume) =>
    Effect.sync(RedisClient.awaitReady(opened.client, timeoutMillis, (connected) =>
      resume(connected ? Effect.void : Effect.logWarning(RedisClient.notConnectedAfter(timeoutMillis)))))
  )
  return opened
})

/**
 * The store and its index, alive for the layer's scope.
 *
 * @since 1.0.0
 * @category layers
 */
export const layer = (
  options?: Options
): Layer.Layer<SessionStore.SessionStore | SessionStore.SessionIndex, SessionStoreError> => storeAndIndex(make(options))

/**
 * The layer with its options read from `Config` (see the module's example).
 *
 * @since 1.0.0
 * @category layers
 */
export const layerConfig = (
  options: Config.Config.Wrap<Options>
): Layer.Layer<
  SessionStore.SessionStore | SessionStore.SessionIndex,
  ConfigError.ConfigError | SessionStoreError
> => Layer.unwrapEffect(Effect.map(Config.unwrap(options), layer))
