/**
 * The revocation marker, without Effect: what makes `revokeAll(p)` final
 * against a login that binds another session (anonymous, or of another
 * principal) to `p`.
 *
 * Such a login inserts a new record bound to `p`, then turns the old
 * record, which is not `p`'s, into a tombstone: `revokeAll(p)` never
 * touches the old record, so a compare-and-set on it cannot tell the login
 * that it lost. So `revokeAll(p)` first stores a marker, "every session of
 * `p` revoked at t", under a key derived from `p`, then removes `p`'s
 * sessions until a pass finds none; the login, once its new record is
 * inserted, reads the marker, and removes its record again when the marker
 * is as late as the time its request started. Either the login read the
 * marker (and a request that started before `revokeAll` began ends its
 * login), or it read before the marker was written: its record was inserted
 * before that, so before the removal passes, which find it (see
 * docs/design.md, "Revocation markers").
 *
 * @internal
 */
import { createHash } from "node:crypto"
import { readRevocation, revocationText } from "./record.js"
import type { CookieDecision } from "./save.js"

/**
 * How long a marker is kept: it only has to outlive the logins in flight
 * when `revokeAll` ran, so a request that takes longer than this between its
 * start and its save can survive a `revokeAll` of its principal.
 *
 * @internal
 */
export const markerHorizonMillis = 24 * 60 * 60 * 1000

/**
 * The storage key of a principal's marker: base64url(SHA-256) of the
 * principal in a domain of its own, 43 characters like every storage key.
 * It cannot be a session's key: a session's key is the digest of a 43-character
 * id, never of this domain's text.
 *
 * @internal
 */
export const markerKey = (principal: string): string =>
  createHash("sha256").update(`effect-session/revoked\u0000${principal}`).digest("base64url")

/**
 * A marker as written: its text and its expiry.
 *
 * @internal
 */
export interface MarkerRecord {
  readonly text: string
  readonly expiresAt: number
}

/**
 * The marker of a revocation at `t`.
 *
 * @internal
 */
export const markerRecord = (t: number): MarkerRecord => ({ text: revocationText(t), expiresAt: t + markerHorizonMillis })

/**
 * What storing the marker of a revocation at `t` does next, given the
 * marker record found under its key (`undefined`: none).
 *
 * - `Insert`: there is none: insert it (a conflict: another revocation
 *   inserted one meanwhile: load again).
 * - `Update`: there is an earlier one (or an unreadable record): replace it
 *   by a compare-and-set on `version` (a conflict: load again).
 * - `Done`: a marker at `t` or later is stored: it is kept.
 *
 * @internal
 */
export type MarkerStep =
  | { readonly _tag: "Insert"; readonly record: MarkerRecord }
  | { readonly _tag: "Update"; readonly version: number; readonly record: MarkerRecord }
  | { readonly _tag: "Done" }

/**
 * The step of storing the marker of a revocation at `t` over what is stored.
 *
 * @internal
 */
export const nextMarkerStep = (
  found: { readonly version: number; readonly text?: string | undefined; readonly data?: Uint8Array | undefined } | undefined,
  t: number
): MarkerStep => {
  if (found === undefined) return { _tag: "Insert", record: markerRecord(t) }
  const revokedAt = readRevocation(found)
  return revokedAt !== undefined && revokedAt >= t ? markerDone : { _tag: "Update", version: found.version, record: markerRecord(t) }
}

const markerDone: MarkerStep = { _tag: "Done" }

/**
 * Whether a save that bound the session to `to` must read `to`'s marker:
 * a login from a session that was not `to`'s (`from`: the principal of the
 * record the save replaced by a compare-and-set; `null` for a new record,
 * whose insert replaces nothing). A move of a session already bound to `to`
 * needs none: a `revokeAll` that ended the old record makes its
 * compare-and-set fail.
 *
 * @internal
 */
export const checksLogin = (from: string | null, to: string | null): to is string => to !== null && to !== from

/**
 * What the guard of a login reads of its request's session, in each line's
 * own types: its store, how an id becomes a storage key, the principal the
 * save binds it to, and when the request began (none on a store without an
 * index).
 *
 * @internal
 */
export interface LoginSession<Store, Id, Key> {
  readonly store: Store
  readonly config: { readonly storageKey: (id: Id) => Key }
  readonly state: { readonly principal: string | null }
  readonly startedAt?: number | undefined
}

/**
 * What the save of a login must check, decided before it runs, so that a
 * save with nothing to check runs as it is: the principal whose marker it
 * reads, and when its request began. `undefined` when there is nothing to
 * check: the request has no start (its store has no index, so no
 * `revokeAll`), or `checksLogin` says no.
 *
 * @internal
 */
export interface LoginCheck {
  readonly principal: string
  readonly startedAt: number
}

/** @internal */
export const loginCheck = (session: LoginSession<unknown, never, unknown>, from: string | null): LoginCheck | undefined => {
  const { startedAt } = session
  const to = session.state.principal
  return startedAt !== undefined && checksLogin(from, to) ? { principal: to, startedAt } : undefined
}

/**
 * The key of the marker a checked login reads once its save answered
 * `cookie`; `undefined`: none to read, as the save stored no new record (only
 * a new record, whose cookie it sets, can be undone).
 *
 * @internal
 */
export const markerToRead = (check: LoginCheck, cookie: CookieDecision): string | undefined =>
  cookie._tag === "Set" ? markerKey(check.principal) : undefined

/**
 * Whether a login whose request started at `startedAt` must be undone,
 * given the marker record read after its new record was inserted: when the
 * principal was revoked at that time or later (the same millisecond counts
 * as later: a tie ends the login).
 *
 * @internal
 */
export const undoLogin = (
  marker: { readonly text?: string | undefined; readonly data?: Uint8Array | undefined } | undefined,
  startedAt: number
): boolean => {
  if (marker === undefined) return false
  const revokedAt = readRevocation(marker)
  return revokedAt !== undefined && revokedAt >= startedAt
}

/**
 * What the save of a login checked by `checksLogin` does once it answered
 * `cookie` and read the marker: `undefined` keeps the answer (the login was
 * not revoked, or stored nothing new); otherwise the record of the new id
 * `id` is removed and the response expires the cookie.
 *
 * @internal
 */
export const afterLoginSave = (
  cookie: CookieDecision,
  marker: { readonly text?: string | undefined; readonly data?: Uint8Array | undefined } | undefined,
  startedAt: number
): { readonly remove: string; readonly cookie: CookieDecision } | undefined =>
  cookie._tag === "Set" && undoLogin(marker, startedAt) ? { remove: cookie.id, cookie: expireCookie } : undefined

const expireCookie: CookieDecision = { _tag: "Expire" }

/**
 * The outcome a login undone by `afterLoginSave` gives its span.
 *
 * @internal
 */
export const loginUndoneOutcome = "login undone: its principal was revoked meanwhile"
