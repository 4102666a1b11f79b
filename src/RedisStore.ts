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
import { Deadlines } from "./internal/deadlines.js"
import { storeAndIndex } from "./internal/layer.js"
import { notAString } from "./internal/principal.js"
import * as Scripts from "./internal/redisScripts.js"
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
export interface Options extends Omit<RedisOptions, "commandTimeout"> {
  /**
   * A client owned by the caller. When given, `url` and the connection
   * options are ignored, and the client is not closed by the layer.
   */
  readonly client?: Redis | Cluster | undefined
  /** A `redis://` or `rediss://` URL; the other options refine it. */
  readonly url?: string | undefined
  /** Prepended to every key. Default `"session:"`. Must not contain a hash tag on a cluster. */
  readonly prefix?: string | undefined
  /**
   * How long a command may take before the operation fails with
   * `SessionStoreError`, whatever state the connection is in. Default 2 seconds.
   */
  readonly commandTimeout?: Duration.DurationInput | undefined
}

const name = "redis"

// How many records one script checks when a principal's index is read on a
// single node (a script blocks the server while it runs), and how many
// scripts are sent in one round trip.
const checkBatch = 500
const inFlight = 1000

const storageKeyPattern = /^[A-Za-z0-9_-]{43}$/

/**
 * @since 1.0.0
 * @category constructors
 */
export const make = Effect.fnUntraced(function*(options?: Options): Effect.fn.Return<
  { readonly store: SessionStore.SessionStore["Type"]; readonly index: SessionStore.SessionIndex["Type"] },
  SessionStoreError,
  Scope.Scope
> {
  const prefix = options?.prefix ?? "session:"
  const timeoutMillis = Math.max(1, Duration.toMillis(Duration.decode(options?.commandTimeout ?? "2 seconds")))
  const client: Redis | Cluster = options?.client ?? (yield* acquireClient(options ?? {}, timeoutMillis))
  const cluster = client.isCluster

  if (cluster && hasHashTag(prefix)) {
    return yield* new SessionStoreError({
      store: name,
      operation: "setup",
      cause: new Error(
        `prefix ${JSON.stringify(prefix)} contains a hash tag: every session would live in one cluster slot`
      )
    })
  }

  const recordKey = (key: string) => prefix + key
  const indexKey = (principal: string) => `${prefix}principal:${principal}`

  // Every command gets the deadline here, the layer's own client's and one
  // passed in (which may queue commands while disconnected) alike: one
  // timer for all commands in flight (`Deadlines`) instead of one per
  // command. Commands still waiting when the layer closes fail then.
  const deadlines = new Deadlines(timeoutMillis)
  yield* Effect.addFinalizer(() => Effect.sync(() => deadlines.close()))
  // `then` turns the reply into the operation's result as the fiber resumes
  // (one runtime step where a `flatMap` after the call takes two).
  const callThen = <A, B, E>(
    operation: StoreOperation,
    send: () => Promise<A>,
    then: (reply: A) => Effect.Effect<B, E>
  ): Effect.Effect<B, E | SessionStoreError> =>
    Effect.async<B, E | SessionStoreError>((resume) => {
      const pending = deadlines.start((closed) =>
        resume(Effect.fail(
          new SessionStoreError({
            store: name,
            operation,
            cause: closed
              ? new Error("the store's layer was closed before Redis answered")
              : new Cause.TimeoutException(`Redis did not answer within ${timeoutMillis} ms`)
          })
        ))
      )
      const failed = (cause: unknown) => {
        if (deadlines.end(pending)) resume(Effect.fail(new SessionStoreError({ store: name, operation, cause })))
      }
      let promise: Promise<A>
      try {
        promise = send()
      } catch (cause) {
        return failed(cause)
      }
      promise.then((reply) => {
        if (!deadlines.end(pending)) return
        let result: Effect.Effect<B, E>
        try {
          result = then(reply)
        } catch (defect) {
          // never thrown into the promise (an unhandled rejection): the
          // fiber dies with it, as a throw inside `flatMap` would make it
          result = Effect.die(defect)
        }
        resume(result)
      }, failed)
    })
  const call = <A>(operation: StoreOperation, send: () => Promise<A>): Effect.Effect<A, SessionStoreError> =>
    callThen(operation, send, Effect.succeed)

  // Both client classes share these command signatures; the union of their
  // overloads is not callable in TypeScript, so commands go through one view.
  const commands = client as Redis

  const sendScript = (script: Scripts.RedisScript, keys: ReadonlyArray<string>, args: ReadonlyArray<string | Buffer>) =>
  () =>
    commands.evalsha(script.sha, keys.length, ...keys, ...args).catch((error: unknown) =>
      isNoScript(error) ? commands.eval(script.lua, keys.length, ...keys, ...args) : Promise.reject(error)
    )

  const runScript = (
    operation: StoreOperation,
    script: Scripts.RedisScript,
    keys: ReadonlyArray<string>,
    args: ReadonlyArray<string | Buffer>
  ): Effect.Effect<unknown, SessionStoreError> => call(operation, sendScript(script, keys, args))

  const now = Effect.clockWith((clock) => clock.currentTimeMillis)

  // ioredis spreads an array argument into several, which would shift a
  // script's arguments: a principal that is not a string is refused first
  const wrongPrincipal = (operation: StoreOperation, principal: Option.Option<unknown>) =>
    Option.isSome(principal) && typeof principal.value !== "string"
      ? notAString(name, operation, principal.value)
      : undefined

  const malformed = (operation: StoreOperation, detail: string) =>
    new SessionStoreError({ store: name, operation, cause: new Error(`unexpected reply from Redis: ${detail}`) })

  // The integers the writing scripts return, or undefined.
  const integers = (reply: unknown, length: number): ReadonlyArray<number> | undefined =>
    Array.isArray(reply) && reply.length === length && reply.every((n) => typeof n === "number")
      ? reply as Array<number>
      : undefined

  const writeArgs = (
    key: StorageKey,
    write: SessionStore.SessionWrite,
    t: number,
    expectedVersion?: number
  ): Array<string | Buffer> => {
    const meta = `${t} ${write.expiresAt} ${Math.ceil(write.expiresAt - t)}`
    const args: Array<string | Buffer> = [
      expectedVersion === undefined ? meta : `${meta} ${expectedVersion}`,
      write.text ?? dataArgument(write.data)
    ]
    if (Option.isSome(write.principal)) args.push(write.principal.value, key)
    return args
  }

  // On a single node the principal's index is updated by the writing script
  // itself. On a cluster the index usually lives on another slot and is
  // raised by a second script after the record: after an insert with a
  // principal, and after an update that gives the record a principal or a
  // later expiry. If that second write fails the operation fails: the
  // request that made the session gets an error and no cookie, so an
  // unlisted new record is never used and expires. Raising the index first
  // instead would let a concurrent read see a member without its record yet
  // and drop it.
  const writeKeys = (key: StorageKey, principal: Option.Option<string>): ReadonlyArray<string> =>
    Option.isSome(principal) && !cluster ? [recordKey(key), indexKey(principal.value)] : [recordKey(key)]

  const raise = (operation: StoreOperation, key: StorageKey, principal: string, expiresAt: number, t: number) =>
    Effect.asVoid(runScript(operation, Scripts.raise, [indexKey(principal)], [key, String(expiresAt), String(t)]))

  // The members of a principal's index (those not yet expired by score) and
  // whether each one's record is live and still the principal's; with
  // `revoke`, the records that are the principal's are deleted. On a single
  // node one script per batch of members checks the records and, in the same
  // step, drops the dead members from the index (or, with `revoke`, every
  // member it read). On a cluster, where records live on every slot, each
  // record is checked by its own script, all sent together, and the index is
  // then trimmed with one ZREM.
  const prefixBytes = String(Buffer.byteLength(prefix))
  const readIndex = (operation: StoreOperation, principal: string, revoke: boolean) =>
    Effect.gen(function*() {
      if (typeof principal !== "string") return yield* notAString(name, operation, principal)
      const set = indexKey(principal)
      const t = yield* now
      const listed = yield* Effect.flatMap(
        runScript(operation, Scripts.members, [set], [String(t)]),
        (reply) =>
          Array.isArray(reply) && reply.every((member) => typeof member === "string")
            ? Effect.succeed(reply as Array<string>)
            : Effect.fail(malformed(operation, "the members of a principal's index"))
      )
      // anything but a storage key was not written by this store: dropped
      const members = listed.filter((member) => storageKeyPattern.test(member))
      const junk = listed.filter((member) => !storageKeyPattern.test(member))
      const mode = revoke ? "r" : "k"
      // one script per record on a cluster; per batch of records, the
      // index first, on a single node
      const checks: Array<{ readonly keys: ReadonlyArray<string>; readonly args: ReadonlyArray<string> }> = []
      if (cluster) {
        for (const member of members) checks.push({ keys: [recordKey(member)], args: [principal, String(t), mode] })
      } else {
        for (let i = 0; i < members.length; i += checkBatch) {
          const batch = members.slice(i, i + checkBatch).map(recordKey)
          checks.push({ keys: [set, ...batch], args: [principal, String(t), mode, prefixBytes] })
        }
      }
      // sent together, `inFlight` at a time, from one promise: no fiber per
      // script (forking fibers costs scheduler turns, measurably so here)
      const live: Array<boolean> = []
      for (let i = 0; i < checks.length; i += inFlight) {
        const group = checks.slice(i, i + inFlight)
        const replies = yield* call(
          operation,
          () => Promise.all(group.map((check) => sendScript(Scripts.check, check.keys, check.args)()))
        )
        for (const [j, reply] of replies.entries()) {
          const flags = integers(reply, cluster ? 1 : group[j]!.keys.length - 1)
          if (flags === undefined) return yield* malformed(operation, JSON.stringify(reply))
          for (const flag of flags) live.push(flag === 1)
        }
      }
      // on a single node the scripts trimmed the index themselves
      const dropped = cluster ? [...junk, ...members.filter((_, i) => revoke || !live[i])] : junk
      if (dropped.length > 0) yield* call(operation, () => commands.zrem(set, ...dropped))
      return members.filter((_, i) => live[i]).map(SessionId.unsafeStorageKey)
    })

  // A record read at the application's "now": none once it has expired.
  const live = (
    clock: Clock.Clock,
    record: SessionStore.SessionRecord
  ): Effect.Effect<Option.Option<SessionStore.SessionRecord>> =>
    Effect.succeed(record.expiresAt > clock.unsafeCurrentTimeMillis() ? Option.some(record) : Option.none())

  const loadBytes = (
    clock: Clock.Clock,
    key: StorageKey
  ): Effect.Effect<Option.Option<SessionStore.SessionRecord>, SessionStoreError> =>
    callThen(
      "load",
      () => commands.getBuffer(recordKey(key)),
      (value): Effect.Effect<Option.Option<SessionStore.SessionRecord>, SessionStoreError> => {
        if (value === null) return Effect.succeedNone
        const parsed = Scripts.parseRecord(value)
        if (parsed === undefined) return Effect.fail(malformed("load", "a value that is not a session record"))
        return live(clock, {
          data: parsed.data,
          version: parsed.version,
          expiresAt: parsed.expiresAt,
          principal: Option.fromNullable(parsed.principal)
        })
      }
    )

  const store = SessionStore.make(name, {
    // no generator on the hot path of every read: one command, one clock
    // read. The value is read as a string (no Buffer per read) and handed
    // over as text; in the rare case the string cannot hold the stored bytes
    // exactly (see parseRecordText), they are read again as bytes.
    load: (key) =>
      Effect.clockWith((clock) =>
        callThen(
          "load",
          () => commands.get(recordKey(key)),
          (value): Effect.Effect<Option.Option<SessionStore.SessionRecord>, SessionStoreError> => {
            if (value === null) return Effect.succeedNone
            const parsed = Scripts.parseRecordText(value)
            if (parsed === undefined) return Effect.fail(malformed("load", "a value that is not a session record"))
            if (parsed === "bytes") return loadBytes(clock, key)
            return live(
              clock,
              new TextRecord(parsed.text, parsed.version, parsed.expiresAt, Option.fromNullable(parsed.principal))
            )
          }
        )
      ),

    // the writes without generators either: they run on every save
    insert: (key, write) =>
      Effect.clockWith((clock) => {
        const wrong = wrongPrincipal("insert", write.principal)
        if (wrong !== undefined) return Effect.fail(wrong)
        const t = clock.unsafeCurrentTimeMillis()
        return callThen(
          "insert",
          sendScript(Scripts.insert, writeKeys(key, write.principal), writeArgs(key, write, t)),
          (reply): Effect.Effect<void, SessionConflict | SessionStoreError> => {
            if (reply === 0) return Effect.fail(new SessionConflict({ reason: "Exists" }))
            if (reply !== 1) return Effect.fail(malformed("insert", JSON.stringify(reply)))
            return cluster && Option.isSome(write.principal)
              ? raise("insert", key, write.principal.value, write.expiresAt, t)
              : Effect.void
          }
        )
      }),

    update: (key, write, expectedVersion) =>
      Effect.clockWith((clock) => {
        const wrong = wrongPrincipal("update", write.principal)
        if (wrong !== undefined) return Effect.fail(wrong)
        const t = clock.unsafeCurrentTimeMillis()
        return callThen(
          "update",
          sendScript(Scripts.update, writeKeys(key, write.principal), writeArgs(key, write, t, expectedVersion)),
          (reply): Effect.Effect<number, SessionConflict | SessionStoreError> => {
            const replies = integers(reply, 2)
            if (replies === undefined) return Effect.fail(malformed("update", JSON.stringify(reply)))
            const [version, indexed] = replies
            if (version === -1) return Effect.fail(new SessionConflict({ reason: "Missing" }))
            if (version === -2) return Effect.fail(new SessionConflict({ reason: "VersionMismatch" }))
            return cluster && indexed === 1 && Option.isSome(write.principal)
              ? Effect.as(raise("update", key, write.principal.value, write.expiresAt, t), version)
              : Effect.succeed(version)
          }
        )
      }),

    // A touch that extends a session with a principal raises the session in
    // that principal's index: a second script, since the index's key is only
    // known once the record is read.
    touch: (key, expiresAt) =>
      Effect.clockWith((clock) => {
        const t = clock.unsafeCurrentTimeMillis()
        return callThen(
          "touch",
          sendScript(Scripts.touch, [recordKey(key)], [String(t), String(expiresAt), String(Math.ceil(expiresAt - t))]),
          (reply): Effect.Effect<boolean, SessionStoreError> => {
            if (reply === 0 || reply === 1) return Effect.succeed(reply === 1)
            if (Array.isArray(reply) && reply.length === 2 && reply[0] === 1 && typeof reply[1] === "string") {
              return Effect.as(raise("touch", key, reply[1], expiresAt, t), true)
            }
            return Effect.fail(malformed("touch", JSON.stringify(reply)))
          }
        )
      }),

    remove: (key) => Effect.asVoid(call("remove", () => commands.del(recordKey(key))))
  }, { readsText: true })

  const index = SessionStore.makeIndex(name, {
    keys: (principal) => readIndex("keys", principal, false),
    // Only the members read are removed from the index: a session added by
    // a concurrent login stays listed, so a second revocation finds it.
    removeAll: (principal) => Effect.map(readIndex("removeAll", principal, true), (revoked) => revoked.length)
  })

  return { store, index }
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
 * The layer with its options read from `Config`:
 *
 * ```ts
 * RedisStore.layerConfig({
 *   url: Config.string("REDIS_URL").pipe(Config.withDefault("redis://127.0.0.1:6379")),
 *   prefix: Config.succeed("myapp:session:")
 * })
 * ```
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

// The layer's own client fails fast while disconnected instead of queueing
// (a queued command could run long after its request gave up), and the
// store waits briefly for the first connection so the first requests after
// start-up do not fail needlessly.
const acquireClient = (options: Options, timeoutMillis: number): Effect.Effect<Redis, never, Scope.Scope> => {
  const { client: _client, commandTimeout: _timeout, prefix: _prefix, url, ...redisOptions } = options
  const clientOptions: RedisOptions = { enableOfflineQueue: false, ...redisOptions }
  return Effect.acquireRelease(
    Effect.sync(() => url === undefined ? new Redis(clientOptions) : new Redis(url, clientOptions)),
    (redis) => close(redis, timeoutMillis)
  ).pipe(
    Effect.tap(logConnectionEvents),
    Effect.tap((redis) => awaitReady(redis, timeoutMillis))
  )
}

// A clean QUIT, but never longer than the command timeout: a server that
// stopped answering would otherwise hold the layer's release forever.
const close = (redis: Redis, timeoutMillis: number): Effect.Effect<void> =>
  Effect.async<void>((resume) => {
    let done = false
    const finish = (quitted: boolean) => {
      if (done) return
      done = true
      clearTimeout(timer)
      if (!quitted) redis.disconnect()
      resume(Effect.void)
    }
    const timer = setTimeout(() => finish(false), timeoutMillis)
    redis.quit().then(() => finish(true), () => finish(false))
  })

// ioredis reports connection failures as "error" events (and prints them
// when nobody listens). Operations already fail with SessionStoreError; the
// log says once that the connection is lost and once that it is back.
const logConnectionEvents = (redis: Redis): Effect.Effect<void, never, Scope.Scope> =>
  Effect.gen(function*() {
    const runFork = Runtime.runFork(yield* Effect.runtime<never>())
    let connected = true
    const onError = (error: Error) => {
      if (connected) {
        connected = false
        runFork(Effect.logWarning(`${name} store: connection lost; reconnecting`, error))
      } else {
        runFork(Effect.logDebug(`${name} store: reconnect failed`, error))
      }
    }
    const onReady = () => {
      if (!connected) runFork(Effect.logInfo(`${name} store: connection restored`))
      connected = true
    }
    redis.on("error", onError)
    redis.on("ready", onReady)
    yield* Effect.addFinalizer(() =>
      Effect.sync(() => {
        redis.off("error", onError)
        redis.off("ready", onReady)
      })
    )
  })

const awaitReady = (redis: Redis, timeoutMillis: number): Effect.Effect<void> =>
  Effect.async<void>((resume) => {
    if (redis.status === "ready") return resume(Effect.void)
    // with `lazyConnect` the layer connects when it is built; a failure is
    // reported through the "error" event, which is logged
    if (redis.status === "wait") redis.connect().catch(() => undefined)
    const done = (ready: boolean) => {
      clearTimeout(timer)
      redis.off("ready", onReady)
      resume(
        ready ? Effect.void : Effect.logWarning(
          `${name} store: not connected after ${timeoutMillis} ms; operations fail until the connection is up`
        )
      )
    }
    const onReady = () => done(true)
    const timer = setTimeout(() => done(false), timeoutMillis)
    redis.once("ready", onReady)
    return Effect.sync(() => {
      clearTimeout(timer)
      redis.off("ready", onReady)
    })
  })

// Text (what the JSON codec writes) goes as a string: ioredis sends a command
// holding any Buffer argument down a slower buffer path, measurably so on
// every write (docs/performance.md). A string's UTF-8 bytes are exactly the
// original bytes, so Redis stores the same thing; anything that is not valid
// UTF-8 goes as a Buffer.
const utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true })
const dataArgument = (data: Uint8Array): string | Buffer => {
  try {
    return utf8.decode(data)
  } catch {
    return Buffer.from(data.buffer, data.byteOffset, data.byteLength)
  }
}

const isNoScript = (error: unknown): boolean => error instanceof Error && error.message.startsWith("NOSCRIPT")

// Redis Cluster hashes only the part of a key between the first `{` and the
// next `}` when it is not empty; storage keys never contain braces, so the
// prefix alone decides.
const hasHashTag = (prefix: string): boolean => {
  const open = prefix.indexOf("{")
  if (open === -1) return false
  const close = prefix.indexOf("}", open + 1)
  return close > open + 1
}
