import { Cookies, HttpApp, HttpServerRequest, HttpServerResponse } from "@effect/platform"
import type { Fiber } from "effect"
import { Cause, Clock, Context, Deferred, Duration, Effect, Either, Exit, Metric, Option, Random } from "effect"
import type { Semaphore } from "effect/Effect"
import type { Envelope, SessionCodecImpl } from "../SessionCodec.js"
import * as Codec from "../SessionCodec.js"
import type { SessionError } from "../SessionError.js"
import type { SessionId, StorageKey } from "../SessionId.js"
import * as Id from "../SessionId.js"
import type { Options } from "../Session.js"
import { SessionConflict } from "../SessionError.js"
import * as SessionMetrics from "../SessionMetrics.js"
import type { SessionStoreError } from "../SessionError.js"
import type { SessionIndex } from "../SessionStore.js"
import { SessionStore } from "../SessionStore.js"
import type { SessionRecord } from "../SessionStore.js"
import * as Core from "../core/session.js"
import { principalProblem } from "../core/principal.js"
import { readTombstone, tombstoneText } from "../core/record.js"
import { TextWrite } from "./text.js"

/** @internal */
export type Op<A> = Core.Op<A>

/**
 * Everything that does not depend on the request, built once per
 * middleware.
 *
 * @internal
 */
export interface Config<A> {
  readonly codec: SessionCodecImpl<A>
  /** The empty session, for comparisons only: never handed to a handler. */
  readonly empty: A
  /** A new empty session, its default values made afresh. */
  readonly makeEmpty: () => A
  /** The empty session, as the core's replay takes it. */
  readonly emptySession: Core.EmptySession<A>
  readonly timeouts: Core.Timeouts
  readonly emptyFingerprint: string
  readonly storageKey: (id: SessionId) => StorageKey
  readonly cookieName: string
  readonly cookieOptions: NonNullable<Cookies.Cookie["options"]>
  readonly persistent: boolean
  readonly idleMillis: number
  readonly absoluteMillis: number
  readonly touchAfterMillis: number
  /** How long a save replays over writers of other processes. */
  readonly conflictMillis: number
  readonly maxConflictRetries: number
}

/** @internal */
export const makeConfig = <A, I>(
  schema: import("effect").Schema.Schema<A, I, never>,
  empty: A,
  makeEmpty: () => A,
  options: Options | undefined
): Config<A> => {
  const cookie = options?.cookie ?? {}
  const cookieName = cookie.name ?? "session"
  const cookieOptions = {
    path: cookie.path ?? "/",
    httpOnly: cookie.httpOnly ?? true,
    secure: cookie.secure ?? true,
    sameSite: cookie.sameSite ?? "lax",
    ...(cookie.domain !== undefined ? { domain: cookie.domain } : {}),
    ...(cookie.partitioned !== undefined ? { partitioned: cookie.partitioned } : {})
  } as const
  if (cookieName.startsWith("__Host-")) {
    if (!cookieOptions.secure || cookieOptions.path !== "/" || cookie.domain !== undefined) {
      throw new TypeError(
        `effect-session: a cookie named "${cookieName}" must be Secure, have Path=/ and no Domain (browsers drop it otherwise)`
      )
    }
  } else if (cookieName.startsWith("__Secure-") && !cookieOptions.secure) {
    throw new TypeError(`effect-session: a cookie named "${cookieName}" must be Secure (browsers drop it otherwise)`)
  }
  if (cookieOptions.sameSite === "none" && !cookieOptions.secure) {
    throw new TypeError("effect-session: SameSite=None requires Secure (browsers drop it otherwise)")
  }
  // validates the name and attributes once, so per-request cookies cannot fail
  const probe = Cookies.makeCookie(cookieName, "x", cookieOptions)
  if (probe._tag === "Left") {
    throw new TypeError(`effect-session: invalid session cookie: ${probe.left.message}`)
  }
  const idleMillis = Duration.toMillis(options?.idleTimeout ?? "14 days")
  const absoluteMillis = Duration.toMillis(options?.absoluteTimeout ?? "30 days")
  if (!(idleMillis > 0) || !(absoluteMillis > 0)) {
    throw new TypeError("effect-session: idleTimeout and absoluteTimeout must be positive")
  }
  const touchAfterMillis = options?.touchAfter !== undefined
    ? Duration.toMillis(options.touchAfter)
    : Core.defaultTouchAfter(idleMillis)
  const codec = Codec.makeImpl(schema, { maxSize: options?.maxSize })
  const emptyFingerprint = Either.getOrThrow(codec.fingerprintEither(empty))
  const conflictMillis = Duration.toMillis(options?.conflictTimeout ?? "5 seconds")
  if (!(conflictMillis >= 0)) throw new TypeError("effect-session: conflictTimeout must not be negative")
  return {
    codec,
    empty,
    makeEmpty,
    emptySession: { empty, make: makeEmpty },
    timeouts: { idleMillis, absoluteMillis, touchAfterMillis },
    emptyFingerprint,
    storageKey: Id.makeStorageKey(options?.pepper),
    cookieName,
    cookieOptions,
    persistent: cookie.persistent ?? true,
    idleMillis,
    absoluteMillis,
    touchAfterMillis,
    conflictMillis,
    maxConflictRetries: options?.maxConflictRetries ?? Number.POSITIVE_INFINITY
  }
}

interface Loaded<A> {
  readonly key: StorageKey
  readonly version: number
  readonly expiresAt: number
  readonly envelope: Envelope<A>
  /** The stored text, to tell whether a save changes it. */
  readonly text: string
}

/** @internal */
export type CookieAction =
  | { readonly _tag: "None" }
  | { readonly _tag: "Set"; readonly id: SessionId; readonly expiresAt: number }
  | { readonly _tag: "Expire" }

const noCookie: CookieAction = { _tag: "None" }

const applyOps = <A>(config: Config<A>, base: A, ops: ReadonlyArray<Op<A>>): A =>
  Core.applyOps(config.emptySession, base, ops)

/**
 * The session handle a request (or `withSession`) works with.
 *
 * @internal
 */
export interface SessionHandle<A> {
  readonly get: <K extends keyof A>(key: K) => Effect.Effect<A[K], SessionError>
  readonly getAll: Effect.Effect<A, SessionError>
  readonly set: <K extends keyof A>(key: K, value: A[K]) => Effect.Effect<void, SessionError>
  readonly update: <K extends keyof A>(key: K, f: (value: A[K]) => A[K]) => Effect.Effect<void, SessionError>
  readonly remove: (key: keyof A) => Effect.Effect<void, SessionError>
  readonly clear: Effect.Effect<void, SessionError>
  readonly regenerate: Effect.Effect<void, SessionError>
  readonly invalidate: Effect.Effect<void, SessionError>
  readonly login: (principal: string, options?: { readonly keepData?: boolean | undefined }) => Effect.Effect<void, SessionError>
  readonly principal: Effect.Effect<Option.Option<string>, SessionError>
  readonly id: Effect.Effect<SessionId, SessionError>
}

/**
 * The session of one request: lazy, records writes as operations so they can
 * be replayed over newer data when a concurrent request saved first.
 *
 * Every request runs through here, so the common paths are written to cost
 * few effects: an access to a loaded session is one step, a read-only
 * request's commit one clock read.
 *
 * @internal
 */
export class RequestSession<A> implements SessionHandle<A> {
  constructor(
    readonly config: Config<A>,
    readonly store: SessionStore["Type"],
    /** Reads the client's id; called at most once, on first use. */
    readonly readId: () => Option.Option<SessionId>
  ) {}

  /** Whether the handler used the session at all. */
  used = false
  /** The client's id, once read. */
  clientId: Option.Option<SessionId> = Option.none()
  /** The stored session the request started from. */
  loaded: Option.Option<Loaded<A>> = Option.none()
  data!: A
  ops: Array<Op<A>> = []
  principal_: Option.Option<string> = Option.none()
  /** Start over under a new id: regenerate, login, invalidate. */
  renew = false
  /** Drop everything the request started from. */
  invalidated = false
  /** The record under the client's id was the tombstone of a move or a logout. */
  tombstone: RawState | undefined = undefined
  newId: SessionId | undefined

  private loadDone = false
  /** The fiber running the load, while one runs; others wait for it. */
  private loader: Fiber.RuntimeFiber<unknown, unknown> | undefined
  private loadSettled: Deferred.Deferred<void> | undefined

  /**
   * Loads once, on first use. Fibers of one request share the load; a load
   * that failed or was interrupted (a handler's timeout) is tried again by
   * the next access rather than remembered.
   */
  get ensureLoaded(): Effect.Effect<void, SessionError> {
    return this.access(constVoid)
  }

  /** `f` on the loaded session, as one effect. */
  private access<B>(f: () => B): Effect.Effect<B, SessionError> {
    return Effect.withFiberRuntime<B, SessionError>((fiber) => this.loadThen(f, fiber))
  }

  /**
   * `f` once the session is loaded: synchronously when it already is. The
   * load's bookkeeping is done by its success and failure handlers, not by
   * a finalizer (which would cost every request several steps); a load whose
   * fiber was interrupted is recognised by the next access, which loads again.
   */
  loadThen<B>(f: () => B, fiber: Fiber.RuntimeFiber<unknown, unknown>): Effect.Effect<B, SessionError> {
    this.used = true
    if (this.loadDone) return Effect.succeed(f())
    const loader = this.loader
    if (loader !== undefined && loader !== fiber && loader.unsafePoll() === null) {
      // rare: another fiber of this request is loading; wait for it (or for
      // its end, if it is interrupted), then look again
      this.loadSettled ??= Deferred.unsafeMake(fiber.id())
      return Effect.zipRight(
        Effect.raceFirst(Deferred.await(this.loadSettled), loader.await),
        Effect.withFiberRuntime<B, SessionError>((fiber) => this.loadThen(f, fiber))
      )
    }
    // no load running, or its fiber was interrupted during it (even this one,
    // now running a finalizer): load. The id is read now; the record is
    // decoded by the load's own success handler (no step between the two).
    this.clientId = this.readId()
    if (Option.isNone(this.clientId)) {
      this.data = this.config.makeEmpty()
      this.settle(true)
      return Effect.succeed(f())
    }
    this.loader = fiber
    const key = this.config.storageKey(this.clientId.value)
    const clock = Context.get(fiber.currentDefaultServices, Clock.Clock)
    // in the lane before the load: a save of this process that ends while
    // the load is on its way still hands its result to this request
    this.stayInLane(key, fiber)
    return Effect.matchCauseEffect(this.store.load(key), {
      onFailure: (cause) => {
        this.releaseLane()
        this.settle(false)
        return Effect.failCause(cause)
      },
      onSuccess: (record) => {
        const log = this.adopt(key, record, clock.unsafeCurrentTimeMillis())
        if (Option.isNone(this.loaded)) this.releaseLane()
        this.settle(true)
        return log === undefined ? Effect.succeed(f()) : Effect.zipRight(log, Effect.sync(f))
      }
    })
  }

  /** Ends this request's membership of its session's lane (idempotent). */
  releaseLane: () => void = constVoid

  /**
   * The request loaded a stored session it may save: the lane of its key,
   * and what the saves of other requests hand over in it, stay until this
   * request is done (its save ended, or else its fiber), so that a save of
   * this process never loses a compare-and-set to another one.
   */
  private stayInLane(key: StorageKey, fiber: Fiber.RuntimeFiber<unknown, unknown>): void {
    this.releaseLane()
    const { release } = joinLane(this.store, key)
    const observer = () => release()
    fiber.addObserver(observer)
    this.releaseLane = () => {
      fiber.removeObserver(observer)
      release()
    }
  }

  private settle(loaded: boolean): void {
    this.loader = undefined
    if (loaded) this.loadDone = true
    const settled = this.loadSettled
    this.loadSettled = undefined
    if (settled !== undefined) Deferred.unsafeDone(settled, Exit.void)
  }

  private adopt(key: StorageKey, record: Option.Option<SessionRecord>, t: number): Effect.Effect<void> | undefined {
    if (Option.isNone(record)) {
      this.data = this.config.makeEmpty()
      return undefined
    }
    const decoded = decodeRecord(this.config, key, record.value, t)
    if (decoded._tag === "Undecodable") {
      this.data = this.config.makeEmpty()
      return decoded.log
    }
    if (decoded._tag === "Tombstone") {
      // moved or ended: no data, but a logout follows where it moved to
      this.tombstone = decoded.tombstone
      this.data = this.config.makeEmpty()
      return undefined
    }
    this.loaded = decoded.loaded
    if (Option.isSome(decoded.loaded)) {
      this.data = decoded.loaded.value.envelope.data
      this.principal_ = decoded.loaded.value.envelope.principal
    } else {
      this.data = this.config.makeEmpty()
    }
    return undefined
  }

  // Each operation is a synchronous step on the loaded session (`…Now`),
  // run by `access`; the tag's accessors, which already run with the fiber
  // at hand, run the same steps through `loadThen` (one runtime step less).

  getNow<K extends keyof A>(key: K): A[K] {
    return this.data[key]
  }

  recordNow(op: Op<A>): void {
    this.ops.push(op)
    this.data = applyOps(this.config, this.data, [op])
  }

  regenerateNow(): void {
    this.renew = true
    this.newId = undefined
  }

  invalidateNow(): void {
    this.renew = true
    this.invalidated = true
    this.newId = undefined
    this.ops = []
    this.data = this.config.makeEmpty()
    this.principal_ = Option.none()
  }

  loginNow(principal: string, keepData = false): void {
    const bound = Option.isSome(this.loaded) ? this.loaded.value.envelope.principal : Option.none()
    if (!keepData && !this.invalidated && Option.isSome(bound) && bound.value !== principal) {
      // switching accounts: nothing of the previous account carries over
      // (its session ends as with a logout; writes after this still count)
      this.invalidateNow()
    }
    this.renew = true
    this.newId = undefined
    this.principal_ = Option.some(principal)
  }

  idNow(): SessionId {
    if (!this.renew && Option.isSome(this.loaded) && Option.isSome(this.clientId)) {
      return this.clientId.value
    }
    if (this.newId === undefined) this.newId = Id.unsafeGenerate()
    return this.newId
  }

  get<K extends keyof A>(key: K): Effect.Effect<A[K], SessionError> {
    return this.access(() => this.getNow(key))
  }

  get getAll(): Effect.Effect<A, SessionError> {
    return this.access(() => this.data)
  }

  set<K extends keyof A>(key: K, value: A[K]): Effect.Effect<void, SessionError> {
    return this.record({ _tag: "Set", key, value })
  }

  update<K extends keyof A>(key: K, f: (value: A[K]) => A[K]): Effect.Effect<void, SessionError> {
    return this.record({ _tag: "Update", key, f })
  }

  remove(key: keyof A): Effect.Effect<void, SessionError> {
    return this.record({ _tag: "Remove", key })
  }

  get clear(): Effect.Effect<void, SessionError> {
    return this.record({ _tag: "Clear" })
  }

  get principal(): Effect.Effect<Option.Option<string>, SessionError> {
    return this.access(() => this.principal_)
  }

  record(op: Op<A>): Effect.Effect<void, SessionError> {
    return this.access(() => this.recordNow(op))
  }

  get regenerate(): Effect.Effect<void, SessionError> {
    return this.access(() => this.regenerateNow())
  }

  get invalidate(): Effect.Effect<void, SessionError> {
    return this.access(() => this.invalidateNow())
  }

  login(principal: string, options?: { readonly keepData?: boolean | undefined }): Effect.Effect<void, SessionError> {
    return invalidPrincipal(principal) ?? this.access(() => this.loginNow(principal, options?.keepData === true))
  }

  get id(): Effect.Effect<SessionId, SessionError> {
    return this.access(() => this.idNow())
  }

  /**
   * Saves what the request did. Returns what the response's cookie must do.
   */
  get commit(): Effect.Effect<CookieAction, SessionError> {
    return Effect.clockWith((clock) => this.commitAt(clock.unsafeCurrentTimeMillis()))
  }

  /**
   * `commit` at a time the caller read (the middleware has the clock at
   * hand). A session not loaded yet (its load failed and the app went on)
   * is loaded first, and the time read again after it.
   */
  commitAt(t: number): Effect.Effect<CookieAction, SessionError> {
    if (!this.used) return Effect.succeed(noCookie)
    if (!this.loadDone) return Effect.flatMap(this.ensureLoaded, () => this.commit)
    this.committedAt = t
    return Effect.ensuring(
      Effect.tapErrorTag(this.save(t), "SessionTooLarge", () => Metric.increment(SessionMetrics.tooLarge)),
      Effect.sync(() => this.releaseLane())
    )
  }

  /**
   * After the request failed (or answered 5xx): a failed request saves
   * nothing, except a logout — removing a session is always safe to apply,
   * and a logout that a later error undid would fail open. Returns the
   * cookie to send when the logout was applied. Never fails: a store error
   * here is logged (the request is failing already).
   */
  revokeAfterFailure(cause?: Cause.Cause<unknown>): Effect.Effect<CookieAction> {
    if (!this.invalidated || !this.loadDone || (cause !== undefined && Cause.isInterruptedOnly(cause))) {
      return Effect.succeed(noCookie)
    }
    return Effect.clockWith((clock) => {
      const t = clock.unsafeCurrentTimeMillis()
      this.committedAt = t
      return this.endPrevious(t)
    }).pipe(
      Effect.map(() => Option.isSome(this.clientId) ? expired : noCookie),
      Effect.catchAllCause((failure) =>
        Effect.as(
          Effect.logWarning("effect-session: a logout in a failed request could not be applied", failure),
          noCookie
        )
      )
    )
  }

  /**
   * Whether a commit at `t` would do nothing: a loaded session that was only
   * read and whose deadline need not move. Lets the middleware answer
   * without running the commit at all.
   */
  nothingToSave(t: number): boolean {
    if (!this.loadDone || this.renew || this.ops.length > 0) return false
    return Option.isNone(this.loaded) || this.nextExpiry(this.loaded.value, t) === this.loaded.value.expiresAt
  }

  /** The time the save was computed at: cookie lifetimes count from it. */
  committedAt = 0

  private save(t: number): Effect.Effect<CookieAction, SessionError> {
    const config = this.config
    // the plan asks for these only when it needs them (they encode the data);
    // an encoding failure fails the save
    let failure: SessionError | undefined
    const plan = Core.planSave({
      used: this.used,
      loaded: Option.isSome(this.loaded),
      tombstone: this.tombstone !== undefined,
      hadCookie: Option.isSome(this.clientId),
      renew: this.renew,
      invalidated: this.invalidated,
      writes: this.ops.length,
      unchanged: () => {
        const loaded = Option.getOrThrow(this.loaded)
        const unchanged = config.codec.unchanged(this.data, loaded.envelope, loaded.text)
        if (Either.isLeft(unchanged)) failure = unchanged.left
        return Either.getOrElse(unchanged, () => false)
      },
      empty: () => {
        const fingerprint = config.codec.fingerprintEither(this.data)
        if (Either.isLeft(fingerprint)) failure = fingerprint.left
        return Either.isRight(fingerprint) && fingerprint.right === config.emptyFingerprint &&
          Option.isNone(this.principal_)
      }
    })
    if (failure !== undefined) return Effect.fail(failure)
    switch (plan._tag) {
      case "Nothing":
        return Effect.succeed(noCookie)
      case "Touch":
        return this.touch(Option.getOrThrow(this.loaded), t)
      case "Update":
        return this.updateInGroup(Option.getOrThrow(this.loaded), t)
      case "Rotate": {
        // regenerate / login: the data moves to a new id
        const loaded = Option.getOrThrow(this.loaded)
        return this.inLane(loaded.key, (lane) => this.rotate(lane, loaded, t))
      }
      case "New":
        // the stored session (and whatever it moved to meanwhile) ends first
        return Effect.zipRight(
          plan.end ? this.endPrevious(t) : Effect.void,
          plan.insert ? this.insertNew(t) : Effect.succeed(plan.expireCookie ? expired : noCookie)
        )
    }
  }

  /** A new session under a new id. */
  private insertNew(t: number): Effect.Effect<CookieAction, SessionError> {
    const config = this.config
    return Effect.suspend(() => {
      const id = this.newId ?? Id.unsafeGenerate()
      this.newId = id
      const deadlines = Core.newDeadlines(config.timeouts, t)
      const envelope: Envelope<A> = {
        createdAt: deadlines.createdAt,
        absoluteExpiresAt: deadlines.absoluteExpiresAt,
        data: this.data,
        principal: this.principal_
      }
      return Effect.flatMap(config.codec.encodeText(envelope), (text) =>
        Effect.as(
          insertFresh(this.store, config.storageKey(id), new TextWrite(text, deadlines.expiresAt, envelope.principal)),
          { _tag: "Set", id, expiresAt: deadlines.expiresAt } as const
        ))
    })
  }

  /**
   * Ends the session the request started from: its record (live, or the
   * tombstone of a move) is replaced by a tombstone with a compare-and-set
   * (so a concurrent move cannot slip past), the session it moved to is
   * ended too, then the record is removed.
   */
  private endPrevious(t: number): Effect.Effect<void, SessionError> {
    const key = Option.isSome(this.loaded)
      ? this.loaded.value.key
      : this.tombstone !== undefined && Option.isSome(this.clientId)
      ? this.config.storageKey(this.clientId.value)
      : undefined
    if (key === undefined) return Effect.void
    const first: RawState | undefined = Option.isSome(this.loaded)
      ? { version: this.loaded.value.version, expiresAt: this.loaded.value.expiresAt, movedTo: null }
      : this.tombstone
    return this.inLane(key, (lane) => endSession(this.config, this.store, lane, key, first, t, 0))
  }

  /**
   * Moves the session to a new id: the new record is inserted, then the old
   * one is replaced by a tombstone pointing at it with a compare-and-set on
   * the version the request loaded. A concurrent write of the old session
   * is replayed into the new one; a concurrent logout or `revokeAll` of the
   * old session (the compare-and-set finds it gone or ended) removes the
   * new one again before the response is sent, so nothing revoked lives on.
   */
  private rotate(lane: Lane, previous: Loaded<A>, t: number): Effect.Effect<CookieAction, SessionError> {
    const config = this.config
    const store = this.store
    return Effect.gen(this, function*() {
      let current = previous
      const handed = handoff(lane, config, current)
      if (handed === "Ended") return noCookie
      if (handed !== undefined) {
        current = handed
        this.data = applyOps(config, current.envelope.data, this.ops)
      }
      const id = this.newId ?? Id.unsafeGenerate()
      this.newId = id
      const newKey = config.storageKey(id)
      // a new id is not a new session: the absolute deadline is kept
      const writeFor = (base: Loaded<A>) =>
        Effect.map(
          config.codec.encodeText({ ...base.envelope, data: this.data, principal: this.principal_ }),
          (text) =>
            new TextWrite(text, Math.min(t + config.idleMillis, base.envelope.absoluteExpiresAt), this.principal_)
        )
      let write = yield* writeFor(current)
      yield* insertFresh(store, newKey, write)
      let newVersion = 1
      const budget = new ConflictBudget(config)
      while (true) {
        const outcome = yield* casOutcome(
          store.update(
            current.key,
            tombstoneWrite(newKey, Core.tombstoneExpiry(current.expiresAt, t)),
            current.version
          )
        )
        if (outcome === "Written") {
          lane.last = ended
          return yield* Effect.as(
            Effect.zipRight(
              Metric.increment(SessionMetrics.regenerations),
              Effect.annotateCurrentSpan("effect-session.outcome", "regenerated")
            ),
            { _tag: "Set", id, expiresAt: write.expiresAt } as const
          )
        }
        const fresh = outcome === "Missing" ? Option.none<Loaded<A>>() : yield* this.afterMismatch(budget, current.key)
        if (Option.isNone(fresh)) {
          // ended meanwhile (a logout, `revokeAll`): the new id must not outlive
          // it; the cookie is left alone (the logout's response expired it, and
          // the browser may hold a newer one by now)
          lane.last = ended
          yield* store.remove(newKey)
          yield* Metric.increment(revokedBy.moveUndone)
          yield* Effect.annotateCurrentSpan("effect-session.outcome", "move undone: the session ended meanwhile")
          return noCookie
        }
        current = fresh.value
        this.data = applyOps(config, current.envelope.data, this.ops)
        write = yield* writeFor(current)
        // (only this request knows the new key: a conflict there is the store's fault)
        newVersion = yield* Effect.tapError(store.update(newKey, write, newVersion), () => store.remove(newKey))
      }
    })
  }

  /**
   * After a compare-and-set lost to a concurrent writer: waits (jittered),
   * reloads, and gives the live session to replay over — or fails with
   * `SessionConflict` once the time budget is spent.
   */
  private afterMismatch(budget: ConflictBudget, key: StorageKey): Effect.Effect<Option.Option<Loaded<A>>, SessionError> {
    return Effect.flatMap(budget.next, () => loadLive(this.config, this.store, key))
  }

  /**
   * The idle deadline a save at `t` gives a stored session: moved only when
   * it moves by more than `touchAfter` (so most requests write no expiry and
   * send no cookie), never past the absolute deadline.
   */
  private nextExpiry(loaded: Loaded<A>, t: number): number {
    return Core.nextExpiry(
      this.config.timeouts,
      { expiresAt: loaded.expiresAt, absoluteExpiresAt: loaded.envelope.absoluteExpiresAt },
      t
    )
  }

  /** The cookie of a stored session whose deadline is `expiresAt`: sent only when it moved. */
  cookieFor(loaded: Loaded<A>, expiresAt: number): CookieAction {
    return expiresAt !== loaded.expiresAt && Option.isSome(this.clientId)
      ? { _tag: "Set", id: this.clientId.value, expiresAt }
      : noCookie
  }

  private touch(loaded: Loaded<A>, t: number): Effect.Effect<CookieAction, SessionError> {
    const expiresAt = this.nextExpiry(loaded, t)
    if (expiresAt === loaded.expiresAt) return Effect.succeed(noCookie)
    return Effect.map(this.store.touch(loaded.key, expiresAt), (live) => live ? this.cookieFor(loaded, expiresAt) : noCookie)
  }

  /** Runs `f` when the earlier saves of this process to `key` are done. */
  private inLane<B, E>(key: StorageKey, f: (lane: Lane) => Effect.Effect<B, E>): Effect.Effect<B, E> {
    return withLane(this.store, key, f)
  }

  /**
   * An update, written together with the updates of this process to the
   * same session that wait with it (group commit): one fiber takes every
   * update queued in the lane, replays their operations in order over the
   * newest data it knows, and writes the result with one compare-and-set.
   * A burst of writes to one session costs a few round trips instead of one
   * each, and no request's writes can be lost to another's. An encoding
   * failure (`SessionTooLarge`, a schema refinement) is one request's own:
   * the group is then written one update at a time, so only that request
   * fails.
   */
  private updateInGroup(loaded: Loaded<A>, t: number): Effect.Effect<CookieAction, SessionError> {
    const store = this.store
    return Effect.flatMap(Deferred.make<CookieAction, SessionError>(), (done) =>
      Effect.suspend(() => {
        const { lane, release } = joinLane(store, loaded.key)
        lane.queue.push({ session: this, loaded, t, done })
        // the writer runs on its own fiber: an interrupted request (a client
        // that went away) does not stop the writes of the others
        const write = lane.writing ? Effect.void : Effect.asVoid(Effect.forkDaemon(writeQueued(store, loaded.key)))
        lane.writing = true
        return Effect.ensuring(Effect.zipRight(write, Deferred.await(done)), Effect.sync(release))
      }))
  }

  /**
   * The updates of a group, written with one compare-and-set over the newest
   * data: replayed again over a concurrent writer's data (another process)
   * until the conflict budget is spent.
   */
  writeGroup(lane: Lane, group: ReadonlyArray<GroupedUpdate>): Effect.Effect<GroupOutcome, SessionError> {
    const config = this.config
    const budget = new ConflictBudget(config)
    const t = Math.max(...group.map((update) => update.t))
    const newest = group.reduce((a, b) => b.loaded.version > a.loaded.version ? b : a).loaded as Loaded<A>
    const attempt = (current: Loaded<A>): Effect.Effect<GroupOutcome, SessionError> => {
      let data = current.envelope.data
      for (const update of group) data = applyOps(config, data, update.session.ops as ReadonlyArray<Op<A>>)
      const envelope: Envelope<A> = { ...current.envelope, data }
      const fingerprint = config.codec.fingerprintEither(data)
      if (Either.isLeft(fingerprint)) return Effect.fail(fingerprint.left)
      const emptied = fingerprint.right === config.emptyFingerprint && Option.isNone(envelope.principal)
      const expiresAt = this.nextExpiry(current, t)
      let write: TextWrite
      if (emptied) {
        write = tombstoneWrite(null, Core.tombstoneExpiry(current.expiresAt, t))
      } else {
        const text = config.codec.encodeText(envelope)
        if (Either.isLeft(text)) return Effect.fail(text.left)
        write = new TextWrite(text.right, expiresAt, envelope.principal)
      }
      return Effect.flatMap(casOutcome(this.store.update(current.key, write, current.version)), (outcome) => {
        switch (outcome) {
          case "Written":
            if (emptied) {
              lane.last = ended
              return Effect.as(this.store.remove(current.key), groupEmptied)
            }
            lane.last = {
              config,
              loaded: { key: current.key, version: current.version + 1, expiresAt, envelope, text: write.text }
            }
            return Effect.succeed<GroupOutcome>({ _tag: "Written", expiresAt })
          case "Missing":
            // removed or expired meanwhile (a logout won the race): never recreate it
            lane.last = ended
            return groupDropped
          case "VersionMismatch":
            return Effect.flatMap(this.afterMismatch(budget, current.key), (fresh) => {
              if (Option.isNone(fresh)) {
                lane.last = ended
                return groupDropped
              }
              return attempt(fresh.value)
            })
        }
      })
    }
    const handed = handoff(lane, config, newest)
    if (handed === "Ended") return groupDropped
    return attempt(handed ?? newest)
  }

  /** The cookie of this request after its group was written. */
  cookieAfter(loaded: Loaded<A>, outcome: GroupOutcome): CookieAction {
    switch (outcome._tag) {
      case "Written":
        return this.cookieFor(loaded, outcome.expiresAt)
      case "Emptied":
        return expired
      case "Dropped":
        return noCookie
    }
  }
}

const constVoid = (): void => undefined

/** What the write of a group of updates did. */
type GroupOutcome =
  | { readonly _tag: "Written"; readonly expiresAt: number }
  | { readonly _tag: "Emptied" }
  | { readonly _tag: "Dropped" }

const groupEmptied: GroupOutcome = { _tag: "Emptied" }

const groupDropped: Effect.Effect<GroupOutcome> = Effect.as(
  Effect.logDebug("effect-session: the session was removed during the request; its writes are dropped"),
  { _tag: "Dropped" } as const
)

/**
 * Writes the updates queued in the lane of `key`, group after group, until
 * none is left: each group is the updates queued by then (of one session
 * definition), written with one compare-and-set in the lane's turn. A group
 * whose data cannot be encoded is written one update at a time, so that only
 * the update at fault fails.
 */
const writeQueued = (store: SessionStore["Type"], key: StorageKey): Effect.Effect<void> =>
  withLane(store, key, (lane) =>
    Effect.gen(function*() {
      while (true) {
        // (checked and given up in one synchronous step: an update queued
        // after this starts a writer of its own)
        if (lane.queue.length === 0) {
          lane.writing = false
          return
        }
        const first = lane.queue[0]
        const config = first.session.config
        let size = 1
        while (size < lane.queue.length && lane.queue[size].session.config === config) size++
        const group = lane.queue.splice(0, size)
        const outcome = yield* Effect.exit(first.session.writeGroup(lane, group))
        if (Exit.isSuccess(outcome)) {
          for (const update of group) {
            Deferred.unsafeDone(update.done, Exit.succeed(update.session.cookieAfter(update.loaded, outcome.value)))
          }
        } else if (group.length > 1 && isEncodingFailure(outcome.cause)) {
          for (const update of group) {
            const alone = yield* Effect.exit(update.session.writeGroup(lane, [update]))
            Deferred.unsafeDone(
              update.done,
              Exit.map(alone, (outcome) => update.session.cookieAfter(update.loaded, outcome))
            )
          }
        } else {
          for (const update of group) Deferred.unsafeDone(update.done, Exit.failCause(outcome.cause))
        }
      }
    }).pipe(
      // a defect or an interruption must not leave the queued requests waiting
      Effect.onExit((exit) =>
        Effect.sync(() => {
          if (Exit.isSuccess(exit)) return
          lane.writing = false
          for (const update of lane.queue.splice(0)) Deferred.unsafeDone(update.done, exit as Exit.Exit<never, never>)
        })
      )
    ))

const isEncodingFailure = (cause: Cause.Cause<SessionError>): boolean =>
  Option.exists(
    Cause.failureOption(cause),
    (error) => error._tag === "SessionTooLarge" || error._tag === "SessionEncodeError"
  )

const expired: CookieAction = { _tag: "Expire" }

/** The record that replaces a session that moved to `movedTo` or ended (`null`): no data, no principal. */
const tombstoneWrite = (movedTo: StorageKey | null, expiresAt: number): TextWrite =>
  new TextWrite(tombstoneText(movedTo), expiresAt, Option.none())

/** What a session needs of a stored record to end it. */
interface RawState {
  readonly version: number
  readonly expiresAt: number
  /** Where a moved session went (`null`: ended, or a live session). */
  readonly movedTo: StorageKey | null
}

/** The tombstone in a record, or `undefined` when it is a session. */
const tombstoneOf = (record: SessionRecord): RawState | undefined => {
  const tombstone = readTombstone(record)
  return tombstone === undefined ? undefined : {
    version: record.version,
    expiresAt: record.expiresAt,
    movedTo: tombstone.movedTo === null ? null : Id.unsafeStorageKey(tombstone.movedTo)
  }
}

/**
 * Ends the session stored under `key`: a compare-and-set to an ended
 * tombstone on the version last seen (retried on the newest version when
 * a concurrent writer won: the logout always wins), then the session it had
 * moved to, then the record itself. A few hops at most: each hop is a
 * `regenerate` that raced this logout.
 */
const endSession = <A>(
  config: Config<A>,
  store: SessionStore["Type"],
  lane: Lane,
  key: StorageKey,
  known: RawState | undefined,
  t: number,
  hops: number
): Effect.Effect<void, SessionError> =>
  Effect.gen(function*() {
    lane.last = ended
    const budget = new ConflictBudget(config)
    let state = known
    while (true) {
      if (state === undefined) {
        const record = yield* store.load(key)
        if (Option.isNone(record)) return
        state = tombstoneOf(record.value) ??
          { version: record.value.version, expiresAt: record.value.expiresAt, movedTo: null }
      }
      const outcome = yield* casOutcome(
        store.update(key, tombstoneWrite(null, Core.tombstoneExpiry(state.expiresAt, t)), state.version)
      )
      if (outcome === "Missing") return
      if (outcome === "Written") {
        if (hops === 0) yield* Metric.increment(revokedBy.logout)
        break
      }
      yield* budget.next
      state = undefined
    }
    if (state.movedTo !== null && hops < 8) {
      const movedTo = state.movedTo
      yield* withLane(store, movedTo, (next) => endSession(config, store, next, movedTo, undefined, t, hops + 1))
    }
    yield* store.remove(key)
  })

/** A compare-and-set's outcome, a conflict being an answer rather than an error. */
const casOutcome = (
  update: Effect.Effect<number, SessionConflict | SessionStoreError>
): Effect.Effect<"Written" | "Missing" | "VersionMismatch", SessionStoreError> =>
  Effect.catchAll(Effect.as(update, "Written" as const), (error) =>
    error._tag === "SessionConflict"
      ? Effect.succeed(error.reason === "VersionMismatch" ? "VersionMismatch" as const : "Missing" as const)
      : Effect.fail(error))

/** Inserts under a freshly generated id; 256 random bits do not collide, so a conflict is a defect. */
const insertFresh = (
  store: SessionStore["Type"],
  key: StorageKey,
  write: TextWrite
): Effect.Effect<void, SessionStoreError> =>
  Effect.catchTag(
    store.insert(key, write),
    "SessionConflict",
    (conflict) => Effect.dieMessage(`effect-session: insert of a fresh id conflicted (${conflict.reason})`)
  )

/**
 * The replays of one save over writers of other processes: each waits a
 * jittered, growing pause (1–2 ms, 2–4 ms, … up to 50–100 ms); once
 * `conflictTimeout` has passed since the first conflict (or
 * `maxConflictRetries` replays were made), the save fails with
 * `SessionConflict`.
 */
class ConflictBudget {
  constructor(readonly config: Pick<Config<unknown>, "conflictMillis" | "maxConflictRetries">) {}
  private retries = 0
  private since: number | undefined = undefined
  get next(): Effect.Effect<void, SessionConflict> {
    return Effect.clockWith((clock) => {
      const now = clock.unsafeCurrentTimeMillis()
      this.since ??= now
      if (Core.replayBudgetSpent(this.config, this.since, now, this.retries)) {
        return Effect.fail(new SessionConflict({ reason: "VersionMismatch" }))
      }
      const retry = this.retries++
      return Effect.zipRight(
        Effect.zipRight(
          Metric.increment(SessionMetrics.conflictReplays),
          Effect.annotateCurrentSpan("effect-session.conflictReplays", this.retries)
        ),
        Effect.flatMap(Random.next, (r) => Effect.sleep(Duration.millis(Core.replayPauseMillis(retry, r))))
      )
    })
  }
}

// --- Lanes: the saves of one process to one storage key take turns ---------

/** What the last save in a lane left stored. */
type LaneState = { readonly config: Config<any>; readonly loaded: Loaded<any> } | typeof ended | undefined

const ended = "Ended" as const

/** @internal */
export interface Lane {
  readonly semaphore: Semaphore
  /** Saves waiting for or holding the lane. */
  users: number
  /** What the last save in this lane stored, handed to the next. */
  last: LaneState
  /** Updates waiting to be written together (group commit). */
  readonly queue: Array<GroupedUpdate>
  /** Whether a fiber is writing the queue. */
  writing: boolean
}

/** An update waiting in its lane to be written with the others. */
interface GroupedUpdate {
  readonly session: RequestSession<any>
  readonly loaded: Loaded<any>
  readonly t: number
  readonly done: Deferred.Deferred<CookieAction, SessionError>
}

const lanesByStore = new WeakMap<SessionStore["Type"], Map<StorageKey, Lane>>()

/**
 * Runs `f` once the saves of this process to `key` that came first are done.
 * A lane exists only while a save of its key waits or runs: nothing is kept
 * for a key once its last save is done.
 */
const withLane = <B, E>(
  store: SessionStore["Type"],
  key: StorageKey,
  f: (lane: Lane) => Effect.Effect<B, E>
): Effect.Effect<B, E> =>
  Effect.suspend(() => {
    const { lane, release } = joinLane(store, key)
    return Effect.ensuring(lane.semaphore.withPermits(1)(Effect.suspend(() => f(lane))), Effect.sync(release))
  })

/**
 * Counts one more user of the lane of `key` (a save, or a request that
 * loaded the session and may save it: the lane, and the state the last save
 * handed over, live as long as one of them); `release` (idempotent) ends it.
 */
const joinLane = (store: SessionStore["Type"], key: StorageKey): { readonly lane: Lane; readonly release: () => void } => {
  let lanes = lanesByStore.get(store)
  if (lanes === undefined) lanesByStore.set(store, lanes = new Map())
  let lane = lanes.get(key)
  if (lane === undefined) {
    lanes.set(key, lane = { semaphore: Effect.unsafeMakeSemaphore(1), users: 0, last: undefined, queue: [], writing: false })
  }
  const held = lane
  const map = lanes
  held.users++
  let released = false
  return {
    lane: held,
    release: () => {
      if (released) return
      released = true
      if (--held.users === 0 && map.get(key) === held) map.delete(key)
    }
  }
}

/**
 * The session the previous save in the lane left, when it is newer than
 * what this request loaded (so its compare-and-set would lose for certain):
 * the request replays over it without a failed round trip. `"Ended"` when a
 * save before it ended the session.
 */
const handoff = <A>(lane: Lane, config: Config<A>, loaded: Loaded<A>): Loaded<A> | typeof ended | undefined => {
  const last = lane.last
  if (last === ended) return ended
  if (last === undefined || last.config !== config || last.loaded.version <= loaded.version) return undefined
  return last.loaded as Loaded<A>
}

/**
 * How many storage keys of `store` have saves waiting or running in this
 * process (for tests: nothing is kept once they are done).
 *
 * @internal
 */
export const coordinatedKeys = (store: SessionStore["Type"]): number => lanesByStore.get(store)?.size ?? 0

// --- Principals -------------------------------------------------------------

/**
 * A defect for a principal no store can hold exactly (or that is not a
 * string at all: an app forwarding unchecked JSON), `undefined` for a good one.
 *
 * @internal
 */
export const invalidPrincipal = (principal: unknown): Effect.Effect<never> | undefined => {
  const problem = principalProblem(principal)
  return problem === undefined
    ? undefined
    : Effect.die(new Cause.IllegalArgumentException(`effect-session: ${problem}`))
}

const revokedBy = {
  logout: Metric.tagged(SessionMetrics.revocations, "kind", "logout"),
  revokeAll: Metric.tagged(SessionMetrics.revocations, "kind", "revokeAll"),
  moveUndone: Metric.tagged(SessionMetrics.revocations, "kind", "moveUndone")
}

/**
 * `removeAll` until a pass finds nothing: a `login`/`regenerate` that moved
 * a session of the principal to a new id between a pass's listing and its
 * removal is caught by the next pass. Bounded: each further pass needs a
 * move that raced the previous one.
 *
 * @internal
 */
export const removeAllUntilNone = (
  index: SessionIndex["Type"],
  principal: string
): Effect.Effect<number, SessionStoreError> => {
  const pass = (total: number, passes: number): Effect.Effect<number, SessionStoreError> =>
    Effect.flatMap(index.removeAll(principal), (removed) =>
      removed === 0 || passes >= 16 ? Effect.succeed(total + removed) : pass(total + removed, passes + 1))
  return Effect.tap(pass(0, 1), (removed) => Metric.incrementBy(revokedBy.revokeAll, removed))
}

/** Loads a record and decodes it; dead, ended or undecodable sessions are absent. */
const loadLive = <A>(
  config: Config<A>,
  store: SessionStore["Type"],
  key: StorageKey
): Effect.Effect<Option.Option<Loaded<A>>, SessionError> =>
  Effect.flatMap(store.load(key), (record) => {
    if (Option.isNone(record)) return Effect.succeedNone
    return Effect.clockWith((clock) => {
      const decoded = decodeRecord(config, key, record.value, clock.unsafeCurrentTimeMillis())
      switch (decoded._tag) {
        case "Undecodable":
          return Effect.as(decoded.log, Option.none())
        case "Tombstone":
          return Effect.succeedNone
        case "Decoded":
          return Effect.succeed(decoded.loaded)
      }
    })
  })

type Decoded<A> =
  | { readonly _tag: "Decoded"; readonly loaded: Option.Option<Loaded<A>> }
  | { readonly _tag: "Tombstone"; readonly tombstone: RawState }
  | { readonly _tag: "Undecodable"; readonly log: Effect.Effect<void> }

/** A stored record as a live session (`None` when it is dead), synchronously. */
const decodeRecord = <A>(
  config: Config<A>,
  key: StorageKey,
  record: SessionRecord,
  t: number
): Decoded<A> => {
  const decoded = record.text !== undefined ? config.codec.decodeString(record.text) : config.codec.decodeText(record.data)
  if (Either.isLeft(decoded)) {
    const tombstone = tombstoneOf(record)
    if (tombstone !== undefined) return { _tag: "Tombstone", tombstone }
    return {
      _tag: "Undecodable",
      // the stored values stay out of the log (they are personal data):
      // the key's prefix locates the record for whoever may read it
      log: Effect.zipRight(
        Metric.increment(SessionMetrics.undecodable),
        Effect.logWarning(
          `effect-session: stored session ${Id.logPrefix(key)}… is undecodable (not this session's envelope or schema); starting a new one`
        )
      )
    }
  }
  const { envelope, text } = decoded.right
  const stored = { expiresAt: record.expiresAt, createdAt: envelope.createdAt, absoluteExpiresAt: envelope.absoluteExpiresAt }
  if (!Core.isLive(config.timeouts, stored, t)) return { _tag: "Decoded", loaded: Option.none() }
  return {
    _tag: "Decoded",
    loaded: Option.some({ key, version: record.version, expiresAt: record.expiresAt, envelope, text })
  }
}

/** @internal */
export const applyCookie = <A>(
  config: Config<A>,
  response: HttpServerResponse.HttpServerResponse,
  action: CookieAction,
  t: number
): HttpServerResponse.HttpServerResponse => {
  switch (action._tag) {
    case "None":
      return response
    case "Expire":
      return privateCache(HttpServerResponse.expireCookie(response, config.cookieName, config.cookieOptions))
    case "Set":
      return privateCache(HttpServerResponse.unsafeSetCookie(response, config.cookieName, action.id, config.persistent
        ? { ...config.cookieOptions, maxAge: Duration.millis(Math.max(0, action.expiresAt - t)) }
        : config.cookieOptions))
  }
}

/**
 * A response that sets or expires the session cookie must not be kept by a
 * shared cache (which would hand the cookie to other users): `private` is
 * added when the app set no `Cache-Control`, and replaces `public` (and any
 * `s-maxage`) in one it set; `private` or `no-store` already there are kept.
 *
 * @internal
 */
export const privateCache = (response: HttpServerResponse.HttpServerResponse): HttpServerResponse.HttpServerResponse => {
  const current = response.headers["cache-control"]
  if (current === undefined || current.trim() === "") return HttpServerResponse.setHeader(response, "cache-control", "private")
  const directives = current.split(",").map((d) => d.trim()).filter((d) => d !== "")
  const names = directives.map((d) => d.split("=")[0].trim().toLowerCase())
  if (names.includes("no-store") || names.includes("private")) return response
  const kept = directives.filter((_, i) => names[i] !== "public" && names[i] !== "s-maxage")
  return HttpServerResponse.setHeader(response, "cache-control", ["private", ...kept].join(", "))
}

/** @internal */
export const addVary = (response: HttpServerResponse.HttpServerResponse): HttpServerResponse.HttpServerResponse => {
  const vary = response.headers["vary"]
  if (vary === undefined || vary === "") return HttpServerResponse.setHeader(response, "vary", "Cookie")
  if (vary.split(",").some((v) => { const s = v.trim().toLowerCase(); return s === "cookie" || s === "*" })) return response
  return HttpServerResponse.setHeader(response, "vary", `${vary}, Cookie`)
}

/**
 * The commit after the app answered with the session used, and its cookie.
 * A failed app skips this: like a transaction, a failed request saves nothing.
 */
const finish = <A>(
  config: Config<A>,
  session: RequestSession<A>,
  response: HttpServerResponse.HttpServerResponse,
  t: number
): Effect.Effect<HttpServerResponse.HttpServerResponse, SessionError> =>
  Effect.flatMap(session.commitAt(t), (action) => Effect.succeed(applyCookie(config, response, action, session.committedAt)))

/**
 * The session of the request `fiber` runs for: the one its context provides
 * (the middleware's, `withSession`'s, a test's).
 *
 * @internal
 */
export const find = <A>(
  fiber: Fiber.RuntimeFiber<unknown, unknown>,
  tag: Context.Tag<any, RequestSession<A>>
): RequestSession<A> | undefined => {
  const provided = Context.getOption(fiber.currentContext as Context.Context<unknown>, tag)
  return provided._tag === "Some" ? provided.value : undefined
}

/** The middlewares whose placement a completed request has shown. */
const placementKnown = new WeakSet<Config<any>>()

/**
 * The first requests of a middleware check where it sits, with a public
 * hook: a pre-response handler (`HttpApp.appendPreResponseHandler`) runs
 * when `HttpServer.serve` sends the response. In place, that is after the
 * middleware is done; a middleware that sees it run inside its app wraps the
 * sending (`HttpServer.serve(app, middleware)`,
 * `HttpApiBuilder.serve(middleware)`, `HttpLayerRouter.serve`'s `middleware`
 * option), where no cookie it sets can reach the client: it says so, once,
 * with where it belongs. Once a request has told, the check costs a lookup.
 *
 * @internal
 */
export const checkPlacement = <B, E, R>(
  id: string,
  config: Config<any>,
  self: Effect.Effect<B, E, R>
): Effect.Effect<B, E, R> => {
  if (placementKnown.has(config)) return self
  let sent = false
  const observe = HttpApp.appendPreResponseHandler((_request, response) => {
    sent = true
    return Effect.succeed(response)
  })
  return Effect.onExit(Effect.zipRight(observe, self), (exit) => {
    // (an interrupted request may not have got as far as sending)
    if (placementKnown.has(config) || (Exit.isFailure(exit) && Cause.isInterruptedOnly(exit.cause))) return Effect.void
    placementKnown.add(config)
    return sent
      ? Effect.logError(
        `effect-session: ${id}.middleware() ran after the response was sent, so the session cookie never reaches the client: ` +
          `it was given where a middleware wraps the sending of the response (HttpServer.serve(app, middleware), ` +
          `HttpApiBuilder.serve(middleware) or HttpLayerRouter.serve's middleware option). ` +
          `Apply it to the app instead: HttpServer.serve(app.pipe(${id}.middleware())); for an HttpApi, provide the layer of ` +
          `HttpApiSession.Tag; for HttpLayerRouter routes, HttpApiSession.layerRouterMiddleware`
      )
      : Effect.void
  })
}

/** @internal */
export const middleware = <Self, A>(
  tag: Context.Tag<Self, RequestSession<A>>,
  config: Config<A>
) =>
<E, R>(app: HttpApp.Default<E, R>): HttpApp.Default<E | SessionError, Exclude<R, Self> | SessionStore> =>
  Effect.withFiberRuntime<
    HttpServerResponse.HttpServerResponse,
    E | SessionError,
    R | HttpServerRequest.HttpServerRequest | SessionStore
  >((fiber) => {
    const context = fiber.currentContext as Context.Context<HttpServerRequest.HttpServerRequest | SessionStore>
    const clock = Context.get(fiber.currentDefaultServices, Clock.Clock)
    const request = Context.unsafeGet(context, HttpServerRequest.HttpServerRequest)
    const session = new RequestSession(
      config,
      Context.unsafeGet(context, SessionStore),
      () => Id.parse(request.cookies[config.cookieName])
    )
    const run = Effect.matchCauseEffect(app, {
      // a failed request saves nothing, but a logout in it still holds
      onFailure: (cause) =>
        session.invalidated ? Effect.zipRight(session.revokeAfterFailure(cause), Effect.failCause(cause)) : Effect.failCause(cause),
      onSuccess: (appResponse) => {
        if (!session.used) return Effect.succeed(appResponse)
        const response = addVary(appResponse)
        // an error response saves nothing (but a logout); a read-only request has nothing to save
        if (response.status >= 500) {
          return session.invalidated
            ? Effect.map(session.revokeAfterFailure(), (action) => applyCookie(config, response, action, session.committedAt))
            : Effect.succeed(response)
        }
        const t = clock.unsafeCurrentTimeMillis()
        return session.nothingToSave(t) ? Effect.succeed(response) : finish(config, session, response, t)
      }
    })
    // the request's session is a service of its context, for its handler and
    // every fiber it forks; a middleware of the same tag nested in this one
    // provides its own for its part of the app
    return Effect.provideService(checkPlacement(tag.key, config, run), tag, session)
  }) as any
