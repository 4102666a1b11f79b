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
import * as FileLock from "./internal/fileLock.js"
import { storeAndIndex } from "./internal/layer.js"
import type { StoreOperation } from "./SessionError.js"
import { SessionConflict, SessionStoreError } from "./SessionError.js"
import type { StorageKey } from "./SessionId.js"
import { unsafeStorageKey } from "./SessionId.js"
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

// Errors hold a key's first characters only: a logger may print their fields.
class InvalidStorageKey extends Data.TaggedError("InvalidStorageKey")<{ readonly keyPrefix: string }> {
  override get message(): string {
    return Files.invalidKeyMessage(this.keyPrefix)
  }
}

class CorruptRecord extends Data.TaggedError("CorruptRecord")<{ readonly keyPrefix: string; readonly detail: string }> {
  override get message(): string {
    return Files.corruptRecordMessage(this.keyPrefix, this.detail)
  }
}

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
const toFileRecord = (r: Record): Files.FileRecord => ({ ...r, principal: Option.getOrUndefined(r.principal) })
const isNotFound = FileLock.isSystemError("NotFound")
const isPlatformError = (u: unknown): u is PlatformError =>
  Predicate.hasProperty(u, "_tag") && (u._tag === "SystemError" || u._tag === "BadArgument")
const sum = (counts: ReadonlyArray<number>) => counts.reduce((a, b) => a + b, 0)

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
  const directory = path.resolve(options.directory)
  const principals = path.join(directory, Files.principalsDirectory)
  const expiry = path.join(directory, Files.expiryDirectory)
  const lockStaleAfter = Duration.toMillis(Duration.decode(options.lockStaleAfter ?? "10 seconds"))
  const lockTimeout = Duration.toMillis(Duration.decode(options.lockTimeout ?? "5 seconds"))
  const { fsync = true, maxSessions } = options
  const redact = Files.redact
  const lock = FileLock.make(fs, path, { staleAfterMillis: lockStaleAfter, timeoutMillis: lockTimeout, redact })

  // A platform error names the file, and so the storage key: it reaches the
  // caller only as its redacted message.
  const storeError = (operation: StoreOperation) => (cause: unknown) =>
    new SessionStoreError({
      store: name,
      operation,
      cause: isPlatformError(cause) ? new FileSystemFailure({ detail: redact(cause.message) }) : cause
    })

  yield* Effect.all([
    fs.makeDirectory(principals, { recursive: true, mode: 0o700 }),
    fs.makeDirectory(expiry, { recursive: true, mode: 0o700 })
  ]).pipe(Effect.mapError(storeError("setup")))

  const now = Effect.clockWith((clock) => clock.currentTimeMillis)
  const indexedFlagFile = path.join(expiry, Files.indexedFlag)
  const sessionNames = Effect.map(fs.readDirectory(directory), (names) => names.filter(Files.isStorageKeyName))

  // Sessions in the directory, as far as this process knows (see `maxSessions`).
  let sessionCount = maxSessions === undefined
    ? 0
    : (yield* Effect.mapError(sessionNames, storeError("setup"))).length

  // The only place a path is built from a key: nothing reaches the file
  // system unless the key is exactly 43 base64url characters.
  const fileOf = (key: StorageKey): Effect.Effect<string, InvalidStorageKey> =>
    Files.isStorageKeyName(key)
      ? Effect.succeed(path.join(directory, key))
      : Effect.fail(new InvalidStorageKey({ keyPrefix: Files.keyPrefix(key) }))

  const readRecord = (key: StorageKey): Effect.Effect<Option.Option<Record>, PlatformError | CorruptRecord> =>
    fs.readFile(path.join(directory, key)).pipe(
      Effect.flatMap((bytes) => {
        const read = Files.decodeRecord(bytes)
        return "problem" in read
          ? Effect.fail(new CorruptRecord({ keyPrefix: Files.keyPrefix(key), detail: read.problem }))
          : Effect.succeed(Option.some({ ...read.record, principal: Option.fromNullable(read.record.principal) }))
      }),
      Effect.catchIf(isNotFound, () => Effect.succeed(Option.none()))
    )
  const live = (record: Option.Option<Record>, now: number) => Option.filter(record, (r) => r.expiresAt > now)
  const liveRecord = (key: StorageKey) =>
    Effect.zipRight(fileOf(key), Effect.zipWith(readRecord(key), now, live))
  // an unreadable session cannot be loaded: it is logged and treated as gone
  const orGone = <E, R>(read: Effect.Effect<Option.Option<Record>, E | CorruptRecord, R>) =>
    Effect.catchIf(
      read,
      (e): e is CorruptRecord => e instanceof CorruptRecord,
      (e) => Effect.as(Effect.logWarning(e.message), Option.none<Record>())
    )

  const writeAtomically = (target: string, bytes: Uint8Array): Effect.Effect<void, PlatformError> => {
    const temporary = path.join(directory, Files.temporaryFileName(path.basename(target)))
    const write = fsync
      ? Effect.scoped(Effect.flatMap(
        fs.open(temporary, { flag: "wx", mode: 0o600 }),
        (file) => Effect.zipRight(file.writeAll(bytes), file.sync)
      ))
      : fs.writeFile(temporary, bytes, { flag: "wx", mode: 0o600 })
    return Effect.zipRight(write, fs.rename(temporary, target)).pipe(
      // the write's own error is the one reported; a temp file that cannot be
      // removed now is an orphan the sweep deletes later
      Effect.onError(() => Effect.ignore(fs.remove(temporary, { force: true })))
    )
  }

  // -- indexes: empty marker files in expiry/<minute>/ and principals/<hash>/

  const writeMarker = (dir: string, key: StorageKey): Effect.Effect<void, PlatformError> => {
    const file = path.join(dir, key)
    const touch = fs.writeFile(file, new Uint8Array(0), { mode: 0o600 })
    return touch.pipe(Effect.catchIf(
      isNotFound,
      () => Effect.zipRight(fs.makeDirectory(dir, { recursive: true, mode: 0o700 }), touch)
    ))
  }
  const bucketDirectory = (bucket: number) => path.join(expiry, String(bucket))
  const removeExpiryMarker = (bucket: number, key: StorageKey) =>
    fs.remove(path.join(bucketDirectory(bucket), key), { force: true })

  // Adding a principal's first marker creates its directory, and removing
  // the last one deletes it: both hold the principal's lock file, so a
  // directory is never deleted with a marker just written into it.
  const markerDirectory = (principal: string) => path.join(principals, Files.principalDirectoryName(principal))
  const withPrincipalLock = <A, E, R>(principal: string, effect: Effect.Effect<A, E, R>) =>
    lock.withLock(Files.lockFileName(markerDirectory(principal)), effect)

  // a directory left now (busy, gone, unreadable) is tried again with the
  // principal's next removal; the session's own operation stands
  const removeIfEmpty = (principal: string): Effect.Effect<void> => {
    const dir = markerDirectory(principal)
    const empty = Effect.map(fs.readDirectory(dir), (names) => names.length === 0)
    const removeEmpty = Effect.flatMap(empty, (isEmpty) => isEmpty ? fs.remove(dir, { recursive: true }) : Effect.void)
    return Effect.flatMap(empty, (isEmpty) => isEmpty ? withPrincipalLock(principal, removeEmpty) : Effect.void)
      .pipe(Effect.catchAll(() => Effect.void))
  }
  // `tidy`: look whether the directory is left empty; `removeAll` looks once, after its last marker.
  const removePrincipalMarker = (principal: string, key: StorageKey, tidy: boolean) => {
    const remove = fs.remove(path.join(markerDirectory(principal), key), { force: true })
    return tidy ? Effect.zipRight(remove, removeIfEmpty(principal)) : remove
  }

  // the order of the steps is the core's `planWrite`
  const writeRecord = (key: StorageKey, previous: Option.Option<Record>, record: Record, now: number) =>
    Effect.gen(function*() {
      const plan = Files.planWrite(Option.getOrUndefined(Option.map(previous, toFileRecord)), toFileRecord(record), now)
      if (plan.addExpiry !== undefined) yield* writeMarker(bucketDirectory(plan.addExpiry), key)
      if (plan.addPrincipal !== undefined) {
        yield* withPrincipalLock(plan.addPrincipal, writeMarker(markerDirectory(plan.addPrincipal), key))
      }
      yield* writeAtomically(path.join(directory, key), Files.encodeRecord(toFileRecord(record)))
      if (plan.created) sessionCount++
      if (plan.removePrincipal !== undefined) yield* removePrincipalMarker(plan.removePrincipal, key, true)
      if (plan.removeExpiry !== undefined) yield* removeExpiryMarker(plan.removeExpiry, key)
    })

  const deleteRecord = (key: StorageKey, previous: Option.Option<Record>, tidy = true) =>
    Effect.gen(function*() {
      yield* fs.remove(path.join(directory, key), { force: true })
      if (Option.isNone(previous)) return
      sessionCount--
      const { expiresAt, principal } = previous.value
      if (Option.isSome(principal)) yield* removePrincipalMarker(principal.value, key, tidy)
      yield* removeExpiryMarker(Files.expiryBucketOf(expiresAt), key)
    })

  // The body under the lock is uninterruptible: an interrupted rename still
  // completes in the background, and must not land after the lock is released.
  const locked = <A, E, R>(key: StorageKey, body: Effect.Effect<A, E, R>) =>
    Effect.flatMap(fileOf(key), (file) => lock.withLock(Files.lockFileName(file), Effect.uninterruptible(body)))

  // Files are replaced by rename, so a read without the lock sees one whole
  // version. An outcome that writes nothing (a conflict, a missing record)
  // is decided from such a read; only a write takes the lock, and decides
  // again under it. This keeps losers of a compare-and-set race off the lock.
  const compareAndWrite = <A>(
    key: StorageKey,
    decide: (previous: Option.Option<Record>, now: number) => Option.Option<A>,
    write: (previous: Option.Option<Record>, now: number) => Effect.Effect<A, PlatformError | FileLock.LockTimeout | StoreFull>
  ) => {
    const readAndDecide = Effect.zipWith(readRecord(key), now, (previous, t) => [previous, t, decide(previous, t)] as const)
    return Effect.zipRight(fileOf(key), readAndDecide).pipe(Effect.flatMap(([, , early]) =>
      Option.isSome(early) ? Effect.succeed(early.value) : locked(
        key,
        Effect.flatMap(readAndDecide, ([previous, t, outcome]) =>
          Option.isSome(outcome) ? Effect.succeed(outcome.value) : write(previous, t))
      )
    ))
  }

  // Only a new file counts against the cap; replacing an expired one does not.
  const checkCapacity = (write: SessionStore.SessionWrite, previous: Option.Option<Record>) => {
    const anonymous = Option.isNone(write.principal)
    return Files.isRefused(sessionCount, maxSessions, anonymous, Option.isSome(previous))
      ? Effect.fail(new StoreFull({ sessions: sessionCount, maxSessions: maxSessions!, anonymous }))
      : Effect.void
  }
  const conflict = <A>(outcome: A | SessionConflict["reason"]): Effect.Effect<A, SessionConflict> =>
    typeof outcome === "string"
      ? Effect.fail(new SessionConflict({ reason: outcome as SessionConflict["reason"] }))
      : Effect.succeed(outcome as A)

  const store = SessionStore.make(name, {
    load: (key) => Effect.mapError(liveRecord(key), storeError("load")),
    insert: (key, write) =>
      compareAndWrite<void | "Exists">(
        key,
        (previous, t) => Option.isSome(live(previous, t)) ? Option.some("Exists") : Option.none(),
        (previous, t) =>
          Effect.zipRight(checkCapacity(write, previous), writeRecord(key, previous, { ...write, version: 1 }, t))
      ).pipe(Effect.mapError(storeError("insert")), Effect.flatMap(conflict<void>)),
    update: (key, write, expectedVersion) =>
      compareAndWrite<number | SessionConflict["reason"]>(
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
      compareAndWrite(
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
      locked(key, Effect.flatMap(orGone(readRecord(key)), (previous) => deleteRecord(key, previous))).pipe(
        Effect.mapError(storeError("remove"))
      )
  })

  const markedKeys = (principal: string): Effect.Effect<ReadonlyArray<StorageKey>, PlatformError> =>
    fs.readDirectory(markerDirectory(principal)).pipe(
      Effect.map((names) => names.filter(Files.isStorageKeyName).map(unsafeStorageKey)),
      Effect.catchIf(isNotFound, () => Effect.succeed([]))
    )
  const boundTo = (principal: string) => (record: Option.Option<Record>) =>
    Option.exists(record, (r) => Option.contains(r.principal, principal))

  // `keys` and `removeAll` read the principal's own sessions (one small file
  // each), never the rest of the directory: a marker says only that a
  // session was bound to the principal when it was written, the file says
  // whether it still is and until when.
  const index = SessionStore.makeIndex(name, {
    keys: (principal) =>
      Effect.flatMap(markedKeys(principal), (keys) =>
        Effect.filter(keys, (key) => Effect.map(orGone(liveRecord(key)), boundTo(principal)), {
          concurrency: 16
        })).pipe(Effect.mapError(storeError("keys"))),
    removeAll: (principal) =>
      Effect.flatMap(markedKeys(principal), (keys) =>
        Effect.forEach(keys, (key) =>
          locked(
            key,
            Effect.gen(function*() {
              // revoking errs on the safe side: an unreadable session marked for this principal goes too
              const record = yield* readRecord(key).pipe(Effect.catchTag("CorruptRecord", (e) =>
                Effect.as(
                  Effect.zipRight(Effect.logWarning(e.message), fs.remove(path.join(directory, key), { force: true })),
                  Option.none()
                )))
              const t = yield* now
              if (!boundTo(principal)(record)) {
                // the session moved to another principal or is gone: only the marker is stale
                yield* removePrincipalMarker(principal, key, false)
                return 0
              }
              yield* deleteRecord(key, record, false)
              return Option.isSome(live(record, t)) ? 1 : 0
            })
          ), { concurrency: 16 })).pipe(
          Effect.tap(() => removeIfEmpty(principal)),
          Effect.map(sum),
          Effect.mapError(storeError("removeAll"))
        )
  })

  // -- sweep

  const skipVanished = <A>(fallback: A) => Effect.catchIf(isNotFound, () => Effect.succeed(fallback))

  // Under the key's lock, what the core's `settlement` says: a marker in a
  // minute that ended mostly leads to a session that expired, so it is
  // locked at once; one written again since (or a marker a crash left
  // alone) costs the same lock and read. A busy key waits for the next sweep.
  const settle = (key: StorageKey, filed: number | undefined) =>
    locked(
      key,
      Effect.gen(function*() {
        const unfile = filed === undefined ? Effect.void : removeExpiryMarker(filed, key)
        const read = yield* readRecord(key).pipe(Effect.either)
        if (read._tag === "Left" && read.left._tag !== "CorruptRecord") return yield* Effect.fail(read.left)
        const record = read._tag === "Left" ? "corrupt" as const : Option.getOrUndefined(read.right)
        switch (Files.settlement(record === "corrupt" ? record : record && toFileRecord(record), yield* now)) {
          case "deleteCorrupt":
            yield* Effect.logWarning(`${name} store: removing unreadable file`, (read as { left: CorruptRecord }).left.message)
            yield* fs.remove(path.join(directory, key), { force: true })
            break
          case "refile": {
            const bucket = Files.expiryBucketOf((record as Record).expiresAt)
            yield* writeMarker(bucketDirectory(bucket), key)
            if (filed !== undefined && filed !== bucket) yield* removeExpiryMarker(filed, key)
            return 0
          }
          case "delete":
            yield* deleteRecord(key, Option.some(record as Record))
            yield* unfile
            return 1
        }
        yield* unfile
        return 0
      })
    ).pipe(Effect.catchIf((e) => e instanceof FileLock.LockTimeout, () => Effect.succeed(0)))

  // One session the sweep cannot settle (unreadable for the file system,
  // busy beyond the lock timeout) is logged and left for the next sweep.
  const settleEach = (keys: ReadonlyArray<string>, filed: (key: StorageKey) => Effect.Effect<number, unknown>) =>
    Effect.map(
      Effect.forEach(keys, (n) =>
        filed(unsafeStorageKey(n)).pipe(Effect.catchAll((error: unknown) =>
          Effect.as(
            Effect.logWarning(`${name} store: could not sweep session ${Files.shortKey(n)}`, redact(String(error))),
            0
          )
        )), { concurrency: 8 }),
      sum
    )

  const sweepBucket = (bucket: number, t: number) =>
    Effect.gen(function*() {
      const dir = bucketDirectory(bucket)
      const names = yield* fs.readDirectory(dir).pipe(skipVanished([] as Array<string>))
      const removed = yield* settleEach(names.filter(Files.isStorageKeyName), (key) => settle(key, bucket))
      if (Files.isRemovableBucket(names.length, bucket, t)) yield* fs.remove(dir, { recursive: true })
      return removed
    })

  // One listing of the directory, names only: leftovers of crashed writers
  // (temp files, stale locks), the session count for `maxSessions`, and once,
  // for a directory written without the expiry index (or whose index was
  // lost), every session read and filed or removed; the flag then saves the
  // next sweeps that pass.
  const sweepTopLevel = (indexed: boolean) =>
    Effect.gen(function*() {
      const names = yield* fs.readDirectory(directory)
      const sessions = names.filter(Files.isStorageKeyName)
      sessionCount = sessions.length
      yield* Effect.forEach(names, (entry) => {
        const file = path.join(directory, entry)
        switch (Files.topLevelEntry(entry)) {
          case "temporary":
            return Effect.zipWith(fs.stat(file), FileLock.wallNow, (info, t) =>
              Files.isLeftover(Option.getOrUndefined(info.mtime)?.getTime(), t, lockStaleAfter)).pipe(
                Effect.flatMap((old) => old ? fs.remove(file, { force: true }) : Effect.void),
                skipVanished(undefined)
              )
          case "lock":
            return Effect.asVoid(skipVanished(false)(lock.removeIfStale(file)))
          default:
            return Effect.void
        }
      }, { concurrency: 8, discard: true })
      if (indexed) return 0
      const removed = yield* settleEach(sessions, (key) =>
        Effect.flatMap(Effect.either(readRecord(key)), (seen) =>
          Effect.flatMap(now, (t) => {
            const fresh = seen._tag === "Right" ? live(seen.right, t) : Option.none()
            return Option.isSome(fresh)
              ? Effect.as(writeMarker(bucketDirectory(Files.expiryBucketOf(fresh.value.expiresAt)), key), 0)
              : settle(key, undefined)
          })))
      yield* fs.writeFile(indexedFlagFile, new Uint8Array(0), { mode: 0o600 })
      return removed
    })

  let listedAt = Number.NEGATIVE_INFINITY
  const sweep: Effect.Effect<number, SessionStoreError> = Effect.gen(function*() {
    const indexed = yield* fs.exists(indexedFlagFile)
    const t = yield* now
    let removed = 0
    if (Files.isListingDue(indexed, maxSessions !== undefined, t, listedAt)) {
      removed = yield* sweepTopLevel(indexed)
      listedAt = t
    }
    const minutes = yield* fs.readDirectory(expiry).pipe(skipVanished([] as Array<string>))
    for (const bucket of Files.endedBuckets(minutes, t)) removed += yield* sweepBucket(bucket, t)
    return removed
  }).pipe(Effect.mapError(storeError("cleanup")))

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
