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
import { Config, Data, Duration, Effect, Layer, Option, Predicate } from "effect"
import * as Files from "./core/files.js"
import { forkSweeper } from "./internal/cleanup.js"
import type { LockTimeout } from "./internal/fileLock.js"
import * as Sweep from "./internal/fileSweep.js"
import { storeAndIndex } from "./internal/layer.js"
import * as Directory from "./internal/sessionDirectory.js"
import type { StoreOperation } from "./SessionError.js"
import { SessionConflict, SessionStoreError } from "./SessionError.js"
import * as SessionStore from "./SessionStore.js"

/**
 * @since 1.0.0
 * @category models
 */
export interface Options {
  /** Where sessions are kept; created (mode 0700) if missing. Every process sharing it must use the same options. */
  readonly directory: string
  /** How often expired sessions and leftover files are swept. Default 5 minutes (jittered). */
  readonly cleanupInterval?: Duration.DurationInput | undefined
  /**
   * A lock file older than this (by its mtime) belongs to a process that
   * died holding it and is broken. Must exceed the longest time one store
   * operation can take. Default 10 seconds.
   */
  readonly lockStaleAfter?: Duration.DurationInput | undefined
  /** How long an operation waits for a lock held by another process before failing. Default 5 seconds. */
  readonly lockTimeout?: Duration.DurationInput | undefined
  /**
   * Flush each written file to disk before it replaces the old one, so a
   * power loss cannot leave an empty session file. Default true; turn it off
   * on tmpfs or when losing the last writes is acceptable.
   */
  readonly fsync?: boolean | undefined
  /**
   * The most sessions the directory holds. Inserting a session without a
   * principal fails with `SessionStoreError` (cause `StoreFull`) once 90% of
   * it is used, and any insert once all of it is, so that anonymous traffic
   * cannot lock logged-in users out. Counted per process: the count is read
   * from the directory when the store starts and by every sweep, and
   * follows this process's own inserts and removals in between. Default:
   * no limit.
   */
  readonly maxSessions?: number | undefined
}

/**
 * What `make` builds: the store, its index, and the sweep the layer runs on
 * a schedule (for an external scheduler or a maintenance command).
 *
 * @since 1.0.0
 * @category models
 */
export interface FileSystemStore {
  readonly store: SessionStore.SessionStore["Type"]
  readonly index: SessionStore.SessionIndex["Type"]
  /** Removes expired sessions, unreadable files, leftover temp files and stale locks; returns the sessions removed. */
  readonly sweep: Effect.Effect<number, SessionStoreError>
}

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
export class StoreFull extends Data.TaggedError("StoreFull")<{
  readonly sessions: number
  readonly maxSessions: number
  readonly anonymous: boolean
}> {
  /**
   * @since 1.0.0
   */
  override get message(): string {
    return Files.storeFullMessage(this.sessions, this.maxSessions, this.anonymous)
  }
}

type Record = SessionStore.SessionRecord
const isPlatformError = (u: unknown): u is PlatformError =>
  Predicate.hasProperty(u, "_tag") && (u._tag === "SystemError" || u._tag === "BadArgument")

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
  const lockStaleAfter = Duration.toMillis(Duration.decode(options.lockStaleAfter ?? "10 seconds"))
  const maxSessions = options.maxSessions
  const dir = Directory.make(fs, path, {
    directory: path.resolve(options.directory),
    fsync: options.fsync ?? true,
    lockStaleAfter,
    lockTimeout: Duration.toMillis(Duration.decode(options.lockTimeout ?? "5 seconds"))
  })
  const { live, liveRecord, locked, orGone, readRecord, sessions, writeRecord } = dir

  // A platform error names the file, and so the storage key: it reaches the
  // caller only as its redacted message.
  const storeError = (operation: StoreOperation) => (cause: unknown) =>
    new SessionStoreError({
      store: name,
      operation,
      cause: isPlatformError(cause) ? new FileSystemFailure({ detail: Files.redact(cause.message) }) : cause
    })

  yield* Effect.mapError(dir.setup, storeError("setup"))
  // sessions in the directory, as far as this process knows (see `maxSessions`)
  if (maxSessions !== undefined) sessions.count = (yield* Effect.mapError(dir.sessionNames, storeError("setup"))).length

  // Only a new file counts against the cap; replacing an expired one does not.
  const checkCapacity = (write: SessionStore.SessionWrite, previous: Option.Option<Record>) => {
    const anonymous = Option.isNone(write.principal)
    return Files.isRefused(sessions.count, maxSessions, anonymous, Option.isSome(previous))
      ? Effect.fail(new StoreFull({ sessions: sessions.count, maxSessions: maxSessions!, anonymous }))
      : Effect.void
  }
  const conflict = <A>(outcome: A | SessionConflict["reason"]): Effect.Effect<A, SessionConflict> =>
    typeof outcome === "string"
      ? Effect.fail(new SessionConflict({ reason: outcome as SessionConflict["reason"] }))
      : Effect.succeed(outcome as A)

  const store = SessionStore.make(name, {
    load: (key) => Effect.mapError(liveRecord(key), storeError("load")),
    insert: (key, write) =>
      dir.compareAndWrite<void | "Exists", PlatformError | LockTimeout | StoreFull>(
        key,
        (previous, t) => Option.isSome(live(previous, t)) ? Option.some("Exists") : Option.none(),
        (previous, t) =>
          Effect.zipRight(checkCapacity(write, previous), writeRecord(key, previous, { ...write, version: 1 }, t))
      ).pipe(Effect.mapError(storeError("insert")), Effect.flatMap(conflict<void>)),
    update: (key, write, expectedVersion) =>
      dir.compareAndWrite<number | SessionConflict["reason"], PlatformError | LockTimeout>(
        key,
        (previous, t) => {
          const current = live(previous, t)
          if (Option.isNone(current)) return Option.some("Missing")
          return current.value.version !== expectedVersion ? Option.some("VersionMismatch") : Option.none()
        },
        (previous, t) =>
          Effect.as(writeRecord(key, previous, { ...write, version: expectedVersion + 1 }, t), expectedVersion + 1)
      ).pipe(Effect.mapError(storeError("update")), Effect.flatMap(conflict<number>)),
    touch: (key, expiresAt) =>
      dir.compareAndWrite(
        key,
        (previous, t) => Option.isNone(live(previous, t)) ? Option.some(false) : Option.none(),
        (previous, t) =>
          Option.match(previous, {
            onNone: () => Effect.succeed(false),
            onSome: (record) => Effect.as(writeRecord(key, previous, { ...record, expiresAt }, t), true)
          })
      ).pipe(Effect.mapError(storeError("touch"))),
    // an unreadable file is removed all the same: corruption must not make a
    // session unremovable (its markers are left to the sweep)
    remove: (key) =>
      locked(key, Effect.flatMap(orGone(readRecord(key)), (previous) => dir.deleteRecord(key, previous))).pipe(
        Effect.mapError(storeError("remove"))
      )
  })

  // `keys` and `removeAll` read the principal's own sessions (one small file
  // each), never the rest of the directory: a marker says only that a
  // session was bound to the principal when it was written, the file says
  // whether it still is and until when.
  const index = SessionStore.makeIndex(name, {
    keys: (principal) =>
      Effect.flatMap(dir.markedKeys(principal), (keys) =>
        Effect.filter(keys, (key) => Effect.map(orGone(liveRecord(key)), dir.boundTo(principal)), {
          concurrency: 16
        })).pipe(Effect.mapError(storeError("keys"))),
    removeAll: (principal) =>
      Effect.flatMap(dir.markedKeys(principal), (keys) =>
        Effect.forEach(keys, (key) =>
          dir.revoke(key, principal), { concurrency: 16 })).pipe(
          Effect.tap(() => dir.removeIfEmpty(principal)),
          Effect.map((removed) => removed.reduce<number>((a, b) => a + b, 0)),
          Effect.mapError(storeError("removeAll"))
        )
  })

  const sweep = Sweep.make(fs, path, dir, { store: name, lockStaleAfter, capped: maxSessions !== undefined }).pipe(
    Effect.mapError(storeError("cleanup"))
  )
  yield* forkSweeper(name, options.cleanupInterval ?? "5 minutes", sweep)

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
