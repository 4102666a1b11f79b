/**
 * The file-system store's protocol without Effect: the directory layout
 * (session files, lock and temp files, the expiry index
 * `expiry/<minute>/<key>`, principal directories of empty marker files, the
 * `.indexed` flag), the session file format, the expiry-minute arithmetic,
 * what a write or a removal changes in the indexes, what a sweep visits and
 * decides, the `maxSessions` rule, the staleness of locks and the redaction
 * of storage keys in logs and errors. The shells do the file system calls.
 *
 * @internal
 */
import { createHash, randomBytes } from "node:crypto"

// -- layout

/**
 * Storage keys are 43 base64url characters: the only names that become a
 * session file, and the only keys from which a path is ever built.
 *
 * @internal
 */
export const isStorageKeyName = (name: unknown): boolean =>
  typeof name === "string" && /^[A-Za-z0-9_-]{43}$/.test(name)

/** @internal */
export const principalsDirectory = "principals"

/** @internal */
export const expiryDirectory = "expiry"

/**
 * A file in `expiry/`, present once every session file of the directory has
 * its expiry marker (a directory written before the index had none).
 *
 * @internal
 */
export const indexedFlag = ".indexed"

/** @internal */
export const lockFileName = (name: string): string => `${name}.lock`

/**
 * The breaker of a lock: whoever creates it exclusively may break the stale
 * lock, so two processes never break the same lock at once.
 *
 * @internal
 */
export const breakerFileName = (lock: string): string => `${lock}.break`

/** @internal */
export const isBreakerFileName = (name: string): boolean => name.endsWith(".break")

/** @internal */
export const uniqueSuffix = (): string => randomBytes(9).toString("base64url")

/**
 * A temp file next to `name`: a dot file (never a storage key) ending in
 * `.tmp`, unique per write, renamed over the target when complete.
 *
 * @internal
 */
export const temporaryFileName = (name: string): string => `.${name}.${uniqueSuffix()}.tmp`

/**
 * A principal's marker directory under `principals/`: the SHA-256 of the
 * principal in base64url, so any principal makes a safe, fixed-length name.
 *
 * @internal
 */
export const principalDirectoryName = (principal: string): string =>
  createHash("sha256").update(principal).digest("base64url")

/**
 * What a name at the top of the directory is to the sweep: a session file,
 * the temp file of a write, a lock or breaker file, or something else (the
 * index directories).
 *
 * @internal
 */
export const topLevelEntry = (name: string): "session" | "temporary" | "lock" | "other" =>
  isStorageKeyName(name)
    ? "session"
    : name.startsWith(".") && name.endsWith(".tmp")
    ? "temporary"
    : name.endsWith(".lock") || name.endsWith(".lock.break")
    ? "lock"
    : "other"

// -- expiry index

/**
 * The expiry index files a session under the minute it expires in, so the
 * sweep lists only the minutes that ended and reads the sessions that
 * expired, not the others.
 *
 * @internal
 */
export const expiryBucketWidth = 60_000

/** @internal */
export const expiryBucketOf = (expiresAt: number): number => Math.floor(expiresAt / expiryBucketWidth)

/**
 * The minute a write files its session under: the one it expires in, or the
 * current one when that has already ended (the sweep removes a minute's
 * directory once it has ended, so nothing may be filed there afterwards).
 *
 * @internal
 */
export const filingBucket = (expiresAt: number, now: number): number =>
  Math.max(expiryBucketOf(expiresAt), expiryBucketOf(now))

/**
 * The minutes of `expiry/` a sweep at `now` visits, oldest first: those that
 * ended. Names that are not a minute (the `.indexed` flag) are skipped.
 *
 * @internal
 */
export const endedBuckets = (names: ReadonlyArray<string>, now: number): Array<number> => {
  const current = expiryBucketOf(now)
  return names.filter((n) => /^-?\d+$/.test(n)).map(Number).filter((b) => b < current).sort((a, b) => a - b)
}

/**
 * Whether an empty minute's directory may be deleted. A writer reads the
 * clock before it files a session, so it may still file one under the minute
 * that just ended: that directory is deleted by a later sweep.
 *
 * @internal
 */
export const isRemovableBucket = (entries: number, bucket: number, now: number): boolean =>
  entries === 0 && bucket < expiryBucketOf(now) - 1

// -- session file format

/**
 * A session as its file holds it; `principal` is `undefined` for an
 * anonymous session.
 *
 * @internal
 */
export interface FileRecord {
  readonly data: Uint8Array
  readonly version: number
  readonly expiresAt: number
  readonly principal: string | undefined
}

// magic "ESS", format byte 1, float64 version, float64 expiresAt, int32
// principal length in bytes (-1 when absent), the principal as UTF-8, then
// the data bytes up to the end of the file
const magic = [0x45, 0x53, 0x53, 0x01] as const
const fixedHeaderSize = 4 + 8 + 8 + 4
const encoder = new TextEncoder()
const decoder = new TextDecoder("utf-8", { fatal: true })

/** @internal */
export const encodeRecord = (record: FileRecord): Uint8Array => {
  const principal = record.principal === undefined ? undefined : encoder.encode(record.principal)
  const principalLength = principal?.length ?? 0
  const bytes = new Uint8Array(fixedHeaderSize + principalLength + record.data.length)
  const view = new DataView(bytes.buffer)
  bytes.set(magic, 0)
  view.setFloat64(4, record.version)
  view.setFloat64(12, record.expiresAt)
  view.setInt32(20, principal === undefined ? -1 : principalLength)
  if (principal !== undefined) bytes.set(principal, fixedHeaderSize)
  bytes.set(record.data, fixedHeaderSize + principalLength)
  return bytes
}

/**
 * Reads a session file: the record, or why the file is not one (the shells
 * report it as a corrupt record; the sweep deletes such files).
 *
 * @internal
 */
export const decodeRecord = (
  bytes: Uint8Array
): { readonly record: FileRecord } | { readonly problem: string } => {
  if (bytes.length < fixedHeaderSize) return { problem: `${bytes.length} bytes is shorter than the header` }
  if (magic.some((byte, i) => bytes[i] !== byte)) return { problem: "unknown format" }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  const version = view.getFloat64(4)
  const expiresAt = view.getFloat64(12)
  const principalLength = view.getInt32(20)
  if (!Number.isSafeInteger(version) || version < 1 || !Number.isFinite(expiresAt)) return { problem: "bad header" }
  if (principalLength < -1 || fixedHeaderSize + Math.max(principalLength, 0) > bytes.length) {
    return { problem: "bad principal length" }
  }
  const dataStart = fixedHeaderSize + Math.max(principalLength, 0)
  let principal: string | undefined
  if (principalLength >= 0) {
    try {
      principal = decoder.decode(bytes.subarray(fixedHeaderSize, dataStart))
    } catch {
      return { problem: "principal is not UTF-8" }
    }
  }
  // a copy, so the record does not pin (or alias) the read buffer
  return { record: { data: new Uint8Array(bytes.subarray(dataStart)), version, expiresAt, principal } }
}

// -- index maintenance

/**
 * What a write changes besides the session file. Markers are written before
 * the file and removed after it, so every session with a principal is listed
 * under it, and every session file is filed under a minute no later than
 * the one it expires in (or the minute it was written in). A marker left
 * without its session (a crash between the steps) is ignored by `keys`; the
 * sweep removes an expiry marker, `removeAll` a principal's.
 *
 * @internal
 */
export interface WritePlan {
  /** Before the write: the minute to file the key under, unless already filed there. */
  readonly addExpiry: number | undefined
  /** Before the write: the principal to mark the key under, unless already marked. */
  readonly addPrincipal: string | undefined
  /** A session file is created (not replaced): it counts towards `maxSessions`. */
  readonly created: boolean
  /** After the write: the previous principal's marker to remove. */
  readonly removePrincipal: string | undefined
  /** After the write: the previous minute's marker to remove. */
  readonly removeExpiry: number | undefined
}

/** @internal */
export const planWrite = (
  previous: FileRecord | undefined,
  next: { readonly expiresAt: number; readonly principal: string | undefined },
  now: number
): WritePlan => {
  const previousBucket = previous === undefined ? undefined : expiryBucketOf(previous.expiresAt)
  const bucket = filingBucket(next.expiresAt, now)
  const previousPrincipal = previous?.principal
  return {
    addExpiry: previousBucket === bucket ? undefined : bucket,
    addPrincipal: next.principal !== previousPrincipal ? next.principal : undefined,
    created: previous === undefined,
    removePrincipal: previousPrincipal !== next.principal ? previousPrincipal : undefined,
    removeExpiry: previousBucket !== undefined && previousBucket !== bucket ? previousBucket : undefined
  }
}

/**
 * What a sweep does with a key its listing led to, under the key's lock:
 * the file it read (`"corrupt"` when unreadable, `undefined` when gone).
 * An unreadable file and an expired session are deleted, a live one is
 * filed again under the minute it now expires in; the marker that led here
 * goes unless the session is filed there.
 *
 * @internal
 */
export const settlement = (
  read: { readonly expiresAt: number } | "corrupt" | undefined,
  now: number
): "deleteCorrupt" | "unfile" | "refile" | "delete" =>
  read === "corrupt" ? "deleteCorrupt" : read === undefined ? "unfile" : read.expiresAt > now ? "refile" : "delete"

// -- capacity

/**
 * The `maxSessions` rule: a new session file is refused once the directory
 * holds the limit, and one without a principal already from 90% of it, so
 * that anonymous traffic cannot lock logged-in users out. Replacing a file
 * (even an expired one) never counts.
 *
 * @internal
 */
export const isRefused = (
  sessions: number,
  maxSessions: number | undefined,
  anonymous: boolean,
  replacing: boolean
): boolean =>
  maxSessions !== undefined && !replacing && sessions >= (anonymous ? Math.floor(maxSessions * 0.9) : maxSessions)

/**
 * What an insert refused by `isRefused` reports: the sessions the directory
 * held, its limit, and whether the session had no principal.
 *
 * @internal
 */
export interface StoreFullCounts {
  readonly sessions: number
  readonly maxSessions: number
  readonly anonymous: boolean
}

/** @internal */
export const storeFullMessage = (sessions: number, maxSessions: number, anonymous: boolean): string =>
  anonymous
    ? `the directory holds ${sessions} sessions; sessions without a principal are refused from 90% of maxSessions (${maxSessions})`
    : `the directory holds ${sessions} sessions, maxSessions is ${maxSessions}`

// -- sweep schedule and leftovers

/**
 * How often the sweep lists the whole directory when nothing else asks for
 * it: the listing grows with the directory (about 0.2 s per 100,000 names on
 * a busy machine) and finds only leftovers of crashes. With `maxSessions`
 * every sweep lists it (the count), and the first always does.
 *
 * @internal
 */
export const listingInterval = 60 * 60_000

/** @internal */
export const isListingDue = (
  indexed: boolean,
  capped: boolean,
  now: number,
  listedAt: number
): boolean => !indexed || capped || now - listedAt >= listingInterval

/**
 * Temp files are written under the key's lock, so one older than any lock
 * could be held (and at least a minute) is an orphan of a crashed writer.
 *
 * @internal
 */
export const isLeftover = (mtime: number | undefined, wallNow: number, lockStaleAfter: number): boolean =>
  mtime !== undefined && wallNow - mtime > Math.max(lockStaleAfter, 60_000)

// -- locks

/**
 * A lock (or breaker) file older than `staleAfter` by its mtime belongs to a
 * process that died holding it. Both times are the wall clock's: file
 * mtimes know nothing of the application's clock.
 *
 * @internal
 */
export const isStaleLock = (mtime: number | undefined, wallNow: number, staleAfter: number): boolean =>
  mtime !== undefined && wallNow - mtime > staleAfter

/**
 * A file's identity for breaking a lock: the breaker removes a lock only if
 * the file it moved aside is the one it judged stale.
 *
 * @internal
 */
export const fileIdentity = (ino: number | undefined, mtime: number | undefined): string =>
  `${ino ?? -1}:${mtime ?? -1}`

/**
 * The back-off between tries of a held lock, in milliseconds: the first
 * wait is up to 1 ms, each next one up to twice the last, at most 50 ms
 * (the wait drawn between half of it and all of it).
 *
 * @internal
 */
export const firstLockBackoff = 1

/** @internal */
export const nextLockBackoff = (backoff: number): number => Math.min(backoff * 2, 50)

// -- redaction

/**
 * What logs and errors show of a storage key: its first 8 characters, as
 * spans do.
 *
 * @internal
 */
export const keyPrefix = (key: unknown): string => String(key).slice(0, 8)

/** @internal */
export const shortKey = (key: string): string => `${keyPrefix(key)}…`

/**
 * Storage keys and principal hashes are the only 43-character base64url
 * runs in this store's paths; every path or system message is cut down
 * with this before it reaches a log line or an error.
 *
 * @internal
 */
export const redact = (text: string): string => text.replace(/[A-Za-z0-9_-]{43}/g, shortKey)

/** @internal */
export const invalidKeyMessage = (prefix: string): string =>
  `refusing a storage key that is not 43 base64url characters (${JSON.stringify(prefix)}…)`

/** @internal */
export const corruptRecordMessage = (prefix: string, detail: string): string =>
  `session file ${prefix}… is not readable: ${detail}`
