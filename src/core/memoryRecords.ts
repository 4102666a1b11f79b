/**
 * The store contract over the in-process table (`memory.ts`), without
 * Effect: what `load`, `insert`, `update` and `touch` do to the table at a
 * given time, and which conflict they meet. Each Effect line's MemoryStore
 * adds the clock and turns a conflict into its `SessionConflict`.
 *
 * @internal
 */
import type { MemoryEntry, MemoryTable } from "./memory.js"

/** The live entry under `key` at `now`, marked as just used. @internal */
export const loadEntry = <K extends string>(table: MemoryTable<K>, key: K, now: number): MemoryEntry | undefined => {
  const entry = table.live(key, now)
  if (entry !== undefined) table.use(key, entry)
  return entry
}

/** What a store's write carries, as the table keeps it. @internal */
export interface EntryWrite {
  /** The write's text when it has one, else its bytes. */
  readonly value: string | Uint8Array
  readonly expiresAt: number
  readonly principal: string | undefined
}

/** Stores a new entry at version 1, or answers `"Exists"` when a live one is there. @internal */
export const insertEntry = <K extends string>(
  table: MemoryTable<K>,
  key: K,
  write: EntryWrite,
  now: number
): "Exists" | undefined => {
  if (table.live(key, now) !== undefined) return "Exists"
  table.put(key, write.value, 1, write.expiresAt, write.principal, undefined)
  return undefined
}

/**
 * Replaces the live entry holding `expectedVersion` and answers the new
 * version; `"Missing"` when no entry is live, `"VersionMismatch"` when it
 * holds another version.
 *
 * @internal
 */
export const updateEntry = <K extends string>(
  table: MemoryTable<K>,
  key: K,
  write: EntryWrite,
  expectedVersion: number,
  now: number
): number | "Missing" | "VersionMismatch" => {
  const entry = table.live(key, now)
  if (entry === undefined) return "Missing"
  if (entry.version !== expectedVersion) return "VersionMismatch"
  const version = entry.version + 1
  table.put(key, write.value, version, write.expiresAt, write.principal, entry)
  return version
}

/** Moves the expiry of the live entry; whether there was one. @internal */
export const touchEntry = <K extends string>(table: MemoryTable<K>, key: K, expiresAt: number, now: number): boolean => {
  const entry = table.live(key, now)
  if (entry === undefined) return false
  table.put(key, entry.value, entry.version, expiresAt, entry.principal, entry)
  return true
}

/**
 * Whether a sweep is done after a slice removed `removed` entries: a slice
 * that was not full found nothing more to remove.
 *
 * @internal
 */
export const sweepDone = <K extends string>(table: MemoryTable<K>, removed: number): boolean =>
  removed < table.limits.sliceSize
