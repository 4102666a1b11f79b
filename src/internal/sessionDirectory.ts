/**
 * The file-system store's directory through `@effect/platform`'s
 * `FileSystem`: session files read and written atomically, the lock per
 * key, and the expiry and principal indexes of empty marker files kept in
 * the order the core (`core/files.ts`) prescribes. `FileSystemStore` builds
 * its operations on this, `fileSweep` its sweep.
 *
 * @internal
 */
import type { FileSystem, Path } from "@effect/platform"
import type { PlatformError } from "@effect/platform/Error"
import { Data, Effect, Option } from "effect"
import * as Files from "../core/files.js"
import type { StorageKey } from "../SessionId.js"
import { unsafeStorageKey } from "../SessionId.js"
import type { SessionRecord } from "../SessionStore.js"
import * as FileLock from "./fileLock.js"

// Errors hold a key's first characters only: a logger may print their fields.

/** @internal */
export class InvalidStorageKey extends Data.TaggedError("InvalidStorageKey")<{ readonly keyPrefix: string }> {
  override get message(): string {
    return Files.invalidKeyMessage(this.keyPrefix)
  }
}

/** @internal */
export class CorruptRecord extends Data.TaggedError("CorruptRecord")<{ readonly keyPrefix: string; readonly detail: string }> {
  override get message(): string {
    return Files.corruptRecordMessage(this.keyPrefix, this.detail)
  }
}

/** @internal */
export const isNotFound = FileLock.isSystemError("NotFound")

type Record = SessionRecord
const toFileRecord = (r: Record): Files.FileRecord => ({ ...r, principal: Option.getOrUndefined(r.principal) })

/** @internal */
export interface DirectoryOptions {
  readonly directory: string
  readonly fsync: boolean
  readonly lockStaleAfter: number
  readonly lockTimeout: number
}

/** @internal */
export type SessionDirectory = ReturnType<typeof make>

/**
 * The directory's file handling. `sessions.count` is the number of session
 * files as far as this process knows: set by whoever lists the directory,
 * followed by this process's creations and removals.
 *
 * @internal
 */
export const make = (fs: FileSystem.FileSystem, path: Path.Path, options: DirectoryOptions) => {
  const { directory, fsync } = options
  const principals = path.join(directory, Files.principalsDirectory)
  const expiry = path.join(directory, Files.expiryDirectory)
  const lock = FileLock.make(fs, path, {
    staleAfterMillis: options.lockStaleAfter,
    timeoutMillis: options.lockTimeout,
    redact: Files.redact
  })
  const now = Effect.clockWith((clock) => clock.currentTimeMillis)
  const sessions = { count: 0 }
  const setup = Effect.all([
    fs.makeDirectory(principals, { recursive: true, mode: 0o700 }),
    fs.makeDirectory(expiry, { recursive: true, mode: 0o700 })
  ])
  const sessionNames = Effect.map(fs.readDirectory(directory), (names) => names.filter(Files.isStorageKeyName))
  const removeFile = (key: StorageKey) => fs.remove(path.join(directory, key), { force: true })

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
      if (plan.created) sessions.count++
      if (plan.removePrincipal !== undefined) yield* removePrincipalMarker(plan.removePrincipal, key, true)
      if (plan.removeExpiry !== undefined) yield* removeExpiryMarker(plan.removeExpiry, key)
    })

  const deleteRecord = (key: StorageKey, previous: Option.Option<Record>, tidy = true) =>
    Effect.gen(function*() {
      yield* removeFile(key)
      if (Option.isNone(previous)) return
      sessions.count--
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
  const compareAndWrite = <A, E>(
    key: StorageKey,
    decide: (previous: Option.Option<Record>, now: number) => Option.Option<A>,
    write: (previous: Option.Option<Record>, now: number) => Effect.Effect<A, E>
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

  const boundTo = (principal: string) => (record: Option.Option<Record>) =>
    Option.exists(record, (r) => Option.contains(r.principal, principal))

  // `removeAll`'s step for one marked key; 1 when a live session went
  const revoke = (key: StorageKey, principal: string) =>
    locked(
      key,
      Effect.gen(function*() {
        // revoking errs on the safe side: an unreadable session marked for this principal goes too
        const record = yield* readRecord(key).pipe(Effect.catchTag("CorruptRecord", (e) =>
          Effect.as(
            Effect.zipRight(Effect.logWarning(e.message), removeFile(key)),
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
    )

  const markedKeys = (principal: string): Effect.Effect<ReadonlyArray<StorageKey>, PlatformError> =>
    fs.readDirectory(markerDirectory(principal)).pipe(
      Effect.map((names) => names.filter(Files.isStorageKeyName).map(unsafeStorageKey)),
      Effect.catchIf(isNotFound, () => Effect.succeed([]))
    )

  return {
    directory,
    expiry,
    indexedFlagFile: path.join(expiry, Files.indexedFlag),
    lock,
    now,
    sessions,
    setup,
    sessionNames,
    fileOf,
    readRecord,
    live,
    liveRecord,
    orGone,
    locked,
    compareAndWrite,
    boundTo,
    revoke,
    writeRecord,
    deleteRecord,
    removeFile,
    markedKeys,
    removePrincipalMarker,
    removeIfEmpty,
    writeMarker,
    bucketDirectory,
    removeExpiryMarker
  }
}
