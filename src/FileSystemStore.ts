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
import { createHash } from "node:crypto"
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

const keyPattern = /^[A-Za-z0-9_-]{43}$/
const bucketPattern = /^-?\d+$/
const principalsDirectory = "principals"
const expiryDirectory = "expiry"
// present once every session file of the directory has its expiry marker
const indexedFlag = ".indexed"

// The expiry index files a session under the minute it expires in:
// expiry/<floor(expiresAt / bucketWidth)>/<storageKey>. The sweep lists
// only the minutes that ended, so it reads the sessions that expired and
// not the others.
const bucketWidth = 60_000
const bucketOf = (expiresAt: number): number => Math.floor(expiresAt / bucketWidth)

/** What logs and errors show of a storage key: its first 8 characters, as spans do. */
const shortKey = (key: string): string => `${key.slice(0, 8)}…`

// Storage keys and principal hashes are the only 43-character base64url
// runs in this store's paths; every path or system message is cut down with
// this before it reaches a log line or an error.
const redact = (text: string): string => text.replace(/[A-Za-z0-9_-]{43}/g, shortKey)

// Errors hold a key's first characters only: a logger may print their fields.
class InvalidStorageKey extends Data.TaggedError("InvalidStorageKey")<{ readonly keyPrefix: string }> {
  override get message(): string {
    return `refusing a storage key that is not 43 base64url characters (${JSON.stringify(this.keyPrefix)}…)`
  }
}

class CorruptRecord extends Data.TaggedError("CorruptRecord")<{ readonly keyPrefix: string; readonly detail: string }> {
  override get message(): string {
    return `session file ${this.keyPrefix}… is not readable: ${this.detail}`
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
    return this.anonymous
      ? `the directory holds ${this.sessions} sessions; sessions without a principal are refused from 90% of maxSessions (${this.maxSessions})`
      : `the directory holds ${this.sessions} sessions, maxSessions is ${this.maxSessions}`
  }
}

// File layout: magic "ESS", format byte 1, float64 version, float64
// expiresAt, int32 principal length in bytes (-1 when absent), the principal
// as UTF-8, then the data bytes up to the end of the file.
const magic = [0x45, 0x53, 0x53, 0x01] as const
const fixedHeaderSize = 4 + 8 + 8 + 4
const encoder = new TextEncoder()
const decoder = new TextDecoder("utf-8", { fatal: true })

const encodeRecord = (record: SessionStore.SessionRecord): Uint8Array => {
  const principal = Option.map(record.principal, (p) => encoder.encode(p))
  const principalLength = Option.match(principal, { onNone: () => 0, onSome: (p) => p.length })
  const bytes = new Uint8Array(fixedHeaderSize + principalLength + record.data.length)
  const view = new DataView(bytes.buffer)
  bytes.set(magic, 0)
  view.setFloat64(4, record.version)
  view.setFloat64(12, record.expiresAt)
  view.setInt32(20, Option.isSome(principal) ? principalLength : -1)
  if (Option.isSome(principal)) bytes.set(principal.value, fixedHeaderSize)
  bytes.set(record.data, fixedHeaderSize + principalLength)
  return bytes
}

const decodeRecord = (bytes: Uint8Array, key: string): Effect.Effect<SessionStore.SessionRecord, CorruptRecord> => {
  const corrupt = (detail: string) => Effect.fail(new CorruptRecord({ keyPrefix: key.slice(0, 8), detail }))
  if (bytes.length < fixedHeaderSize) return corrupt(`${bytes.length} bytes is shorter than the header`)
  if (magic.some((byte, i) => bytes[i] !== byte)) return corrupt("unknown format")
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  const version = view.getFloat64(4)
  const expiresAt = view.getFloat64(12)
  const principalLength = view.getInt32(20)
  if (!Number.isSafeInteger(version) || version < 1 || !Number.isFinite(expiresAt)) return corrupt("bad header")
  if (principalLength < -1 || fixedHeaderSize + Math.max(principalLength, 0) > bytes.length) {
    return corrupt("bad principal length")
  }
  const dataStart = fixedHeaderSize + Math.max(principalLength, 0)
  let principal: Option.Option<string> = Option.none()
  if (principalLength >= 0) {
    try {
      principal = Option.some(decoder.decode(bytes.subarray(fixedHeaderSize, dataStart)))
    } catch {
      return corrupt("principal is not UTF-8")
    }
  }
  // a copy, so the record does not pin (or alias) the read buffer
  return Effect.succeed({ data: new Uint8Array(bytes.subarray(dataStart)), version, expiresAt, principal })
}

const principalDirectoryName = (principal: string): string =>
  createHash("sha256").update(principal).digest("base64url")

const isNotFound = FileLock.isSystemError("NotFound")
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
  const directory = path.resolve(options.directory)
  const principals = path.join(directory, principalsDirectory)
  const expiry = path.join(directory, expiryDirectory)
  const lockStaleAfter = Duration.toMillis(Duration.decode(options.lockStaleAfter ?? "10 seconds"))
  const lockTimeout = Duration.toMillis(Duration.decode(options.lockTimeout ?? "5 seconds"))
  const fsync = options.fsync ?? true
  const maxSessions = options.maxSessions
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

  const indexedFlagFile = path.join(expiry, indexedFlag)

  // Sessions in the directory, as far as this process knows (see `maxSessions`).
  let sessionCount = maxSessions === undefined ? 0 : yield* fs.readDirectory(directory).pipe(
    Effect.map((names) => names.filter((n) => keyPattern.test(n)).length),
    Effect.mapError(storeError("setup"))
  )

  interface KeyPaths {
    readonly file: string
    readonly lock: string
  }
  // The only place a path is built from a key: nothing reaches the file
  // system unless the key is exactly 43 base64url characters.
  const keyPaths = (key: StorageKey): Effect.Effect<KeyPaths, InvalidStorageKey> =>
    typeof key === "string" && keyPattern.test(key)
      ? Effect.succeed({ file: path.join(directory, key), lock: path.join(directory, `${key}.lock`) })
      : Effect.fail(new InvalidStorageKey({ keyPrefix: String(key).slice(0, 8) }))

  const markerDirectory = (principalDir: string) => path.join(principals, principalDir)
  const bucketDirectory = (bucket: number) => path.join(expiry, String(bucket))

  const readRecord = (
    key: StorageKey,
    file: string
  ): Effect.Effect<Option.Option<SessionStore.SessionRecord>, PlatformError | CorruptRecord> =>
    fs.readFile(file).pipe(
      Effect.flatMap((bytes) => decodeRecord(bytes, key)),
      Effect.map(Option.some),
      Effect.catchIf(isNotFound, () => Effect.succeed(Option.none()))
    )

  const live = (record: Option.Option<SessionStore.SessionRecord>, now: number) =>
    Option.filter(record, (r) => r.expiresAt > now)

  const writeAtomically = (target: string, bytes: Uint8Array): Effect.Effect<void, PlatformError> => {
    const temporary = path.join(directory, `.${path.basename(target)}.${FileLock.uniqueSuffix()}.tmp`)
    const write = fsync
      ? Effect.scoped(
        Effect.flatMap(
          fs.open(temporary, { flag: "wx", mode: 0o600 }),
          (file) => Effect.zipRight(file.writeAll(bytes), file.sync)
        )
      )
      : fs.writeFile(temporary, bytes, { flag: "wx", mode: 0o600 })
    return Effect.zipRight(write, fs.rename(temporary, target)).pipe(
      // the write's own error is the one reported; a temp file that cannot be
      // removed now is an orphan the sweep deletes later
      Effect.onError(() => Effect.ignore(fs.remove(temporary, { force: true })))
    )
  }

  // Fibers of this process queue on a semaphore per lock, so the lock file
  // is contended (and polled) only between processes.
  const mutexes = new Map<string, { readonly semaphore: Effect.Semaphore; users: number }>()
  const withMutex = <A, E, R>(id: string, effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
    Effect.suspend(() => {
      let entry = mutexes.get(id)
      if (entry === undefined) {
        entry = { semaphore: Effect.unsafeMakeSemaphore(1), users: 0 }
        mutexes.set(id, entry)
      }
      const held = entry
      held.users++
      return held.semaphore.withPermits(1)(effect).pipe(
        Effect.ensuring(Effect.sync(() => {
          if (--held.users === 0) mutexes.delete(id)
        }))
      )
    })

  // -- expiry index

  const emptyFile = new Uint8Array(0)
  const writeEmpty = (dir: string, entry: string): Effect.Effect<void, PlatformError> => {
    const file = path.join(dir, entry)
    return fs.writeFile(file, emptyFile, { mode: 0o600 }).pipe(
      Effect.catchIf(isNotFound, () =>
        Effect.zipRight(
          fs.makeDirectory(dir, { recursive: true, mode: 0o700 }),
          fs.writeFile(file, emptyFile, { mode: 0o600 })
        ))
    )
  }

  const addExpiryMarker = (bucket: number, key: StorageKey) => writeEmpty(bucketDirectory(bucket), key)
  const removeExpiryMarker = (bucket: number, key: StorageKey) =>
    fs.remove(path.join(bucketDirectory(bucket), key), { force: true })

  // A record is filed under the minute it expires in, or the current minute
  // when that one has already ended: the sweep removes a minute's directory
  // once it has ended, so nothing is filed there afterwards.
  const fileBucket = (expiresAt: number, now: number) => Math.max(bucketOf(expiresAt), bucketOf(now))

  // -- principal index

  // Adding a principal's first marker creates its directory, and removing
  // the last one deletes it: both hold the principal's lock file, so a
  // directory is never deleted with a marker just written into it.
  const withPrincipalLock = <A, E, R>(principalDir: string, effect: Effect.Effect<A, E, R>) =>
    withMutex(principalDir, lock.withLock(path.join(principals, `${principalDir}.lock`), effect))

  const addPrincipalMarker = (principal: string, key: StorageKey) => {
    const principalDir = principalDirectoryName(principal)
    return withPrincipalLock(principalDir, writeEmpty(markerDirectory(principalDir), key))
  }

  const removeIfEmpty = (principalDir: string): Effect.Effect<void> => {
    const dir = markerDirectory(principalDir)
    const empty = Effect.map(fs.readDirectory(dir), (names) => names.length === 0)
    return Effect.flatMap(empty, (isEmpty) =>
      isEmpty
        ? withPrincipalLock(
          principalDir,
          Effect.flatMap(empty, (stillEmpty) => stillEmpty ? fs.remove(dir, { recursive: true }) : Effect.void)
        )
        : Effect.void).pipe(
        // a directory left now (busy, gone, unreadable) is tried again with
        // the principal's next removal; the session's own operation stands
        Effect.catchAll(() => Effect.void)
      )
  }

  // `tidy`: look whether the directory is left empty (a listing of it);
  // `removeAll` looks once, after its last marker.
  const removePrincipalMarker = (principal: string, key: StorageKey, tidy: boolean) => {
    const principalDir = principalDirectoryName(principal)
    const remove = fs.remove(path.join(markerDirectory(principalDir), key), { force: true })
    return tidy ? Effect.zipRight(remove, removeIfEmpty(principalDir)) : remove
  }

  // Markers are written before the session file and removed after it, so
  // every session with a principal is listed under it, and every session
  // file is filed under a minute no later than the one it expires in (or
  // the minute it was written in). A marker without its session (a crash
  // between the steps) is ignored by `keys`; the sweep removes an expiry
  // marker, `removeAll` a principal's.
  const writeRecord = (
    key: StorageKey,
    paths: KeyPaths,
    previous: Option.Option<SessionStore.SessionRecord>,
    record: SessionStore.SessionRecord,
    now: number
  ) =>
    Effect.gen(function*() {
      const previousPrincipal = Option.flatMap(previous, (r) => r.principal)
      const previousBucket = Option.map(previous, (r) => bucketOf(r.expiresAt))
      const bucket = fileBucket(record.expiresAt, now)
      if (!Option.contains(previousBucket, bucket)) yield* addExpiryMarker(bucket, key)
      // a stored session with the same principal already has its marker
      if (Option.isSome(record.principal) && !Option.contains(previousPrincipal, record.principal.value)) {
        yield* addPrincipalMarker(record.principal.value, key)
      }
      yield* writeAtomically(paths.file, encodeRecord(record))
      if (Option.isNone(previous)) sessionCount++
      if (Option.isSome(previousPrincipal) && !Option.contains(record.principal, previousPrincipal.value)) {
        yield* removePrincipalMarker(previousPrincipal.value, key, true)
      }
      if (Option.isSome(previousBucket) && previousBucket.value !== bucket) {
        yield* removeExpiryMarker(previousBucket.value, key)
      }
    })

  const deleteRecord = (
    key: StorageKey,
    paths: KeyPaths,
    previous: Option.Option<SessionStore.SessionRecord>,
    tidy = true
  ) =>
    Effect.gen(function*() {
      yield* fs.remove(paths.file, { force: true })
      if (Option.isNone(previous)) return
      sessionCount--
      if (Option.isSome(previous.value.principal)) {
        yield* removePrincipalMarker(previous.value.principal.value, key, tidy)
      }
      yield* removeExpiryMarker(bucketOf(previous.value.expiresAt), key)
    })

  // The body under the lock is uninterruptible: an interrupted rename still
  // completes in the background, and must not land after the lock is released.
  const locked = <A, E, R>(key: StorageKey, body: (paths: KeyPaths) => Effect.Effect<A, E, R>) =>
    Effect.flatMap(
      keyPaths(key),
      (paths) => withMutex(key, lock.withLock(paths.lock, Effect.uninterruptible(body(paths))))
    )

  // Files are replaced by rename, so a read without the lock sees one whole
  // version. An outcome that writes nothing (a conflict, a missing record)
  // is decided from such a read; only a write takes the lock, and decides
  // again under it. This keeps losers of a compare-and-set race off the lock.
  const compareAndWrite = <A>(
    key: StorageKey,
    decide: (previous: Option.Option<SessionStore.SessionRecord>, now: number) => Option.Option<A>,
    write: (
      paths: KeyPaths,
      previous: Option.Option<SessionStore.SessionRecord>,
      now: number
    ) => Effect.Effect<A, PlatformError | FileLock.LockTimeout | StoreFull>
  ) =>
    Effect.flatMap(keyPaths(key), (paths) => {
      const readAndDecide = Effect.zipWith(
        readRecord(key, paths.file),
        now,
        (previous, t) => [previous, t, decide(previous, t)] as const
      )
      return Effect.flatMap(readAndDecide, ([, , early]) =>
        Option.isSome(early)
          ? Effect.succeed(early.value)
          : locked(key, () =>
            Effect.flatMap(readAndDecide, ([previous, t, outcome]) =>
              Option.isSome(outcome) ? Effect.succeed(outcome.value) : write(paths, previous, t))))
    })

  // Only a new file counts against the cap; replacing an expired one does not.
  const checkCapacity = (write: SessionStore.SessionWrite, previous: Option.Option<SessionStore.SessionRecord>) => {
    if (maxSessions === undefined || Option.isSome(previous)) return Effect.void
    const anonymous = Option.isNone(write.principal)
    const limit = anonymous ? Math.floor(maxSessions * 0.9) : maxSessions
    return sessionCount >= limit
      ? Effect.fail(new StoreFull({ sessions: sessionCount, maxSessions, anonymous }))
      : Effect.void
  }

  const store = SessionStore.make(name, {
    load: (key) =>
      Effect.flatMap(
        keyPaths(key),
        (paths) => Effect.zipWith(readRecord(key, paths.file), now, live)
      ).pipe(Effect.mapError(storeError("load"))),

    insert: (key, write) =>
      compareAndWrite(
        key,
        (previous, t) => Option.isSome(live(previous, t)) ? Option.some(false) : Option.none(),
        (paths, previous, t) =>
          Effect.zipRight(
            checkCapacity(write, previous),
            Effect.as(writeRecord(key, paths, previous, { ...write, version: 1 }, t), true)
          )
      ).pipe(
        Effect.mapError(storeError("insert")),
        Effect.flatMap((written) => written ? Effect.void : Effect.fail(new SessionConflict({ reason: "Exists" })))
      ),

    update: (key, write, expectedVersion) =>
      compareAndWrite<number | "Missing" | "VersionMismatch">(
        key,
        (previous, t) => {
          const current = live(previous, t)
          if (Option.isNone(current)) return Option.some("Missing")
          return current.value.version !== expectedVersion ? Option.some("VersionMismatch") : Option.none()
        },
        (paths, previous, t) => {
          const version = expectedVersion + 1
          return Effect.as(writeRecord(key, paths, previous, { ...write, version }, t), version)
        }
      ).pipe(
        Effect.mapError(storeError("update")),
        Effect.flatMap((outcome) =>
          typeof outcome === "number" ? Effect.succeed(outcome) : Effect.fail(new SessionConflict({ reason: outcome }))
        )
      ),

    touch: (key, expiresAt) =>
      compareAndWrite(
        key,
        (previous, t) => Option.isNone(live(previous, t)) ? Option.some(false) : Option.none(),
        (paths, previous, t) =>
          Option.match(previous, {
            onNone: () => Effect.succeed(false),
            onSome: (record) => Effect.as(writeRecord(key, paths, previous, { ...record, expiresAt }, t), true)
          })
      ).pipe(Effect.mapError(storeError("touch"))),

    remove: (key) =>
      locked(key, (paths) =>
        readRecord(key, paths.file).pipe(
          // an unreadable file is removed all the same: corruption must not
          // make a session unremovable (its markers are left to the sweep)
          Effect.catchTag("CorruptRecord", (e) => Effect.as(Effect.logWarning(e.message), Option.none())),
          Effect.flatMap((previous) => deleteRecord(key, paths, previous))
        )).pipe(Effect.mapError(storeError("remove")))
  })

  const markedKeys = (principal: string): Effect.Effect<ReadonlyArray<StorageKey>, PlatformError> =>
    fs.readDirectory(markerDirectory(principalDirectoryName(principal))).pipe(
      Effect.map((names) => names.filter((n) => keyPattern.test(n)).map(unsafeStorageKey)),
      Effect.catchIf(isNotFound, () => Effect.succeed([]))
    )

  // `keys` and `removeAll` read the principal's own sessions (one small file
  // each), never the rest of the directory: a marker says only that a
  // session was bound to the principal when it was written, the file says
  // whether it still is and until when.
  const index = SessionStore.makeIndex(name, {
    keys: (principal) =>
      Effect.flatMap(markedKeys(principal), (keys) =>
        Effect.filter(
          keys,
          (key) =>
            Effect.flatMap(keyPaths(key), (paths) => Effect.zipWith(readRecord(key, paths.file), now, live)).pipe(
              Effect.map((record) => Option.exists(record, (r) => Option.contains(r.principal, principal))),
              // an unreadable session cannot be loaded, so it is not listed (the sweep deletes it)
              Effect.catchTag("CorruptRecord", (e) => Effect.as(Effect.logWarning(e.message), false))
            ),
          { concurrency: 16 }
        )).pipe(Effect.mapError(storeError("keys"))),

    removeAll: (principal) =>
      Effect.flatMap(markedKeys(principal), (keys) =>
        Effect.forEach(
          keys,
          (key) =>
            locked(key, (paths) =>
              Effect.gen(function*() {
                // revoking errs on the safe side: an unreadable session marked for this principal goes too
                const record = yield* readRecord(key, paths.file).pipe(
                  Effect.catchTag("CorruptRecord", (e) =>
                    Effect.as(
                      Effect.zipRight(Effect.logWarning(e.message), fs.remove(paths.file, { force: true })),
                      Option.none()
                    ))
                )
                const t = yield* now
                if (Option.exists(record, (r) => Option.contains(r.principal, principal))) {
                  yield* deleteRecord(key, paths, record, false)
                  return Option.exists(record, (r) => r.expiresAt > t) ? 1 : 0
                }
                // the session moved to another principal or is gone: only the marker is stale
                yield* removePrincipalMarker(principal, key, false)
                return 0
              })),
          { concurrency: 16 }
        )).pipe(
          Effect.tap(() => removeIfEmpty(principalDirectoryName(principal))),
          Effect.map((removed) => removed.reduce<number>((a, b) => a + b, 0)),
          Effect.mapError(storeError("removeAll"))
        )
  })

  // -- sweep

  const leftoverAfter = Math.max(lockStaleAfter, 60_000)
  const listingInterval = 60 * 60_000

  const isLockTimeout = (e: unknown) => e instanceof FileLock.LockTimeout
  const skipBusy = <A>(fallback: A) => Effect.catchIf(isLockTimeout, () => Effect.succeed(fallback))
  const skipVanished = <A>(fallback: A) => Effect.catchIf(isNotFound, () => Effect.succeed(fallback))

  // Files a live session under the minute it now expires in, and drops the
  // marker `filed` that led here unless it is that one.
  const refile = (key: StorageKey, expiresAt: number, filed: Option.Option<number>) => {
    const bucket = bucketOf(expiresAt)
    return Effect.zipRight(
      addExpiryMarker(bucket, key),
      Option.isSome(filed) && filed.value !== bucket ? removeExpiryMarker(filed.value, key) : Effect.void
    )
  }

  // Under the key's lock: removes the session if it expired (or cannot be
  // read) with the marker `filed` that led here, or files it again if it
  // is live. A marker in a minute that ended mostly leads to a session that
  // expired, so it is locked at once; one written again since (or a marker
  // a crash left alone) costs the same lock and read.
  const settle = (key: StorageKey, filed: Option.Option<number>) =>
    locked(key, (paths) =>
      Effect.gen(function*() {
        const unfile = Option.isSome(filed) ? removeExpiryMarker(filed.value, key) : Effect.void
        const record = yield* readRecord(key, paths.file).pipe(Effect.either)
        if (record._tag === "Left") {
          if (record.left._tag !== "CorruptRecord") return yield* Effect.fail(record.left)
          yield* Effect.logWarning(`${name} store: removing unreadable file`, record.left.message)
          yield* fs.remove(paths.file, { force: true })
          yield* unfile
          return 0
        }
        if (Option.isNone(record.right)) {
          yield* unfile
          return 0
        }
        if (record.right.value.expiresAt > (yield* now)) {
          yield* refile(key, record.right.value.expiresAt, filed)
          return 0
        }
        yield* deleteRecord(key, paths, record.right)
        yield* unfile
        return 1
      })).pipe(skipBusy(0))

  // One session the sweep cannot settle (unreadable for the file system,
  // busy beyond the lock timeout) is logged and left for the next sweep.
  const orSkip = (key: StorageKey) =>
    Effect.catchAll((error: unknown) =>
      Effect.as(
        Effect.logWarning(`${name} store: could not sweep session ${shortKey(key)}`, redact(String(error))),
        0
      )
    )

  const sweepBucket = (bucket: number, current: number) =>
    Effect.gen(function*() {
      const dir = bucketDirectory(bucket)
      const names = yield* fs.readDirectory(dir).pipe(skipVanished([] as Array<string>))
      const removed = yield* Effect.forEach(
        names.filter((n) => keyPattern.test(n)),
        (n) => settle(unsafeStorageKey(n), Option.some(bucket)).pipe(orSkip(unsafeStorageKey(n))),
        { concurrency: 8 }
      )
      // A writer reads the clock before it files a session, so it may still
      // file one under the minute that just ended: that minute's directory
      // is deleted by the next sweep, once it is empty.
      if (names.length === 0 && bucket < current - 1) yield* fs.remove(dir, { recursive: true })
      return removed.reduce<number>((a, b) => a + b, 0)
    })

  const sweepLeftover = (file: string) =>
    Effect.gen(function*() {
      const info = yield* fs.stat(file)
      const mtime = Option.getOrUndefined(info.mtime)
      // temp files are written under the key's lock, so one older than any
      // lock could be held is an orphan of a crashed writer
      if (mtime !== undefined && (yield* FileLock.wallNow) - mtime.getTime() > leftoverAfter) {
        yield* fs.remove(file, { force: true })
      }
    }).pipe(skipVanished(undefined))

  // One listing of the directory, names only: leftovers of crashed writers
  // (temp files, stale locks) and the session count for `maxSessions`. It
  // grows with the directory (about 0.2 s per 100,000 names on a busy
  // machine), so without `maxSessions` it runs on the first sweep and then
  // at most hourly: leftovers come only from crashes.
  const sweepTopLevel = (indexed: boolean) =>
    Effect.gen(function*() {
      const names = yield* fs.readDirectory(directory)
      const sessions = names.filter((n) => keyPattern.test(n))
      sessionCount = sessions.length
      yield* Effect.forEach(names, (entry) => {
        const file = path.join(directory, entry)
        if (entry.startsWith(".") && entry.endsWith(".tmp")) return sweepLeftover(file)
        if (entry.endsWith(".lock") || entry.endsWith(".lock.break")) {
          return Effect.asVoid(skipVanished(false)(lock.removeIfStale(file)))
        }
        return Effect.void
      }, { concurrency: 8, discard: true })
      if (indexed) return 0
      // A directory written by a version without the expiry index (or whose
      // index was lost): every session is read once, the expired and the
      // unreadable removed, the others filed; then the flag saves the next
      // sweeps this pass.
      const removed = yield* Effect.forEach(sessions, (n) =>
        Effect.gen(function*() {
          const key = unsafeStorageKey(n)
          const seen = yield* Effect.either(readRecord(key, path.join(directory, n)))
          if (seen._tag === "Right" && Option.isSome(seen.right) && seen.right.value.expiresAt > (yield* now)) {
            yield* addExpiryMarker(bucketOf(seen.right.value.expiresAt), key)
            return 0
          }
          return yield* settle(key, Option.none())
        }).pipe(orSkip(unsafeStorageKey(n))), { concurrency: 8 })
      yield* fs.writeFile(indexedFlagFile, emptyFile, { mode: 0o600 })
      return removed.reduce<number>((a, b) => a + b, 0)
    })

  let listedAt = Number.NEGATIVE_INFINITY
  const sweep: Effect.Effect<number, SessionStoreError> = Effect.gen(function*() {
    const indexed = yield* fs.exists(indexedFlagFile)
    const t = yield* now
    let migrated = 0
    if (!indexed || maxSessions !== undefined || t - listedAt >= listingInterval) {
      migrated = yield* sweepTopLevel(indexed)
      listedAt = t
    }
    const current = bucketOf(t)
    const buckets = yield* fs.readDirectory(expiry).pipe(skipVanished([] as Array<string>))
    const ended = buckets.filter((n) => bucketPattern.test(n)).map(Number).filter((b) => b < current).sort((a, b) =>
      a - b
    )
    let removed = migrated
    for (const bucket of ended) removed += yield* sweepBucket(bucket, current)
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
