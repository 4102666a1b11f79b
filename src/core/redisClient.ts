/**
 * The Redis store's handling of an ioredis client, without Effect and
 * without importing ioredis (a client is seen through the few members used
 * here): the scripts defined on a client, the check of a URL before a client
 * is made from it, the wait for a new client's first connection, the watch
 * over its connection, the gathering of a busy turn's commands into one
 * write, and its close. Each line logs and schedules through its own
 * Effect; the protocol itself is `redis.ts`.
 *
 * @internal
 */
import type { ScriptCall } from "./redis.js"
import { sessionScripts } from "./redis.js"

/**
 * What the store uses of an ioredis `Redis` or `Cluster`.
 *
 * @internal
 */
export interface Client {
  readonly status: string
  defineCommand(name: string, definition: { readonly lua: string; readonly numberOfKeys?: number }): void
  connect(): Promise<unknown>
  on(event: "error" | "ready", listener: (error: Error) => void): unknown
  once(event: "ready", listener: () => void): unknown
  off(event: "error" | "ready", listener: (error: Error) => void): unknown
  quit(): Promise<unknown>
  disconnect(): void
}

/**
 * Defines the store's scripts on a client (ioredis sends EVALSHA, and EVAL
 * where the server answers NOSCRIPT) and gives the function that sends one
 * script call.
 *
 * @internal
 */
export const defineScripts = (client: Pick<Client, "defineCommand">): (call: ScriptCall) => Promise<unknown> => {
  for (const { lua, name, numberOfKeys } of sessionScripts()) {
    client.defineCommand(name, numberOfKeys === undefined ? { lua } : { lua, numberOfKeys })
  }
  const commands = client as unknown as Record<string, (...args: ReadonlyArray<unknown>) => Promise<unknown>>
  return ({ args, keys, script }) =>
    script.numberOfKeys === undefined
      ? commands[script.name]!(keys.length, ...keys, ...args)
      : commands[script.name]!(...keys, ...args)
}

/**
 * The client a layer makes for itself, with `create` (ioredis's constructor)
 * from the URL if there is one and the options but the store's own. It fails
 * fast while disconnected instead of queueing (a queued command could run
 * long after its request gave up) and gives up on a command after the
 * timeout (its QUIT at close included).
 *
 * A URL it cannot use throws, in words that never hold the URL (it may carry
 * a password): one of another scheme (ioredis would read `http://host:6379`
 * as the host `http`), or one ioredis cannot read.
 *
 * @internal
 */
export const makeClient = <O extends OwnOptions, C>(
  options: O,
  timeoutMillis: number,
  create: (url: string | undefined, options: Omit<O, keyof OwnOptions> & { enableOfflineQueue: boolean; commandTimeout: number }) => C
): C => {
  const { client: _client, commandTimeout: _timeout, prefix: _prefix, url, ...clientOptions } = options
  const scheme = url === undefined ? undefined : /^([a-z][a-z0-9+.-]*):\/\//i.exec(url)?.[1]
  if (scheme !== undefined && !/^rediss?$/i.test(scheme)) {
    throw new Error(`the Redis URL's scheme is ${scheme}://, not redis:// or rediss://`)
  }
  try {
    return create(url, { enableOfflineQueue: false, ...clientOptions, commandTimeout: timeoutMillis })
  } catch (error) {
    throw url === undefined ? error : new Error(`the Redis URL cannot be read: ${error instanceof Error ? error.message : String(error)}`)
  }
}

/**
 * ioredis's `Redis` class, as `open` makes a client with it: from a URL and
 * options, or from options alone.
 *
 * @internal
 */
export interface ClientClass<O, C> {
  new(url: string, options: O): C
  new(options: O): C
}

/**
 * The client a layer makes for itself (`makeClient`, with `Redis`), watched
 * (`watchConnection`) for its whole life, with the `beforeSend` that gathers
 * its busy turns' commands (`coalesceWrites`, for the layer's
 * `WaitingReplies`). `close` ends the watch, then closes the client
 * (`close`): the layer's release is this one call. Throws where
 * `makeClient` does; the start-up wait (`awaitReady`) is left to the caller,
 * since each line waits in its own Effect.
 *
 * @internal
 */
export const open = <O extends OwnOptions, C extends Client & Connection>(
  options: O,
  timeoutMillis: number,
  Redis: ClientClass<Omit<O, keyof OwnOptions> & { enableOfflineQueue: boolean; commandTimeout: number }, C>,
  log: (level: "Warn" | "Debug" | "Info", ...message: ReadonlyArray<unknown>) => void
): {
  readonly client: C
  readonly lastError: () => Error | undefined
  readonly beforeSend: (busy: boolean) => void
  readonly close: () => Promise<void>
} => {
  const client = makeClient(options, timeoutMillis, (url, o) => url === undefined ? new Redis(o) : new Redis(url, o))
  const watch = watchConnection(client, log)
  return {
    client,
    lastError: watch.lastError,
    beforeSend: coalesceWrites(client),
    close: () => {
      watch.close()
      return close(client)
    }
  }
}

/**
 * What `coalesceWrites` uses of a client: its status and the socket of its
 * connection (ioredis's `stream`, replaced on each reconnection).
 *
 * @internal
 */
export interface Connection {
  readonly status: string
  readonly stream?: { cork(): void; uncork(): void } | undefined
}

/**
 * Gathers the commands sent to a client in one turn of the event loop into
 * one write to its socket, while the client is busy. A command sent while
 * an earlier one still awaits its reply corks the socket, and once the
 * turn's I/O callbacks have run (`setImmediate`) it is uncorked, so that Node
 * writes what the turn queued with one system call. A server under load
 * answers several requests per turn, and their commands then leave together
 * instead of one write each (a write to a socket costs several µs of kernel
 * time, more than the store's own work on a command; docs/design.md, "Redis
 * writes gathered per turn"). A command sent to an idle client (one request
 * at a time) is written at once, as without this. The same commands in the
 * same order, the same round trips; replies are not touched. A command is
 * held back by at most the rest of its turn.
 *
 * Returns the function to call right before each command is handed to the
 * client, with whether replies are awaited. Nothing is held while the client
 * is not ready (ioredis refuses the command then) or has no socket.
 *
 * @internal
 */
export const coalesceWrites = (client: Connection): (busy: boolean) => void => {
  let corked: NonNullable<Connection["stream"]> | undefined
  const uncork = () => {
    const stream = corked
    corked = undefined
    stream?.uncork()
  }
  return (busy) => {
    if (!busy || corked !== undefined || client.status !== "ready") return
    const stream = client.stream
    if (stream === undefined) return
    corked = stream
    stream.cork()
    setImmediate(uncork)
  }
}

/**
 * Closes a client a layer made: QUIT (which the client's `commandTimeout`
 * bounds, so a hung server cannot hold the layer's release), or a
 * disconnect where QUIT fails.
 *
 * @internal
 */
export const close = (client: Pick<Client, "quit" | "disconnect">): Promise<void> =>
  client.quit().then(() => undefined, () => client.disconnect())

/**
 * The options of a layer that are the store's, not the client's.
 *
 * @internal
 */
export interface OwnOptions {
  readonly client?: unknown
  readonly url?: string | undefined
  readonly prefix?: string | undefined
  readonly commandTimeout?: unknown
}

/**
 * Waits, in real time, up to `timeoutMillis` for a client's first connection
 * (connecting a client made with `lazyConnect`), then calls `done` once with
 * whether it connected. Connection failures are "error" events: listened to
 * meanwhile, so that ioredis does not print them. Returns the cancel.
 *
 * @internal
 */
export const awaitReady = (client: Client, timeoutMillis: number, done: (connected: boolean) => void): () => void => {
  if (client.status === "ready") {
    done(true)
    return () => undefined
  }
  const onError = () => undefined
  const cancel = () => {
    clearTimeout(timer)
    client.off("ready", onReady)
    client.off("error", onError)
  }
  const settle = (connected: boolean) => () => {
    cancel()
    done(connected)
  }
  const onReady = settle(true)
  const timer = setTimeout(settle(false), timeoutMillis)
  client.once("ready", onReady)
  client.on("error", onError)
  if (client.status === "wait") client.connect().catch(() => undefined)
  return cancel
}

/**
 * The warning when a new client has not connected within the start-up wait.
 *
 * @internal
 */
export const notConnectedAfter = (timeoutMillis: number): string =>
  `redis store: not connected after ${timeoutMillis} ms; operations fail until it is`

/**
 * Watches a client's connection for its whole life. ioredis prints an
 * "error" event nobody listens to, once per failed reconnection; operations
 * already fail with the store's error, so the log says once (a warning)
 * that the connection is lost and once that it is back, the failed
 * reconnections in between at debug level. The last error is kept for the
 * message of a command refused while disconnected.
 *
 * @internal
 */
export const watchConnection = (
  client: Client,
  log: (level: "Warn" | "Debug" | "Info", ...message: ReadonlyArray<unknown>) => void
): { readonly lastError: () => Error | undefined; readonly close: () => void } => {
  let lastError: Error | undefined
  const onError = (error: Error) => {
    if (lastError === undefined) log("Warn", "redis store: connection lost; reconnecting", error)
    else log("Debug", "redis store: reconnect failed", error)
    lastError = error
  }
  const onReady = () => {
    if (lastError === undefined) return
    lastError = undefined
    log("Info", "redis store: connection restored")
  }
  client.on("error", onError)
  client.on("ready", onReady)
  return {
    lastError: () => lastError,
    close: () => {
      client.off("error", onError)
      client.off("ready", onReady)
    }
  }
}
