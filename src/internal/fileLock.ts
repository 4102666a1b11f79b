import type { FileSystem, Path } from "@effect/platform"
import type { PlatformError } from "@effect/platform/Error"
import { Clock, Data, Effect, Option, Predicate, Random } from "effect"
import * as Files from "../core/files.js"

/**
 * A lock file could not be taken within the configured time: another
 * process (or a stale lock younger than `staleAfter`) holds it.
 *
 * @internal
 */
export class LockTimeout extends Data.TaggedError("LockTimeout")<{
  /** The lock as `FileLockOptions.redact` names it (never a full path with a key in it). */
  readonly lock: string
  readonly waitedMillis: number
}> {
  override get message(): string {
    return `lock ${this.lock} still held by another process after ${this.waitedMillis} ms`
  }
}

/** @internal */
export interface FileLockOptions {
  /** A lock whose mtime is older than this is taken to belong to a dead process. */
  readonly staleAfterMillis: number
  /** How long `withLock` waits for a held lock before failing with `LockTimeout`. */
  readonly timeoutMillis: number
  /**
   * Applied to every path and system message before it appears in an error
   * or a log line: a store whose paths carry storage keys shortens them.
   */
  readonly redact: (text: string) => string
}

/** @internal */
export interface FileLock {
  /** Runs `use` while holding the lock file at `lockPath`; releases it in a finalizer. */
  readonly withLock: <A, E, R>(
    lockPath: string,
    use: Effect.Effect<A, E, R>
  ) => Effect.Effect<A, E | PlatformError | LockTimeout, R>
  /** Removes a lock (or breaker) file if it is stale; true when something was removed. */
  readonly removeIfStale: (lockPath: string) => Effect.Effect<boolean, PlatformError>
}

/** @internal */
export const isSystemError = (reason: "NotFound" | "AlreadyExists") => (error: unknown): boolean =>
  Predicate.hasProperty(error, "_tag") && error._tag === "SystemError" &&
  Predicate.hasProperty(error, "reason") && error.reason === reason

const isNotFound = isSystemError("NotFound")
const isAlreadyExists = isSystemError("AlreadyExists")

/**
 * Lock files live on the file system's clock (their mtime), not on the
 * application's `Clock`, which may be a `TestClock` or run on another
 * schedule: staleness and back-off always use the wall clock.
 */
const wallClock = Clock.make()

/**
 * Now on the wall clock, to compare with file mtimes.
 *
 * @internal
 */
export const wallNow: Effect.Effect<number> = wallClock.currentTimeMillis

const encoder = new TextEncoder()
const decoder = new TextDecoder()

/**
 * Exclusive-create lock files (`flag: "wx"`), held for a read-check-write.
 * Fibers of this process queue on a semaphore per lock first, so the lock
 * file is contended (and polled) only between processes.
 *
 * Stale recovery: a lock older than `staleAfter` is removed by whoever first
 * takes its breaker file (`<lock>.break`, itself exclusive-create), so two
 * processes never break the same lock at once. The breaker re-checks the lock
 * and removes it by renaming it to a unique name first, then comparing the
 * renamed file's identity (inode + mtime) with the one it judged stale; if a
 * fresh lock was taken in between, it is linked back in place.
 *
 * @internal
 */
export const make = (fs: FileSystem.FileSystem, path: Path.Path, options: FileLockOptions): FileLock => {
  const tryCreate = (lockPath: string, token: string): Effect.Effect<boolean, PlatformError> =>
    fs.writeFile(lockPath, encoder.encode(token), { flag: "wx", mode: 0o600 }).pipe(
      Effect.as(true),
      Effect.catchIf(isAlreadyExists, () => Effect.succeed(false))
    )

  const statOption = (target: string): Effect.Effect<Option.Option<FileSystem.File.Info>, PlatformError> =>
    fs.stat(target).pipe(
      Effect.map(Option.some),
      Effect.catchIf(isNotFound, () => Effect.succeed(Option.none()))
    )

  const mtimeOf = (info: FileSystem.File.Info) => Option.getOrUndefined(Option.map(info.mtime, (d) => d.getTime()))
  const identity = (info: FileSystem.File.Info): string =>
    Files.fileIdentity(Option.getOrUndefined(info.ino), mtimeOf(info))
  const isStale = (info: FileSystem.File.Info, now: number): boolean =>
    Files.isStaleLock(mtimeOf(info), now, options.staleAfterMillis)

  // Moves the file aside under a unique name before deleting it, so that a
  // file that replaced the stale one since it was inspected is put back
  // instead of deleted.
  const removeExactly = (target: string, expected: string): Effect.Effect<boolean, PlatformError> =>
    Effect.gen(function*() {
      const aside = path.join(path.dirname(target), Files.temporaryFileName(path.basename(target)))
      const moved = yield* fs.rename(target, aside).pipe(
        Effect.as(true),
        Effect.catchIf(isNotFound, () => Effect.succeed(false))
      )
      if (!moved) return false
      const info = yield* statOption(aside)
      if (Option.isNone(info) || identity(info.value) === expected) {
        yield* fs.remove(aside, { force: true })
        return true
      }
      yield* fs.link(aside, target).pipe(
        Effect.catchIf(isAlreadyExists, () =>
          Effect.logWarning(`file lock: a fresh lock at ${options.redact(target)} was replaced while a stale one was broken`))
      )
      yield* fs.remove(aside, { force: true })
      return false
    })

  const releaseOwned = (lockPath: string, token: string): Effect.Effect<void> =>
    fs.readFile(lockPath).pipe(
      Effect.flatMap((bytes) =>
        decoder.decode(bytes) === token
          ? fs.remove(lockPath, { force: true })
          : Effect.logWarning(`file lock: ${options.redact(lockPath)} was taken over while held (held past staleAfter?)`)
      ),
      Effect.catchIf(isNotFound, () => Effect.logWarning(`file lock: ${options.redact(lockPath)} was broken while held`)),
      // The lock becomes stale and is broken later; the guarded write has
      // already completed, so the caller's outcome stands.
      Effect.catchAll((error) =>
        Effect.logWarning(`file lock: could not release ${options.redact(lockPath)}`, options.redact(error.message))
      )
    )

  const breakStale = (lockPath: string): Effect.Effect<boolean, PlatformError> =>
    Effect.gen(function*() {
      const breaker = Files.breakerFileName(lockPath)
      const token = Files.uniqueSuffix()
      if (!(yield* tryCreate(breaker, token))) {
        // a breaker left by a process that died mid-break
        const info = yield* statOption(breaker)
        if (Option.isSome(info) && isStale(info.value, yield* wallNow)) {
          yield* removeExactly(breaker, identity(info.value))
        }
        return false
      }
      return yield* Effect.gen(function*() {
        const info = yield* statOption(lockPath)
        if (Option.isNone(info)) return true
        if (!isStale(info.value, yield* wallNow)) return false
        return yield* removeExactly(lockPath, identity(info.value))
      }).pipe(Effect.ensuring(releaseOwned(breaker, token)))
    })

  const acquire = (lockPath: string): Effect.Effect<string, PlatformError | LockTimeout> =>
    Effect.gen(function*() {
      const token = Files.uniqueSuffix()
      const start = yield* wallNow
      let backoff = Files.firstLockBackoff
      while (true) {
        if (yield* tryCreate(lockPath, token)) return token
        const now = yield* wallNow
        if (now - start >= options.timeoutMillis) {
          return yield* Effect.fail(new LockTimeout({ lock: options.redact(lockPath), waitedMillis: now - start }))
        }
        const info = yield* statOption(lockPath)
        // released meanwhile: try again at once
        if (Option.isNone(info)) continue
        if (isStale(info.value, now) && (yield* breakStale(lockPath))) continue
        const delay = yield* Random.nextRange(backoff / 2, backoff)
        backoff = Files.nextLockBackoff(backoff)
        yield* Effect.interruptible(Effect.withClock(Effect.sleep(delay), wallClock))
      }
    })

  const mutexes = new Map<string, { readonly semaphore: Effect.Semaphore; users: number }>()
  const withMutex = <A, E, R>(id: string, effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
    Effect.suspend(() => {
      let entry = mutexes.get(id)
      if (entry === undefined) mutexes.set(id, entry = { semaphore: Effect.unsafeMakeSemaphore(1), users: 0 })
      const held = entry
      held.users++
      return held.semaphore.withPermits(1)(effect).pipe(
        Effect.ensuring(Effect.sync(() => {
          if (--held.users === 0) mutexes.delete(id)
        }))
      )
    })

  return {
    withLock: (lockPath, use) =>
      withMutex(
        lockPath,
        Effect.acquireUseRelease(acquire(lockPath), () => use, (token) => releaseOwned(lockPath, token))
      ),
    removeIfStale: (lockPath) =>
      Effect.gen(function*() {
        const info = yield* statOption(lockPath)
        if (Option.isNone(info) || !isStale(info.value, yield* wallNow)) return false
        return Files.isBreakerFileName(lockPath)
          ? yield* removeExactly(lockPath, identity(info.value))
          : yield* breakStale(lockPath)
      })
  }
}
