/**
 * The file-system store's sweep over its directory: the minutes of the
 * expiry index that ended, and at times the top of the directory (leftovers
 * of crashed writers, the session count, the one-time indexing of a
 * directory written without the expiry index). What it visits and decides
 * is the core's (`core/files.ts`).
 *
 * @internal
 */
import type { FileSystem, Path } from "@effect/platform"
import { Effect, Option } from "effect"
import * as Files from "../core/files.js"
import type { StorageKey } from "../SessionId.js"
import { unsafeStorageKey } from "../SessionId.js"
import type { SessionRecord } from "../SessionStore.js"
import * as FileLock from "./fileLock.js"
import type { SessionDirectory } from "./sessionDirectory.js"
import { isNotFound } from "./sessionDirectory.js"

const skipVanished = <A>(fallback: A) => Effect.catchIf(isNotFound, () => Effect.succeed(fallback))
const sum = (counts: ReadonlyArray<number>) => counts.reduce((a, b) => a + b, 0)

/**
 * The sweep: removes expired sessions, unreadable files, leftover temp files
 * and stale locks; succeeds with the sessions removed.
 *
 * @internal
 */
export const make = (
  fs: FileSystem.FileSystem,
  path: Path.Path,
  dir: SessionDirectory,
  options: { readonly store: string; readonly lockStaleAfter: number; readonly capped: boolean }
): Effect.Effect<number, unknown> => {
  const { store } = options

  // Under the key's lock, what the core's `settlement` says: a marker in a
  // minute that ended mostly leads to a session that expired, so it is
  // locked at once; one written again since (or a marker a crash left
  // alone) costs the same lock and read. A busy key waits for the next sweep.
  const settle = (key: StorageKey, filed: number | undefined) =>
    dir.locked(
      key,
      Effect.gen(function*() {
        const unfile = filed === undefined ? Effect.void : dir.removeExpiryMarker(filed, key)
        const record = yield* dir.readRecord(key).pipe(
          Effect.map(Option.getOrUndefined),
          Effect.catchTag("CorruptRecord", (e) =>
            Effect.as(Effect.logWarning(`${store} store: removing unreadable file`, e.message), "corrupt" as const))
        )
        const action = Files.settlement(record, yield* dir.now)
        if (action === "deleteCorrupt") yield* dir.removeFile(key)
        if (action === "refile") {
          const bucket = Files.expiryBucketOf((record as SessionRecord).expiresAt)
          yield* dir.writeMarker(dir.bucketDirectory(bucket), key)
          if (filed !== undefined && filed !== bucket) yield* dir.removeExpiryMarker(filed, key)
          return 0
        }
        if (action === "delete") yield* dir.deleteRecord(key, Option.some(record as SessionRecord))
        yield* unfile
        return action === "delete" ? 1 : 0
      })
    ).pipe(Effect.catchIf((e) => e instanceof FileLock.LockTimeout, () => Effect.succeed(0)))

  // One session the sweep cannot settle (unreadable for the file system,
  // busy beyond the lock timeout) is logged and left for the next sweep.
  const settleEach = (names: ReadonlyArray<string>, visit: (key: StorageKey) => Effect.Effect<number, unknown>) =>
    Effect.map(
      Effect.forEach(names, (n) =>
        visit(unsafeStorageKey(n)).pipe(Effect.catchAll((error: unknown) =>
          Effect.as(
            Effect.logWarning(`${store} store: could not sweep session ${Files.shortKey(n)}`, Files.redact(String(error))),
            0
          )
        )), { concurrency: 8 }),
      sum
    )

  const sweepBucket = (bucket: number, t: number) =>
    Effect.gen(function*() {
      const minute = dir.bucketDirectory(bucket)
      const names = yield* fs.readDirectory(minute).pipe(skipVanished([] as Array<string>))
      const removed = yield* settleEach(names.filter(Files.isStorageKeyName), (key) => settle(key, bucket))
      if (Files.isRemovableBucket(names.length, bucket, t)) yield* fs.remove(minute, { recursive: true })
      return removed
    })

  // One listing of the directory, names only: leftovers of crashed writers
  // (temp files, stale locks), the session count for `maxSessions`, and once,
  // for a directory written without the expiry index (or whose index was
  // lost), every session read and filed or removed; the flag then saves the
  // next sweeps that pass.
  const sweepTopLevel = (indexed: boolean) =>
    Effect.gen(function*() {
      const names = yield* fs.readDirectory(dir.directory)
      const sessions = names.filter(Files.isStorageKeyName)
      dir.sessions.count = sessions.length
      yield* Effect.forEach(names, (entry) => {
        const file = path.join(dir.directory, entry)
        switch (Files.topLevelEntry(entry)) {
          case "temporary":
            return Effect.zipWith(fs.stat(file), FileLock.wallNow, (info, t) =>
              Files.isLeftover(Option.getOrUndefined(info.mtime)?.getTime(), t, options.lockStaleAfter)).pipe(
                Effect.flatMap((old) => old ? fs.remove(file, { force: true }) : Effect.void),
                skipVanished(undefined)
              )
          case "lock":
            return Effect.asVoid(skipVanished(false)(dir.lock.removeIfStale(file)))
          default:
            return Effect.void
        }
      }, { concurrency: 8, discard: true })
      if (indexed) return 0
      const removed = yield* settleEach(sessions, (key) =>
        Effect.flatMap(Effect.either(dir.readRecord(key)), (seen) =>
          Effect.flatMap(dir.now, (t) => {
            const fresh = seen._tag === "Right" ? dir.live(seen.right, t) : Option.none()
            return Option.isSome(fresh)
              ? Effect.as(dir.writeMarker(dir.bucketDirectory(Files.expiryBucketOf(fresh.value.expiresAt)), key), 0)
              : settle(key, undefined)
          })))
      yield* fs.writeFile(dir.indexedFlagFile, new Uint8Array(0), { mode: 0o600 })
      return removed
    })

  let listedAt = Number.NEGATIVE_INFINITY
  return Effect.gen(function*() {
    const indexed = yield* fs.exists(dir.indexedFlagFile)
    const t = yield* dir.now
    let removed = 0
    if (Files.isListingDue(indexed, options.capped, t, listedAt)) {
      removed = yield* sweepTopLevel(indexed)
      listedAt = t
    }
    const minutes = yield* fs.readDirectory(dir.expiry).pipe(skipVanished([] as Array<string>))
    for (const bucket of Files.endedBuckets(minutes, t)) removed += yield* sweepBucket(bucket, t)
    return removed
  })
}
