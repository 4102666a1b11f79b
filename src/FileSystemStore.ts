/**
 * A store on the local file system, through `@effect/platform`'s
 * `FileSystem`: one file per session, written atomically (temp file +
 * rename), a lock file per key for compare-and-set across processes that
 * share the directory, expiry by `Clock`, a principal index and an expiry
 * index of empty marker files, and a sweep fiber that reads only the
 * sessions filed under minutes that ended. See `docs/stores/filesystem.md`.
 *
 * ```ts
 * import { NodeContext } from "@effect/platform-node"
 * import { Layer } from "effect"
 * import * as FileSystemStore from "effect-session/FileSystemStore"
 *
 * const SessionLive = FileSystemStore.layer({ directory: "/var/lib/myapp/sessions" }).pipe(
 *   Layer.provide(NodeContext.layer)
 * )
 * ```
 *
 * @since 1.0.0
 */
import { FileSystem, Path } from "@effect/platform"
import type { PlatformError } from "@effect/platform/Error"
import type { ConfigError, Scope } from "effect"
import { Cause, Config, Data, Duration, Effect, Exit, Layer, Option, Predicate } from "effect"
import * as Directory from "./core/fileSystemStore.js"
import * as Files from "./core/files.js"
import { forkSweeper } from "./internal/cleanup.js"
import { storeAndIndex } from "./internal/layer.js"
import type { StoreOperation } from "./SessionError.js"
import { SessionConflict, SessionStoreError } from "./SessionError.js"
import type { StorageKey } from "./SessionId.js"
import * as SessionStore from "./SessionStore.js"

/**
 * @since 1.0.0
 * @category models
 */
export interface Options extends Directory.StoreOptions<Duration.DurationInput> {}

/**
 * What `make` builds: the store, its index, and the sweep the layer runs on
 * a schedule (for an external scheduler or a maintenance command).
 *
 * @since 1.0.0
 * @category models
 */
export interface FileSystemStore extends
  Directory.StoreParts<
    SessionStore.SessionStore["Type"],
    SessionStore.SessionIndex["Type"],
    Effect.Effect<number, SessionStoreError>
  >
{}

const name = "filesystem"

/**
 * A file system call failed; the message is the platform's with storage
 * keys cut to their prefix.
 *
 * @since 1.0.0
 * @category errors
 */
export class FileSystemFailure extends Data.TaggedError("FileSystemFailure")<{ readonly detail: string }> {
  /**
   * @since 1.0.0
   */
  override get message(): string {
    return this.detail
  }
}

/**
 * An insert met `maxSessions`.
 *
 * @since 1.0.0
 * @category errors
 */
export class StoreFull extends Data.TaggedError("StoreFull")<Files.StoreFullCounts> {
  /**
   * @since 1.0.0
   */
  override get message(): string {
    return Files.storeFullMessage(this.sessions, this.maxSessions, this.anonymous)
  }
}

const isPlatformError = (u: unknown): u is PlatformError =>
  Predicate.hasProperty(u, "_tag") && (u._tag === "SystemError" || u._tag === "BadArgument")

// The platform's errors are the file system's: each names its file, and so
// the storage key, and reaches the caller only as its redacted message (the
// core's own errors are redacted already).
const failures: Directory.FailureShell = {
  isSystemError: isPlatformError,
  storeFull: (full) => new StoreFull(full),
  systemFailure: (detail) => new FileSystemFailure({ detail })
}
const failure = (operation: StoreOperation) => (cause: unknown) =>
  new SessionStoreError({ store: name, operation, cause: Directory.failureCause(cause, failures) })

/**
 * The core's file system calls through the platform's `FileSystem`, each
 * run to its end (the core decides what may be interrupted).
 */
const fileOps = (fs: FileSystem.FileSystem): Directory.FileOps => {
  const run = <A>(effect: Effect.Effect<A, PlatformError>): Promise<A> =>
    Effect.runPromiseExit(effect).then((exit) => Exit.isSuccess(exit) ? exit.value : Promise.reject(Cause.squash(exit.cause)))
  return {
    failureKind: (error) =>
      isPlatformError(error) && error._tag === "SystemError" && (error.reason === "NotFound" || error.reason === "AlreadyExists")
        ? error.reason
        : undefined,
    readFile: (path) => run(fs.readFile(path)),
    writeFile: (path, data, options) => run(fs.writeFile(path, data, { flag: options.exclusive ? "wx" : "w", mode: options.mode })),
    writeFileSynced: (path, data, mode) =>
      run(Effect.scoped(Effect.flatMap(fs.open(path, { flag: "wx", mode }), (file) => Effect.zipRight(file.writeAll(data), file.sync)))),
    rename: (from, to) => run(fs.rename(from, to)),
    link: (existing, path) => run(fs.link(existing, path)),
    remove: (path, options) => run(fs.remove(path, { force: true, recursive: options?.recursive ?? false })),
    makeDirectory: (path, mode) => run(fs.makeDirectory(path, { recursive: true, mode })),
    readDirectory: (path) => run(fs.readDirectory(path)),
    stat: (path) =>
      run(Effect.map(fs.stat(path), (info) => ({
        ino: Option.getOrUndefined(info.ino),
        mtimeMs: Option.getOrUndefined(Option.map(info.mtime, (d) => d.getTime()))
      })))
  }
}

/**
 * One operation of the core at the fiber's `Clock`: an interruption stops
 * only a wait for a lock, and what the core warned about is logged.
 */
const run = <A>(operation: StoreOperation, f: (call: Directory.Call) => Promise<A>): Effect.Effect<A, SessionStoreError> =>
  Effect.clockWith((clock) => {
    const warnings: Array<string> = []
    const call = (signal: AbortSignal) =>
      f({ now: () => clock.unsafeCurrentTimeMillis(), warn: (message) => warnings.push(message), signal })
    return Effect.tryPromise({ try: call, catch: failure(operation) }).pipe(
      Effect.ensuring(Effect.suspend(() => Effect.forEach(warnings, (w) => Effect.logWarning(w), { discard: true })))
    )
  })

const fileWrite = (write: SessionStore.SessionWrite): Directory.Write => ({
  data: write.data,
  expiresAt: write.expiresAt,
  principal: Option.getOrUndefined(write.principal)
})
const recordOf = (record: Files.FileRecord): SessionStore.SessionRecord => ({
  data: record.data,
  version: record.version,
  expiresAt: record.expiresAt,
  principal: Option.fromNullable(record.principal)
})
const conflict = <A>(outcome: A | Directory.Conflict): Effect.Effect<A, SessionConflict> =>
  Directory.isConflict(outcome) ? Effect.fail(new SessionConflict({ reason: outcome })) : Effect.succeed(outcome)

/**
 * Builds the store over a directory, with its sweep fiber in the scope.
 *
 * @since 1.0.0
 * @category constructors
 */
export const make = Effect.fnUntraced(function*(options: Options): Effect.fn.Return<
  FileSystemStore,
  SessionStoreError,
  FileSystem.FileSystem | Path.Path | Scope.Scope
> {
  const fs = yield* FileSystem.FileSystem
  const path = yield* Path.Path
  const directory = yield* Effect.tryPromise({
    try: () =>
      Directory.open(
        Directory.settings({ ...options, directory: path.resolve(options.directory) }, (d) => Duration.toMillis(Duration.decode(d))),
        fileOps(fs)
      ),
    catch: failure("setup")
  })

  const store = SessionStore.make(name, {
    load: (key) => Effect.map(run("load", (call) => directory.load(key, call)), (r) => Option.map(Option.fromNullable(r), recordOf)),
    insert: (key, write) =>
      Effect.flatMap(run("insert", (call) => directory.insert(key, fileWrite(write), call)), conflict<void>),
    update: (key, write, expectedVersion) =>
      Effect.flatMap(run("update", (call) => directory.update(key, fileWrite(write), expectedVersion, call)), conflict<number>),
    touch: (key, expiresAt) => run("touch", (call) => directory.touch(key, expiresAt, call)),
    remove: (key) => run("remove", (call) => directory.remove(key, call))
  })
  const index = SessionStore.makeIndex(name, {
    keys: (principal) => run("keys", (call) => directory.keys(principal, call)) as Effect.Effect<ReadonlyArray<StorageKey>, SessionStoreError>,
    removeAll: (principal) => run("removeAll", (call) => directory.removeAll(principal, call))
  })
  const sweep = run("cleanup", directory.sweep)
  yield* forkSweeper(name, options.cleanupInterval ?? Directory.defaultCleanupInterval, sweep)
  return { store, index, sweep }
})

/**
 * The store and its index over a directory, alive for the layer's scope.
 * Requires `FileSystem` and `Path` (`NodeContext.layer` provides both).
 *
 * @since 1.0.0
 * @category layers
 */
export const layer = (
  options: Options
): Layer.Layer<
  SessionStore.SessionStore | SessionStore.SessionIndex,
  SessionStoreError,
  FileSystem.FileSystem | Path.Path
> => storeAndIndex(make(options))

/**
 * @since 1.0.0
 * @category layers
 */
export const layerConfig = (
  options: Config.Config.Wrap<Options>
): Layer.Layer<
  SessionStore.SessionStore | SessionStore.SessionIndex,
  SessionStoreError | ConfigError.ConfigError,
  FileSystem.FileSystem | Path.Path
> => Layer.unwrapEffect(Effect.map(Config.unwrap(options), layer))
