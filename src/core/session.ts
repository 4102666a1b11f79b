/**
 * The rules of a session, without Effect: recorded operations and their
 * replay, idle and absolute deadlines, what a save must do, and how long a
 * replay waits. Each Effect line runs them.
 *
 * @internal
 */
import { cookieAttributesProblem } from "./cookie.js"

/**
 * A write recorded by a request, replayed over newer data when a concurrent
 * writer saved first.
 *
 * @internal
 */
export type Op<A> =
  | { readonly _tag: "Set"; readonly key: keyof A; readonly value: unknown }
  | { readonly _tag: "Update"; readonly key: keyof A; readonly f: (value: any) => unknown }
  | { readonly _tag: "Remove"; readonly key: keyof A }
  | { readonly _tag: "Clear" }

/**
 * The empty session of a schema: `empty` to look values up in (never handed
 * out), `make` for a new one whose default values are made afresh (a default
 * mutated in place must never reach another session).
 *
 * @internal
 */
export interface EmptySession<A> {
  readonly empty: A
  readonly make: () => A
}

/**
 * `ops` applied in order to a copy of `base`: `remove` of a field with a
 * default gives it a fresh default, `clear` a fresh empty session.
 *
 * @internal
 */
export const applyOps = <A>(empty: EmptySession<A>, base: A, ops: ReadonlyArray<Op<A>>): A => {
  let data: Record<PropertyKey, unknown> = { ...(base as Record<PropertyKey, unknown>) }
  for (const op of ops) {
    switch (op._tag) {
      case "Set":
        data[op.key] = op.value
        break
      case "Update":
        data[op.key] = op.f(data[op.key])
        break
      case "Remove": {
        const fallback = (empty.empty as Record<PropertyKey, unknown>)[op.key] === undefined
          ? undefined
          : (empty.make() as Record<PropertyKey, unknown>)[op.key]
        if (fallback === undefined) delete data[op.key]
        else data[op.key] = fallback
        break
      }
      case "Clear":
        data = empty.make() as Record<PropertyKey, unknown>
        break
    }
  }
  return data as A
}

/**
 * The timeouts of a middleware, in milliseconds.
 *
 * @internal
 */
export interface Timeouts {
  readonly idleMillis: number
  readonly absoluteMillis: number
  readonly touchAfterMillis: number
}

const hour = 60 * 60 * 1000

/**
 * `touchAfter` when none is given: a tenth of the idle timeout, at most an hour.
 *
 * @internal
 */
export const defaultTouchAfter = (idleMillis: number): number => Math.min(idleMillis / 10, hour)

/**
 * The session cookie's attributes, as both lines' `Session.CookieOptions`
 * take them (each line's public interface extends this one).
 *
 * @internal
 */
export interface CookieOptions {
  readonly name?: string | undefined
  readonly domain?: string | undefined
  readonly path?: string | undefined
  readonly secure?: boolean | undefined
  readonly httpOnly?: boolean | undefined
  readonly sameSite?: "lax" | "strict" | "none" | undefined
  readonly partitioned?: boolean | undefined
  /** `false` for a browser-session cookie (no `Max-Age`). Default `true`. */
  readonly persistent?: boolean | undefined
}

/**
 * The session cookie's options as a middleware is given them.
 *
 * @internal
 */
export type CookieOptionsGiven = CookieOptions

/**
 * The options of a middleware and of `withSession`, as both lines'
 * `Session.Options` take them: each line's public interface extends this
 * with its duration input `D`, its `Redacted<string>` as `Secret` and its
 * `CookieOptions` as `Cookie` (parameters, so that the core does not import
 * Effect).
 *
 * @internal
 */
export interface SessionOptions<D, Secret, Cookie extends CookieOptions = CookieOptions> {
  readonly cookie?: Cookie | undefined
  /** A session unused for this long is dead. Default 14 days. */
  readonly idleTimeout?: D | undefined
  /**
   * A session older than this is dead however active. Default 30 days.
   * Counted from the session's creation on every load, so shortening it ends
   * older sessions at once.
   */
  readonly absoluteTimeout?: D | undefined
  /**
   * A request extends the idle deadline, and re-sends the cookie, only when
   * that moves it by more than this (so reads do not write, and most writes
   * send no cookie). Default min(idleTimeout / 10, 1 hour).
   */
  readonly touchAfter?: D | undefined
  /**
   * The largest encoded session, in bytes: a save over it fails with
   * `SessionTooLarge` before anything is written, and a stored record over it
   * is not parsed on load (the session starts empty). Default 64 KiB.
   */
  readonly maxSize?: number | undefined
  /** Storage keys become HMAC-SHA-256(pepper, id) instead of SHA-256(id). */
  readonly pepper?: Secret | undefined
  /**
   * How long a save keeps replaying its writes over the data of concurrent
   * writers in other processes (with jittered backoff) before it fails with
   * `SessionConflict`. Requests of one session in one process never conflict
   * with each other: their saves take turns. Default 5 seconds.
   */
  readonly conflictTimeout?: D | undefined
  /**
   * An additional cap on the number of replays of one save, within
   * `conflictTimeout`. Default: no cap (the time budget alone decides).
   */
  readonly maxConflictRetries?: number | undefined
}

/**
 * The options of `login`, as both lines' `Session.LoginOptions` take them.
 *
 * @internal
 */
export interface LoginOptions {
  /**
   * Keep the session's data when it is bound to another principal already
   * (switching accounts). Default `false`: logging in as a different
   * principal starts from empty data under a new id, so nothing the previous
   * account stored carries over. Logging in from an anonymous session, or
   * again as the same principal, always keeps the data.
   */
  readonly keepData?: boolean | undefined
}

/**
 * The session cookie of a middleware: its name, whether it outlives the
 * browser (`persistent`: a `Max-Age`), and the attributes it is set with —
 * secure by default (`Secure`, `HttpOnly`, `SameSite=Lax`, `Path=/`), with
 * `Domain` and `Partitioned` only when given. Refused with a `TypeError`
 * when browsers would drop it (`cookieAttributesProblem`): a
 * misconfiguration fails when the middleware is built, never a request.
 *
 * @internal
 */
export const cookieSettings = (cookie: CookieOptionsGiven | undefined): {
  readonly name: string
  readonly persistent: boolean
  readonly attributes: {
    readonly path: string
    readonly httpOnly: boolean
    readonly secure: boolean
    readonly sameSite: "lax" | "strict" | "none"
    readonly domain?: string
    readonly partitioned?: boolean
  }
} => {
  const name = cookie?.name ?? "session"
  const attributes = {
    path: cookie?.path ?? "/",
    httpOnly: cookie?.httpOnly ?? true,
    secure: cookie?.secure ?? true,
    sameSite: cookie?.sameSite ?? "lax",
    ...(cookie?.domain !== undefined ? { domain: cookie.domain } : {}),
    ...(cookie?.partitioned !== undefined ? { partitioned: cookie.partitioned } : {})
  }
  const problem = cookieAttributesProblem({ ...attributes, name })
  if (problem !== undefined) throw new TypeError(`effect-session: ${problem}`)
  return { name, persistent: cookie?.persistent ?? true, attributes }
}

/**
 * The timeouts of a middleware from its options (`touchAfter` defaulted),
 * refused with a `TypeError` when they cannot work: a misconfiguration
 * fails when the middleware is built, never a request.
 *
 * @internal
 */
export const makeTimeouts = (idleMillis: number, absoluteMillis: number, touchAfterMillis: number | undefined): Timeouts => {
  if (!(idleMillis > 0) || !(absoluteMillis > 0)) {
    throw new TypeError("effect-session: idleTimeout and absoluteTimeout must be positive")
  }
  return { idleMillis, absoluteMillis, touchAfterMillis: touchAfterMillis ?? defaultTouchAfter(idleMillis) }
}

/**
 * How long a save replays over writers of other processes, from the
 * options (no limit on the count unless given), refused with a `TypeError`
 * when negative.
 *
 * @internal
 */
export const makeReplayBudget = (
  conflictMillis: number,
  maxConflictRetries: number | undefined
): { readonly conflictMillis: number; readonly maxConflictRetries: number } => {
  if (!(conflictMillis >= 0)) throw new TypeError("effect-session: conflictTimeout must not be negative")
  return { conflictMillis, maxConflictRetries: maxConflictRetries ?? Number.POSITIVE_INFINITY }
}

/**
 * Whether a stored session is alive at `t`: before its idle deadline, its
 * stored absolute deadline, and the absolute deadline today's
 * `absoluteTimeout` gives (so shortening it ends older sessions at once).
 *
 * @internal
 */
export const isLive = (
  timeouts: Timeouts,
  stored: { readonly expiresAt: number; readonly createdAt: number; readonly absoluteExpiresAt: number },
  t: number
): boolean =>
  stored.expiresAt > t && stored.absoluteExpiresAt > t && stored.createdAt + timeouts.absoluteMillis > t

/**
 * The idle deadline a save or a read at `t` gives a stored session: moved
 * only when it moves by more than `touchAfter` (so most requests write no
 * expiry and send no cookie), never past the absolute deadline.
 *
 * @internal
 */
export const nextExpiry = (
  timeouts: Timeouts,
  stored: { readonly expiresAt: number; readonly absoluteExpiresAt: number },
  t: number
): number => {
  const expiresAt = Math.min(t + timeouts.idleMillis, stored.absoluteExpiresAt)
  return expiresAt - stored.expiresAt > timeouts.touchAfterMillis ? expiresAt : stored.expiresAt
}

/**
 * The deadlines of a session created at `t`.
 *
 * @internal
 */
export const newDeadlines = (
  timeouts: Timeouts,
  t: number
): { readonly createdAt: number; readonly absoluteExpiresAt: number; readonly expiresAt: number } => ({
  createdAt: t,
  absoluteExpiresAt: t + timeouts.absoluteMillis,
  expiresAt: Math.min(t + timeouts.idleMillis, t + timeouts.absoluteMillis)
})

/**
 * How long the tombstone of a moved or ended session stays: a logout in
 * flight with the old id follows it to where the session moved.
 *
 * @internal
 */
export const forwardMillis = 5 * 60 * 1000

/**
 * The expiry of a tombstone written at `t` over a record expiring at
 * `expiresAt`: never later than the session would have lived.
 *
 * @internal
 */
export const tombstoneExpiry = (expiresAt: number, t: number): number => Math.min(expiresAt, t + forwardMillis)

/**
 * The pause before replay number `retry` (0-based) over another process's
 * write, given a random `r` in [0, 1): jittered, doubling from 1–2 ms to
 * 50–100 ms.
 *
 * @internal
 */
export const replayPauseMillis = (retry: number, r: number): number => Math.min(50, 2 ** retry) * (1 + r)

/**
 * Whether replays must stop: the time budget since the first conflict is
 * spent, or the optional cap on their number is reached.
 *
 * @internal
 */
export const replayBudgetSpent = (
  budget: { readonly conflictMillis: number; readonly maxConflictRetries: number },
  firstConflictAt: number,
  now: number,
  retries: number
): boolean => now - firstConflictAt >= budget.conflictMillis || retries >= budget.maxConflictRetries

/**
 * What the end of a request does with its session.
 *
 * - `Nothing`: not used, or only read and no deadline to move.
 * - `Touch`: a stored session only read (or written with what it holds):
 *   move its idle deadline when it moves by more than `touchAfter`.
 * - `Update`: a stored session changed: compare-and-set, replay on conflict.
 * - `Rotate`: a stored session moves to a new id (`regenerate`, `login`).
 * - `New`: starting over (nothing stored, a logout, a dead session): `end`
 *   ends the stored session (or the tombstone it left) first; `insert` stores
 *   a new one; otherwise `cookie` says whether to expire the cookie.
 *
 * @internal
 */
export type SavePlan =
  | { readonly _tag: "Nothing" }
  | { readonly _tag: "Touch" }
  | { readonly _tag: "Update" }
  | { readonly _tag: "Rotate" }
  | { readonly _tag: "New"; readonly end: boolean; readonly insert: boolean; readonly expireCookie: boolean }

/**
 * The plan of a save, from what the request did. `unchanged` and `empty`
 * are asked only when the decision needs them (they encode the data).
 *
 * @internal
 */
export const planSave = (state: {
  readonly used: boolean
  /** A stored, live session was loaded. */
  readonly loaded: boolean
  /** The record under the client's id is the tombstone of a move or a logout. */
  readonly tombstone: boolean
  readonly hadCookie: boolean
  /** regenerate, login or invalidate was called. */
  readonly renew: boolean
  readonly invalidated: boolean
  readonly writes: number
  /** The data is what was loaded (only asked for a loaded session with writes). */
  readonly unchanged: () => boolean
  /** The data is the empty session and no principal is bound. */
  readonly empty: () => boolean
}): SavePlan => {
  if (!state.used) return nothing
  if (!state.renew && state.writes === 0) return state.loaded ? touch : nothing
  if (state.loaded && !state.renew) return state.unchanged() ? touch : update
  const empty = state.empty()
  if (!state.invalidated && !empty && state.loaded) return rotate
  return {
    _tag: "New",
    end: state.invalidated || (empty && (state.loaded || state.tombstone)),
    insert: !empty,
    // a request that only read a dead session leaves the cookie alone: it may
    // be a late request with the id a concurrent login just replaced
    expireCookie: empty && state.hadCookie && (state.renew || state.writes > 0)
  }
}

const nothing: SavePlan = { _tag: "Nothing" }
const touch: SavePlan = { _tag: "Touch" }
const update: SavePlan = { _tag: "Update" }
const rotate: SavePlan = { _tag: "Rotate" }
