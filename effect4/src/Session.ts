/**
 * Typed server-side sessions for Effect 4 HTTP apps (`effect/http`).
 *
 * ```ts
 * import { Effect, Layer, Schema } from "effect"
 * import { HttpRouter, HttpServerResponse } from "effect/http"
 * import { MemoryStore, Session, SessionError } from "effect-session"
 *
 * class AppSession extends Session.Tag<AppSession>()("app/AppSession", {
 *   username: Schema.optional(Schema.String),
 *   visits: Schema.Int.pipe(Schema.withDecodingDefault(Effect.succeed(0)))
 * }) {}
 *
 * const handler = Effect.andThen(
 *   AppSession.update("visits", (n) => n + 1),
 *   Effect.map(AppSession.get("visits"), (n) => HttpServerResponse.text(`visit ${n}`))
 * )
 *
 * // the middleware's layer provides the session to the routes; combined with
 * // SessionError.respond, a store that is down answers 503
 * const Routes = HttpRouter.add("GET", "/", handler).pipe(
 *   Layer.provide(AppSession.middleware({ cookie: { secure: false } }).combine(SessionError.respond).layer),
 *   Layer.provide(MemoryStore.layer())
 * )
 * ```
 *
 * @since 2.0.0
 */
import type { Duration, Redacted, Types } from "effect"
import { Clock, Context, Effect, Layer, Option, Result, Schema } from "effect"
import type { HttpRouter, HttpServerResponse } from "effect/http"
import { HttpRouter as Router, HttpServerRequest } from "effect/http"
import type { HttpApiMiddleware } from "effect/http-api"
import * as SessionFields from "../../src/core/fields.js"
import type * as Core from "../../src/core/session.js"
import * as SessionError from "./SessionError.js"
import * as Revocation from "./internal/revocation.js"
import * as internal from "./internal/session.js"
import type { SessionStoreError } from "./SessionError.js"
import type { SessionId, StorageKey } from "./SessionId.js"
import * as Id from "./SessionId.js"
import { SessionIndex, SessionStore } from "./SessionStore.js"

/**
 * Cookie attributes. Defaults: name `session`, `HttpOnly`, `Secure`,
 * `SameSite=Lax`, `Path=/`, persistent (`Max-Age` = the session's time left).
 *
 * @since 2.0.0
 * @category models
 */
export interface CookieOptions extends Core.CookieOptions {}

/**
 * The options of a middleware and of `withSession`: the same as on the
 * Effect 3 line.
 *
 * @since 2.0.0
 * @category models
 */
export interface Options extends Core.SessionOptions<Duration.Input, Redacted.Redacted<string>, CookieOptions> {}

/**
 * Options of `login`.
 *
 * @since 2.0.0
 * @category models
 */
export interface LoginOptions extends Core.LoginOptions {}

/**
 * The session of the current request, as a service (`yield* AppSession`).
 *
 * @since 2.0.0
 * @category models
 */
export interface SessionHandle<A> {
  readonly get: <K extends keyof A>(key: K) => Effect.Effect<A[K], SessionError.SessionError>
  readonly getAll: Effect.Effect<A, SessionError.SessionError>
  readonly set: <K extends keyof A>(key: K, value: A[K]) => Effect.Effect<void, SessionError.SessionError>
  readonly update: <K extends keyof A>(key: K, f: (value: A[K]) => A[K]) => Effect.Effect<void, SessionError.SessionError>
  readonly remove: (key: keyof A) => Effect.Effect<void, SessionError.SessionError>
  readonly clear: Effect.Effect<void, SessionError.SessionError>
  readonly regenerate: Effect.Effect<void, SessionError.SessionError>
  readonly invalidate: Effect.Effect<void, SessionError.SessionError>
  readonly login: (principal: string, options?: LoginOptions) => Effect.Effect<void, SessionError.SessionError>
  readonly principal: Effect.Effect<Option.Option<string>, SessionError.SessionError>
  readonly id: Effect.Effect<SessionId, SessionError.SessionError>
}

/**
 * The router middleware of a session tag: its layer provides the session to
 * the routes it is provided to, and requires a `SessionStore`.
 *
 * @since 2.0.0
 * @category models
 */
export type Middleware<Self> = HttpRouter.Middleware<{
  provides: Self
  handles: never
  error: SessionError.SessionError
  requires: never
  layerError: never
  layerRequires: SessionStore
}>

/**
 * The class `Session.Tag` builds: the service of the session handle, and the
 * home of the typed accessors.
 *
 * @since 2.0.0
 * @category models
 */
export interface TagClass<Self, Id extends string, Fields extends Schema.Struct.Fields>
  extends Context.ServiceClass<Self, Id, SessionHandle<Schema.Struct.Type<Fields>>>
{
  readonly fields: Fields
  readonly schema: Schema.Struct<Fields>
  readonly get: <K extends keyof Schema.Struct.Type<Fields>>(
    key: K
  ) => Effect.Effect<Schema.Struct.Type<Fields>[K], SessionError.SessionError, Self>
  readonly getAll: Effect.Effect<Schema.Struct.Type<Fields>, SessionError.SessionError, Self>
  readonly set: <K extends keyof Schema.Struct.Type<Fields>>(
    key: K,
    value: Schema.Struct.Type<Fields>[K]
  ) => Effect.Effect<void, SessionError.SessionError, Self>
  /** Changes a value with a function, re-applied over a concurrent writer's value: concurrent increments all count. */
  readonly update: <K extends keyof Schema.Struct.Type<Fields>>(
    key: K,
    f: (value: Schema.Struct.Type<Fields>[K]) => Schema.Struct.Type<Fields>[K]
  ) => Effect.Effect<void, SessionError.SessionError, Self>
  /** Removes a value (a field with a default goes back to its default). */
  readonly remove: (key: keyof Schema.Struct.Type<Fields>) => Effect.Effect<void, SessionError.SessionError, Self>
  /** Removes every value. A session left empty is deleted and its cookie expired. */
  readonly clear: Effect.Effect<void, SessionError.SessionError, Self>
  /** Moves the session to a new id, keeping its data; the old id stops working. */
  readonly regenerate: Effect.Effect<void, SessionError.SessionError, Self>
  /** Logout: the stored session is removed and the cookie expired. */
  readonly invalidate: Effect.Effect<void, SessionError.SessionError, Self>
  /** `regenerate`, then bind the session to a principal (see `revokeAll`). */
  readonly login: (principal: string, options?: LoginOptions) => Effect.Effect<void, SessionError.SessionError, Self>
  /** The principal bound by `login`. */
  readonly principal: Effect.Effect<Option.Option<string>, SessionError.SessionError, Self>
  /** The session's id (a new one is issued if the session is new). */
  readonly id: Effect.Effect<SessionId, SessionError.SessionError, Self>
  /** The router middleware: `Layer.provide(AppSession.middleware().layer)`. */
  readonly middleware: (options?: Options) => Middleware<Self>
  /**
   * The implementation of an `HttpApiMiddleware.Service` that provides the
   * session to the endpoints of an `HttpApi`. Session errors are answered as
   * `SessionError.respond` does (503, 413), also when a handler turned them
   * into defects with `Effect.orDie` (an endpoint declares its errors, and a
   * session error is none of them):
   *
   * ```ts
   * class SessionMiddleware extends HttpApiMiddleware.Service<SessionMiddleware, { provides: AppSession }>()(
   *   "app/SessionMiddleware"
   * ) {}
   * const Api = HttpApi.make("api").add(group).middleware(SessionMiddleware)
   * const SessionMiddlewareLive = AppSession.apiMiddleware(SessionMiddleware)
   * ```
   */
  readonly apiMiddleware: <I>(
    service: Context.Key<I, HttpApiMiddleware.HttpApiMiddleware<Self, never, never>>,
    options?: Options
  ) => Layer.Layer<I, never, SessionStore>
  /**
   * Runs an effect against the stored session of an id, outside an HTTP
   * request: loads lazily, saves on success.
   */
  readonly withSession: <A, E, R>(
    id: string,
    effect: Effect.Effect<A, E, R>,
    options?: Options
  ) => Effect.Effect<A, E | SessionError.SessionError, Exclude<R, Self> | SessionStore>
}

type State<A> = internal.RequestState<A>

/**
 * What each accessor does to the request's state, once it is loaded: the
 * handle (`yield* AppSession`) and the tag's static accessors share it.
 */
const steps = {
  get: <A, K extends keyof A>(key: K) => (s: State<A>): A[K] => s.data[key],
  getAll: <A>(s: State<A>): A => s.data,
  set: <A, K extends keyof A>(key: K, value: A[K]) => (s: State<A>) => s.record({ _tag: "Set", key, value }),
  update: <A, K extends keyof A>(key: K, f: (value: A[K]) => A[K]) => (s: State<A>) => s.record({ _tag: "Update", key, f }),
  remove: <A>(key: keyof A) => (s: State<A>) => s.record({ _tag: "Remove", key }),
  clear: <A>(s: State<A>) => s.record({ _tag: "Clear" }),
  regenerate: <A>(s: State<A>) => s.regenerate(),
  invalidate: <A>(s: State<A>) => s.invalidate(),
  login: (principal: string, options?: LoginOptions) => <A>(s: State<A>) => s.login(principal, options?.keepData === true),
  principal: <A>(s: State<A>): Option.Option<string> => Option.fromNullishOr(s.principal),
  id: <A>(s: State<A>): SessionId => s.id() as SessionId
}

/** The handle a request's session is provided as. */
class Handle<A> implements SessionHandle<A> {
  constructor(readonly session: internal.RequestSession<A>) {}
  get<K extends keyof A>(key: K) {
    return this.session.access(steps.get<A, K>(key))
  }
  get getAll() {
    return this.session.access(steps.getAll<A>)
  }
  set<K extends keyof A>(key: K, value: A[K]) {
    return this.session.access(steps.set(key, value))
  }
  update<K extends keyof A>(key: K, f: (value: A[K]) => A[K]) {
    return this.session.access(steps.update(key, f))
  }
  remove(key: keyof A) {
    return this.session.access(steps.remove<A>(key))
  }
  get clear() {
    return this.session.access(steps.clear<A>)
  }
  get regenerate() {
    return this.session.access(steps.regenerate<A>)
  }
  get invalidate() {
    return this.session.access(steps.invalidate<A>)
  }
  login(principal: string, options?: LoginOptions) {
    return internal.invalidPrincipal(principal) ?? this.session.access(steps.login(principal, options))
  }
  get principal() {
    return this.session.access(steps.principal<A>)
  }
  get id() {
    return this.session.access(steps.id<A>)
  }
}

/**
 * Defines a session: its service, its schema and its accessors. Every field
 * must be optional or have a decoding default, so that a new session decodes
 * from `{}`.
 *
 * @since 2.0.0
 * @category constructors
 */
export const Tag = <Self>() =>
<const Id extends string, Fields extends Schema.Struct.Fields>(
  id: Id,
  fields: Fields & SessionFields.FieldsRule<Schema.Struct.Encoded<Fields>>
): TagClass<Self, Id, Fields> => {
  type A = Schema.Struct.Type<Fields>
  const schema = Schema.Struct(fields as Fields)
  // the fields' own requirements are checked by the signature of `Tag`'s users
  const dataSchema = schema as unknown as Schema.Codec<A, unknown>
  const decodeEmpty = Schema.decodeUnknownResult(dataSchema)
  const decoded = decodeEmpty({})
  if (Result.isFailure(decoded)) {
    throw new TypeError(
      `${SessionFields.emptyDoesNotDecode(id)} ${decoded.failure.message}`
    )
  }
  // a new session's data is decoded afresh each time: a default value (an
  // array, an object) is never shared between sessions
  const empty = { empty: decoded.success, make: () => Result.getOrThrow(decodeEmpty({})) }
  const codecSchema = { schema: dataSchema, fields: Object.keys(fields) }
  const configs = new WeakMap<Options, internal.Config<A>>()
  const defaultConfig = internal.makeConfig(codecSchema, empty, undefined)
  // built once per options object, not per request
  const configFor = (options: Options | undefined): internal.Config<A> => {
    if (options === undefined) return defaultConfig
    let config = configs.get(options)
    if (config === undefined) configs.set(options, config = internal.makeConfig(codecSchema, empty, options))
    return config
  }
  const TagBase = Context.Service<Self, SessionHandle<A>>()(id)
  const tag = TagBase as unknown as Context.Key<Self, Handle<A>>
  const notProvided = Effect.die(
    new Error(`effect-session: ${id} is not provided: provide ${id}.middleware().layer to the routes, or use withSession`)
  )
  // the tag's accessors find the handle in the fiber's context and run the
  // step on it with the fiber at hand (one runtime step, two once loading)
  const withHandle = <B>(f: (state: State<A>) => B): Effect.Effect<B, SessionError.SessionError, Self> =>
    Effect.withFiber((fiber) => {
      const handle = Context.getOrUndefined(fiber.context, tag)
      return handle === undefined ? notProvided : handle.session.loadThen(f, fiber)
    })
  // the request's session around an app: loaded on first use, saved after a
  // successful answer, a logout kept after a failed one
  const wrapRequest = (config: internal.Config<A>) =>
  (store: SessionStore["Service"], index: boolean) =>
  <E, R>(app: Effect.Effect<HttpServerResponse.HttpServerResponse, E, R>) =>
    Effect.withFiber<HttpServerResponse.HttpServerResponse, E | SessionError.SessionError, R>((fiber) => {
      const outer = fiber.context
      const request = Context.getUnsafe(outer as Context.Context<HttpServerRequest.HttpServerRequest>, HttpServerRequest.HttpServerRequest)
      const clock = fiber.getRef(Clock.Clock)
      const session = new internal.RequestSession(
        config,
        store,
        () => Id.parse(request.cookies[config.cookieName]),
        Revocation.requestStart(index, clock)
      )
      // the request's session is a service of the app's context, for its
      // handler and every fiber it forks. What `Effect.provideService` does,
      // with the context set here and put back by the app's own handlers
      // instead of a region around it (runtime steps on every request, see
      // docs/design.md); an interrupted app skips those handlers, and its
      // fiber ends with the session still in its context
      fiber.setContext(Context.add(outer, tag, new Handle(session)))
      return Effect.matchCauseEffect(app, {
        // a failed request saves nothing, but a logout in it still holds
        onFailure: (cause) => {
          fiber.setContext(outer)
          return session.state.invalidated
            ? Effect.andThen(session.revokeAfterFailure(cause), Effect.failCause(cause))
            : Effect.failCause(cause)
        },
        onSuccess: (response) => {
          fiber.setContext(outer)
          return internal.finishResponse(session, response, clock)
        }
      })
    })
  const statics = {
    fields,
    schema,
    get: (key: keyof A) => withHandle(steps.get<A, keyof A>(key)),
    getAll: withHandle(steps.getAll<A>),
    set: (key: keyof A, value: any) => withHandle(steps.set<A, keyof A>(key, value)),
    update: (key: keyof A, f: (value: any) => any) => withHandle(steps.update<A, keyof A>(key, f)),
    remove: (key: keyof A) => withHandle(steps.remove<A>(key)),
    clear: withHandle(steps.clear<A>),
    regenerate: withHandle(steps.regenerate<A>),
    invalidate: withHandle(steps.invalidate<A>),
    login: (principal: string, options?: LoginOptions) =>
      internal.invalidPrincipal(principal) ?? withHandle(steps.login(principal, options)),
    principal: withHandle(steps.principal<A>),
    id: withHandle(steps.id<A>),
    middleware: (options?: Options): Middleware<Self> => {
      const wrap = wrapRequest(configFor(options))
      return Router.middleware<{ provides: Self }>()(
        Effect.zipWith(SessionStore, Revocation.hasIndex, wrap)
      ) as unknown as Middleware<Self>
    },
    apiMiddleware: <I>(
      service: Context.Key<I, HttpApiMiddleware.HttpApiMiddleware<Self, never, never>>,
      options?: Options
    ): Layer.Layer<I, never, SessionStore> => {
      const wrap = wrapRequest(configFor(options))
      return Layer.effect(service)(Effect.zipWith(SessionStore, Revocation.hasIndex, (store, index) => {
        const run = wrap(store, index)
        // an endpoint declares no session errors: they are answered here, also
        // when a handler made them defects (`Effect.orDie`) to match its type
        return (app) => SessionError.answerSessionFailures(run(app)) as Effect.Effect<HttpServerResponse.HttpServerResponse, Types.unhandled>
      }))
    },
    withSession: <B, E, R>(sessionId: string, effect: Effect.Effect<B, E, R>, options?: Options) => {
      const config = configFor(options)
      return Effect.flatMap(Effect.zip(SessionStore, Revocation.hasIndex), ([store, index]) => Effect.withFiber((fiber) => {
        const startedAt = Revocation.requestStart(index, fiber.getRef(Clock.Clock))
        const session = new internal.RequestSession(config, store, () => Id.parse(sessionId), startedAt)
        return Effect.provideService(effect, tag, new Handle(session)).pipe(
          // a failed effect saves nothing, except a logout, which always holds
          Effect.onError((cause) => session.revokeAfterFailure(cause)),
          Effect.tap(() => session.commit)
        )
      }))
    }
  }
  return Object.assign(TagBase, statics) as unknown as TagClass<Self, Id, Fields>
}

/**
 * The storage keys of the live sessions of a principal.
 *
 * @since 2.0.0
 * @category principals
 */
export const list = (principal: string): Effect.Effect<ReadonlyArray<StorageKey>, SessionStoreError, SessionIndex> =>
  internal.invalidPrincipal(principal) ?? Effect.flatMap(SessionIndex, (index) => index.keys(principal))

/**
 * Ends every session of a principal ("log out everywhere"); returns how many
 * were live. Requires a store that provides `SessionIndex` (and so
 * `SessionStore`, which every such store provides too).
 *
 * Final: once it has returned, no request that began before it was called
 * leaves a live session of the principal. It first stores a revocation
 * marker for the principal (kept 24 hours), then removes the principal's
 * sessions until a pass finds none; a `login` racing it either finds its
 * old session ended, or is found by a removal pass, or (a login from
 * another session: anonymous, or of another principal) reads the marker
 * after inserting its new session and removes it again.
 *
 * @since 2.0.0
 * @category principals
 */
export const revokeAll = (principal: string): Effect.Effect<number, SessionStoreError, SessionIndex | SessionStore> =>
  internal.invalidPrincipal(principal) ??
    Effect.andThen(
      Effect.flatMap(SessionStore, (store) => Revocation.markRevoked(store, principal)),
      Effect.flatMap(SessionIndex, (index) => internal.removeAllUntilNone(index, principal))
    )
