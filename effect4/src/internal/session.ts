/**
 * The request's session on Effect 4: the core decides (what was loaded is
 * alive, what a save must do, how operations replay, when replays stop) and
 * writes (its writer: the lanes in which the saves of one process to one key
 * take turns, group commit, the tombstones of moves and logouts, against the
 * effect operations and store calls this file supplies once); this file runs
 * it with Effect 4 — lazy load, compare-and-set with replay, the response's
 * cookie.
 *
 * @internal
 */
import type { Cookies } from "effect/http"
import { HttpServerResponse } from "effect/http"
import type { Cause } from "effect"
import { Cause as C, Clock, Deferred, Duration, Effect, Exit, Fiber, Metric, Option, Random, Result } from "effect"
import * as Cookie from "../../../src/core/cookie.js"
import { principalProblem } from "../../../src/core/principal.js"
import { readTombstone } from "../../../src/core/record.js"
import * as Lanes from "../../../src/core/lanes.js"
import * as Request from "../../../src/core/request.js"
import * as Save from "../../../src/core/save.js"
import * as Core from "../../../src/core/session.js"
import * as Writer from "../../../src/core/writer.js"
import type { Envelope, SessionCodec } from "../SessionCodec.js"
import * as Codec from "../SessionCodec.js"
import type { SessionError, SessionStoreError } from "../SessionError.js"
import { SessionConflict } from "../SessionError.js"
import type { SessionId, StorageKey } from "../SessionId.js"
import * as Id from "../SessionId.js"
import type { Options } from "../Session.js"
import * as SessionMetrics from "../SessionMetrics.js"
import type { CountedOperation, SessionIndex, SessionRecord, SessionStore, SessionWrite } from "../SessionStore.js"
import { counted } from "../SessionStore.js"
import * as Revocation from "./revocation.js"

type Store = SessionStore["Service"]

/**
 * What does not depend on the request, built once per middleware.
 *
 * @internal
 */
export interface Config<A> {
  readonly codec: SessionCodec<A>
  readonly empty: Core.EmptySession<A>
  readonly emptyFingerprint: string
  readonly timeouts: Core.Timeouts
  readonly storageKey: (id: SessionId) => StorageKey
  readonly cookieName: string
  readonly cookieOptions: NonNullable<Cookies.Cookie["options"]>
  readonly persistent: boolean
  readonly budget: { readonly conflictMillis: number; readonly maxConflictRetries: number }
}

/** @internal */
export const makeConfig = <A>(
  codecSchema: { readonly schema: import("effect").Schema.Codec<A, unknown>; readonly fields: ReadonlyArray<PropertyKey> },
  empty: Core.EmptySession<A>,
  options: Options | undefined
): Config<A> => {
  const cookie = Core.cookieSettings(options?.cookie)
  const timeouts = Core.makeTimeouts(
    Duration.toMillis(options?.idleTimeout ?? "14 days"),
    Duration.toMillis(options?.absoluteTimeout ?? "30 days"),
    options?.touchAfter !== undefined ? Duration.toMillis(options.touchAfter) : undefined
  )
  const codec = Codec.make(codecSchema.schema, { maxSize: options?.maxSize, fields: codecSchema.fields })
  return {
    codec,
    empty,
    emptyFingerprint: Result.getOrThrow(codec.fingerprint(empty.empty)),
    timeouts,
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
  principal: Option.fromNullishOr(principal)
})

const keyOf = (loaded: Loaded<unknown>): StorageKey => Id.storageKeyUnsafe(loaded.key)


/**
 * What the response's cookie must do after a save (the core's decision).
 *
 * @internal
 */
export type CookieAction = Save.CookieDecision

const noCookie: CookieAction = { _tag: "None" }
const expireCookie: CookieAction = { _tag: "Expire" }

/** A record's tombstone, or `undefined` when it holds a session. */
const tombstoneOf = (record: SessionRecord): Save.StoredState | undefined => {
  const tombstone = readTombstone({ text: record.text, data: noBytes })
  return tombstone === undefined ? undefined : Save.storedState(record, tombstone)
}

const noBytes = new Uint8Array()

const constVoid = (): void => undefined

type Decoded<A> =
  | { readonly _tag: "Live"; readonly loaded: Loaded<A> }
  | { readonly _tag: "Dead" }
  | { readonly _tag: "Tombstone"; readonly state: Save.StoredState }
  | { readonly _tag: "Undecodable" }

const decodeRecord = <A>(config: Config<A>, key: StorageKey, record: SessionRecord, t: number): Decoded<A> => {
  const decoded = config.codec.decodeText(record.text)
  if (Result.isFailure(decoded)) {
    const state = tombstoneOf(record)
    return state === undefined ? { _tag: "Undecodable" } : { _tag: "Tombstone", state }
  }
  const envelope = decoded.success
  const loaded = Request.liveSession(config.timeouts, key, record, envelope, Option.getOrNull(envelope.principal), record.text, t)
  return loaded === undefined ? { _tag: "Dead" } : { _tag: "Live", loaded }
}

// the stored values stay out of the log (they are personal data): the key's
// prefix locates the record for whoever may read it
const logUndecodable = (key: StorageKey) =>
  Effect.andThen(
    Metric.update(SessionMetrics.undecodable, 1),
    Effect.logWarning(
      `effect-session: stored session ${Id.logPrefix(key)}… is undecodable (not this session's envelope or schema); starting a new one`
    )
  )

/** Loads a live session; dead, ended and undecodable ones are absent. */
const loadLive = <A>(config: Config<A>, store: Store, key: StorageKey): Effect.Effect<Loaded<A> | undefined, SessionError> =>
  Effect.flatMap(store.load(key), (record) =>
    Option.isNone(record) ? Effect.undefined : Effect.clockWith((clock) => {
      const decoded = decodeRecord(config, key, record.value, clock.currentTimeMillisUnsafe())
      if (decoded._tag === "Live") return Effect.succeed(decoded.loaded)
      return decoded._tag === "Undecodable" ? Effect.as(logUndecodable(key), undefined) : Effect.undefined
    }))

/** What a compare-and-set's conflict means to the core. */
const conflictOutcome = (conflict: SessionConflict): Save.CasOutcome =>
  conflict.reason === "VersionMismatch" ? "VersionMismatch" : "Missing"

/**
 * `f` on a compare-and-set's outcome (and the new version when written), in
 * the step of its answer: a conflict is an answer, not an error. The same
 * handlers count the update in the store's metrics.
 */
const onCasOutcome = <B, E, E2>(
  update: CountedOperation<number, SessionConflict | SessionStoreError>,
  f: (outcome: Save.CasOutcome, version: number) => Effect.Effect<B, E>,
  orElse: (cause: Cause.Cause<SessionError>) => Effect.Effect<B, E2>
): Effect.Effect<B, E | E2> =>
  Effect.matchCauseEffect(update.effect, {
    onFailure: (cause): Effect.Effect<B, E | E2> => {
      update.failed(cause)
      const error = Option.getOrUndefined(C.findErrorOption(cause))
      return error?._tag === "SessionConflict" ? f(conflictOutcome(error), 0) : orElse(cause)
    },
    onSuccess: (version) => {
      update.succeeded()
      return f("Written", version)
    }
  })

/** A compare-and-set's outcome (and the new version when written): a conflict is an answer, not an error. */
const casOutcome = (
  update: Effect.Effect<number, SessionConflict | SessionStoreError>
): Effect.Effect<{ readonly outcome: Save.CasOutcome; readonly version: number }, SessionStoreError> =>
  update.pipe(
    Effect.map((version) => ({ outcome: "Written" as const, version })),
    Effect.catchTag("SessionConflict", (conflict) => Effect.succeed({ outcome: conflictOutcome(conflict), version: 0 }))
  )

/** Inserts under a fresh id: 256 random bits do not collide, so a conflict is a defect. */
const insertFresh = (store: Store, key: StorageKey, write: SessionWrite): Effect.Effect<void, SessionStoreError> =>
  Effect.catchTag(store.insert(key, write), "SessionConflict", freshConflict)

const freshConflict = (conflict: SessionConflict): Effect.Effect<never> =>
  Effect.die(new Error(`effect-session: insert of a fresh id conflicted (${conflict.reason})`))

/** A tombstone as the store writes it: no principal (it leaves the index). */
const tombstoneWrite = (record: Save.TombstoneRecord): SessionWrite => ({ ...record, principal: Option.none() })

/**
 * The replays of one save over writers of other processes: a jittered,
 * growing pause each (the core's), until the core says the budget is spent.
 */
const replayBudget = (budget: Config<unknown>["budget"]) => {
  let retries = 0
  let since: number | undefined
  return Effect.clockWith((clock) => {
    const now = clock.currentTimeMillisUnsafe()
    since ??= now
    if (Core.replayBudgetSpent(budget, since, now, retries)) {
      return Effect.fail(new SessionConflict({ reason: "VersionMismatch" }))
    }
    const retry = retries++
    return Effect.andThen(
      Metric.update(SessionMetrics.conflictReplays, 1),
      Effect.flatMap(Random.next, (r) => Effect.sleep(Duration.millis(Core.replayPauseMillis(retry, r))))
    )
  })
}

// --- Lanes: the saves of one process to one storage key take turns ---------

/** One storage key's saves in this process (the core's lanes; its `Turn` is the lock). */
type Lane = Writer.Lane

/**
 * Waits for the lane's turn, which someone holds. The waiter's fiber is
 * resumed by its own scheduler, never inside the fiber that gives the turn
 * up; an interrupted wait leaves the queue, or passes on a turn already
 * handed to it.
 */
const waitTurn = (turn: Lanes.Turn): Effect.Effect<void> =>
  Effect.withFiber((fiber) =>
    Effect.callback<void>((resume) => {
      const { cancel } = turn.wait(() => fiber.currentDispatcher.scheduleTask(() => resume(Effect.void), 0))
      return Effect.sync(cancel)
    })
  )

/** Runs `f` once the saves of this process to `key` that came first are done (the core's `withLane`). */
const withLane = <B, E>(store: Store, key: string, f: (lane: Lane) => Effect.Effect<B, E>): Effect.Effect<B, E> =>
  Writer.withLane<Effect4, Store, Config<any>, SessionError, SessionWrite, B, E>(shell, store, key, f)

/**
 * How many storage keys of `store` have saves waiting or running in this
 * process (for tests: nothing is kept once they are done).
 *
 * @internal
 */
export const coordinatedKeys = (store: Store): number => Writer.coordinatedKeys(store)

const revokedBy = {
  logout: Metric.withAttributes(SessionMetrics.revocations, { kind: "logout" }),
  revokeAll: Metric.withAttributes(SessionMetrics.revocations, { kind: "revokeAll" }),
  moveUndone: Metric.withAttributes(SessionMetrics.revocations, { kind: "moveUndone" })
}

// --- The session of one request ---------------------------------------------

/**
 * A principal no store can hold exactly is a defect.
 *
 * @internal
 */
export const invalidPrincipal = (principal: unknown): Effect.Effect<never> | undefined => {
  const problem = principalProblem(principal)
  return problem === undefined ? undefined : Effect.die(new TypeError(`effect-session: ${problem}`))
}

/**
 * What one request did with its session (the core's).
 *
 * @internal
 */
export type RequestState<A> = Request.RequestState<A>

/**
 * The session a request (or `withSession`) works with: the core's
 * `RequestState` (what the request did, and the decisions on it), loaded on
 * first use and saved with the core's save protocol.
 *
 * @internal
 */
export class RequestSession<A> {
  readonly state: Request.RequestState<A>
  constructor(
    readonly config: Config<A>,
    readonly store: Store,
    /** Reads the client's id; called once, on first use. */
    readonly readId: () => Option.Option<SessionId>,
    /** When the request began, on a store with an index: a login checks `revokeAll`'s marker against it (see revocation.ts). */
    readonly startedAt?: number | undefined
  ) {
    this.state = new Request.RequestState(config.empty, config.timeouts)
  }

  /** When the save was computed: cookie lifetimes count from it. */
  committedAt = 0

  /**
   * The store operation of a touch or a new session's insert: its success
   * is counted by the save's next step, its failure by the commit's failure
   * handler (no handler of its own: runtime steps on every save).
   */
  private saving: CountedOperation<unknown, unknown> | undefined

  private loadDone = false
  /** The fiber running the load, while one runs; the request's other fibers wait for it. */
  private loader: Fiber.Fiber<unknown, unknown> | undefined
  private loadSettled: Deferred.Deferred<void> | undefined

  /** `f` on the loaded session: one synchronous step once it is loaded. */
  access<B>(f: (state: Request.RequestState<A>) => B): Effect.Effect<B, SessionError> {
    return Effect.withFiber((fiber) => this.loadThen(f, fiber))
  }

  /**
   * `f` once the session is loaded, on `fiber`: at once when it is. Fibers
   * of one request share the load; a load that failed or was interrupted (a
   * handler's timeout) is tried again by the next access. The load's
   * bookkeeping is done by its own success and failure handlers, not by a
   * finalizer or a semaphore (several runtime steps on every request).
   */
  loadThen<B>(f: (state: Request.RequestState<A>) => B, fiber: Fiber.Fiber<unknown, unknown>): Effect.Effect<B, SessionError> {
    const state = this.state
    state.used = true
    if (this.loadDone) return Effect.succeed(f(state))
    const loader = this.loader
    if (loader !== undefined && loader !== fiber && loader.pollUnsafe() === undefined) {
      // rare: another fiber of this request is loading; wait for it (or for
      // its end, if it is interrupted), then look again
      const settled = this.loadSettled ??= Deferred.makeUnsafe<void>()
      return Effect.andThen(
        Effect.raceFirst(Deferred.await(settled), Fiber.await(loader)),
        Effect.withFiber((fiber) => this.loadThen(f, fiber))
      )
    }
    // no load running, or its fiber was interrupted during it: load. The id
    // is read now; the record is decoded by the load's own success handler
    const clientId = Option.getOrUndefined(this.readId())
    state.clientId = clientId
    if (clientId === undefined) {
      state.adopt({})
      this.settle(true)
      return Effect.succeed(f(state))
    }
    this.loader = fiber
    const key = this.config.storageKey(clientId as SessionId)
    const clock = fiber.getRef(Clock.Clock)
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
          : decodeRecord(this.config, key, record.value, clock.currentTimeMillisUnsafe())
        state.adopt({
          loaded: decoded?._tag === "Live" ? decoded.loaded : undefined,
          tombstone: decoded?._tag === "Tombstone" ? decoded.state : undefined
        })
        this.settle(true)
        return decoded?._tag === "Undecodable"
          ? Effect.andThen(logUndecodable(key), Effect.sync(() => f(state)))
          : Effect.succeed(f(state))
      }
    })
  }

  private settle(loaded: boolean): void {
    this.loader = undefined
    if (loaded) this.loadDone = true
    const settled = this.loadSettled
    this.loadSettled = undefined
    if (settled !== undefined) Deferred.doneUnsafe(settled, Exit.void)
  }

  /** Whether a commit at `t` would do nothing (a read that moves no deadline). */
  nothingToSave(t: number): boolean {
    return this.loadDone && this.state.nothingToSave(t)
  }

  /** Saves what the request did; says what the cookie must do. */
  get commit(): Effect.Effect<CookieAction, SessionError> {
    return Effect.clockWith((clock) => this.commitAt(clock.currentTimeMillisUnsafe()))
  }

  /**
   * `commit` at a time the caller read (the middleware has the clock at
   * hand). A session not loaded yet (its load failed and the app went on)
   * is loaded first, and the time read again after it.
   */
  commitAt(t: number): Effect.Effect<CookieAction, SessionError> {
    if (!this.state.used) return Effect.succeed(noCookie)
    if (!this.loadDone) return Effect.andThen(this.access(constVoid), () => this.commit)
    this.committedAt = t
    return Effect.catchCause(this.save(t), (cause) => {
      this.saving?.failed(cause)
      return failureTag(cause) === "SessionTooLarge"
        ? Effect.andThen(Metric.update(SessionMetrics.tooLarge, 1), Effect.failCause(cause))
        : Effect.failCause(cause)
    })
  }

  /**
   * After the request failed (or answered 5xx): nothing is saved but a
   * logout, which a later error must not undo. Never fails: a store error
   * here is logged (the request is failing already).
   */
  revokeAfterFailure(cause?: Cause.Cause<unknown>): Effect.Effect<CookieAction> {
    if (!this.state.invalidated || !this.loadDone || (cause !== undefined && C.hasInterruptsOnly(cause))) {
      return Effect.succeed(noCookie)
    }
    return Effect.clockWith((clock) => this.endPrevious(this.committedAt = clock.currentTimeMillisUnsafe())).pipe(
      Effect.map(() => this.state.clientId !== undefined ? expireCookie : noCookie),
      Effect.catchCause((failure) =>
        Effect.as(Effect.logWarning("effect-session: a logout in a failed request could not be applied", failure), noCookie)
      )
    )
  }

  /** Saves what the request did, as the core's plan says (`Writer.save`). */
  private save(t: number): Effect.Effect<CookieAction, SessionError> {
    return Writer.save(shell, this, t)
  }

  /** Whether the request's data is what `loaded` stored (the save plan asks; it encodes the data). */
  unchanged(loaded: Loaded<A>): Writer.Checked<SessionError> {
    const unchanged = this.config.codec.unchanged(this.state.data, envelopeOf(loaded, loaded.data, loaded.principal), loaded.text)
    return Result.isFailure(unchanged) ? { error: unchanged.failure } : unchanged.success
  }

  /** Whether the request's data is the empty session with no principal (the save plan asks; it encodes the data). */
  emptied(): Writer.Checked<SessionError> {
    const empty = isEmpty(this.config, this.state.data, this.state.principal)
    return Result.isFailure(empty) ? { error: empty.failure } : empty.success
  }

  /** `save` of a login or a move from a session of `from`, checked against a `revokeAll` begun meanwhile (see revocation.ts). */
  guardLogin(from: string | null, save: Effect.Effect<CookieAction, SessionError>): Effect.Effect<CookieAction, SessionError> {
    return Revocation.guardLogin(this, from, save)
  }

  touch(loaded: Loaded<A>, t: number): Effect.Effect<CookieAction, SessionError> {
    const expiresAt = this.state.nextExpiry(loaded, t)
    if (expiresAt === loaded.expiresAt) return Effect.succeed(noCookie)
    const key = keyOf(loaded)
    const touch = this.saving = counted(this.store, "touch", key, (store) => store.touch(key, expiresAt))
    return Effect.map(touch.effect, (live) => {
      touch.succeeded()
      return live ? this.state.cookieFor(loaded, expiresAt) : noCookie
    })
  }

  insertNew(t: number): Effect.Effect<CookieAction, SessionError> {
    return Effect.suspend(() => {
      const id = this.state.targetId() as SessionId
      const deadlines = Core.newDeadlines(this.config.timeouts, t)
      const principal = Option.fromNullishOr(this.state.principal)
      const envelope: Envelope<A> = { ...deadlines, data: this.state.data, principal }
      return Effect.flatMap(Effect.fromResult(this.config.codec.encodeText(envelope)), (text) => {
        const key = this.config.storageKey(id)
        const write = { text, expiresAt: deadlines.expiresAt, principal }
        const insert = this.saving = counted(this.store, "insert", key, (store) => store.insert(key, write))
        const inserted = Effect.catchTag(insert.effect, "SessionConflict", (conflict) => {
          insert.failed(C.fail(conflict))
          return freshConflict(conflict)
        })
        return Effect.map(inserted, (): CookieAction => {
          insert.succeeded()
          return { _tag: "Set", id, expiresAt: deadlines.expiresAt }
        })
      })
    })
  }

  /** Ends the stored session the request started from (live, or the tombstone it left). */
  endPrevious(t: number): Effect.Effect<void, SessionError> {
    const target = this.state.endTarget((id) => this.config.storageKey(id as SessionId))
    if (target === undefined) return Effect.void
    return withLane(this.store, target.key, (lane) =>
      Writer.endSession(shell, this.config, this.store, lane, target.key, target.known, t, 0))
  }
}

// --- Group commit ------------------------------------------------------------

const dropped: Effect.Effect<Save.GroupOutcome> = Effect.as(
  Effect.logDebug("effect-session: the session was removed during the request; its writes are dropped"),
  { _tag: "Dropped" } as const
)

/** Whether `data` is the empty session and no principal is bound. */
const isEmpty = <A>(config: Config<A>, data: A, principal: string | null): Result.Result<boolean, SessionError> =>
  Result.map(config.codec.fingerprint(data), (json) => json === config.emptyFingerprint && principal === null)

/** The tag of a cause's typed failure, for the core to judge (`undefined`: a defect, an interruption). */
const failureTag = (cause: Cause.Cause<SessionError>): string | undefined => Option.getOrUndefined(C.findErrorOption(cause))?._tag

/**
 * `removeAll` until a pass finds nothing: a `login` that moved a session of
 * the principal between a pass's listing and its removal is caught by the
 * next pass. Bounded: each further pass needs a move that raced the last.
 *
 * @internal
 */
export const removeAllUntilNone = (index: SessionIndex["Service"], principal: string): Effect.Effect<number, SessionStoreError> => {
  const pass = (total: number, passes: number): Effect.Effect<number, SessionStoreError> =>
    Effect.flatMap(index.removeAll(principal), (removed) =>
      Save.anotherRevokePass(removed, passes) ? pass(total + removed, passes + 1) : Effect.succeed(total + removed))
  return Effect.tap(pass(0, 1), (removed) => Metric.update(revokedBy.revokeAll, removed))
}

// --- The core's writer, run with Effect 4 ----------------------------------------

/** Effect 4's effect, exit and cause, for the core's writer. */
interface Effect4 extends Writer.EffectTypes {
  readonly effect: Effect.Effect<this["A"], this["E"]>
  readonly exit: Exit.Exit<this["A"], this["E"]>
  readonly cause: Cause.Cause<this["E"]>
}

/**
 * The core's writer (`Writer`) runs with these: Effect 4's operations, and
 * the store's side of a write — the data encoded once for the emptiness test
 * and the record's text, a counted compare-and-set, its answer handled in
 * its own step.
 */
const shell: Writer.Shell<Effect4, Store, Config<any>, SessionError, SessionWrite> = {
  void: Effect.void,
  succeed: Effect.succeed,
  fail: Effect.fail,
  failCause: Effect.failCause,
  sync: Effect.sync,
  suspend: Effect.suspend,
  andThen: (first, second) => Effect.andThen(first, second),
  as: (self, value) => Effect.as(self, value),
  map: (self, f) => Effect.map(self, f),
  tapError: (self, f) => Effect.tapError(self, f),
  flatMap: (self, f) => Effect.flatMap(self, f),
  matchCause: (self, options) => Effect.matchCauseEffect(self, options),
  forEachDiscard: (items, f) => Effect.forEach(items, f, { discard: true }),
  ensuring: (self, finalizer) => Effect.ensuring(self, finalizer),
  onExit: (self, f) => Effect.onExit(self, f),
  uninterruptibleMask: Effect.uninterruptibleMask,
  forkDetach: (self) => Effect.forkDetach(self),
  waitTurn,
  deferred: <A, E>() => {
    const deferred = Deferred.makeUnsafe<A, E>()
    return { await: Deferred.await(deferred), done: (exit: Exit.Exit<A, E>) => Deferred.doneUnsafe(deferred, exit) }
  },
  die: C.die,
  fromExit: (exit) => exit,
  exitSucceed: Exit.succeed,
  exitFailCause: Exit.failCause,
  exitFailure: <A, E>(exit: Exit.Exit<A, E>) => Exit.isFailure(exit) ? exit as Exit.Exit<never, E> : undefined,
  writeUpdate: (config, store, base, data, t, then, orElse) => {
    const key = keyOf(base)
    // the data encoded once, for the emptiness test and the record's text
    const json = config.codec.fingerprint(data)
    if (Result.isFailure(json)) return orElse(C.fail(json.failure))
    const plan = Save.updateRecord(
      json.success === config.emptyFingerprint && base.principal === null,
      base,
      Core.nextExpiry(config.timeouts, base, t),
      t
    )
    let write: SessionWrite
    if (plan._tag === "Tombstone") {
      write = tombstoneWrite(plan.record)
    } else {
      const text = config.codec.encodeFingerprint(json.success, envelopeOf(base, data, base.principal))
      if (Result.isFailure(text)) return orElse(C.fail(text.failure))
      write = { text: text.success, expiresAt: plan.expiresAt, principal: Option.fromNullishOr(base.principal) }
    }
    return onCasOutcome(
      counted(store, "update", key, (store) => store.update(key, write, base.version)),
      (outcome, version) => then(outcome, version, write, plan._tag === "Tombstone"),
      orElse
    )
  },
  writeTombstone: (store, key, record, version, then) =>
    Effect.flatMap(casOutcome(store.update(Id.storageKeyUnsafe(key), tombstoneWrite(record), version)), ({ outcome }) => then(outcome)),
  encodeMove: (config, state, base, t) =>
    Effect.map(
      Effect.fromResult(config.codec.encodeText(envelopeOf(base, state.data, state.principal))),
      (text): SessionWrite => ({
        text,
        expiresAt: Save.movedExpiry(config.timeouts, base.absoluteExpiresAt, t),
        principal: Option.fromNullishOr(state.principal)
      })
    ),
  insertFresh: (store, key, write) => insertFresh(store, Id.storageKeyUnsafe(key), write),
  update: (store, key, write, version) => store.update(Id.storageKeyUnsafe(key), write, version),
  storageKey: (config, id) => config.storageKey(id as SessionId),
  regenerated: Metric.update(SessionMetrics.regenerations, 1),
  moveUndone: Metric.update(revokedBy.moveUndone, 1),
  loadState: (store, key) =>
    Effect.map(store.load(Id.storageKeyUnsafe(key)), (record) =>
      Option.isSome(record) ? tombstoneOf(record.value) ?? Save.storedState(record.value, undefined) : undefined),
  loadLive: (config, store, key) => loadLive(config, store, Id.storageKeyUnsafe(key)),
  remove: (store, key) => store.remove(Id.storageKeyUnsafe(key)),
  replayBudget: (config) => replayBudget(config.budget),
  dropped,
  loggedOut: Metric.update(revokedBy.logout, 1),
  failureTag
}

// --- The response -------------------------------------------------------------

const withHeader = (
  response: HttpServerResponse.HttpServerResponse,
  name: string,
  value: string | undefined
): HttpServerResponse.HttpServerResponse => value === undefined ? response : HttpServerResponse.setHeader(response, name, value)

/**
 * The response with the cookie of `action`, kept out of shared caches (the
 * core's rule) when it sets or expires one.
 *
 * @internal
 */
export const applyCookie = <A>(
  config: Config<A>,
  response: HttpServerResponse.HttpServerResponse,
  action: CookieAction,
  t: number
): HttpServerResponse.HttpServerResponse => {
  if (action._tag === "None") return response
  // the name and attributes were checked when the middleware was built, the
  // value is an id: setting the cookie cannot fail
  const withCookie = action._tag === "Expire"
    ? HttpServerResponse.expireCookieUnsafe(response, config.cookieName, config.cookieOptions)
    : HttpServerResponse.setCookieUnsafe(response, config.cookieName, action.id, config.persistent
      ? { ...config.cookieOptions, maxAge: Duration.millis(Math.max(0, action.expiresAt - t)) }
      : config.cookieOptions)
  return withHeader(withCookie, "cache-control", Cookie.privateCacheControl(withCookie.headers["cache-control"]))
}

/**
 * A response that depends on the session varies on `Cookie` (the core's rule).
 *
 * @internal
 */
export const varyOnCookie = (response: HttpServerResponse.HttpServerResponse): HttpServerResponse.HttpServerResponse =>
  withHeader(response, "vary", Cookie.varyOnCookie(response.headers["vary"]))

/**
 * The end of a request whose app answered: nothing to do for a session not
 * used, only a logout after a 5xx, else the save and its cookie.
 *
 * @internal
 */
export const finishResponse = <A>(
  session: RequestSession<A>,
  appResponse: HttpServerResponse.HttpServerResponse,
  clock: Clock.Clock
): Effect.Effect<HttpServerResponse.HttpServerResponse, SessionError> => {
  const next = session.state.afterResponse(appResponse.status)
  if (next === "Unused") return Effect.succeed(appResponse)
  const response = varyOnCookie(appResponse)
  if (next === "Keep") return Effect.succeed(response)
  if (next === "Logout") {
    return Effect.map(session.revokeAfterFailure(), (action) => applyCookie(session.config, response, action, session.committedAt))
  }
  const t = clock.currentTimeMillisUnsafe()
  return session.nothingToSave(t)
    ? Effect.succeed(response)
    : Effect.map(session.commitAt(t), (action) => applyCookie(session.config, response, action, session.committedAt))
}
