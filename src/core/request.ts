/**
 * The session of one request, without Effect: what the request loaded, the
 * operations it recorded and what its accessors did (regenerate, logout,
 * login), and the decisions that depend only on that — the id it has, what
 * its save must do, the cookie of a stored session. Each Effect line loads
 * and saves around it.
 *
 * @internal
 */
import { generateId } from "./ids.js"
import type { CookieDecision, StoredState } from "./save.js"
import { applyOps, type EmptySession, isLive, nextExpiry, type Op, planSave, type SavePlan, type Timeouts } from "./session.js"

const noCookie: CookieDecision = { _tag: "None" }

/**
 * A stored, live session as a request loaded it.
 *
 * @internal
 */
export interface LoadedSession<A> {
  readonly key: string
  readonly version: number
  readonly expiresAt: number
  readonly createdAt: number
  readonly absoluteExpiresAt: number
  readonly principal: string | null
  readonly data: A
  /** The stored text, to tell whether a save changes it. */
  readonly text: string
}

/**
 * A stored session as a request starts from it, at `t`: the record's
 * version and idle deadline with what its envelope holds, or `undefined`
 * when the session is dead (see `isLive`).
 *
 * @internal
 */
export const liveSession = <A>(
  timeouts: Timeouts,
  key: string,
  record: { readonly version: number; readonly expiresAt: number },
  envelope: { readonly createdAt: number; readonly absoluteExpiresAt: number; readonly data: A },
  principal: string | null,
  text: string,
  t: number
): LoadedSession<A> | undefined => {
  const session = {
    key,
    version: record.version,
    expiresAt: record.expiresAt,
    createdAt: envelope.createdAt,
    absoluteExpiresAt: envelope.absoluteExpiresAt,
    principal,
    data: envelope.data,
    text
  }
  return isLive(timeouts, session, t) ? session : undefined
}

/**
 * What one request did with its session.
 *
 * @internal
 */
export class RequestState<A, L extends LoadedSession<A> = LoadedSession<A>> {
  constructor(readonly empty: EmptySession<A>, readonly timeouts: Timeouts) {}

  /** The handler used the session at all. */
  used = false
  /** The client's id, once read (`undefined`: none, or not one). */
  clientId: string | undefined = undefined
  /** The stored, live session the request started from. */
  loaded: L | undefined = undefined
  /** The record under the client's id was the tombstone of a move or a logout. */
  tombstone: StoredState | undefined = undefined
  data!: A
  ops: Array<Op<A>> = []
  principal: string | null = null
  /** Start over under a new id: regenerate, login, logout. */
  renew = false
  /** Drop everything the request started from (logout). */
  invalidated = false
  /** The id the session moves to or starts under, once chosen. */
  newId: string | undefined = undefined

  /** `data` as `ops` made it from the loaded data, while it is (see `replayOver`). */
  private madeByOps: A | undefined = undefined

  /** Starts from what the load found: nothing, a tombstone, or a live session. */
  adopt(found: { readonly loaded?: L | undefined; readonly tombstone?: StoredState | undefined }): void {
    this.tombstone = found.tombstone
    this.loaded = found.loaded
    this.data = found.loaded === undefined ? this.empty.make() : found.loaded.data
    this.principal = found.loaded === undefined ? null : found.loaded.principal
    this.madeByOps = found.loaded?.data
  }

  record(op: Op<A>): void {
    const before = this.data
    this.ops.push(op)
    this.data = applyOps(this.empty, before, [op])
    if (this.madeByOps === before) this.madeByOps = this.data
  }

  /**
   * The request's operations replayed over another writer's data. Over the
   * data the request loaded, while nothing but its operations changed it,
   * that is `data` itself: the same object, not a copy made again (an
   * update's function runs when recorded, and again only when replayed over
   * another request's changes; the codec's cached JSON of `data` is used by
   * the write).
   */
  replayOver(data: A): A {
    if (this.loaded !== undefined && data === this.loaded.data && this.madeByOps === this.data) return this.data
    return applyOps(this.empty, data, this.ops)
  }

  regenerate(): void {
    this.renew = true
    this.newId = undefined
  }

  /** Logout: everything recorded and loaded is dropped. */
  invalidate(): void {
    this.regenerate()
    this.invalidated = true
    this.ops = []
    this.data = this.empty.make()
    this.principal = null
  }

  /**
   * Binds a principal under a new id. Logging in as another principal than
   * the bound one starts from empty data (the previous session ends as with
   * a logout; writes after this still count), unless `keepData`.
   */
  login(principal: string, keepData: boolean): void {
    const bound = this.loaded?.principal ?? null
    if (!keepData && !this.invalidated && bound !== null && bound !== principal) this.invalidate()
    this.regenerate()
    this.principal = principal
  }

  /** The session's id: the client's for a stored session kept, else a new one, chosen once. */
  id(): string {
    if (!this.renew && this.loaded !== undefined && this.clientId !== undefined) return this.clientId
    return this.newId ??= generateId()
  }

  /** The id a new or moved session is stored under, chosen once. */
  targetId(): string {
    return this.newId ??= generateId()
  }

  /** The idle deadline a save or read at `t` gives a stored session. */
  nextExpiry(stored: { readonly expiresAt: number; readonly absoluteExpiresAt: number }, t: number): number {
    return nextExpiry(this.timeouts, stored, t)
  }

  /**
   * What the end of a request whose app answered `status` does with the
   * session: nothing when it was not used (`Unused`: the response is not
   * even marked as varying on the cookie); after a server error only a
   * logout (`Logout` — a failed request saves nothing, but a logout that a
   * later error undid would fail open — or `Keep`); else the save (`Save`).
   */
  afterResponse(status: number): "Unused" | "Keep" | "Logout" | "Save" {
    if (!this.used) return "Unused"
    if (status >= 500) return this.invalidated ? "Logout" : "Keep"
    return "Save"
  }

  /** A loaded session only read, whose deadline need not move at `t`: nothing to save. */
  nothingToSave(t: number): boolean {
    if (this.renew || this.ops.length > 0) return false
    return this.loaded === undefined || this.nextExpiry(this.loaded, t) === this.loaded.expiresAt
  }

  /**
   * What the save must do (the core's `planSave`), given how to tell whether
   * the data is what was loaded and whether it is empty (both need the codec).
   */
  plan(unchanged: (loaded: L) => boolean, empty: () => boolean): SavePlan {
    return planSave({
      used: this.used,
      loaded: this.loaded !== undefined,
      tombstone: this.tombstone !== undefined,
      hadCookie: this.clientId !== undefined,
      renew: this.renew,
      invalidated: this.invalidated,
      writes: this.ops.length,
      unchanged: () => unchanged(this.loaded!),
      empty
    })
  }

  /** The cookie of a stored session kept under the client's id: sent only when its deadline moved. */
  cookieFor(stored: { readonly expiresAt: number }, expiresAt: number): CookieDecision {
    return expiresAt !== stored.expiresAt && this.clientId !== undefined ? { _tag: "Set", id: this.clientId, expiresAt } : noCookie
  }

  /**
   * What a logout ends: the stored session loaded, or the tombstone found
   * under the client's id (a move that a logout with the old id follows).
   */
  endTarget(storageKey: (id: string) => string): { readonly key: string; readonly known: StoredState | undefined } | undefined {
    if (this.loaded !== undefined) {
      return { key: this.loaded.key, known: { version: this.loaded.version, expiresAt: this.loaded.expiresAt, movedTo: null } }
    }
    return this.tombstone !== undefined && this.clientId !== undefined
      ? { key: storageKey(this.clientId), known: this.tombstone }
      : undefined
  }
}
