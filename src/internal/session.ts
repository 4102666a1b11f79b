import type { HttpApp } from "@effect/platform"
import { Cookies, HttpServerRequest, HttpServerResponse } from "@effect/platform"
import type { Fiber } from "effect"
import { Cause, Clock, Context, Deferred, Duration, Effect, Either, Exit, FiberRef, Option, Random } from "effect"
import type { Envelope, SessionCodecImpl } from "../SessionCodec.js"
import * as Codec from "../SessionCodec.js"
import type { SessionError } from "../SessionError.js"
import type { SessionId, StorageKey } from "../SessionId.js"
import * as Id from "../SessionId.js"
import type { Options } from "../Session.js"
import { SessionStore } from "../SessionStore.js"
import type { SessionRecord } from "../SessionStore.js"
import { TextWrite } from "./text.js"

/** @internal */
export type Op<A> =
  | { readonly _tag: "Set"; readonly key: keyof A; readonly value: unknown }
  | { readonly _tag: "Update"; readonly key: keyof A; readonly f: (value: any) => unknown }
  | { readonly _tag: "Remove"; readonly key: keyof A }
  | { readonly _tag: "Clear" }

/**
 * Everything that does not depend on the request, built once per
 * middleware.
 *
 * @internal
 */
export interface Config<A> {
  readonly codec: SessionCodecImpl<A>
  readonly empty: A
  readonly emptyFingerprint: string
  readonly storageKey: (id: SessionId) => StorageKey
  readonly cookieName: string
  readonly cookieOptions: NonNullable<Cookies.Cookie["options"]>
  readonly persistent: boolean
  readonly idleMillis: number
  readonly absoluteMillis: number
  readonly touchAfterMillis: number
  readonly maxConflictRetries: number
}

const hour = 60 * 60 * 1000

/** @internal */
export const makeConfig = <A, I>(
  schema: import("effect").Schema.Schema<A, I, never>,
  empty: A,
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
    : Math.min(idleMillis / 10, hour)
  const codec = Codec.makeImpl(schema, { maxSize: options?.maxSize })
  const emptyFingerprint = Either.getOrThrow(codec.fingerprintEither(empty))
  return {
    codec,
    empty,
    emptyFingerprint,
    storageKey: Id.makeStorageKey(options?.pepper),
    cookieName,
    cookieOptions,
    persistent: cookie.persistent ?? true,
    idleMillis,
    absoluteMillis,
    touchAfterMillis,
    maxConflictRetries: options?.maxConflictRetries ?? 25
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

const applyOps = <A>(config: Config<A>, base: A, ops: ReadonlyArray<Op<A>>): A => {
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
        const fallback = (config.empty as Record<PropertyKey, unknown>)[op.key]
        if (fallback === undefined) delete data[op.key]
        else data[op.key] = fallback
        break
      }
      case "Clear":
        data = { ...(config.empty as Record<PropertyKey, unknown>) }
        break
    }
  }
  return data as A
}

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
  readonly login: (principal: string) => Effect.Effect<void, SessionError>
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
      this.data = this.config.empty
      this.settle(true)
      return Effect.succeed(f())
    }
    this.loader = fiber
    const key = this.config.storageKey(this.clientId.value)
    const clock = Context.get(fiber.currentDefaultServices, Clock.Clock)
    return Effect.matchCauseEffect(this.store.load(key), {
      onFailure: (cause) => {
        this.settle(false)
        return Effect.failCause(cause)
      },
      onSuccess: (record) => {
        const log = this.adopt(key, record, clock.unsafeCurrentTimeMillis())
        this.settle(true)
        return log === undefined ? Effect.succeed(f()) : Effect.zipRight(log, Effect.sync(f))
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

  /**
   * Takes the loaded record as the request's session (the empty session when
   * there is none, it is dead or undecodable). Returns the warning to log
   * for an undecodable one.
   */
  private adopt(key: StorageKey, record: Option.Option<SessionRecord>, t: number): Effect.Effect<void> | undefined {
    this.data = this.config.empty
    if (Option.isNone(record)) return undefined
    const decoded = decodeRecord(this.config, key, record.value, t)
    if (decoded._tag === "Undecodable") return decoded.log
    this.loaded = decoded.loaded
    if (Option.isSome(decoded.loaded)) {
      this.data = decoded.loaded.value.envelope.data
      this.principal_ = decoded.loaded.value.envelope.principal
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
    this.data = this.config.empty
    this.principal_ = Option.none()
  }

  loginNow(principal: string): void {
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

  login(principal: string): Effect.Effect<void, SessionError> {
    return this.access(() => this.loginNow(principal))
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
    return this.save(t)
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
    if (!this.renew && this.ops.length === 0) {
      // read only: no encoding at all
      return Option.isSome(this.loaded) ? this.touch(this.loaded.value, t) : Effect.succeed(noCookie)
    }
    if (Option.isSome(this.loaded) && !this.renew) {
      const loaded = this.loaded.value
      const unchanged = this.config.codec.unchanged(this.data, loaded.envelope, loaded.text)
      if (Either.isLeft(unchanged)) return Effect.fail(unchanged.left)
      // (the principal changes only with a new id, below)
      if (unchanged.right) return this.touch(loaded, t)
      return this.updateWithReplay(loaded, t)
    }
    return this.saveNew(t)
  }

  /** A new session: nothing stored yet, or starting over under a new id. */
  private saveNew(t: number): Effect.Effect<CookieAction, SessionError> {
    const config = this.config
    const store = this.store
    const hadCookie = Option.isSome(this.clientId)
    return Effect.gen(this, function*() {
      const fingerprint = yield* config.codec.fingerprintEither(this.data)
      const empty = fingerprint === config.emptyFingerprint && Option.isNone(this.principal_)
      const previous = this.loaded
      let base: Pick<Envelope<A>, "createdAt" | "absoluteExpiresAt"> = {
        createdAt: t,
        absoluteExpiresAt: t + config.absoluteMillis
      }
      if (Option.isSome(previous) && !this.invalidated) {
        // regenerate keeps the absolute deadline: a new id is not a new session
        base = previous.value.envelope
        if (!empty) {
          // guard: a concurrent logout of the old session must not be undone
          // by carrying its data over to a new id
          const guard = yield* this.guardPrevious(previous.value)
          if (guard === "Gone") return noCookie
        }
      }
      if (empty) {
        if (Option.isSome(previous)) yield* store.remove(previous.value.key)
        // a request that only read a dead session leaves the cookie alone: it
        // may be a late request with the id a concurrent login just replaced
        return hadCookie && (this.renew || this.ops.length > 0) ? { _tag: "Expire" } as const : noCookie
      }
      const id = this.newId ?? Id.unsafeGenerate()
      this.newId = id
      const envelope: Envelope<A> = { ...base, data: this.data, principal: this.principal_ }
      const expiresAt = Math.min(t + config.idleMillis, envelope.absoluteExpiresAt)
      const text = yield* config.codec.encodeText(envelope)
      yield* store.insert(config.storageKey(id), new TextWrite(text, expiresAt, envelope.principal)).pipe(
        Effect.catchTag("SessionConflict", (conflict) =>
          // 256 random bits do not collide; if a store says they did, fail loudly
          Effect.dieMessage(`effect-session: insert of a fresh id conflicted (${conflict.reason})`))
      )
      if (Option.isSome(previous)) yield* store.remove(previous.value.key)
      return { _tag: "Set", id, expiresAt } as const
    })
  }

  /**
   * The idle deadline a save at `t` gives a stored session: moved only when
   * it moves by more than `touchAfter` (so most requests write no expiry and
   * send no cookie), never past the absolute deadline.
   */
  private nextExpiry(loaded: Loaded<A>, t: number): number {
    const expiresAt = Math.min(t + this.config.idleMillis, loaded.envelope.absoluteExpiresAt)
    return expiresAt - loaded.expiresAt > this.config.touchAfterMillis ? expiresAt : loaded.expiresAt
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

  /** Re-checks the old session with a compare-and-set before it is replaced. */
  private guardPrevious(loaded: Loaded<A>, retries = 0): Effect.Effect<"Live" | "Gone", SessionError> {
    const text = this.config.codec.encodeText(loaded.envelope)
    if (Either.isLeft(text)) return Effect.fail(text.left)
    const write = new TextWrite(text.right, loaded.expiresAt, loaded.envelope.principal)
    return this.store.update(loaded.key, write, loaded.version).pipe(
      Effect.as("Live" as const),
      Effect.catchTag("SessionConflict", (conflict) => {
        if (conflict.reason !== "VersionMismatch") return Effect.succeed("Gone" as const)
        if (retries >= this.config.maxConflictRetries) return Effect.fail(conflict)
        // changed meanwhile: replay this request's writes over the newer data
        const reload = Effect.zipRight(backoff(retries), loadLive(this.config, this.store, loaded.key))
        return Effect.flatMap(reload, (fresh) => {
          if (Option.isNone(fresh)) return Effect.succeed("Gone" as const)
          this.data = applyOps(this.config, fresh.value.envelope.data, this.ops)
          this.loaded = fresh
          return this.guardPrevious(fresh.value, retries + 1)
        })
      })
    )
  }

  private updateWithReplay(loaded: Loaded<A>, t: number): Effect.Effect<CookieAction, SessionError> {
    const config = this.config
    const attempt = (current: Loaded<A>, data: A, retries: number): Effect.Effect<CookieAction, SessionError> => {
      const envelope: Envelope<A> = { ...current.envelope, data, principal: this.principal_ }
      const fingerprint = config.codec.fingerprintEither(data)
      if (Either.isLeft(fingerprint)) return Effect.fail(fingerprint.left)
      const text = config.codec.encodeText(envelope)
      if (Either.isLeft(text)) return Effect.fail(text.left)
      const expiresAt = this.nextExpiry(current, t)
      // emptied: the compare-and-set first, so that a concurrent writer's
      // data is replayed into this request instead of deleted with it
      const emptied = fingerprint.right === config.emptyFingerprint && Option.isNone(this.principal_)
      // one handler for both outcomes of the compare-and-set (every save
      // runs through here)
      return Effect.matchCauseEffect(
        this.store.update(current.key, new TextWrite(text.right, expiresAt, envelope.principal), current.version),
        {
          onSuccess: () =>
            emptied
              ? Effect.as(this.store.remove(current.key), expired)
              : Effect.succeed(this.cookieFor(current, expiresAt)),
          onFailure: (cause) => {
            const failure = Cause.failureOption(cause)
            if (Option.isNone(failure) || failure.value._tag !== "SessionConflict") return Effect.failCause(cause)
            const conflict = failure.value
            // removed or expired meanwhile (a logout won the race): never recreate it
            if (conflict.reason !== "VersionMismatch") return dropped
            if (retries >= config.maxConflictRetries) return Effect.fail(conflict)
            // a concurrent request saved first: replay this request's writes over its data
            return Effect.zipRight(
              backoff(retries),
              Effect.flatMap(loadLive(config, this.store, current.key), (fresh) =>
                Option.isNone(fresh)
                  ? dropped
                  : attempt(fresh.value, applyOps(config, fresh.value.envelope.data, this.ops), retries + 1))
            )
          }
        }
      )
    }
    return attempt(loaded, this.data, 0)
  }
}

const constVoid = (): void => undefined

const expired: CookieAction = { _tag: "Expire" }

const dropped: Effect.Effect<CookieAction> = Effect.as(
  Effect.logDebug("effect-session: the session was removed during the request; its writes are dropped"),
  noCookie
)

/** Jittered exponential backoff: 1–2 ms, 2–4 ms, … capped at 50 ms. */
const backoff = (retries: number): Effect.Effect<void> =>
  Effect.flatMap(Random.next, (r) => Effect.sleep(Duration.millis(Math.min(50, 2 ** retries) * (1 + r))))

/** Loads a record and decodes it; dead or undecodable sessions are absent. */
const loadLive = <A>(
  config: Config<A>,
  store: SessionStore["Type"],
  key: StorageKey
): Effect.Effect<Option.Option<Loaded<A>>, SessionError> =>
  Effect.flatMap(store.load(key), (record) => {
    if (Option.isNone(record)) return Effect.succeedNone
    return Effect.clockWith((clock) => {
      const decoded = decodeRecord(config, key, record.value, clock.unsafeCurrentTimeMillis())
      return decoded._tag === "Undecodable" ? Effect.as(decoded.log, Option.none()) : Effect.succeed(decoded.loaded)
    })
  })

type Decoded<A> =
  | { readonly _tag: "Decoded"; readonly loaded: Option.Option<Loaded<A>> }
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
    return {
      _tag: "Undecodable",
      log: Effect.logWarning(
        `effect-session: stored session ${Id.logPrefix(key)}… is undecodable; starting a new one`,
        decoded.left.message
      )
    }
  }
  const { envelope, text } = decoded.right
  if (envelope.absoluteExpiresAt <= t || record.expiresAt <= t) return { _tag: "Decoded", loaded: Option.none() }
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
      return HttpServerResponse.expireCookie(response, config.cookieName, config.cookieOptions)
    case "Set":
      return HttpServerResponse.unsafeSetCookie(response, config.cookieName, action.id, config.persistent
        ? { ...config.cookieOptions, maxAge: Duration.millis(Math.max(0, action.expiresAt - t)) }
        : config.cookieOptions)
  }
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
 * Where the middleware keeps the sessions of requests in flight, one per
 * `Session.Tag`: by the request's platform object (`HttpServerRequest`'s
 * `source`, the same for every fiber of the request and for a mounted
 * app's re-based request), so that a request's session costs no copy of
 * its context or fiber refs.
 *
 * @internal
 */
export class Slots<A> {
  private readonly key: symbol
  constructor(id: string) {
    this.key = Symbol(id)
  }
  get(source: object): RequestSession<A> | undefined {
    return (source as any)[this.key]
  }
  set(source: object, session: RequestSession<A>): void {
    ;(source as any)[this.key] = session
  }
}

/**
 * The session of the request `fiber` runs for: one provided in the context
 * (`withSession`, a test, a middleware below one of those), else the one the
 * middleware keeps for the request.
 *
 * @internal
 */
export const find = <A>(
  fiber: Fiber.RuntimeFiber<unknown, unknown>,
  tag: Context.Tag<any, RequestSession<A>>,
  slots: Slots<A>
): RequestSession<A> | undefined => {
  const context = fiber.currentContext as Context.Context<unknown>
  const provided = Context.getOption(context, tag)
  if (provided._tag === "Some") return provided.value
  const request = Context.getOption(context, HttpServerRequest.HttpServerRequest)
  if (request._tag === "None") return undefined
  const source = request.value.source
  return typeof source === "object" && source !== null ? slots.get(source) : undefined
}

/** @internal */
export const middleware = <Self, A>(
  tag: Context.Tag<Self, RequestSession<A>>,
  config: Config<A>,
  slots: Slots<A>
) =>
<E, R>(app: HttpApp.Default<E, R>): HttpApp.Default<E | SessionError, Exclude<R, Self> | SessionStore> =>
  Effect.withFiberRuntime<
    HttpServerResponse.HttpServerResponse,
    E | SessionError,
    R | HttpServerRequest.HttpServerRequest
  >((fiber) => {
    const context = fiber.currentContext as Context.Context<HttpServerRequest.HttpServerRequest | SessionStore>
    const clock = Context.get(fiber.currentDefaultServices, Clock.Clock)
    const request = Context.unsafeGet(context, HttpServerRequest.HttpServerRequest)
    const session = new RequestSession(
      config,
      Context.unsafeGet(context, SessionStore),
      () => Id.parse(request.cookies[config.cookieName])
    )
    const run = Effect.flatMap(app, (appResponse) => {
      if (!session.used) return Effect.succeed(appResponse)
      const response = addVary(appResponse)
      // an error response saves nothing; a read-only request has nothing to save
      if (response.status >= 500) return Effect.succeed(response)
      const t = clock.unsafeCurrentTimeMillis()
      return session.nothingToSave(t) ? Effect.succeed(response) : finish(config, session, response, t)
    })
    const source = request.source
    if (typeof source === "object" && source !== null && Option.isNone(Context.getOption(context, tag))) {
      // The session is kept by the request's platform object: no copy of the
      // context (as adding a service makes) and no fiber-ref write, which
      // together cost a route that never uses the session several µs. A
      // middleware of the same tag around this one gets its session back
      // when this one is done.
      const outer = slots.get(source)
      slots.set(source, session)
      return outer === undefined ? run : Effect.ensuring(run, Effect.sync(() => slots.set(source, outer)))
    }
    // Inside a context that provides the tag already (`withSession`, a
    // test), or on a platform whose request has no object to key by: the
    // session goes into the request's context, set on the request's fiber
    // for the rest of the request (one fiber-ref write, where
    // `provideService` takes two and restores the context afterwards;
    // nothing after the middleware can name the session).
    return Effect.zipRight(FiberRef.set(FiberRef.currentContext, Context.add(context, tag, session)), run)
  }) as any
