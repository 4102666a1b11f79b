/**
 * The request's session on Effect 4: the core decides (what was loaded is
 * alive, what a save must do, how operations replay, when replays stop), this
 * file runs it with Effect 4 — lazy load, the lanes in which the saves of one
 * process to one key take turns, compare-and-set with replay, the tombstones
 * of moves and logouts.
 *
 * @internal
 */
import type { Cookies } from "effect/http"
import { HttpServerResponse } from "effect/http"
import type { Cause } from "effect"
import { Cause as C, Duration, Effect, Option, Random, Result, Semaphore } from "effect"
import * as Cookie from "../../../src/core/cookie.js"
import { principalProblem } from "../../../src/core/principal.js"
import { readTombstone, tombstoneText } from "../../../src/core/record.js"
import * as Core from "../../../src/core/session.js"
import type { Envelope, SessionCodec } from "../SessionCodec.js"
import * as Codec from "../SessionCodec.js"
import type { SessionError, SessionStoreError } from "../SessionError.js"
import { SessionConflict } from "../SessionError.js"
import type { SessionId, StorageKey } from "../SessionId.js"
import * as Id from "../SessionId.js"
import type { Options } from "../Session.js"
import type { SessionIndex, SessionRecord, SessionStore, SessionWrite } from "../SessionStore.js"

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
  const cookie = options?.cookie ?? {}
  const attributes = {
    name: cookie.name ?? "session",
    secure: cookie.secure ?? true,
    path: cookie.path ?? "/",
    domain: cookie.domain,
    sameSite: cookie.sameSite ?? "lax"
  } as const
  const problem = Cookie.cookieAttributesProblem(attributes)
  if (problem !== undefined) throw new TypeError(`effect-session: ${problem}`)
  const idleMillis = Duration.toMillis(options?.idleTimeout ?? "14 days")
  const absoluteMillis = Duration.toMillis(options?.absoluteTimeout ?? "30 days")
  if (!(idleMillis > 0) || !(absoluteMillis > 0)) {
    throw new TypeError("effect-session: idleTimeout and absoluteTimeout must be positive")
  }
  const conflictMillis = Duration.toMillis(options?.conflictTimeout ?? "5 seconds")
  if (!(conflictMillis >= 0)) throw new TypeError("effect-session: conflictTimeout must not be negative")
  const codec = Codec.make(codecSchema.schema, { maxSize: options?.maxSize, fields: codecSchema.fields })
  return {
    codec,
    empty,
    emptyFingerprint: Result.getOrThrow(codec.fingerprint(empty.empty)),
    timeouts: {
      idleMillis,
      absoluteMillis,
      touchAfterMillis: options?.touchAfter !== undefined
        ? Duration.toMillis(options.touchAfter)
        : Core.defaultTouchAfter(idleMillis)
    },
    storageKey: Id.makeStorageKey(options?.pepper),
    cookieName: attributes.name,
    cookieOptions: {
      path: attributes.path,
      httpOnly: cookie.httpOnly ?? true,
      secure: attributes.secure,
      sameSite: attributes.sameSite,
      ...(cookie.domain !== undefined ? { domain: cookie.domain } : {}),
      ...(cookie.partitioned !== undefined ? { partitioned: cookie.partitioned } : {})
    },
    persistent: cookie.persistent ?? true,
    budget: { conflictMillis, maxConflictRetries: options?.maxConflictRetries ?? Number.POSITIVE_INFINITY }
  }
}

/** A stored, live session as a request loaded it. */
interface Loaded<A> {
  readonly key: StorageKey
  readonly version: number
  readonly expiresAt: number
  readonly envelope: Envelope<A>
  /** The stored text, to tell whether a save changes it. */
  readonly text: string
}

/** What a session needs of a stored record to end it. */
interface RawState {
  readonly version: number
  readonly expiresAt: number
  /** Where a moved session went (`null`: it ended, or it is a live session). */
  readonly movedTo: StorageKey | null
}

/**
 * What the response's cookie must do after a save.
 *
 * @internal
 */
export type CookieAction =
  | { readonly _tag: "None" }
  | { readonly _tag: "Set"; readonly id: SessionId; readonly expiresAt: number }
  | { readonly _tag: "Expire" }

const noCookie: CookieAction = { _tag: "None" }
const expireCookie: CookieAction = { _tag: "Expire" }

/** A record's tombstone, or `undefined` when it holds a session. */
const tombstoneOf = (record: SessionRecord): RawState | undefined => {
  const tombstone = readTombstone({ text: record.text, data: new Uint8Array() })
  if (tombstone === undefined) return undefined
  return {
    version: record.version,
    expiresAt: record.expiresAt,
    movedTo: tombstone.movedTo === null ? null : Id.storageKeyUnsafe(tombstone.movedTo)
  }
}

type Decoded<A> =
  | { readonly _tag: "Live"; readonly loaded: Loaded<A> }
  | { readonly _tag: "Dead" }
  | { readonly _tag: "Tombstone"; readonly state: RawState }
  | { readonly _tag: "Undecodable" }

const decodeRecord = <A>(config: Config<A>, key: StorageKey, record: SessionRecord, t: number): Decoded<A> => {
  const decoded = config.codec.decodeText(record.text)
  if (Result.isFailure(decoded)) {
    const state = tombstoneOf(record)
    return state === undefined ? { _tag: "Undecodable" } : { _tag: "Tombstone", state }
  }
  const envelope = decoded.success
  const stored = { expiresAt: record.expiresAt, createdAt: envelope.createdAt, absoluteExpiresAt: envelope.absoluteExpiresAt }
  return Core.isLive(config.timeouts, stored, t)
    ? { _tag: "Live", loaded: { key, version: record.version, expiresAt: record.expiresAt, envelope, text: record.text } }
    : { _tag: "Dead" }
}

// the stored values stay out of the log (they are personal data): the key's
// prefix locates the record for whoever may read it
const logUndecodable = (key: StorageKey) =>
  Effect.logWarning(
    `effect-session: stored session ${key.slice(0, 8)}… is undecodable (not this session's envelope or schema); starting a new one`
  )

/** Loads a live session; dead, ended and undecodable ones are absent. */
const loadLive = <A>(config: Config<A>, store: Store, key: StorageKey): Effect.Effect<Loaded<A> | undefined, SessionError> =>
  Effect.flatMap(store.load(key), (record) =>
    Option.isNone(record) ? Effect.undefined : Effect.clockWith((clock) => {
      const decoded = decodeRecord(config, key, record.value, clock.currentTimeMillisUnsafe())
      if (decoded._tag === "Live") return Effect.succeed(decoded.loaded)
      return decoded._tag === "Undecodable" ? Effect.as(logUndecodable(key), undefined) : Effect.undefined
    }))

type CasOutcome = "Written" | "Missing" | "VersionMismatch"

/** A compare-and-set's outcome: a conflict is an answer, not an error. */
const casOutcome = (
  update: Effect.Effect<number, SessionConflict | SessionStoreError>
): Effect.Effect<CasOutcome, SessionStoreError> =>
  update.pipe(
    Effect.map((): CasOutcome => "Written"),
    Effect.catchTag("SessionConflict", (conflict) =>
      Effect.succeed<CasOutcome>(conflict.reason === "VersionMismatch" ? "VersionMismatch" : "Missing"))
  )

/** Inserts under a fresh id: 256 random bits do not collide, so a conflict is a defect. */
const insertFresh = (store: Store, key: StorageKey, write: SessionWrite): Effect.Effect<void, SessionStoreError> =>
  Effect.catchTag(
    store.insert(key, write),
    "SessionConflict",
    (conflict) => Effect.die(new Error(`effect-session: insert of a fresh id conflicted (${conflict.reason})`))
  )

const tombstoneWrite = (movedTo: StorageKey | null, expiresAt: number): SessionWrite => ({
  text: tombstoneText(movedTo),
  expiresAt,
  principal: Option.none()
})

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
    return Effect.flatMap(Random.next, (r) => Effect.sleep(Duration.millis(Core.replayPauseMillis(retry, r))))
  })
}

// --- Lanes: the saves of one process to one storage key take turns ---------

const ended = "Ended" as const

/** One storage key's saves in this process, while any waits or runs. */
interface Lane {
  readonly semaphore: Semaphore.Semaphore
  users: number
  /** What the last save left stored, handed to the next (which then need not lose a compare-and-set). */
  last: { readonly config: Config<any>; readonly loaded: Loaded<any> } | typeof ended | undefined
}

const lanesByStore = new WeakMap<Store, Map<StorageKey, Lane>>()

/** One more user of the lane of `key`; `release` (idempotent) ends it, and the lane with its last user. */
const joinLane = (store: Store, key: StorageKey): { readonly lane: Lane; readonly release: () => void } => {
  let lanes = lanesByStore.get(store)
  if (lanes === undefined) lanesByStore.set(store, lanes = new Map())
  const map = lanes
  let lane = map.get(key)
  if (lane === undefined) map.set(key, lane = { semaphore: Semaphore.makeUnsafe(1), users: 0, last: undefined })
  const held = lane
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

/** Runs `f` once the saves of this process to `key` that came first are done. */
const withLane = <B, E>(store: Store, key: StorageKey, f: (lane: Lane) => Effect.Effect<B, E>): Effect.Effect<B, E> =>
  Effect.suspend(() => {
    const { lane, release } = joinLane(store, key)
    return Effect.ensuring(lane.semaphore.withPermit(Effect.suspend(() => f(lane))), Effect.sync(release))
  })

/**
 * The session the previous save in the lane left, when newer than what the
 * request loaded; `"Ended"` when a save before it ended the session.
 */
const handoff = <A>(lane: Lane, config: Config<A>, loaded: Loaded<A>): Loaded<A> | typeof ended | undefined => {
  const last = lane.last
  if (last === ended) return ended
  return last !== undefined && last.config === config && last.loaded.version > loaded.version
    ? last.loaded as Loaded<A>
    : undefined
}

/**
 * How many storage keys of `store` have saves waiting or running in this
 * process (for tests: nothing is kept once they are done).
 *
 * @internal
 */
export const coordinatedKeys = (store: Store): number => lanesByStore.get(store)?.size ?? 0

/**
 * Ends the session under `key`: a compare-and-set to an ended tombstone on
 * the version last seen (on the newest one when a writer won: a logout
 * always wins), then the session it had moved to, then the record itself.
 */
const endSession = <A>(
  config: Config<A>,
  store: Store,
  lane: Lane,
  key: StorageKey,
  known: RawState | undefined,
  t: number,
  hops: number
): Effect.Effect<void, SessionError> =>
  Effect.gen(function*() {
    lane.last = ended
    const nextReplay = replayBudget(config.budget)
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
      if (outcome === "Written") break
      yield* nextReplay
      state = undefined
    }
    const movedTo = state.movedTo
    // each hop is a regenerate that raced this logout: a few at most
    if (movedTo !== null && hops < 8) {
      yield* withLane(store, movedTo, (next) => endSession(config, store, next, movedTo, undefined, t, hops + 1))
    }
    yield* store.remove(key)
  })

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
 * The session a request (or `withSession`) works with: loaded on first use,
 * writes recorded as operations that replay over newer data when a
 * concurrent request saved first.
 *
 * @internal
 */
export class RequestSession<A> {
  constructor(
    readonly config: Config<A>,
    readonly store: Store,
    /** Reads the client's id; called once, on first use. */
    readonly readId: () => Option.Option<SessionId>
  ) {}

  used = false
  clientId: Option.Option<SessionId> = Option.none()
  loaded: Loaded<A> | undefined = undefined
  data!: A
  ops: Array<Core.Op<A>> = []
  principal: Option.Option<string> = Option.none()
  renew = false
  invalidated = false
  tombstone: RawState | undefined = undefined
  newId: SessionId | undefined = undefined
  /** When the save was computed: cookie lifetimes count from it. */
  committedAt = 0

  private loadDone = false
  // fibers of one request share the load; one that failed or was
  // interrupted is tried again by the next access
  private readonly loading = Semaphore.makeUnsafe(1)
  /** Ends this request's membership of its key's lane (idempotent). */
  releaseLane: () => void = () => undefined

  /** `f` on the loaded session: one synchronous step once it is loaded. */
  access<B>(f: () => B): Effect.Effect<B, SessionError> {
    this.used = true
    if (this.loadDone) return Effect.sync(f)
    return Effect.map(this.loading.withPermit(Effect.suspend(() => this.loadDone ? Effect.void : this.load)), f)
  }

  private get load(): Effect.Effect<void, SessionError> {
    this.clientId = this.readId()
    if (Option.isNone(this.clientId)) {
      this.data = this.config.empty.make()
      this.loadDone = true
      return Effect.void
    }
    const key = this.config.storageKey(this.clientId.value)
    // in the lane before the load: a save of this process that ends while
    // the load is on its way still hands its result to this request
    this.releaseLane()
    this.releaseLane = joinLane(this.store, key).release
    return Effect.matchEffect(this.store.load(key), {
      onFailure: (error) => {
        this.releaseLane()
        return Effect.fail(error)
      },
      onSuccess: (record) =>
        Effect.clockWith((clock) => {
          const log = this.adopt(key, record, clock.currentTimeMillisUnsafe())
          if (this.loaded === undefined) this.releaseLane()
          this.loadDone = true
          return log
        })
    })
  }

  private adopt(key: StorageKey, record: Option.Option<SessionRecord>, t: number): Effect.Effect<void> {
    this.data = this.config.empty.make()
    if (Option.isNone(record)) return Effect.void
    const decoded = decodeRecord(this.config, key, record.value, t)
    switch (decoded._tag) {
      case "Undecodable":
        return logUndecodable(key)
      case "Tombstone":
        // moved or ended: no data, but a logout follows where it moved to
        this.tombstone = decoded.state
        return Effect.void
      case "Dead":
        return Effect.void
      case "Live":
        this.loaded = decoded.loaded
        this.data = decoded.loaded.envelope.data
        this.principal = decoded.loaded.envelope.principal
        return Effect.void
    }
  }

  record(op: Core.Op<A>): void {
    this.ops.push(op)
    this.data = Core.applyOps(this.config.empty, this.data, [op])
  }

  regenerate(): void {
    this.renew = true
    this.newId = undefined
  }

  invalidate(): void {
    this.renew = true
    this.invalidated = true
    this.newId = undefined
    this.ops = []
    this.data = this.config.empty.make()
    this.principal = Option.none()
  }

  login(principal: string, keepData: boolean): void {
    const bound = this.loaded?.envelope.principal ?? Option.none()
    // switching accounts: nothing of the previous account carries over
    if (!keepData && !this.invalidated && Option.isSome(bound) && bound.value !== principal) this.invalidate()
    this.renew = true
    this.newId = undefined
    this.principal = Option.some(principal)
  }

  id(): SessionId {
    if (!this.renew && this.loaded !== undefined && Option.isSome(this.clientId)) return this.clientId.value
    return this.newId ??= Id.generateUnsafe()
  }

  /** Whether a commit at `t` would do nothing (a read that moves no deadline). */
  nothingToSave(t: number): boolean {
    if (!this.loadDone || this.renew || this.ops.length > 0) return false
    return this.loaded === undefined || this.nextExpiry(this.loaded, t) === this.loaded.expiresAt
  }

  /** Saves what the request did; says what the cookie must do. */
  get commit(): Effect.Effect<CookieAction, SessionError> {
    if (!this.used) return Effect.succeed(noCookie)
    if (!this.loadDone) return Effect.andThen(this.access(() => undefined), () => this.commit)
    return Effect.clockWith((clock) => {
      const t = this.committedAt = clock.currentTimeMillisUnsafe()
      return Effect.ensuring(this.save(t), Effect.sync(() => this.releaseLane()))
    })
  }

  /**
   * After the request failed (or answered 5xx): nothing is saved but a
   * logout, which a later error must not undo. Never fails: a store error
   * here is logged (the request is failing already).
   */
  revokeAfterFailure(cause?: Cause.Cause<unknown>): Effect.Effect<CookieAction> {
    if (!this.invalidated || !this.loadDone || (cause !== undefined && C.hasInterruptsOnly(cause))) {
      return Effect.succeed(noCookie)
    }
    return Effect.clockWith((clock) => this.endPrevious(this.committedAt = clock.currentTimeMillisUnsafe())).pipe(
      Effect.map(() => Option.isSome(this.clientId) ? expireCookie : noCookie),
      Effect.catchCause((failure) =>
        Effect.as(Effect.logWarning("effect-session: a logout in a failed request could not be applied", failure), noCookie)
      ),
      Effect.ensuring(Effect.sync(() => this.releaseLane()))
    )
  }

  private save(t: number): Effect.Effect<CookieAction, SessionError> {
    const config = this.config
    let failure: SessionError | undefined
    const plan = Core.planSave({
      used: this.used,
      loaded: this.loaded !== undefined,
      tombstone: this.tombstone !== undefined,
      hadCookie: Option.isSome(this.clientId),
      renew: this.renew,
      invalidated: this.invalidated,
      writes: this.ops.length,
      unchanged: () => {
        const loaded = this.loaded!
        const unchanged = config.codec.unchanged(this.data, loaded.envelope, loaded.text)
        if (Result.isFailure(unchanged)) failure = unchanged.failure
        return Result.getOrElse(unchanged, () => false)
      },
      empty: () => {
        const emptied = this.isEmpty(this.data)
        if (Result.isFailure(emptied)) failure = emptied.failure
        return Result.getOrElse(emptied, () => false)
      }
    })
    if (failure !== undefined) return Effect.fail(failure)
    switch (plan._tag) {
      case "Nothing":
        return Effect.succeed(noCookie)
      case "Touch":
        return this.touch(this.loaded!, t)
      case "Update": {
        const loaded = this.loaded!
        return withLane(this.store, loaded.key, (lane) => this.updateWithReplay(lane, loaded, t))
      }
      case "Rotate": {
        const loaded = this.loaded!
        return withLane(this.store, loaded.key, (lane) => this.rotate(lane, loaded, t))
      }
      case "New":
        return Effect.andThen(
          plan.end ? this.endPrevious(t) : Effect.void,
          plan.insert ? this.insertNew(t) : Effect.succeed(plan.expireCookie ? expireCookie : noCookie)
        )
    }
  }

  /** Whether `data` is the empty session and no principal is bound. */
  private isEmpty(data: A): Result.Result<boolean, SessionError> {
    return Result.map(
      this.config.codec.fingerprint(data),
      (json) => json === this.config.emptyFingerprint && Option.isNone(this.principal)
    )
  }

  private nextExpiry(loaded: Loaded<A>, t: number): number {
    return Core.nextExpiry(this.config.timeouts, { expiresAt: loaded.expiresAt, absoluteExpiresAt: loaded.envelope.absoluteExpiresAt }, t)
  }

  /** The cookie of a stored session whose deadline is `expiresAt`: sent only when it moved. */
  private cookieFor(loaded: Loaded<A>, expiresAt: number): CookieAction {
    return expiresAt !== loaded.expiresAt && Option.isSome(this.clientId)
      ? { _tag: "Set", id: this.clientId.value, expiresAt }
      : noCookie
  }

  private touch(loaded: Loaded<A>, t: number): Effect.Effect<CookieAction, SessionError> {
    const expiresAt = this.nextExpiry(loaded, t)
    if (expiresAt === loaded.expiresAt) return Effect.succeed(noCookie)
    return Effect.map(this.store.touch(loaded.key, expiresAt), (live) => live ? this.cookieFor(loaded, expiresAt) : noCookie)
  }

  private insertNew(t: number): Effect.Effect<CookieAction, SessionError> {
    return Effect.suspend(() => {
      const id = this.newId ??= Id.generateUnsafe()
      const deadlines = Core.newDeadlines(this.config.timeouts, t)
      const envelope: Envelope<A> = {
        createdAt: deadlines.createdAt,
        absoluteExpiresAt: deadlines.absoluteExpiresAt,
        data: this.data,
        principal: this.principal
      }
      return Effect.flatMap(Effect.fromResult(this.config.codec.encodeText(envelope)), (text) =>
        Effect.as(
          insertFresh(this.store, this.config.storageKey(id), { text, expiresAt: deadlines.expiresAt, principal: this.principal }),
          { _tag: "Set", id, expiresAt: deadlines.expiresAt } as const
        ))
    })
  }

  /** Ends the stored session the request started from (live, or the tombstone it left). */
  private endPrevious(t: number): Effect.Effect<void, SessionError> {
    const key = this.loaded?.key ??
      (this.tombstone !== undefined && Option.isSome(this.clientId) ? this.config.storageKey(this.clientId.value) : undefined)
    if (key === undefined) return Effect.void
    const first: RawState | undefined = this.loaded !== undefined
      ? { version: this.loaded.version, expiresAt: this.loaded.expiresAt, movedTo: null }
      : this.tombstone
    return withLane(this.store, key, (lane) => endSession(this.config, this.store, lane, key, first, t, 0))
  }

  /**
   * Writes the request's data over the loaded session with a compare-and-set,
   * replaying its operations over newer data when a writer of another process
   * won. A session emptied by the request ends with a tombstone.
   */
  private updateWithReplay(lane: Lane, loaded: Loaded<A>, t: number): Effect.Effect<CookieAction, SessionError> {
    const self = this
    const config = this.config
    const store = this.store
    const nextReplay = replayBudget(config.budget)
    return Effect.gen(function*() {
      const handed = handoff(lane, config, loaded)
      if (handed === ended) return yield* dropped
      let current = handed ?? loaded
      let data = handed === undefined ? self.data : Core.applyOps(config.empty, handed.envelope.data, self.ops)
      while (true) {
        const envelope: Envelope<A> = { ...current.envelope, data, principal: self.principal }
        const emptied = yield* Effect.fromResult(self.isEmpty(data))
        const expiresAt = self.nextExpiry(current, t)
        const write: SessionWrite = emptied
          ? tombstoneWrite(null, Core.tombstoneExpiry(current.expiresAt, t))
          : { text: yield* Effect.fromResult(config.codec.encodeText(envelope)), expiresAt, principal: self.principal }
        const outcome = yield* Effect.result(store.update(current.key, write, current.version))
        if (Result.isSuccess(outcome)) {
          self.data = data
          if (emptied) {
            lane.last = ended
            yield* store.remove(current.key)
            return expireCookie
          }
          lane.last = { config, loaded: { key: current.key, version: outcome.success, expiresAt, envelope, text: write.text } }
          return self.cookieFor(current, expiresAt)
        }
        const error = outcome.failure
        if (error._tag !== "SessionConflict") return yield* Effect.fail(error)
        // removed or expired meanwhile (a logout won the race): never recreate it
        if (error.reason !== "VersionMismatch") {
          lane.last = ended
          return yield* dropped
        }
        yield* nextReplay
        const fresh = yield* loadLive(config, store, current.key)
        if (fresh === undefined) {
          lane.last = ended
          return yield* dropped
        }
        current = fresh
        data = Core.applyOps(config.empty, fresh.envelope.data, self.ops)
      }
    })
  }

  /**
   * Moves the session to a new id: the new record is inserted, then the old
   * one becomes a tombstone pointing at it with a compare-and-set on the
   * loaded version. A concurrent write of the old session is replayed into
   * the new one; a concurrent logout or `revokeAll` removes the new one again
   * before the response is sent, so nothing revoked lives on.
   */
  private rotate(lane: Lane, previous: Loaded<A>, t: number): Effect.Effect<CookieAction, SessionError> {
    const self = this
    const config = this.config
    const store = this.store
    return Effect.gen(function*() {
      const handed = handoff(lane, config, previous)
      if (handed === ended) return noCookie
      let current = handed ?? previous
      if (handed !== undefined) self.data = Core.applyOps(config.empty, handed.envelope.data, self.ops)
      const id = self.newId ??= Id.generateUnsafe()
      const newKey = config.storageKey(id)
      // a new id is not a new session: the absolute deadline is kept
      const writeFor = (base: Loaded<A>) =>
        Effect.map(
          Effect.fromResult(config.codec.encodeText({ ...base.envelope, data: self.data, principal: self.principal })),
          (text): SessionWrite => ({
            text,
            expiresAt: Math.min(t + config.timeouts.idleMillis, base.envelope.absoluteExpiresAt),
            principal: self.principal
          })
        )
      let write = yield* writeFor(current)
      yield* insertFresh(store, newKey, write)
      let newVersion = 1
      const nextReplay = replayBudget(config.budget)
      while (true) {
        const outcome = yield* casOutcome(
          store.update(current.key, tombstoneWrite(newKey, Core.tombstoneExpiry(current.expiresAt, t)), current.version)
        )
        if (outcome === "Written") {
          lane.last = ended
          return { _tag: "Set", id, expiresAt: write.expiresAt } as const
        }
        let fresh: Loaded<A> | undefined
        if (outcome === "VersionMismatch") {
          yield* nextReplay
          fresh = yield* loadLive(config, store, current.key)
        }
        if (fresh === undefined) {
          // ended meanwhile (a logout, revokeAll): the new id must not outlive it;
          // the cookie is left alone (the logout's response expired it)
          lane.last = ended
          yield* store.remove(newKey)
          return noCookie
        }
        current = fresh
        self.data = Core.applyOps(config.empty, current.envelope.data, self.ops)
        write = yield* writeFor(current)
        // only this request knows the new key: a conflict there is the store's fault
        newVersion = yield* Effect.tapError(store.update(newKey, write, newVersion), () => store.remove(newKey))
      }
    })
  }
}

const dropped: Effect.Effect<CookieAction> = Effect.as(
  Effect.logDebug("effect-session: the session was removed during the request; its writes are dropped"),
  noCookie
)

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
      removed === 0 || passes >= 16 ? Effect.succeed(total + removed) : pass(total + removed, passes + 1))
  return pass(0, 1)
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
  appResponse: HttpServerResponse.HttpServerResponse
): Effect.Effect<HttpServerResponse.HttpServerResponse, SessionError> => {
  if (!session.used) return Effect.succeed(appResponse)
  const response = varyOnCookie(appResponse)
  if (response.status >= 500) {
    return session.invalidated
      ? Effect.map(session.revokeAfterFailure(), (action) => applyCookie(session.config, response, action, session.committedAt))
      : Effect.succeed(response)
  }
  return Effect.clockWith((clock) =>
    session.nothingToSave(clock.currentTimeMillisUnsafe())
      ? Effect.succeed(response)
      : Effect.map(session.commit, (action) => applyCookie(session.config, response, action, session.committedAt))
  )
}
