/**
 * A store on the local file system: one file per session, written
 * atomically (temp file + rename), a lock file per key for compare-and-set
 * across processes that share the directory, expiry by `Clock`, a principal
 * index and an expiry index of empty marker files, and a sweep fiber that
 * reads only the sessions filed under minutes that ended. The directory,
 * its layout and its rules are the core's (`src/core/fileSystemStore.ts`
 * over `src/core/files.ts`); this module is its Effect 4 glue. See
 * `docs/stores/filesystem.md`.
 *
 * ```ts
 * import * as FileSystemStore from "effect-session/FileSystemStore"
 *
 * const StoreLive = FileSystemStore.layer({ directory: "/var/lib/myapp/sessions" })
 * ```
 *
 * @since 2.0.0
 */
import type { Scope } from "effect"
import { Config, Data, Duration, Effect, Layer, Option, Schedule } from "effect"
import * as Directory from "../../src/core/fileSystemStore.js"
import * as Files from "../../src/core/files.js"
import { bytesWrite, textRecord } from "./internal/bytes.js"
import { storeAndIndex } from "./internal/layer.js"
import type { StoreOperation } from "./SessionError.js"
import { SessionConflict, SessionStoreError } from "./SessionError.js"
import type { StorageKey } from "./SessionId.js"
import * as SessionStore from "./SessionStore.js"

/**
 * @since 2.0.0
 * @category models
 */
export interface Options extends Directory.StoreOptions<Duration.Input> {}

/**
 * What `make` builds: the store, its index, and the sweep the layer runs on
 * a schedule (for an external scheduler or a maintenance command).
 *
 * @since 2.0.0
 * @category models
 */
export interface FileSystemStore extends
  Directory.StoreParts<
    SessionStore.SessionStore["Service"],
    SessionStore.SessionIndex["Service"],
    Effect.Effect<number, SessionStoreError>
  >
{}

/**
 * A file system call failed; the message is the system's with storage keys
 * cut to their prefix.
 *
 * @since 2.0.0
 * @category errors
 */
export class FileSystemFailure extends Data.TaggedError("FileSystemFailure")<{ readonly detail: string }> {
  override get message(): string {
    return this.detail
  }
}

/**
 * An insert met `maxSessions`.
 *
 * @since 2.0.0
 * @category errors
 */
export class StoreFull extends Data.TaggedError("StoreFull")<Files.StoreFullCounts> {
  override get message(): string {
    return Files.storeFullMessage(this.sessions, this.maxSessions, this.anonymous)
  }
}

const name = "filesystem"

// Every error but the core's own comes from node:fs, whose message names
// the file, and so the storage key: it reaches the caller only as its
// redacted message (the core's own errors are redacted already).
const failures: Directory.FailureShell = {
  isSystemError: (error) => !Directory.isStoreError(error),
  storeFull: (full) => new StoreFull(full),
  systemFailure: (detail) => new FileSystemFailure({ detail })
}
const failure = (operation: StoreOperation) => (cause: unknown) =>
  new SessionStoreError({ store: name, operation, cause: Directory.failureCause(cause, failures) })

/**
 * One operation of the core at the fiber's `Clock`: an interruption stops
 * only a wait for a lock, and what the core warned about is logged.
 */
const run = <A>(operation: StoreOperation, f: (call: Directory.Call) => Promise<A>): Effect.Effect<A, SessionStoreError> =>
  Effect.clockWith((clock) => {
    const warnings: Array<string> = []
    const call = (signal: AbortSignal) =>
      f({ now: () => clock.currentTimeMillisUnsafe(), warn: (message) => warnings.push(message), signal })
    return Effect.tryPromise({ try: call, catch: failure(operation) }).pipe(
      Effect.ensuring(Effect.suspend(() => Effect.forEach(warnings, (w) => Effect.logWarning(w), { discard: true })))
    )
  })

const conflict = <A>(outcome: A | Directory.Conflict): Effect.Effect<A, SessionConflict> =>
  Directory.isConflict(outcome) ? Effect.fail(new SessionConflict({ reason: outcome })) : Effect.succeed(outcome)

/**
 * Builds the store over a directory, with its sweep fiber in the scope.
 *
 * @since 2.0.0
 * @category constructors
 */
export const make = Effect.fnUntraced(function*(options: Options): Effect.fn.Return<
  FileSystemStore,
  SessionStoreError,
  Scope.Scope
> {
  const directory = yield* Effect.tryPromise({
    try: () =>
      Directory.open(Directory.settings(options, Duration.toMillis)),
    catch: failure("setup")
  })

  const store = SessionStore.make(name, {
    load: (key) => Effect.map(run("load", (call) => directory.load(key, call)), (r) => Option.map(Option.fromUndefinedOr(r), textRecord)),
    insert: (key, write) =>
      Effect.flatMap(run("insert", (call) => directory.insert(key, bytesWrite(write), call)), conflict<void>),
    update: (key, write, expectedVersion) =>
      Effect.flatMap(run("update", (call) => directory.update(key, bytesWrite(write), expectedVersion, call)), conflict<number>),
    touch: (key, expiresAt) => run("touch", (call) => directory.touch(key, expiresAt, call)),
    remove: (key) => run("remove", (call) => directory.remove(key, call))
  })
  const index = SessionStore.makeIndex(name, {
    keys: (principal) => run("keys", (call) => directory.keys(principal, call)) as Effect.Effect<ReadonlyArray<StorageKey>, SessionStoreError>,
    removeAll: (principal) => run("removeAll", (call) => directory.removeAll(principal, call))
  })
  const sweep = run("cleanup", directory.sweep)

  // jittered, so that processes sharing the directory do not sweep in lockstep;
  // a failed sweep is logged and the next one runs as planned
  const interval = options.cleanupInterval ?? Directory.defaultCleanupInterval
  yield* sweep.pipe(
    Effect.tap((removed) => removed > 0 ? Effect.logDebug(`${name} store: removed ${removed} expired sessions`) : Effect.void),
    Effect.catchCause((cause) => Effect.logWarning(`${name} store: expiry sweep failed`, cause)),
    Effect.repeat(Schedule.spaced(interval).pipe(Schedule.jittered)),
    Effect.delay(interval),
    Effect.forkScoped
  )
  return { store, index, sweep }
})

/**
 * The store and its index over a directory, alive for the layer's scope.
 *
 * @since 2.0.0
 * @category layers
 */
export const layer = (options: Options): Layer.Layer<SessionStore.SessionStore | SessionStore.SessionIndex, SessionStoreError> =>
  storeAndIndex(make(options))

/**
 * `layer` with its options read from `Config`.
 *
 * @since 2.0.0
 * @category layers
 */
export const layerConfig = (
  options: Config.Wrap<Options>
): Layer.Layer<SessionStore.SessionStore | SessionStore.SessionIndex, SessionStoreError | Config.ConfigError> =>
  Layer.unwrap(Effect.map(Config.unwrap(options), layer))
