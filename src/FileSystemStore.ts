/**
 * A store on the local file system, through `@effect/platform`'s
 * `FileSystem`: one file per session, written atomically (temp file +
 * rename), a lock file per key for compare-and-set across processes that
 * share the directory, expiry by `Clock`, a sweep fiber, and a principal
 * index of marker files. See `docs/stores/filesystem.md`.
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
import { Config, Data, Duration, Effect, Layer, Option } from "effect"
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
const principalsDirectory = "principals"

class InvalidStorageKey extends Data.TaggedError("InvalidStorageKey")<{ readonly key: string }> {
  override get message(): string {
    return `refusing a storage key that is not 43 base64url characters (${JSON.stringify(this.key.slice(0, 64))})`
  }
}

class CorruptRecord extends Data.TaggedError("CorruptRecord")<{ readonly path: string; readonly detail: string }> {
  override get message(): string {
    return `session file ${this.path} is not readable: ${this.detail}`
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

const decodeRecord = (bytes: Uint8Array, path: string): Effect.Effect<SessionStore.SessionRecord, CorruptRecord> => {
  const corrupt = (detail: string) => Effect.fail(new CorruptRecord({ path, detail }))
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
  const lockStaleAfter = Duration.toMillis(Duration.decode(options.lockStaleAfter ?? "10 seconds"))
  const lockTimeout = Duration.toMillis(Duration.decode(options.lockTimeout ?? "5 seconds"))
  const fsync = options.fsync ?? true
  const lock = FileLock.make(fs, path, { staleAfterMillis: lockStaleAfter, timeoutMillis: lockTimeout })

  const storeError = (operation: StoreOperation) => (cause: unknown) =>
    new SessionStoreError({ store: name, operation, cause })

  yield* fs.makeDirectory(principals, { recursive: true, mode: 0o700 }).pipe(
    Effect.mapError(storeError("setup"))
  )

  const now = Effect.clockWith((clock) => clock.currentTimeMillis)

  interface KeyPaths {
    readonly file: string
    readonly lock: string
  }
  // The only place a path is built from a key: nothing reaches the file
  // system unless the key is exactly 43 base64url characters.
  const keyPaths = (key: StorageKey): Effect.Effect<KeyPaths, InvalidStorageKey> =>
    typeof key === "string" && keyPattern.test(key)
      ? Effect.succeed({ file: path.join(directory, key), lock: path.join(directory, `${key}.lock`) })
      : Effect.fail(new InvalidStorageKey({ key: String(key) }))

  const markerDirectory = (principal: string) => path.join(principals, principalDirectoryName(principal))

  const readRecord = (
    file: string
  ): Effect.Effect<Option.Option<SessionStore.SessionRecord>, PlatformError | CorruptRecord> =>
    fs.readFile(file).pipe(
      Effect.flatMap((bytes) => decodeRecord(bytes, file)),
      Effect.map(Option.some),
      Effect.catchIf(isNotFound, () => Effect.succeed(Option.none()))
    )

  const readLive = (file: string) =>
    Effect.zipWith(readRecord(file), now, (record, t) => Option.filter(record, (r) => r.expiresAt > t))

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

  const addMarker = (principal: string, key: string): Effect.Effect<void, PlatformError> => {
    const dir = markerDirectory(principal)
    return fs.makeDirectory(dir, { recursive: true, mode: 0o700 }).pipe(
      Effect.zipRight(fs.writeFile(path.join(dir, key), new Uint8Array(0), { mode: 0o600 }))
    )
  }
  const removeMarker = (principal: string, key: string): Effect.Effect<void, PlatformError> =>
    fs.remove(path.join(markerDirectory(principal), key), { force: true })

  // The marker is written before the session file and removed after it, so
  // every live session with a principal is listed; a marker without its
  // session is ignored by `keys` and removed by the sweep.
  const writeRecord = (
    key: StorageKey,
    paths: KeyPaths,
    previous: Option.Option<SessionStore.SessionRecord>,
    record: SessionStore.SessionRecord
  ) =>
    Effect.gen(function*() {
      const previousPrincipal = Option.flatMap(previous, (r) => r.principal)
      // a stored session with the same principal already has its marker
      if (Option.isSome(record.principal) && !Option.contains(previousPrincipal, record.principal.value)) {
        yield* addMarker(record.principal.value, key)
      }
      yield* writeAtomically(paths.file, encodeRecord(record))
      if (Option.isSome(previousPrincipal) && !Option.contains(record.principal, previousPrincipal.value)) {
        yield* removeMarker(previousPrincipal.value, key)
      }
    })

  const deleteRecord = (key: StorageKey, paths: KeyPaths, previous: Option.Option<SessionStore.SessionRecord>) =>
    Effect.gen(function*() {
      yield* fs.remove(paths.file, { force: true })
      if (Option.isSome(previous) && Option.isSome(previous.value.principal)) {
        yield* removeMarker(previous.value.principal.value, key)
      }
    })

  // Fibers of this process queue on a semaphore per key, so the lock file is
  // contended (and polled) only between processes.
  const keyMutexes = new Map<string, { readonly semaphore: Effect.Semaphore; users: number }>()
  const withKeyMutex = <A, E, R>(key: string, effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
    Effect.suspend(() => {
      let entry = keyMutexes.get(key)
      if (entry === undefined) {
        entry = { semaphore: Effect.unsafeMakeSemaphore(1), users: 0 }
        keyMutexes.set(key, entry)
      }
      const held = entry
      held.users++
      return held.semaphore.withPermits(1)(effect).pipe(
        Effect.ensuring(Effect.sync(() => {
          if (--held.users === 0) keyMutexes.delete(key)
        }))
      )
    })

  // The body under the lock is uninterruptible: an interrupted rename still
  // completes in the background, and must not land after the lock is released.
  const locked = <A, E, R>(key: StorageKey, body: (paths: KeyPaths) => Effect.Effect<A, E, R>) =>
    Effect.flatMap(
      keyPaths(key),
      (paths) => withKeyMutex(key, lock.withLock(paths.lock, Effect.uninterruptible(body(paths))))
    )

  // Files are replaced by rename, so a read without the lock sees one whole
  // version. An outcome that writes nothing (a conflict, a missing record)
  // is decided from such a read; only a write takes the lock, and decides
  // again under it. This keeps losers of a compare-and-set race off the lock.
  const compareAndWrite = <A>(
    key: StorageKey,
    decide: (previous: Option.Option<SessionStore.SessionRecord>, now: number) => Option.Option<A>,
    write: (paths: KeyPaths, previous: Option.Option<SessionStore.SessionRecord>) => Effect.Effect<A, PlatformError>
  ) =>
    Effect.flatMap(keyPaths(key), (paths) => {
      const readAndDecide = Effect.zipWith(
        readRecord(paths.file),
        now,
        (previous, t) => [previous, decide(previous, t)] as const
      )
      return Effect.flatMap(readAndDecide, ([, early]) =>
        Option.isSome(early)
          ? Effect.succeed(early.value)
          : locked(key, () =>
            Effect.flatMap(readAndDecide, ([previous, outcome]) =>
              Option.isSome(outcome) ? Effect.succeed(outcome.value) : write(paths, previous))))
    })

  const live = (record: Option.Option<SessionStore.SessionRecord>, now: number) =>
    Option.filter(record, (r) => r.expiresAt > now)

  const store = SessionStore.make(name, {
    load: (key) =>
      Effect.flatMap(keyPaths(key), (paths) => readLive(paths.file)).pipe(Effect.mapError(storeError("load"))),

    insert: (key, write) =>
      compareAndWrite(
        key,
        (previous, t) => Option.isSome(live(previous, t)) ? Option.some(false) : Option.none(),
        (paths, previous) => Effect.as(writeRecord(key, paths, previous, { ...write, version: 1 }), true)
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
        (paths, previous) => {
          const version = expectedVersion + 1
          return Effect.as(writeRecord(key, paths, previous, { ...write, version }), version)
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
        (paths, previous) =>
          Option.match(previous, {
            onNone: () => Effect.succeed(false),
            onSome: (record) => Effect.as(writeAtomically(paths.file, encodeRecord({ ...record, expiresAt })), true)
          })
      ).pipe(Effect.mapError(storeError("touch"))),

    remove: (key) =>
      locked(key, (paths) =>
        readRecord(paths.file).pipe(
          // an unreadable file is removed all the same: corruption must not make a session unremovable
          Effect.catchTag("CorruptRecord", (e) => Effect.as(Effect.logWarning(e.message), Option.none())),
          Effect.flatMap((previous) => deleteRecord(key, paths, previous))
        )).pipe(Effect.mapError(storeError("remove")))
  })

  const markedKeys = (principal: string): Effect.Effect<ReadonlyArray<StorageKey>, PlatformError> =>
    fs.readDirectory(markerDirectory(principal)).pipe(
      Effect.map((names) => names.filter((n) => keyPattern.test(n)).map(unsafeStorageKey)),
      Effect.catchIf(isNotFound, () => Effect.succeed([]))
    )

  const index = SessionStore.makeIndex(name, {
    keys: (principal) =>
      Effect.flatMap(markedKeys(principal), (keys) =>
        Effect.filter(
          keys,
          (key) =>
            Effect.flatMap(keyPaths(key), (paths) => readLive(paths.file)).pipe(
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
                const record = yield* readRecord(paths.file).pipe(
                  Effect.catchTag("CorruptRecord", (e) =>
                    Effect.as(
                      Effect.zipRight(Effect.logWarning(e.message), fs.remove(paths.file, { force: true })),
                      Option.none()
                    ))
                )
                const t = yield* now
                if (Option.exists(record, (r) => Option.contains(r.principal, principal))) {
                  yield* deleteRecord(key, paths, record)
                  return Option.exists(record, (r) => r.expiresAt > t) ? 1 : 0
                }
                // the session moved to another principal or is gone: only the marker is stale
                yield* removeMarker(principal, key)
                return 0
              })),
          { concurrency: 16 }
        )).pipe(
          Effect.map((removed) => removed.reduce<number>((a, b) => a + b, 0)),
          Effect.mapError(storeError("removeAll"))
        )
  })

  // -- sweep

  const leftoverAfter = Math.max(lockStaleAfter, 60_000)

  const isLockTimeout = (e: unknown) => e instanceof FileLock.LockTimeout
  const skipBusy = <A>(fallback: A) => Effect.catchIf(isLockTimeout, () => Effect.succeed(fallback))
  const skipVanished = <A>(fallback: A) => Effect.catchIf(isNotFound, () => Effect.succeed(fallback))

  const needsSweep = (key: StorageKey) =>
    Effect.flatMap(keyPaths(key), (paths) =>
      Effect.zipWith(
        Effect.either(readRecord(paths.file)),
        now,
        (seen, t) => seen._tag === "Left" || Option.exists(seen.right, (r) => r.expiresAt <= t)
      ))

  const deleteIfExpired = (key: StorageKey) =>
    locked(key, (paths) =>
      Effect.gen(function*() {
        const record = yield* readRecord(paths.file).pipe(Effect.either)
        if (record._tag === "Left") {
          if (record.left._tag !== "CorruptRecord") return yield* Effect.fail(record.left)
          yield* Effect.logWarning(`${name} store: removing unreadable file`, record.left.message)
          yield* fs.remove(paths.file, { force: true })
          return 0
        }
        const t = yield* now
        if (Option.isNone(record.right) || record.right.value.expiresAt > t) return 0
        yield* deleteRecord(key, paths, record.right)
        return 1
      })).pipe(skipBusy(0))

  // Live sessions are recognised by a lock-free read; only the expired and
  // the unreadable are locked, read again and deleted.
  const sweepSession = (key: StorageKey) =>
    Effect.flatMap(needsSweep(key), (needed) => needed ? deleteIfExpired(key) : Effect.succeed(0))

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

  const readReadable = (file: string) =>
    readRecord(file).pipe(Effect.catchTag("CorruptRecord", () => Effect.succeed(Option.none())))

  const listedUnder = (record: Option.Option<SessionStore.SessionRecord>, principalDir: string) =>
    Option.exists(record, (r) => Option.exists(r.principal, (p) => principalDirectoryName(p) === principalDir))

  // A marker is removed only after its session, read again under the key's
  // lock, turns out to be gone or bound to another principal.
  const sweepMarker = (principalDir: string, key: StorageKey) =>
    Effect.gen(function*() {
      const paths = yield* keyPaths(key)
      if (listedUnder(yield* readReadable(paths.file), principalDir)) return
      yield* locked(key, () =>
        Effect.flatMap(readReadable(paths.file), (record) =>
          listedUnder(record, principalDir)
            ? Effect.void
            : fs.remove(path.join(principals, principalDir, key), { force: true })))
    }).pipe(skipBusy(undefined))

  const sweepPrincipals = Effect.gen(function*() {
    const dirs = yield* fs.readDirectory(principals).pipe(skipVanished([] as Array<string>))
    yield* Effect.forEach(dirs, (dir) =>
      fs.readDirectory(path.join(principals, dir)).pipe(
        skipVanished([] as Array<string>),
        Effect.flatMap((markers) =>
          Effect.forEach(
            markers.filter((m) => keyPattern.test(m)),
            (marker) => sweepMarker(dir, unsafeStorageKey(marker)),
            { concurrency: 8, discard: true }
          )
        )
      ), { discard: true })
  })

  const sweep: Effect.Effect<number, SessionStoreError> = Effect.gen(function*() {
    const names = yield* fs.readDirectory(directory)
    const removed = yield* Effect.forEach(names, (entry) => {
      const file = path.join(directory, entry)
      if (keyPattern.test(entry)) return sweepSession(unsafeStorageKey(entry))
      if (entry.startsWith(".") && entry.endsWith(".tmp")) return Effect.as(sweepLeftover(file), 0)
      if (entry.endsWith(".lock") || entry.endsWith(".lock.break")) {
        return Effect.as(skipVanished(false)(lock.removeIfStale(file)), 0)
      }
      return Effect.succeed(0)
    }, { concurrency: 8 })
    yield* sweepPrincipals
    return removed.reduce<number>((a, b) => a + b, 0)
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
