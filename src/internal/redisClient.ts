/**
 * RedisStore's client handling: the client the layer creates (its defaults,
 * its connection events, the wait for its first connection), the scripts
 * defined on a client, and what a rejected command is reported as. The
 * protocol itself is `src/core/redis.ts`.
 *
 * @internal
 */
import type { Scope } from "effect"
import { Cause, Effect, Runtime } from "effect"
import type { Cluster, RedisOptions } from "ioredis"
import { Redis } from "ioredis"
import * as Protocol from "../core/redis.js"

const name = "redis"

// The last connection error of each client a layer made (its "error"
// events), so that a command refused while disconnected says why.
const connectionErrors = new WeakMap<Redis | Cluster, Error>()

/**
 * Defines the store's scripts on a client (ioredis sends EVALSHA, and EVAL
 * where the connection has not run the script yet or the server answers
 * NOSCRIPT) and gives the function that sends one script call.
 *
 * @internal
 */
export const defineScripts = (client: Redis | Cluster): (call: Protocol.ScriptCall) => () => Promise<unknown> => {
  for (const { lua, name: command, numberOfKeys } of Protocol.sessionScripts()) {
    client.defineCommand(command, numberOfKeys === undefined ? { lua } : { lua, numberOfKeys })
  }
  const scripts = client as unknown as Record<string, (...args: ReadonlyArray<unknown>) => Promise<unknown>>
  return ({ args, keys, script }) => () =>
    script.numberOfKeys === undefined
      ? scripts[script.name]!(keys.length, ...keys, ...args)
      : scripts[script.name]!(...keys, ...args)
}

/** @internal */
export const timedOut = (timeoutMillis: number): Cause.TimeoutException =>
  new Cause.TimeoutException(Protocol.didNotAnswer(timeoutMillis))

/**
 * A command's rejection as the operation's cause: ioredis's timeout as a
 * TimeoutException; a command ioredis refused while disconnected as the
 * address and the connection's last error code; anything else as it is.
 *
 * @internal
 */
export const explain = (client: Redis | Cluster, cause: unknown, timeoutMillis: number): unknown => {
  const kind = Protocol.rejectionKind(cause, client.status === "ready")
  if (kind === "other") return cause
  if (kind === "timeout") return timedOut(timeoutMillis)
  return Protocol.notConnectedError(client.isCluster ? "cluster" : (client as Redis).options, connectionErrors.get(client))
}

/**
 * The layer's own client fails fast while disconnected instead of queueing
 * (a queued command could run long after its request gave up), gives up on
 * a command after the timeout (its QUIT at close included: a hung server
 * cannot hold the layer's release), and is awaited briefly at start-up so
 * that the first requests do not fail needlessly.
 *
 * @internal
 */
export const acquire = (
  url: string | undefined,
  redisOptions: RedisOptions,
  timeoutMillis: number
): Effect.Effect<Redis, never, Scope.Scope> => {
  const clientOptions: RedisOptions = { enableOfflineQueue: false, ...redisOptions, commandTimeout: timeoutMillis }
  return Effect.acquireRelease(
    Effect.sync(() => url === undefined ? new Redis(clientOptions) : new Redis(url, clientOptions)),
    (redis) => Effect.promise(() => redis.quit().then(() => undefined, () => redis.disconnect()))
  ).pipe(
    Effect.tap(watchConnection),
    Effect.tap((redis) => awaitReady(redis, timeoutMillis))
  )
}

// ioredis reports connection failures as "error" events (and prints them
// when nobody listens). Operations already fail with SessionStoreError; the
// log says once that the connection is lost and once that it is back, and
// the last error is kept for the operations' messages.
const watchConnection = (redis: Redis): Effect.Effect<void, never, Scope.Scope> =>
  Effect.gen(function*() {
    const runFork = Runtime.runFork(yield* Effect.runtime<never>())
    const onError = (error: Error) => {
      const first = !connectionErrors.has(redis)
      connectionErrors.set(redis, error)
      runFork(
        first
          ? Effect.logWarning(`${name} store: connection lost; reconnecting`, error)
          : Effect.logDebug(`${name} store: reconnect failed`, error)
      )
    }
    const onReady = () => {
      if (connectionErrors.delete(redis)) runFork(Effect.logInfo(`${name} store: connection restored`))
    }
    redis.on("error", onError).on("ready", onReady)
    yield* Effect.addFinalizer(() => Effect.sync(() => redis.off("error", onError).off("ready", onReady)))
  })

// Real time, whatever the application's Clock: the connection is I/O.
const awaitReady = (redis: Redis, timeoutMillis: number): Effect.Effect<void> =>
  Effect.async<void>((resume) => {
    if (redis.status === "ready") return resume(Effect.void)
    // with `lazyConnect` the layer connects when it is built; a failure is
    // reported through the "error" event, which is logged
    if (redis.status === "wait") redis.connect().catch(() => undefined)
    const cleanup = () => {
      clearTimeout(timer)
      redis.off("ready", onReady)
    }
    const settle = (outcome: Effect.Effect<void>) => () => resume(Effect.zipRight(Effect.sync(cleanup), outcome))
    const onReady = settle(Effect.void)
    const timer = setTimeout(
      settle(Effect.logWarning(
        `${name} store: not connected after ${timeoutMillis} ms; operations fail until the connection is up`
      )),
      timeoutMillis
    )
    redis.once("ready", onReady)
    return Effect.sync(cleanup)
  })
