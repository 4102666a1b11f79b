/**
 * The request's session on Effect 3: the core decides (what was loaded is
 * alive, what a save must do, how operations replay, which updates are
 * written together, when replays stop) and writes (its writer: the lanes in
 * which the saves of one process to one key take turns, group commit, the
 * tombstones of moves and logouts, against the effect operations and store
 * calls this file supplies once); this file runs it with Effect 3 — lazy
 * load, compare-and-set with replay, the response's cookie.
 *
 * @internal
 */
import { Cookies, HttpApp, HttpServerRequest, HttpServerResponse } from "@effect/platform"
import type { Fiber } from "effect"
import { Cause, Clock, Context, Deferred, Duration, Effect, Either, Exit, FiberId, FiberRef, Metric, Option, Random } from "effect"
import * as Cookie from "../core/cookie.js"
import * as Lanes from "../core/lanes.js"
import { principalProblem } from "../core/principal.js"
import { readTombstone } from "../core/record.js"
import * as Request from "../core/request.js"
import * as Save from "../core/save.js"
import * as Core from "../core/session.js"
import * as Writer from "../core/writer.js"
import type { Envelope, SessionCodecImpl } from "../SessionCodec.js"
import * as Codec from "../SessionCodec.js"
import type { SessionError, SessionStoreError } from "../SessionError.js"
import { SessionConflict } from "../SessionError.js"
import type { SessionId, StorageKey } from "../SessionId.js"
import * as Id from "../SessionId.js"
import type { Options } from "../Session.js"
import * as SessionMetrics from "../SessionMetrics.js"
import type { SessionIndex, SessionRecord } from "../SessionStore.js"
import { SessionStore } from "../SessionStore.js"
import { counted } from "./observe.js"
import * as Revocation from "./revocation.js"
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
  /** The empty session, as the core takes it (`make` for a new session's data, made afresh). */
  readonly empty: Core.EmptySession<A>
  readonly timeouts: Core.Timeouts
  readonly emptyFingerprint: string
  readonly storageKey: (id: SessionId) => StorageKey
  readonly cookieName: string
  readonly cookieOptions: NonNullable<Cookies.Cookie["options"]>
  readonly persistent: boolean
  /** How long a save replays over writers of other processes. */
  readonly budget: { readonly conflictMillis: number; readonly maxConflictRetries: number }
}

/** @internal */
export const makeConfig = <A, I>(
  schema: import("effect").Schema.Schema<A, I, never>,
  empty: A,
  makeEmpty: () => A,
  options: Options | undefined
): Config<A> => {
  const cookie = Core.cookieSettings(options?.cookie)
  // validates the name and attributes once, so per-request cookies cannot fail
  const probe = Cookies.makeCookie(cookie.name, "x", cookie.attributes)
  if (probe._tag === "Left") {
    throw new TypeError(`effect-session: invalid session cookie: ${probe.left.message}`)
  }
  const timeouts = Core.makeTimeouts(
    Duration.toMillis(options?.idleTimeout ?? "14 days"),
    Duration.toMillis(options?.absoluteTimeout ?? "30 days"),
    options?.touchAfter !== undefined ? Duration.toMillis(options.touchAfter) : undefined
  )
  const codec = Codec.makeImpl(schema, { maxSize: options?.maxSize })
  return {
    codec,
    empty: { empty, make: makeEmpty },
    timeouts,
    emptyFingerprint: Either.getOrThrow(codec.fingerprintEither(empty)),
    storageKey: Id.makeStorageKey(options?.pepper),
    cookieName: cookie.name,
    cookieOptions: cookie.attributes,
    persistent: cookie.persistent,
    budget: Core.makeReplayBudget(Duration.toMillis(options?.conflictTimeout ?? "5 seconds"), options?.maxConflictRetries)
  }
}

/** A stored, live session as a request loaded it (the core's view). */
type Loaded<A> = Request.LoadedSession<A>

/** The envelope of a loaded session with other data and principal, as the codec writes it. */
const envelopeOf = <A>(loaded: Loaded<A>, data: A, principal: string | null): Envelope<A> => ({
  data,
  createdAt: loaded.createdAt,
  absoluteExpiresAt: loaded.absoluteExpiresAt,
  principal: Option.fromNullable(principal)
})

const keyOf = (loaded: Loaded<unknown>): StorageKey => Id.unsafeStorageKey(loaded.key)

/**
 * What the response's cookie must do after a save (the core's decision).
 *
 * @internal
 */
export type CookieAction = Save.CookieDecision

const noCookie: CookieAction = { _tag: "None" }
const expired: CookieAction = { _tag: "Expire" }

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
 * The session of one request: the core's `RequestState` (what the request
 * did, and the decisions on it), loaded on first use and saved with the
 * core's save protocol.
 *
 * Every request runs through here, so the common paths are written to cost
 * few effects: an access to a loaded session is one step, a read-only
 * request's commit one clock read.
 *
 * @internal
 */
export class RequestSession<A> implements SessionHandle<A> {
  readonly state: Request.RequestState<A>
  constructor(
    readonly config: Config<A>,
    readonly store: SessionStore["Type"],
    /** Reads the client's id; called at most once, on first use. */
    readonly readId: () => Option.Option<SessionId>,
    /** When the request began, on a store with an index: a login checks `revokeAll`'s marker against it (see revocation.ts). */
    readonly startedAt?: number | undefined
  ) {
    this.state = new Request.RequestState(config.empty, config.timeouts)
  }

  /** The time the save was computed at: cookie lifetimes count from it. */
  committedAt = 0

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
  private access<B>(f: (state: Request.RequestState<A>) => B): Effect.Effect<B, SessionError> {
    return Effect.withFiberRuntime<B, SessionError>((fiber) => this.loadThen(f, fiber))
  }

  /**
   * `f` once the session is loaded: synchronously when it already is. The
   * load's bookkeeping is done by its success and failure handlers, not by
   * a finalizer (which would cost every request several steps); a load whose
   * fiber was interrupted is recognised by the next access, which loads again.
   */
  loadThen<B>(f: (state: Request.RequestState<A>) => B, fiber: Fiber.RuntimeFiber<unknown, unknown>): Effect.Effect<B, SessionError> {
    const state = this.state
    state.used = true
    if (this.loadDone) return Effect.succeed(f(state))
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
    const clientId = Option.getOrUndefined(this.readId())
    state.clientId = clientId
    if (clientId === undefined) {
      state.adopt({})
      this.settle(true)
      return Effect.succeed(f(state))
    }
    this.loader = fiber
    const key = this.config.storageKey(clientId)
    const clock = Context.get(fiber.currentDefaultServices, Clock.Clock)
    // (no lane joined: a save of this process that ends before this
    // request's save still hands its result over, see the core's Lanes)
    const load = counted(this.store, "load", key, (store) => store.load(key))
    return Effect.matchCauseEffect(load.effect, {
      onFailure: (cause) => {
        load.failed(cause)
        this.settle(false)
        return Effect.failCause(cause)
      },
      onSuccess: (record) => {
        load.succeeded()
        const decoded = Option.isNone(record)
          ? undefined
          : decodeRecord(this.config, key, record.value, clock.unsafeCurrentTimeMillis())
        state.adopt({
          loaded: decoded?._tag === "Live" ? decoded.loaded : undefined,
          tombstone: decoded?._tag === "Tombstone" ? decoded.state : undefined
        })
        this.settle(true)
        return decoded?._tag === "Undecodable"
          ? Effect.zipRight(logUndecodable(key), Effect.sync(() => f(state)))
          : Effect.succeed(f(state))
      }
    })
  }

  private settle(loaded: boolean): void {
    this.loader = undefined
    if (loaded) this.loadDone = true
    const settled = this.loadSettled
    this.loadSettled = undefined
    if (settled !== undefined) Deferred.unsafeDone(settled, Exit.void)
  }

  // Each accessor is a synchronous step on the loaded session, run by
  // `access`; the tag's accessors, which already run with the fiber at hand,
  // run the same steps through `loadThen` (one runtime step less).

  get<K extends keyof A>(key: K): Effect.Effect<A[K], SessionError> {
    return this.access((state) => state.data[key])
  }

  get getAll(): Effect.Effect<A, SessionError> {
    return this.access((state) => state.data)
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
    return this.access(principalOf)
  }

  record(op: Op<A>): Effect.Effect<void, SessionError> {
    return this.access((state) => state.record(op))
  }

  get regenerate(): Effect.Effect<void, SessionError> {
    return this.access((state) => state.regenerate())
  }

  get invalidate(): Effect.Effect<void, SessionError> {
    return this.access((state) => state.invalidate())
  }

  login(principal: string, options?: { readonly keepData?: boolean | undefined }): Effect.Effect<void, SessionError> {
    return invalidPrincipal(principal) ?? this.access((state) => state.login(principal, options?.keepData === true))
  }

  get id(): Effect.Effect<SessionId, SessionError> {
    return this.access(idOf)
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
    return this.commitThen(t, Effect.succeed, Effect.failCause)
  }

  /**
   * `commitAt`, going on with `onSaved` (the cookie's action) or `onFailed`
   * (the save's failure) in the save's own handlers: no step of its own
   * between the save and what the caller does next.
   */
  commitThen<B, E2>(
    t: number,
    onSaved: (action: CookieAction) => Effect.Effect<B, E2>,
    onFailed: (cause: Cause.Cause<SessionError>) => Effect.Effect<B, E2>
  ): Effect.Effect<B, E2> {
    if (!this.state.used) return onSaved(noCookie)
    if (!this.loadDone) {
      return Effect.matchCauseEffect(Effect.flatMap(this.ensureLoaded, () => this.commit), { onFailure: onFailed, onSuccess: onSaved })
    }
    this.committedAt = t
    return Effect.matchCauseEffect(this.save(t), {
      onFailure: (cause) =>
        failureTag(cause) === "SessionTooLarge"
          ? Effect.zipRight(Metric.increment(SessionMetrics.tooLarge), onFailed(cause))
          : onFailed(cause),
      onSuccess: onSaved
    })
  }

  /**
   * After the request failed (or answered 5xx): a failed request saves
   * nothing, except a logout — removing a session is always safe to apply,
   * and a logout that a later error undid would fail open. Returns the
   * cookie to send when the logout was applied. Never fails: a store error
   * here is logged (the request is failing already).
   */
  revokeAfterFailure(cause?: Cause.Cause<unknown>): Effect.Effect<CookieAction> {
    if (!this.state.invalidated || !this.loadDone || (cause !== undefined && Cause.isInterruptedOnly(cause))) {
      return Effect.succeed(noCookie)
    }
    return Effect.clockWith((clock) => this.endPrevious(this.committedAt = clock.unsafeCurrentTimeMillis())).pipe(
      Effect.map(() => this.state.clientId !== undefined ? expired : noCookie),
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
    return this.loadDone && this.state.nothingToSave(t)
  }

  /** Saves what the request did, as the core's plan says (`Writer.save`). */
  private save(t: number): Effect.Effect<CookieAction, SessionError> {
    return Writer.save(shell, this, t)
  }

  /** Whether the request's data is what `loaded` stored (the save plan asks; it encodes the data). */
  unchanged(loaded: Loaded<A>): Writer.Checked<SessionError> {
    const unchanged = this.config.codec.unchanged(this.state.data, envelopeOf(loaded, loaded.data, loaded.principal), loaded.text)
    return Either.isLeft(unchanged) ? { error: unchanged.left } : unchanged.right
  }

  /** Whether the request's data is the empty session with no principal (the save plan asks; it encodes the data). */
  emptied(): Writer.Checked<SessionError> {
    const empty = isEmpty(this.config, this.state.data, this.state.principal)
    return Either.isLeft(empty) ? { error: empty.left } : empty.right
  }

  /** `save` of a login or a move from a session of `from`, checked against a `revokeAll` begun meanwhile (see revocation.ts). */
  guardLogin(from: string | null, save: Effect.Effect<CookieAction, SessionError>): Effect.Effect<CookieAction, SessionError> {
    return Revocation.guardLogin(this, from, save)
  }

  touch(loaded: Loaded<A>, t: number): Effect.Effect<CookieAction, SessionError> {
    const expiresAt = this.state.nextExpiry(loaded, t)
    if (expiresAt === loaded.expiresAt) return Effect.succeed(noCookie)
    const key = keyOf(loaded)
    const touch = counted(this.store, "touch", key, (store) => store.touch(key, expiresAt))
    return Effect.matchCauseEffect(touch.effect, {
      onFailure: (cause) => {
        touch.failed(cause)
        return Effect.failCause(cause)
      },
      onSuccess: (live) => {
        touch.succeeded()
        return Effect.succeed(live ? this.state.cookieFor(loaded, expiresAt) : noCookie)
      }
    })
  }

  /** A new session under a new id. */
  insertNew(t: number): Effect.Effect<CookieAction, SessionError> {
    const config = this.config
    return Effect.suspend(() => {
      const id = this.state.targetId() as SessionId
      const deadlines = Core.newDeadlines(config.timeouts, t)
      const principal = Option.fromNullable(this.state.principal)
      const envelope: Envelope<A> = { ...deadlines, data: this.state.data, principal }
      return Effect.flatMap(config.codec.encodeText(envelope), (text) =>
        Effect.as(
          insertFresh(this.store, config.storageKey(id), new TextWrite(text, deadlines.expiresAt, principal)),
          { _tag: "Set", id, expiresAt: deadlines.expiresAt } as const
        ))
    })
  }

  /**
   * Ends the session the request started from: its record (live, or the
   * tombstone of a move) — see `endSession`.
   */
  endPrevious(t: number): Effect.Effect<void, SessionError> {
    const target = this.state.endTarget((id) => this.config.storageKey(id as SessionId))
    if (target === undefined) return Effect.void
    return withLane(this.store, target.key, (lane) =>
      Writer.endSession(shell, this.config, this.store, lane, target.key, target.known, t, 0))
  }
}

const constVoid = (): void => undefined

/**
 * What one request did with its session (the core's).
 *
 * @internal
 */
export type RequestState<A> = Request.RequestState<A>

/** @internal */
export const principalOf = (state: Request.RequestState<any>): Option.Option<string> => Option.fromNullable(state.principal)

/** @internal */
export const idOf = (state: Request.RequestState<any>): SessionId => state.id() as SessionId

/** Whether `data` is the empty session and no principal is bound. */
const isEmpty = <A>(config: Config<A>, data: A, principal: string | null): Either.Either<boolean, SessionError> =>
  Either.map(config.codec.fingerprintEither(data), (json) => json === config.emptyFingerprint && principal === null)

// --- Group commit ------------------------------------------------------------

const dropped: Effect.Effect<Save.GroupOutcome> = Effect.as(
  Effect.logDebug("effect-session: the session was removed during the request; its writes are dropped"),
  { _tag: "Dropped" } as const
)

/** The tag of a cause's typed failure, for the core to judge (`undefined`: a defect, an interruption). */
const failureTag = (cause: Cause.Cause<SessionError>): string | undefined => Option.getOrUndefined(Cause.failureOption(cause))?._tag

// --- The store's answers -------------------------------------------------------

/** A tombstone as the store writes it: no principal (it leaves the index). */
const tombstoneWrite = (record: Save.TombstoneRecord): TextWrite => new TextWrite(record.text, record.expiresAt, Option.none())

/** The tombstone in a record, or `undefined` when it is a session. */
const tombstoneOf = (record: SessionRecord): Save.StoredState | undefined => {
  const tombstone = readTombstone(record)
  return tombstone === undefined ? undefined : Save.storedState(record, tombstone)
}

/**
 * `f` on a counted compare-and-set's outcome (and the new version when
 * written), in the step of its answer: a conflict is an answer, not an
 * error; any other failure goes on with `orElse`.
 */
const onCasOutcome = <B, E, E2>(
  store: SessionStore["Type"],
  key: StorageKey,
  write: TextWrite,
  version: number,
  f: (outcome: Save.CasOutcome, version: number) => Effect.Effect<B, E>,
  orElse: (cause: Cause.Cause<SessionError>) => Effect.Effect<B, E2>
): Effect.Effect<B, E | E2> => {
  const update = counted(store, "update", key, (store) => store.update(key, write, version))
  return Effect.matchCauseEffect(update.effect, {
    onFailure: (cause): Effect.Effect<B, E | E2> => {
      update.failed(cause)
      const error = Option.getOrUndefined(Cause.failureOption(cause))
      return error?._tag === "SessionConflict"
        ? f(error.reason === "VersionMismatch" ? "VersionMismatch" : "Missing", 0)
        : orElse(cause)
    },
    onSuccess: (version) => {
      update.succeeded()
      return f("Written", version)
    }
  })
}

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
 * The replays of one save over writers of other processes: each waits the
 * core's jittered, growing pause; once the core says the budget is spent
 * (`conflictTimeout` since the first conflict, or `maxConflictRetries`
 * replays), the save fails with `SessionConflict`.
 */
class ConflictBudget {
  constructor(readonly budget: Config<unknown>["budget"]) {}
  private retries = 0
  private since: number | undefined = undefined
  get next(): Effect.Effect<void, SessionConflict> {
    return Effect.clockWith((clock) => {
      const now = clock.unsafeCurrentTimeMillis()
      this.since ??= now
      if (Core.replayBudgetSpent(this.budget, this.since, now, this.retries)) {
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

/** One storage key's saves in this process (the core's lanes; its `Turn` is the lock). */
type Lane = Writer.Lane

/**
 * Waits for the lane's turn, which someone holds (the fiber is resumed
 * through its own queue, not inside the fiber that gives the turn up); an
 * interrupted wait leaves the queue, or passes on a turn already handed to it.
 */
const waitTurn = (turn: Lanes.Turn): Effect.Effect<void> =>
  Effect.async<void>((resume) => {
    const { cancel } = turn.wait(() => resume(Effect.void))
    return Effect.sync(cancel)
  })

/** Runs `f` once the saves of this process to `key` that came first are done (the core's `withLane`). */
const withLane = <B, E>(store: SessionStore["Type"], key: string, f: (lane: Lane) => Effect.Effect<B, E>): Effect.Effect<B, E> =>
  Writer.withLane<Effect3, SessionStore["Type"], Config<any>, SessionError, TextWrite, B, E>(shell, store, key, f)

/**
 * How many storage keys of `store` have saves waiting or running in this
 * process (for tests: nothing is kept once they are done).
 *
 * @internal
 */
export const coordinatedKeys = (store: SessionStore["Type"]): number => Writer.coordinatedKeys(store)

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
      Save.anotherRevokePass(removed, passes) ? pass(total + removed, passes + 1) : Effect.succeed(total + removed))
  return Effect.tap(pass(0, 1), (removed) => Metric.incrementBy(revokedBy.revokeAll, removed))
}

// --- The core's writer, run with Effect 3 ----------------------------------------

/** Effect 3's effect, exit and cause, for the core's writer. */
interface Effect3 extends Writer.EffectTypes {
  readonly effect: Effect.Effect<this["A"], this["E"]>
  readonly exit: Exit.Exit<this["A"], this["E"]>
  readonly cause: Cause.Cause<this["E"]>
}

/**
 * The core's writer (`Writer`) runs with these: Effect 3's operations, and
 * the store's side of a write — the record encoded as text, compare-and-set,
 * its answer handled in its own step.
 */
const shell: Writer.Shell<Effect3, SessionStore["Type"], Config<any>, SessionError, TextWrite> = {
  void: Effect.void,
  succeed: Effect.succeed,
  fail: Effect.fail,
  failCause: Effect.failCause,
  sync: Effect.sync,
  suspend: Effect.suspend,
  andThen: (first, second) => Effect.zipRight(first, second),
  as: (self, value) => Effect.as(self, value),
  map: (self, f) => Effect.map(self, f),
  tapError: (self, f) => Effect.tapError(self, f),
  flatMap: (self, f) => Effect.flatMap(self, f),
  matchCause: (self, options) => Effect.matchCauseEffect(self, options),
  forEachDiscard: (items, f) => Effect.forEach(items, f, { discard: true }),
  ensuring: (self, finalizer) => Effect.ensuring(self, finalizer),
  onExit: (self, f) => Effect.onExit(self, f),
  uninterruptibleMask: Effect.uninterruptibleMask,
  forkDetach: Effect.forkDaemon,
  waitTurn,
  deferred: <A, E>() => {
    const deferred = Deferred.unsafeMake<A, E>(FiberId.none)
    return { await: Deferred.await(deferred), done: (exit: Exit.Exit<A, E>) => Deferred.unsafeDone(deferred, exit) }
  },
  die: Cause.die,
  fromExit: (exit) => exit,
  exitSucceed: Exit.succeed,
  exitFailCause: Exit.failCause,
  exitFailure: <A, E>(exit: Exit.Exit<A, E>) => Exit.isFailure(exit) ? exit as Exit.Exit<never, E> : undefined,
  writeUpdate: (config, store, base, data, t, then, orElse) => {
    const emptied = isEmpty(config, data, base.principal)
    if (Either.isLeft(emptied)) return orElse(Cause.fail(emptied.left))
    const plan = Save.updateRecord(emptied.right, base, Core.nextExpiry(config.timeouts, base, t), t)
    let write: TextWrite
    if (plan._tag === "Tombstone") {
      write = tombstoneWrite(plan.record)
    } else {
      const text = config.codec.encodeText(envelopeOf(base, data, base.principal))
      if (Either.isLeft(text)) return orElse(Cause.fail(text.left))
      write = new TextWrite(text.right, plan.expiresAt, Option.fromNullable(base.principal))
    }
    return onCasOutcome(
      store,
      keyOf(base),
      write,
      base.version,
      (outcome, version) => then(outcome, version, write, plan._tag === "Tombstone"),
      orElse
    )
  },
  writeTombstone: (store, key, record, version, then) =>
    onCasOutcome(store, Id.unsafeStorageKey(key), tombstoneWrite(record), version, then, Effect.failCause),
  encodeMove: (config, state, base, t) =>
    Effect.map(
      config.codec.encodeText(envelopeOf(base, state.data, state.principal)),
      (text) => new TextWrite(text, Save.movedExpiry(config.timeouts, base.absoluteExpiresAt, t), Option.fromNullable(state.principal))
    ),
  insertFresh: (store, key, write) => insertFresh(store, Id.unsafeStorageKey(key), write),
  update: (store, key, write, version) => store.update(Id.unsafeStorageKey(key), write, version),
  storageKey: (config, id) => config.storageKey(id as SessionId),
  regenerated: Effect.zipRight(
    Metric.increment(SessionMetrics.regenerations),
    Effect.annotateCurrentSpan("effect-session.outcome", "regenerated")
  ),
  moveUndone: Effect.zipRight(
    Metric.increment(revokedBy.moveUndone),
    Effect.annotateCurrentSpan("effect-session.outcome", "move undone: the session ended meanwhile")
  ),
  loadState: (store, key) =>
    Effect.map(store.load(Id.unsafeStorageKey(key)), (record) =>
      Option.isSome(record) ? Save.storedState(record.value, readTombstone(record.value)) : undefined),
  loadLive: (config, store, key) => loadLive(config, store, Id.unsafeStorageKey(key)),
  remove: (store, key) => store.remove(Id.unsafeStorageKey(key)),
  replayBudget: (config) => new ConflictBudget(config.budget).next,
  dropped,
  loggedOut: Metric.increment(revokedBy.logout),
  failureTag
}

// --- Loading -------------------------------------------------------------------

// the stored values stay out of the log (they are personal data): the key's
// prefix locates the record for whoever may read it
const logUndecodable = (key: StorageKey): Effect.Effect<void> =>
  Effect.zipRight(
    Metric.increment(SessionMetrics.undecodable),
    Effect.logWarning(
      `effect-session: stored session ${Id.logPrefix(key)}… is undecodable (not this session's envelope or schema); starting a new one`
    )
  )

/** Loads a live session; dead, ended and undecodable ones are absent. */
const loadLive = <A>(
  config: Config<A>,
  store: SessionStore["Type"],
  key: StorageKey
): Effect.Effect<Loaded<A> | undefined, SessionError> =>
  Effect.flatMap(store.load(key), (record) =>
    Option.isNone(record) ? Effect.succeed(undefined) : Effect.clockWith((clock) => {
      const decoded = decodeRecord(config, key, record.value, clock.unsafeCurrentTimeMillis())
      if (decoded._tag === "Live") return Effect.succeed(decoded.loaded)
      return decoded._tag === "Undecodable" ? Effect.as(logUndecodable(key), undefined) : Effect.succeed(undefined)
    }))

type Decoded<A> =
  | { readonly _tag: "Live"; readonly loaded: Loaded<A> }
  | { readonly _tag: "Dead" }
  | { readonly _tag: "Tombstone"; readonly state: Save.StoredState }
  | { readonly _tag: "Undecodable" }

/** A stored record as the request's start: a live session, a dead one, a tombstone, or undecodable. */
const decodeRecord = <A>(config: Config<A>, key: StorageKey, record: SessionRecord, t: number): Decoded<A> => {
  const decoded = record.text !== undefined ? config.codec.decodeString(record.text) : config.codec.decodeText(record.data)
  if (Either.isLeft(decoded)) {
    const state = tombstoneOf(record)
    return state === undefined ? { _tag: "Undecodable" } : { _tag: "Tombstone", state }
  }
  const { envelope, text } = decoded.right
  const loaded = Request.liveSession(config.timeouts, key, record, envelope, Option.getOrNull(envelope.principal), text, t)
  return loaded === undefined ? dead : { _tag: "Live", loaded }
}

const dead: Decoded<never> = { _tag: "Dead" }

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
 * shared cache (which would hand the cookie to other users): the core's rule
 * (`Cookie.privateCacheControl`).
 *
 * @internal
 */
export const privateCache = (response: HttpServerResponse.HttpServerResponse): HttpServerResponse.HttpServerResponse =>
  withHeader(response, "cache-control", Cookie.privateCacheControl(response.headers["cache-control"]))

/**
 * A response that depends on the session varies on `Cookie` (the core's rule).
 *
 * @internal
 */
export const addVary = (response: HttpServerResponse.HttpServerResponse): HttpServerResponse.HttpServerResponse =>
  withHeader(response, "vary", Cookie.varyOnCookie(response.headers["vary"]))

const withHeader = (
  response: HttpServerResponse.HttpServerResponse,
  name: string,
  value: string | undefined
): HttpServerResponse.HttpServerResponse => value === undefined ? response : HttpServerResponse.setHeader(response, name, value)

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
      () => Id.parse(request.cookies[config.cookieName]),
      Revocation.requestStart(context, clock)
    )
    // the request's session is a service of its context, for its handler and
    // every fiber it forks; a middleware of the same tag nested in this one
    // provides its own for its part of the app. What `Effect.provideService`
    // does, without its scoped region around the app (about 20 runtime steps
    // less for every request, see docs/design.md). The context found is put
    // back by the app's own handlers only where something after the
    // middleware can name the tag: when it provides the tag already (an outer
    // middleware of the same tag, `withSession` around the app). Elsewhere
    // nothing after it can (the middleware's type removes the tag from what
    // the app requires, and nothing outside provides it), and the fiber ends
    // with the session still in its context, as an interrupted app's does:
    // a fiber-ref write less for every request
    const outer = fiber.currentContext
    const restores = Option.isSome(Context.getOption(outer, tag))
    // puts the context back (where it must) before `next`
    const leaving = <B, E2>(next: Effect.Effect<B, E2>): Effect.Effect<B, E2> =>
      restores ? Effect.zipRight(FiberRef.set(FiberRef.currentContext, outer), next) : next
    // answers `response`, the context put back (where it must) in the same step
    const leaveWith = (response: HttpServerResponse.HttpServerResponse) =>
      restores ? FiberRef.modify(FiberRef.currentContext, () => [response, outer] as const) : Effect.succeed(response)
    const run = Effect.matchCauseEffect(app, {
      // a failed request saves nothing, but a logout in it still holds
      onFailure: (cause) =>
        leaving(
          session.state.invalidated ? Effect.zipRight(session.revokeAfterFailure(cause), Effect.failCause(cause)) : Effect.failCause(cause)
        ),
      onSuccess: (appResponse) => {
        const next = session.state.afterResponse(appResponse.status)
        if (next === "Unused") return leaveWith(appResponse)
        const response = addVary(appResponse)
        // an error response saves nothing (but a logout); a read-only request has nothing to save
        if (next === "Keep") return leaveWith(response)
        if (next === "Logout") {
          return leaving(Effect.map(session.revokeAfterFailure(), (action) => applyCookie(config, response, action, session.committedAt)))
        }
        const t = clock.unsafeCurrentTimeMillis()
        // the context is put back after the save (which never reads the
        // session from it), in the save's own handlers
        return session.nothingToSave(t) ? leaveWith(response) : session.commitThen(
          t,
          (action) => leaveWith(applyCookie(config, response, action, session.committedAt)),
          (cause) => leaving(Effect.failCause(cause))
        )
      }
    })
    return Effect.zipRight(
      FiberRef.set(FiberRef.currentContext, Context.add(outer, tag, session)),
      checkPlacement(tag.key, config, run)
    )
  }) as any
