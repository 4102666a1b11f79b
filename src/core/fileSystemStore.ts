/**
 * The file-system store's operations without Effect, over `node:fs/promises`
 * (or any `FileOps`): session files read and replaced atomically, a lock
 * file per key for compare-and-set across processes sharing the directory,
 * the expiry and principal indexes kept in the order `files.ts` prescribes,
 * the `maxSessions` count and the sweep. A shell calls each operation with
 * the application's clock and turns its promise into an effect.
 *
 * Every operation that takes a key's lock finishes once it holds it (it
 * cannot be cancelled half-way: a rename must not land after the lock is
 * released); only the wait for the lock stops when the caller's signal
 * aborts.
 *
 * @internal
 */
import { randomInt } from "node:crypto"
import * as NodeFs from "node:fs/promises"
import { basename, dirname, join, resolve } from "node:path"
import * as Files from "./files.js"

// -- the file system

/**
 * The file system calls the store makes (`nodeFileOps`, or a shell's own
 * file system service), and how to read the errors they throw: a missing
 * file, and an exclusive create that met one, are outcomes the store
 * expects; any other error reaches the caller as it was thrown.
 *
 * @internal
 */
export interface FileOps {
  readonly failureKind: (error: unknown) => "NotFound" | "AlreadyExists" | undefined
  readonly readFile: (path: string) => Promise<Uint8Array>
  /** `exclusive`: fail with `EEXIST` when the file exists (`wx`). */
  readonly writeFile: (path: string, data: Uint8Array, options: { readonly exclusive: boolean; readonly mode: number }) => Promise<void>
  /** Creates the file exclusively, writes it and flushes it to disk before it resolves. */
  readonly writeFileSynced: (path: string, data: Uint8Array, mode: number) => Promise<void>
  readonly rename: (from: string, to: string) => Promise<void>
  readonly link: (existing: string, path: string) => Promise<void>
  /** Succeeds when nothing is there; `recursive` for a directory. */
  readonly remove: (path: string, options?: { readonly recursive: boolean }) => Promise<void>
  readonly makeDirectory: (path: string, mode: number) => Promise<void>
  readonly readDirectory: (path: string) => Promise<ReadonlyArray<string>>
  readonly stat: (path: string) => Promise<FileInfo>
}

/** What a lock or a leftover file is judged by; `undefined` where the platform cannot say. */
interface FileInfo {
  readonly ino: number | undefined
  readonly mtimeMs: number | undefined
}

const nodeCodes: { readonly [code: string]: "NotFound" | "AlreadyExists" } = { ENOENT: "NotFound", EEXIST: "AlreadyExists" }

/** @internal */
export const nodeFileOps: FileOps = {
  failureKind: (error) =>
    typeof error === "object" && error !== null && "code" in error && typeof error.code === "string"
      ? nodeCodes[error.code]
      : undefined,
  readFile: (path) => NodeFs.readFile(path),
  writeFile: (path, data, options) => NodeFs.writeFile(path, data, { flag: options.exclusive ? "wx" : "w", mode: options.mode }),
  writeFileSynced: async (path, data, mode) => {
    const file = await NodeFs.open(path, "wx", mode)
    try {
      await file.writeFile(data)
      await file.sync()
    } finally {
      await file.close()
    }
  },
  rename: (from, to) => NodeFs.rename(from, to),
  link: (existing, path) => NodeFs.link(existing, path),
  remove: (path, options) => NodeFs.rm(path, { force: true, recursive: options?.recursive ?? false }),
  makeDirectory: async (path, mode) => {
    await NodeFs.mkdir(path, { recursive: true, mode })
  },
  readDirectory: (path) => NodeFs.readdir(path),
  stat: async (path) => {
    const info = await NodeFs.stat(path)
    return { ino: info.ino, mtimeMs: info.mtimeMs }
  }
}


/** The expected failures of a `FileOps`. */
const expectedFailures = (fs: FileOps) => {
  const isNotFound = (error: unknown) => fs.failureKind(error) === "NotFound"
  return {
    isNotFound,
    isAlreadyExists: (error: unknown) => fs.failureKind(error) === "AlreadyExists",
    /** `fallback` when the file (or directory) is not there. */
    orIfMissing: async <A>(promise: Promise<A>, fallback: A): Promise<A> => {
      try {
        return await promise
      } catch (error) {
        if (isNotFound(error)) return fallback
        throw error
      }
    }
  }
}

/** Runs `f` over `items`, at most `limit` at a time, results in order. */
const forEachLimited = async <A, B>(
  items: ReadonlyArray<A>,
  limit: number,
  f: (item: A) => Promise<B>
): Promise<Array<B>> => {
  const results = new Array<B>(items.length)
  let next = 0
  const worker = async () => {
    while (next < items.length) {
      const i = next++
      results[i] = await f(items[i]!)
    }
  }
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker))
  return results
}

// -- errors (their fields hold a key's first characters only: a logger may print them)

/** @internal */
export class InvalidStorageKey extends Error {
  readonly _tag = "InvalidStorageKey"
  constructor(readonly keyPrefix: string) {
    super(Files.invalidKeyMessage(keyPrefix))
  }
}

/** @internal */
export class CorruptRecord extends Error {
  readonly _tag = "CorruptRecord"
  constructor(readonly keyPrefix: string, readonly detail: string) {
    super(Files.corruptRecordMessage(keyPrefix, detail))
  }
}

/**
 * A lock file could not be taken within `lockTimeout`: another process (or a
 * stale lock younger than `lockStaleAfter`) holds it.
 *
 * @internal
 */
export class LockTimeout extends Error {
  readonly _tag = "LockTimeout"
  constructor(readonly lock: string, readonly waitedMillis: number) {
    super(`lock ${lock} still held by another process after ${waitedMillis} ms`)
  }
}

/** @internal */
export class StoreFull extends Error {
  readonly _tag = "StoreFull"
  constructor(readonly sessions: number, readonly maxSessions: number, readonly anonymous: boolean) {
    super(Files.storeFullMessage(sessions, maxSessions, anonymous))
  }
}

/** The wait for a lock stopped because the operation was cancelled. */
class Cancelled extends Error {
  readonly _tag = "Cancelled"
}

/**
 * The errors the store raises itself, their messages already redacted (a
 * `StoreFull` besides, which a shell reports as its own error).
 *
 * @internal
 */
export const isStoreError = (error: unknown): boolean =>
  error instanceof LockTimeout || error instanceof InvalidStorageKey || error instanceof CorruptRecord

/**
 * How a shell reports a full store and a file system failure, and which
 * errors are the file system's.
 *
 * @internal
 */
export interface FailureShell {
  readonly isSystemError: (error: unknown) => boolean
  readonly storeFull: (full: Files.StoreFullCounts) => unknown
  readonly systemFailure: (detail: string) => unknown
}

/**
 * The cause a shell's store error carries for what an operation threw: a
 * full store as the shell's own error, a file system error as the shell's
 * failure with its message redacted (it names the file, and so the storage
 * key), anything else as it is.
 *
 * @internal
 */
export const failureCause = (error: unknown, shell: FailureShell): unknown =>
  error instanceof StoreFull
    ? shell.storeFull({ sessions: error.sessions, maxSessions: error.maxSessions, anonymous: error.anonymous })
    : shell.isSystemError(error)
    ? shell.systemFailure(Files.redact(error instanceof Error ? error.message : String(error)))
    : error

// -- locks

/**
 * Lock files live on the file system's clock (their mtime), not on the
 * application's, which may be a test clock: staleness and back-off use the
 * wall clock.
 */
const wallNow = (): number => Date.now()

const encoder = new TextEncoder()
const decoder = new TextDecoder()

type Warn = (message: string) => void
interface LockCall {
  readonly warn: Warn
  readonly signal?: AbortSignal | undefined
}

const sleep = (millis: number, signal: AbortSignal | undefined) =>
  new Promise<void>((done) => {
    // an abort that came before the wait began fires no event
    if (signal?.aborted) return done()
    const timer = setTimeout(finish, millis)
    function finish() {
      clearTimeout(timer)
      signal?.removeEventListener("abort", finish)
      done()
    }
    signal?.addEventListener("abort", finish, { once: true })
  })

/**
 * Exclusive-create lock files (`wx`), held for a read-check-write.
 * Operations of this process queue per lock first, so the lock file is
 * contended (and polled) only between processes.
 *
 * Stale recovery: a lock older than `staleAfter` is removed by whoever first
 * takes its breaker file (`<lock>.break`, itself exclusive-create), so two
 * processes never break the same lock at once. The breaker re-checks the
 * lock and removes it by renaming it to a unique name first, then comparing
 * the renamed file's identity (inode + mtime) with the one it judged stale;
 * if a fresh lock was taken in between, it is linked back in place.
 */
const makeLock = (fs: FileOps, options: { readonly staleAfterMillis: number; readonly timeoutMillis: number }) => {
  const { isAlreadyExists, isNotFound, orIfMissing } = expectedFailures(fs)
  const tryCreate = (lockPath: string, token: string): Promise<boolean> =>
    fs.writeFile(lockPath, encoder.encode(token), { exclusive: true, mode: 0o600 }).then(
      () => true,
      (error) => isAlreadyExists(error) ? false : Promise.reject(error)
    )
  const statOrMissing = (path: string) => orIfMissing(fs.stat(path), undefined)
  const identity = (info: FileInfo) => Files.fileIdentity(info.ino, info.mtimeMs)
  const isStale = (info: FileInfo, now: number) =>
    Files.isStaleLock(info.mtimeMs, now, options.staleAfterMillis)

  // Moves the file aside under a unique name before deleting it, so that a
  // file that replaced the stale one since it was inspected is put back
  // instead of deleted.
  const removeExactly = async (target: string, expected: string, warn: Warn): Promise<boolean> => {
    const aside = join(dirname(target), Files.temporaryFileName(basename(target)))
    if (!(await orIfMissing(fs.rename(target, aside).then(() => true), false))) return false
    const info = await statOrMissing(aside)
    if (info === undefined || identity(info) === expected) {
      await fs.remove(aside)
      return true
    }
    try {
      await fs.link(aside, target)
    } catch (error) {
      if (!isAlreadyExists(error)) throw error
      warn(`file lock: a fresh lock at ${Files.redact(target)} was replaced while a stale one was broken`)
    }
    await fs.remove(aside)
    return false
  }

  // The guarded write has completed whatever happens here: a lock that
  // cannot be released becomes stale and is broken later.
  const releaseOwned = async (lockPath: string, token: string, warn: Warn): Promise<void> => {
    try {
      if (decoder.decode(await fs.readFile(lockPath)) === token) await fs.remove(lockPath)
      else warn(`file lock: ${Files.redact(lockPath)} was taken over while held (held past staleAfter?)`)
    } catch (error) {
      warn(
        isNotFound(error)
          ? `file lock: ${Files.redact(lockPath)} was broken while held`
          : `file lock: could not release ${Files.redact(lockPath)}: ${Files.redact(String(error))}`
      )
    }
  }

  const breakStale = async (lockPath: string, warn: Warn): Promise<boolean> => {
    const breaker = Files.breakerFileName(lockPath)
    const token = Files.uniqueSuffix()
    if (!(await tryCreate(breaker, token))) {
      // a breaker left by a process that died mid-break
      const info = await statOrMissing(breaker)
      if (info !== undefined && isStale(info, wallNow())) await removeExactly(breaker, identity(info), warn)
      return false
    }
    try {
      const info = await statOrMissing(lockPath)
      if (info === undefined) return true
      if (!isStale(info, wallNow())) return false
      return await removeExactly(lockPath, identity(info), warn)
    } finally {
      await releaseOwned(breaker, token, warn)
    }
  }

  const acquire = async (lockPath: string, call: LockCall): Promise<string> => {
    const { signal } = call
    const token = Files.uniqueSuffix()
    const start = wallNow()
    let backoff = Files.firstLockBackoff
    while (true) {
      if (signal?.aborted) throw new Cancelled()
      if (await tryCreate(lockPath, token)) {
        // taken after the caller gave up (its holder released it while the
        // create was under way): given back, and nothing is written
        if (!signal?.aborted) return token
        await releaseOwned(lockPath, token, call.warn)
        throw new Cancelled()
      }
      const now = wallNow()
      if (now - start >= options.timeoutMillis) throw new LockTimeout(Files.redact(lockPath), now - start)
      const info = await statOrMissing(lockPath)
      // released meanwhile: try again at once
      if (info === undefined) continue
      if (isStale(info, now) && (await breakStale(lockPath, call.warn))) continue
      await sleep(backoff / 2 + (randomInt(1024) / 1024) * (backoff / 2), signal)
      backoff = Files.nextLockBackoff(backoff)
    }
  }

  const queues = new Map<string, { tail: Promise<void>; users: number }>()
  const withMutex = async <A>(id: string, use: () => Promise<A>): Promise<A> => {
    let entry = queues.get(id)
    if (entry === undefined) queues.set(id, entry = { tail: Promise.resolve(), users: 0 })
    const queue = entry
    queue.users++
    const previous = queue.tail
    let done!: () => void
    queue.tail = new Promise<void>((resolve) => done = resolve)
    try {
      await previous
      return await use()
    } finally {
      done()
      if (--queue.users === 0) queues.delete(id)
    }
  }

  return {
    /** Runs `use` while holding the lock file at `lockPath`. */
    withLock: <A>(lockPath: string, call: LockCall, use: () => Promise<A>): Promise<A> =>
      withMutex(lockPath, async () => {
        const token = await acquire(lockPath, call)
        try {
          return await use()
        } finally {
          await releaseOwned(lockPath, token, call.warn)
        }
      }),
    /** Removes a lock (or breaker) file if it is stale; true when something was removed. */
    removeIfStale: async (lockPath: string, warn: Warn): Promise<boolean> => {
      const info = await statOrMissing(lockPath)
      if (info === undefined || !isStale(info, wallNow())) return false
      return Files.isBreakerFileName(lockPath) ? removeExactly(lockPath, identity(info), warn) : breakStale(lockPath, warn)
    }
  }
}

// -- the store

/**
 * How one call reaches its caller's world: the application's clock, where
 * warnings go, and the signal that stops a wait for a lock.
 *
 * @internal
 */
export interface Call {
  readonly now: () => number
  readonly warn: (message: string) => void
  readonly signal?: AbortSignal | undefined
}

/**
 * The store's options as both lines' `FileSystemStore` take them, `D` being
 * the line's duration input.
 *
 * @internal
 */
export interface StoreOptions<D> {
  /** Where sessions are kept; created (mode 0700) if missing. Every process sharing it must use the same options. */
  readonly directory: string
  /** How often expired sessions and leftover files are swept. Default 5 minutes (jittered). */
  readonly cleanupInterval?: D | undefined
  /**
   * A lock file older than this (by its mtime) belongs to a process that
   * died holding it and is broken. Must exceed the longest time one store
   * operation can take. Default 10 seconds.
   */
  readonly lockStaleAfter?: D | undefined
  /** How long an operation waits for a lock held by another process before failing. Default 5 seconds. */
  readonly lockTimeout?: D | undefined
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

/** `cleanupInterval`'s default, in milliseconds. @internal */
export const defaultCleanupInterval = 5 * 60_000

/** @internal */
export interface Options {
  readonly directory: string
  readonly fsync: boolean
  readonly lockStaleAfter: number
  readonly lockTimeout: number
  readonly maxSessions: number | undefined
}

/**
 * `StoreOptions` with their defaults, durations in milliseconds.
 *
 * @internal
 */
export const settings = <D>(options: StoreOptions<D>, toMillis: (duration: D) => number): Options => ({
  directory: options.directory,
  fsync: options.fsync ?? true,
  lockStaleAfter: options.lockStaleAfter === undefined ? 10_000 : toMillis(options.lockStaleAfter),
  lockTimeout: options.lockTimeout === undefined ? 5_000 : toMillis(options.lockTimeout),
  maxSessions: options.maxSessions
})

/** @internal */
export interface Write {
  readonly data: Uint8Array
  readonly expiresAt: number
  readonly principal: string | undefined
}

/** @internal */
export type FileSystemStore = Awaited<ReturnType<typeof open>>

/**
 * What a file-system store's `make` builds, as both lines' `FileSystemStore`
 * declare it: `Store` and `Index` are the line's services, `Sweep` its
 * effect answering a count (parameters, so that the core does not import
 * Effect).
 *
 * @internal
 */
export interface StoreParts<Store, Index, Sweep> {
  readonly store: Store
  readonly index: Index
  /** Removes expired sessions, unreadable files, leftover temp files and stale locks; returns the sessions removed. */
  readonly sweep: Sweep
}

type Record = Files.FileRecord

/** @internal */
export type Conflict = "Exists" | "VersionMismatch" | "Missing"

/**
 * Whether an outcome of `insert` or `update` is a conflict rather than its
 * value (`undefined` or the new version).
 *
 * @internal
 */
export const isConflict = <A>(outcome: A | Conflict): outcome is Conflict => typeof outcome === "string"

/**
 * Creates the directory (mode 0700) and its index directories, counts its
 * sessions when `maxSessions` is set, and gives the store's operations.
 *
 * @internal
 */
export const open = async (options: Options, fs: FileOps = nodeFileOps) => {
  const { isNotFound, orIfMissing } = expectedFailures(fs)
  const directory = resolve(options.directory)
  const { fsync, maxSessions } = options
  const principals = join(directory, Files.principalsDirectory)
  const expiry = join(directory, Files.expiryDirectory)
  const indexedFlagFile = join(expiry, Files.indexedFlag)
  const lock = makeLock(fs, { staleAfterMillis: options.lockStaleAfter, timeoutMillis: options.lockTimeout })
  // sessions in the directory as far as this process knows (see `maxSessions`):
  // set by whoever lists the directory, followed by this process's own
  // creations and removals in between
  let sessions = 0

  await fs.makeDirectory(principals, 0o700)
  await fs.makeDirectory(expiry, 0o700)
  const sessionNames = async () => (await fs.readDirectory(directory)).filter(Files.isStorageKeyName)
  if (maxSessions !== undefined) sessions = (await sessionNames()).length

  // The only place a path is built from a key: nothing reaches the file
  // system unless the key is exactly 43 base64url characters.
  const fileOf = (key: string): string => {
    if (!Files.isStorageKeyName(key)) throw new InvalidStorageKey(Files.keyPrefix(key))
    return join(directory, key)
  }
  const removeFile = (key: string) => fs.remove(join(directory, key))

  const readRecord = async (key: string): Promise<Record | undefined> => {
    const bytes = await orIfMissing(fs.readFile(join(directory, key)), undefined)
    if (bytes === undefined) return undefined
    const read = Files.decodeRecord(bytes)
    if ("problem" in read) throw new CorruptRecord(Files.keyPrefix(key), read.problem)
    return read.record
  }
  const live = (record: Record | undefined, now: number) =>
    record !== undefined && record.expiresAt > now ? record : undefined
  // an unreadable session cannot be loaded: it is logged and treated as gone
  const orGone = async (read: Promise<Record | undefined>, call: Call) => {
    try {
      return await read
    } catch (error) {
      if (!(error instanceof CorruptRecord)) throw error
      call.warn(error.message)
      return undefined
    }
  }

  const writeAtomically = async (target: string, bytes: Uint8Array): Promise<void> => {
    const temporary = join(directory, Files.temporaryFileName(basename(target)))
    try {
      if (fsync) await fs.writeFileSynced(temporary, bytes, 0o600)
      else await fs.writeFile(temporary, bytes, { exclusive: true, mode: 0o600 })
      await fs.rename(temporary, target)
    } catch (error) {
      // the write's own error is the one reported; a temp file that cannot be
      // removed now is an orphan the sweep deletes later
      await fs.remove(temporary).catch(() => {})
      throw error
    }
  }

  // -- indexes: empty marker files in expiry/<minute>/ and principals/<hash>/

  const writeMarker = async (dir: string, key: string): Promise<void> => {
    const touch = () => fs.writeFile(join(dir, key), new Uint8Array(0), { exclusive: false, mode: 0o600 })
    try {
      await touch()
    } catch (error) {
      if (!isNotFound(error)) throw error
      await fs.makeDirectory(dir, 0o700)
      await touch()
    }
  }
  const bucketDirectory = (bucket: number) => join(expiry, String(bucket))
  const removeExpiryMarker = (bucket: number, key: string) => fs.remove(join(bucketDirectory(bucket), key))

  // Adding a principal's first marker creates its directory, and removing
  // the last one deletes it: both hold the principal's lock file, so a
  // directory is never deleted with a marker just written into it.
  const markerDirectory = (principal: string) => join(principals, Files.principalDirectoryName(principal))
  const withPrincipalLock = <A>(principal: string, call: Call, use: () => Promise<A>) =>
    lock.withLock(Files.lockFileName(markerDirectory(principal)), call, use)

  // a directory left now (busy, gone, unreadable) is tried again with the
  // principal's next removal; the session's own operation stands
  const removeIfEmpty = async (principal: string, call: Call): Promise<void> => {
    const dir = markerDirectory(principal)
    const isEmpty = async () => (await fs.readDirectory(dir)).length === 0
    try {
      if (!(await isEmpty())) return
      await withPrincipalLock(principal, call, async () => {
        if (await isEmpty()) await fs.remove(dir, { recursive: true })
      })
    } catch {
      // see above
    }
  }
  // `tidy`: look whether the directory is left empty; `removeAll` looks once, after its last marker
  const removePrincipalMarker = async (principal: string, key: string, tidy: boolean, call: Call) => {
    await fs.remove(join(markerDirectory(principal), key))
    if (tidy) await removeIfEmpty(principal, call)
  }

  // the order of the steps is the core's `planWrite`
  const writeRecord = async (key: string, previous: Record | undefined, record: Record, now: number, call: Call) => {
    const plan = Files.planWrite(previous, record, now)
    if (plan.addExpiry !== undefined) await writeMarker(bucketDirectory(plan.addExpiry), key)
    const principal = plan.addPrincipal
    if (principal !== undefined) await withPrincipalLock(principal, call, () => writeMarker(markerDirectory(principal), key))
    await writeAtomically(join(directory, key), Files.encodeRecord(record))
    if (plan.created) sessions++
    if (plan.removePrincipal !== undefined) await removePrincipalMarker(plan.removePrincipal, key, true, call)
    if (plan.removeExpiry !== undefined) await removeExpiryMarker(plan.removeExpiry, key)
  }

  const deleteRecord = async (key: string, previous: Record | undefined, call: Call, tidy = true) => {
    await removeFile(key)
    if (previous === undefined) return
    sessions--
    if (previous.principal !== undefined) await removePrincipalMarker(previous.principal, key, tidy, call)
    await removeExpiryMarker(Files.expiryBucketOf(previous.expiresAt), key)
  }

  const locked = <A>(key: string, call: Call, body: () => Promise<A>): Promise<A> =>
    lock.withLock(Files.lockFileName(fileOf(key)), call, body)

  // Files are replaced by rename, so a read without the lock sees one whole
  // version. An outcome that writes nothing (a conflict, a missing record)
  // is decided from such a read; only a write takes the lock, and decides
  // again under it. This keeps losers of a compare-and-set race off the lock.
  const compareAndWrite = async <A>(
    key: string,
    call: Call,
    decide: (previous: Record | undefined, now: number) => { readonly outcome: A } | undefined,
    write: (previous: Record | undefined, now: number) => Promise<A>
  ): Promise<A> => {
    fileOf(key)
    const early = decide(await readRecord(key), call.now())
    if (early !== undefined) return early.outcome
    return locked(key, call, async () => {
      const previous = await readRecord(key)
      const now = call.now()
      const decided = decide(previous, now)
      return decided !== undefined ? decided.outcome : write(previous, now)
    })
  }

  const boundTo = (principal: string) => (record: Record | undefined) => record?.principal === principal

  // `removeAll`'s step for one marked key; 1 when a live session went
  const revoke = (key: string, principal: string, call: Call) =>
    locked(key, call, async () => {
      let record: Record | undefined
      try {
        record = await readRecord(key)
      } catch (error) {
        if (!(error instanceof CorruptRecord)) throw error
        // revoking errs on the safe side: an unreadable session marked for this principal goes too
        call.warn(error.message)
        await removeFile(key)
      }
      if (!boundTo(principal)(record)) {
        // the session moved to another principal or is gone: only the marker is stale
        await removePrincipalMarker(principal, key, false, call)
        return 0
      }
      const wasLive = live(record, call.now()) !== undefined
      await deleteRecord(key, record, call, false)
      return wasLive ? 1 : 0
    })

  const markedKeys = async (principal: string): Promise<ReadonlyArray<string>> =>
    (await orIfMissing(fs.readDirectory(markerDirectory(principal)), [])).filter(Files.isStorageKeyName)

  // -- the sweep

  // Under the key's lock, what the core's `settlement` says: a marker in a
  // minute that ended mostly leads to a session that expired, so it is
  // locked at once; one written again since (or a marker a crash left
  // alone) costs the same lock and read. A busy key waits for the next sweep.
  const settle = async (key: string, filed: number | undefined, call: Call): Promise<number> => {
    try {
      return await locked(key, call, async () => {
        let record: Record | "corrupt" | undefined
        try {
          record = await readRecord(key)
        } catch (error) {
          if (!(error instanceof CorruptRecord)) throw error
          call.warn(`filesystem store: removing unreadable file: ${error.message}`)
          record = "corrupt"
        }
        const action = Files.settlement(record, call.now())
        if (action === "deleteCorrupt") await removeFile(key)
        if (action === "refile") {
          const bucket = Files.expiryBucketOf((record as Record).expiresAt)
          await writeMarker(bucketDirectory(bucket), key)
          if (filed !== undefined && filed !== bucket) await removeExpiryMarker(filed, key)
          return 0
        }
        if (action === "delete") await deleteRecord(key, record as Record, call)
        if (filed !== undefined) await removeExpiryMarker(filed, key)
        return action === "delete" ? 1 : 0
      })
    } catch (error) {
      if (error instanceof LockTimeout) return 0
      throw error
    }
  }

  // One session the sweep cannot settle (unreadable for the file system,
  // busy beyond the lock timeout) is logged and left for the next sweep.
  const settleEach = async (names: ReadonlyArray<string>, call: Call, visit: (key: string) => Promise<number>) => {
    const counts = await forEachLimited(names, 8, (name) =>
      visit(name).catch((error: unknown) => {
        call.warn(`filesystem store: could not sweep session ${Files.shortKey(name)}: ${Files.redact(String(error))}`)
        return 0
      }))
    return counts.reduce((a, b) => a + b, 0)
  }

  const sweepBucket = async (bucket: number, call: Call) => {
    const minute = bucketDirectory(bucket)
    const names = await orIfMissing(fs.readDirectory(minute), [])
    const removed = await settleEach(names.filter(Files.isStorageKeyName), call, (key) => settle(key, bucket, call))
    if (Files.isRemovableBucket(names.length, bucket, call.now())) await fs.remove(minute, { recursive: true })
    return removed
  }

  // One listing of the directory, names only: leftovers of crashed writers
  // (temp files, stale locks), the session count for `maxSessions`, and once,
  // for a directory written without the expiry index (or whose index was
  // lost), every session read and filed or removed; the flag then saves the
  // next sweeps that pass.
  const sweepTopLevel = async (indexed: boolean, call: Call) => {
    const names = await fs.readDirectory(directory)
    const found = names.filter(Files.isStorageKeyName)
    sessions = found.length
    await forEachLimited(names, 8, async (entry) => {
      const file = join(directory, entry)
      switch (Files.topLevelEntry(entry)) {
        case "temporary": {
          const info = await orIfMissing(fs.stat(file), undefined)
          if (info !== undefined && Files.isLeftover(info.mtimeMs, wallNow(), options.lockStaleAfter)) await fs.remove(file)
          return
        }
        case "lock":
          await orIfMissing(lock.removeIfStale(file, call.warn), false)
          return
        default:
          return
      }
    })
    if (indexed) return 0
    const removed = await settleEach(found, call, async (key) => {
      const fresh = live(await readRecord(key).catch(() => undefined), call.now())
      if (fresh === undefined) return settle(key, undefined, call)
      await writeMarker(bucketDirectory(Files.expiryBucketOf(fresh.expiresAt)), key)
      return 0
    })
    await fs.writeFile(indexedFlagFile, new Uint8Array(0), { exclusive: false, mode: 0o600 })
    return removed
  }

  let listedAt = Number.NEGATIVE_INFINITY
  const sweep = async (call: Call): Promise<number> => {
    const indexed = await orIfMissing(fs.stat(indexedFlagFile).then(() => true), false)
    const now = call.now()
    let removed = 0
    if (Files.isListingDue(indexed, maxSessions !== undefined, now, listedAt)) {
      removed = await sweepTopLevel(indexed, call)
      listedAt = now
    }
    const minutes = await orIfMissing(fs.readDirectory(expiry), [])
    for (const bucket of Files.endedBuckets(minutes, now)) removed += await sweepBucket(bucket, call)
    return removed
  }

  // Only a new file counts against the cap; replacing an expired one does not.
  const checkCapacity = (write: Write, previous: Record | undefined) => {
    const anonymous = write.principal === undefined
    if (Files.isRefused(sessions, maxSessions, anonymous, previous !== undefined)) {
      throw new StoreFull(sessions, maxSessions!, anonymous)
    }
  }

  return {
    directory,
    /** The sessions in the directory as far as this process knows. */
    sessions: () => sessions,
    load: async (key: string, call: Call): Promise<Record | undefined> => {
      fileOf(key)
      return live(await readRecord(key), call.now())
    },
    insert: (key: string, write: Write, call: Call): Promise<"Exists" | undefined> =>
      compareAndWrite<"Exists" | undefined>(
        key,
        call,
        (previous, now) => live(previous, now) !== undefined ? { outcome: "Exists" } : undefined,
        async (previous, now) => {
          checkCapacity(write, previous)
          await writeRecord(key, previous, { ...write, version: 1 }, now, call)
          return undefined
        }
      ),
    /** The new version, or the conflict. */
    update: (key: string, write: Write, expectedVersion: number, call: Call): Promise<number | Conflict> =>
      compareAndWrite<number | Conflict>(
        key,
        call,
        (previous, now) => {
          const current = live(previous, now)
          if (current === undefined) return { outcome: "Missing" }
          return current.version !== expectedVersion ? { outcome: "VersionMismatch" } : undefined
        },
        async (previous, now) => {
          await writeRecord(key, previous, { ...write, version: expectedVersion + 1 }, now, call)
          return expectedVersion + 1
        }
      ),
    touch: (key: string, expiresAt: number, call: Call): Promise<boolean> =>
      compareAndWrite(
        key,
        call,
        (previous, now) => live(previous, now) === undefined ? { outcome: false } : undefined,
        async (previous, now) => {
          await writeRecord(key, previous, { ...previous!, expiresAt }, now, call)
          return true
        }
      ),
    // an unreadable file is removed all the same: corruption must not make a
    // session unremovable (its markers are left to the sweep)
    remove: (key: string, call: Call): Promise<void> =>
      locked(key, call, async () => deleteRecord(key, await orGone(readRecord(key), call), call)),
    // `keys` and `removeAll` read the principal's own sessions (one small
    // file each), never the rest of the directory: a marker says only that a
    // session was bound to the principal when it was written, the file says
    // whether it still is and until when.
    keys: async (principal: string, call: Call): Promise<ReadonlyArray<string>> => {
      const marked = await markedKeys(principal)
      const bound = await forEachLimited(marked, 16, async (key) =>
        boundTo(principal)(live(await orGone(readRecord(key), call), call.now())))
      return marked.filter((_, i) => bound[i])
    },
    removeAll: async (principal: string, call: Call): Promise<number> => {
      const removed = await forEachLimited(await markedKeys(principal), 16, (key) => revoke(key, principal, call))
      await removeIfEmpty(principal, call)
      return removed.reduce<number>((a, b) => a + b, 0)
    },
    /** Removes expired sessions, unreadable files, leftover temp files and stale locks; the sessions removed. */
    sweep
  }
}
