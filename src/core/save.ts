/**
 * The save protocol, without Effect: what a save writes and what it does
 * next after each answer of the store, for the three saves that race other
 * requests — ending a session (logout), updating it (compare-and-set with
 * replay) and moving it to a new id (regenerate, login). Each Effect line
 * runs these steps against its store; none of the decisions live there.
 *
 * @internal
 */
import { tombstoneText } from "./record.js"
import type { LoadedSession, RequestState } from "./request.js"
import { tombstoneExpiry, type Timeouts } from "./session.js"

/**
 * What a compare-and-set answered: a conflict is an answer here, not an
 * error (`Missing`: no live record; `VersionMismatch`: another writer won).
 *
 * @internal
 */
export type CasOutcome = "Written" | "Missing" | "VersionMismatch"

/**
 * What ending a record needs to know of it: its version, its expiry, and
 * where it had moved (`null`: a live session, or a session that ended).
 *
 * @internal
 */
export interface StoredState {
  readonly version: number
  readonly expiresAt: number
  readonly movedTo: string | null
}

/**
 * What a stored record is to an ending, given the tombstone read from it
 * (`undefined`: it holds a session, which ends from its own version).
 *
 * @internal
 */
export const storedState = (
  record: { readonly version: number; readonly expiresAt: number },
  tombstone: { readonly movedTo: string | null } | undefined
): StoredState => ({ version: record.version, expiresAt: record.expiresAt, movedTo: tombstone === undefined ? null : tombstone.movedTo })

/**
 * A tombstone as written: its text and its expiry (never later than the
 * session it replaces would have lived).
 *
 * @internal
 */
export interface TombstoneRecord {
  readonly text: string
  readonly expiresAt: number
}

/**
 * The tombstone replacing a record that expires at `expiresAt`, written at
 * `t`: where the session moved (`null`: it ended).
 *
 * @internal
 */
export const tombstoneRecord = (movedTo: string | null, expiresAt: number, t: number): TombstoneRecord => ({
  text: tombstoneText(movedTo),
  expiresAt: tombstoneExpiry(expiresAt, t)
})

// --- Ending a session -------------------------------------------------------

/**
 * How many moves an ending follows: each is a `regenerate` that raced the
 * logout, so a chain longer than this is not a race.
 *
 * @internal
 */
export const maxEndHops = 8

/**
 * The next step of ending the session under one key.
 *
 * - `Load`: read the record to learn its version.
 * - `WriteTombstone`: compare-and-set the ended tombstone on `state.version`
 *   (so a concurrent move cannot slip past the logout).
 * - `Pause`: another writer won; wait (the replay budget), then `Load`.
 * - `EndMoved`: the session had moved: end it where it went (one hop more),
 *   then `Remove`.
 * - `Remove`: remove the tombstone; the ending is done.
 * - `Done`: nothing (left) to end.
 *
 * @internal
 */
export type EndStep =
  | { readonly _tag: "Load" }
  | { readonly _tag: "WriteTombstone"; readonly state: StoredState; readonly record: TombstoneRecord }
  | { readonly _tag: "Pause" }
  | { readonly _tag: "EndMoved"; readonly key: string }
  | { readonly _tag: "Remove" }
  | { readonly _tag: "Done" }

/**
 * What the last step of an ending found.
 *
 * @internal
 */
export type EndEvent =
  | { readonly _tag: "Start"; readonly known: StoredState | undefined }
  | { readonly _tag: "Loaded"; readonly state: StoredState | undefined }
  | { readonly _tag: "Wrote"; readonly outcome: CasOutcome; readonly state: StoredState }
  | { readonly _tag: "Paused" }
  | { readonly _tag: "EndedMoved" }

/**
 * The step after `event`, at time `t`, `hops` moves away from the session
 * the request started from. A logout always wins: a lost compare-and-set is
 * retried on the newest version.
 *
 * @internal
 */
export const nextEndStep = (event: EndEvent, t: number, hops: number): EndStep => {
  switch (event._tag) {
    case "Start":
      return event.known === undefined ? load : writeEnded(event.known, t)
    case "Loaded":
      return event.state === undefined ? done : writeEnded(event.state, t)
    case "Paused":
      return load
    case "EndedMoved":
      return remove
    case "Wrote":
      if (event.outcome === "Missing") return done
      if (event.outcome === "VersionMismatch") return pause
      return event.state.movedTo !== null && hops < maxEndHops ? { _tag: "EndMoved", key: event.state.movedTo } : remove
  }
}

const writeEnded = (state: StoredState, t: number): EndStep => ({
  _tag: "WriteTombstone",
  state,
  record: tombstoneRecord(null, state.expiresAt, t)
})
const load: EndStep = { _tag: "Load" }
const pause: EndStep = { _tag: "Pause" }
const remove: EndStep = { _tag: "Remove" }
const done: EndStep = { _tag: "Done" }

/**
 * Whether ending every session of a principal (`revokeAll`) makes another
 * pass after its `passes`-th removed `removed` sessions: until a pass finds
 * nothing, since a move (`login`, `regenerate`) that raced a pass's listing
 * leaves a new id the next pass finds. Bounded: each further pass needs a
 * move that raced the previous one.
 *
 * @internal
 */
export const anotherRevokePass = (removed: number, passes: number): boolean => removed > 0 && passes < maxRevokePasses

/**
 * How many passes `revokeAll` makes at most.
 *
 * @internal
 */
export const maxRevokePasses = 16

// --- Updating a session -----------------------------------------------------

/**
 * What an update of a loaded session writes: the session with its next
 * idle deadline, or, when the request emptied it (no data, no principal),
 * the ended tombstone — so that a concurrent writer either has its data
 * replayed into this request or finds the session ended and drops its writes.
 *
 * @internal
 */
export type UpdateRecord =
  | { readonly _tag: "Session"; readonly expiresAt: number }
  | { readonly _tag: "Tombstone"; readonly record: TombstoneRecord }

/**
 * The record an update at `t` writes over a stored session.
 *
 * @internal
 */
export const updateRecord = (emptied: boolean, stored: { readonly expiresAt: number }, nextExpiresAt: number, t: number): UpdateRecord =>
  emptied ? { _tag: "Tombstone", record: tombstoneRecord(null, stored.expiresAt, t) } : { _tag: "Session", expiresAt: nextExpiresAt }

/**
 * What follows an update's compare-and-set.
 *
 * - `Saved`: written.
 * - `Ended`: the tombstone of an emptied session is written: remove it and
 *   expire the cookie.
 * - `Dropped`: the session was removed or expired meanwhile (a logout won):
 *   never recreate it; the request's writes are dropped.
 * - `Replay`: another writer won: reload, and apply the request's
 *   operations to what it wrote.
 *
 * @internal
 */
export const afterUpdate = (outcome: CasOutcome, wroteTombstone: boolean): "Saved" | "Ended" | "Dropped" | "Replay" =>
  outcome === "Written" ? (wroteTombstone ? "Ended" : "Saved") : outcome === "Missing" ? "Dropped" : "Replay"

// --- Moving a session to a new id -------------------------------------------

/**
 * The idle deadline of a session moved at `t`: a new id is not a new
 * session, so the absolute deadline it had still bounds it.
 *
 * @internal
 */
export const movedExpiry = (timeouts: Timeouts, absoluteExpiresAt: number, t: number): number =>
  Math.min(t + timeouts.idleMillis, absoluteExpiresAt)

/**
 * What follows the compare-and-set that turns the old record into a
 * tombstone pointing at the new one (the new record is inserted first).
 *
 * - `Moved`: done; the cookie gets the new id.
 * - `Undo`: the old session ended meanwhile (a logout, `revokeAll`): the new
 *   record must not outlive it — remove it, and leave the cookie alone.
 * - `Replay`: another writer won: reload the old session, replay the
 *   request's operations over it into the new record, and try again.
 *
 * @internal
 */
export const afterMove = (outcome: CasOutcome): "Moved" | "Undo" | "Replay" =>
  outcome === "Written" ? "Moved" : outcome === "Missing" ? "Undo" : "Replay"

// --- The lane's handoff ---------------------------------------------------------

/**
 * Whether a save should start from what the previous save of this process
 * left rather than from what its request loaded: when that is newer, its
 * compare-and-set would lose for certain, and it replays without the failed
 * round trip. `"Ended"` when a save before it ended the session.
 *
 * @internal
 */
export const handoffFrom = <S extends { readonly version: number }>(
  last: S | "Ended" | undefined,
  loadedVersion: number
): S | "Ended" | undefined =>
  last === "Ended" ? "Ended" : last !== undefined && last.version > loadedVersion ? last : undefined

// --- Group commit ---------------------------------------------------------------

/**
 * An update waiting in its lane to be written with the others (group
 * commit): what its request recorded, the session it loaded, when it saved.
 *
 * @internal
 */
export interface GroupMember<A, L extends LoadedSession<A> = LoadedSession<A>> {
  readonly request: Pick<RequestState<A, L>, "replayOver" | "cookieFor">
  readonly loaded: L
  readonly t: number
}

/**
 * Where a group's write starts: the newest session its members loaded (the
 * lane's handoff may know a newer one still) and the latest of their times
 * (the idle deadline counts from it).
 *
 * @internal
 */
export const groupStart = <A, L extends LoadedSession<A>>(
  group: ReadonlyArray<GroupMember<A, L>>
): { readonly base: L; readonly t: number } => {
  let base = group[0].loaded
  let t = group[0].t
  for (const member of group) {
    if (member.loaded.version > base.version) base = member.loaded
    if (member.t > t) t = member.t
  }
  return { base, t }
}

/**
 * The group's data: each member's operations replayed over `data` in the
 * order the members queued, so no request's writes are lost to another's.
 *
 * @internal
 */
export const replayGroup = <A, L extends LoadedSession<A>>(group: ReadonlyArray<GroupMember<A, L>>, data: A): A => {
  let replayed = data
  for (const member of group) replayed = member.request.replayOver(replayed)
  return replayed
}

/**
 * What the write of a group did, for each of its members.
 *
 * - `Written`: the session is stored with the idle deadline `expiresAt`.
 * - `Emptied`: the group emptied the session; it ended (cookie expired).
 * - `Dropped`: the session was removed meanwhile (a logout won): the
 *   group's writes are dropped, never recreating it.
 *
 * @internal
 */
export type GroupOutcome =
  | { readonly _tag: "Written"; readonly expiresAt: number }
  | { readonly _tag: "Emptied" }
  | { readonly _tag: "Dropped" }

/**
 * The group's outcome once an update's compare-and-set settled
 * (`afterUpdate` other than `Replay`), the record written expiring at `expiresAt`.
 *
 * @internal
 */
export const groupOutcome = (settled: "Saved" | "Ended" | "Dropped", expiresAt: number): GroupOutcome =>
  settled === "Saved" ? { _tag: "Written", expiresAt } : settled === "Ended" ? groupEmptied : groupDropped

const groupEmptied: GroupOutcome = { _tag: "Emptied" }
const groupDropped: GroupOutcome = { _tag: "Dropped" }

/**
 * What a response's session cookie must do.
 *
 * @internal
 */
export type CookieDecision =
  | { readonly _tag: "None" }
  | { readonly _tag: "Set"; readonly id: string; readonly expiresAt: number }
  | { readonly _tag: "Expire" }

const noCookie: CookieDecision = { _tag: "None" }
const expireCookie: CookieDecision = { _tag: "Expire" }

/**
 * One member's cookie after its group's write: sent when the deadline its
 * own request loaded moved, expired when the session was emptied, left
 * alone when the writes were dropped (the logout's response expired it).
 *
 * @internal
 */
export const cookieAfterGroup = <A, L extends LoadedSession<A>>(member: GroupMember<A, L>, outcome: GroupOutcome): CookieDecision => {
  if (outcome._tag === "Emptied") return expireCookie
  return outcome._tag === "Dropped" ? noCookie : member.request.cookieFor(member.loaded, outcome.expiresAt)
}

/**
 * After a group's write failed with an error tagged `failure` (`undefined`:
 * not a typed failure — a defect, an interruption): an encoding failure
 * (too large, a schema refinement) is one request's own, so a group of
 * several is written again one member at a time and only that request
 * fails; any other failure is every member's.
 *
 * @internal
 */
export const afterGroupFailure = (size: number, failure: string | undefined): "OneAtATime" | "FailAll" =>
  size > 1 && (failure === "SessionTooLarge" || failure === "SessionEncodeError") ? "OneAtATime" : "FailAll"

/**
 * The session a written update leaves stored (handed to the next save in
 * the lane): the base it was written over, with its new version, deadline,
 * data and text. (Built field by field: every update makes one, and two
 * object spreads cost V8 about ten times a literal.)
 *
 * @internal
 */
export const savedSession = <A>(base: LoadedSession<A>, version: number, expiresAt: number, data: A, text: string): LoadedSession<A> => ({
  key: base.key,
  version,
  expiresAt,
  createdAt: base.createdAt,
  absoluteExpiresAt: base.absoluteExpiresAt,
  principal: base.principal,
  data,
  text
})
