/**
 * Typed server-side sessions for `@effect/platform` HTTP apps.
 *
 * ```ts
 * import { Schema } from "effect"
 * import { Session } from "effect-session"
 *
 * class AppSession extends Session.Tag<AppSession>()("app/AppSession", {
 *   username: Schema.optional(Schema.String),
 *   visits: Schema.optionalWith(Schema.Int, { default: () => 0 })
 * }) {}
 *
 * const app = router.pipe(AppSession.middleware({ cookie: { secure: false } }))
 * ```
 *
 * @since 1.0.0
 */
import type { HttpApp } from "@effect/platform"
import type { Duration, Redacted } from "effect"
import { Context, Effect, Either, Option, ParseResult, Schema } from "effect"
import * as SessionFields from "./core/fields.js"
import type * as Core from "./core/session.js"
import * as Revocation from "./internal/revocation.js"
import * as internal from "./internal/session.js"
import type { SessionError } from "./SessionError.js"
import type { SessionId, StorageKey } from "./SessionId.js"
import * as Id from "./SessionId.js"
import { SessionIndex, SessionStore } from "./SessionStore.js"
import type { SessionStoreError } from "./SessionError.js"

/**
 * The session of the current request, as the handler sees it through the
 * accessors of its `Session.Tag`.
 *
 * @since 1.0.0
 * @category models
 */
export interface SessionHandle<A> extends internal.SessionHandle<A> {}

/**
 * Cookie attributes. Defaults: name `session`, `HttpOnly`, `Secure`,
 * `SameSite=Lax`, `Path=/`, persistent (`Max-Age` = the session's time left).
 *
 * @since 1.0.0
 * @category models
 */
export interface CookieOptions extends Core.CookieOptions {}

/**
 * @since 1.0.0
 * @category models
 */
export interface Options extends Core.SessionOptions<Duration.DurationInput, Redacted.Redacted<string>, CookieOptions> {}

/**
 * Options of `login`.
 *
 * @since 1.0.0
 * @category models
 */
export interface LoginOptions extends Core.LoginOptions {}

/**
 * The longest principal, in UTF-16 code units: what every store can hold
 * exactly (SQL stores keep it in a 255-character column).
 *
 * @since 1.0.0
 * @category principals
 */
export const maxPrincipalLength = 255

/**
 * The middleware of a session tag: applied to an `HttpApp`, it provides the
 * session to the app, and requires a `SessionStore` instead.
 *
 * Apply it to the app (`router.pipe(AppSession.middleware())`), not as
 * `HttpServer.serve`'s middleware argument: there the save would run after
 * the response was written.
 *
 * @since 1.0.0
 * @category models
 */
export type Middleware<Self> = <E, R>(
  app: HttpApp.Default<E, R>
) => HttpApp.Default<E | SessionError, Exclude<R, Self> | SessionStore>

/**
 * The class `Session.Tag` builds: the `Context.Tag` of the session handle,
 * and the home of the typed accessors.
 *
 * @since 1.0.0
 * @category models
 */
export interface TagClass<Self, Id extends string, Fields extends Schema.Struct.Fields>
  extends Context.TagClass<Self, Id, SessionHandle<Schema.Struct.Type<Fields>>>
{
  readonly fields: Fields
  readonly schema: Schema.Struct<Fields>
  /** A value of the session. */
  readonly get: <K extends keyof Schema.Struct.Type<Fields>>(
    key: K
  ) => Effect.Effect<Schema.Struct.Type<Fields>[K], SessionError, Self>
  /** The whole session data. */
  readonly getAll: Effect.Effect<Schema.Struct.Type<Fields>, SessionError, Self>
  readonly set: <K extends keyof Schema.Struct.Type<Fields>>(
    key: K,
    value: Schema.Struct.Type<Fields>[K]
  ) => Effect.Effect<void, SessionError, Self>
  /**
   * Changes a value with a function. When a concurrent request saved the
   * session first, `f` is applied again to its value, so concurrent
   * increments all count.
   */
  readonly update: <K extends keyof Schema.Struct.Type<Fields>>(
    key: K,
    f: (value: Schema.Struct.Type<Fields>[K]) => Schema.Struct.Type<Fields>[K]
  ) => Effect.Effect<void, SessionError, Self>
  /** Removes a value (a field with a default goes back to its default). */
  readonly remove: (key: keyof Schema.Struct.Type<Fields>) => Effect.Effect<void, SessionError, Self>
  /** Removes every value. A session left empty is deleted and its cookie expired. */
  readonly clear: Effect.Effect<void, SessionError, Self>
  /** Moves the session to a new id, keeping its data; the old id stops working. */
  readonly regenerate: Effect.Effect<void, SessionError, Self>
  /** Logout: the stored session is removed and the cookie expired. */
  readonly invalidate: Effect.Effect<void, SessionError, Self>
  /**
   * `regenerate`, then bind the session to a principal (see `revokeAll`).
   * Logging in as a principal other than the one the session is bound to
   * starts from empty data (see `LoginOptions.keepData`). A principal must
   * be a non-empty string of at most `maxPrincipalLength` code units;
   * anything else is a defect (`IllegalArgumentException`).
   */
  readonly login: (principal: string, options?: LoginOptions) => Effect.Effect<void, SessionError, Self>
  /** The principal bound by `login`. */
  readonly principal: Effect.Effect<Option.Option<string>, SessionError, Self>
  /** The session's id (a new one is issued if the session is new). */
  readonly id: Effect.Effect<SessionId, SessionError, Self>
  readonly middleware: (options?: Options) => Middleware<Self>
  /**
   * Runs an effect against the stored session of an id, outside an HTTP
   * request (a WebSocket, an RPC handler): loads lazily, saves on success.
   * An unknown or malformed id gives a fresh session, stored under a new id
   * if it is written (`id` tells which).
   */
  readonly withSession: <A, E, R>(
    id: string,
    effect: Effect.Effect<A, E, R>,
    options?: Options
  ) => Effect.Effect<A, E | SessionError, Exclude<R, Self> | SessionStore>
}

/**
 * Defines a session: its tag, its schema and its accessors. Every field must
 * be optional or have a default, so that a new session decodes from `{}`.
 *
 * @since 1.0.0
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
  const dataSchema = schema as unknown as Schema.Schema<A, unknown, never>
  const decoded = Schema.decodeUnknownEither(dataSchema)({})
  if (Either.isLeft(decoded)) {
    throw new TypeError(
      `${SessionFields.emptyDoesNotDecode(id)}\n${ParseResult.TreeFormatter.formatErrorSync(decoded.left)}`
    )
  }
  const empty: A = decoded.right
  // a new session's data is decoded afresh each time: a default value (an
  // array, an object) is never shared between sessions
  const decodeEmpty = Schema.decodeUnknownSync(dataSchema)
  const makeEmpty = (): A => decodeEmpty({})
  const TagBase = Context.Tag(id)<Self, SessionHandle<A>>()
  const tag = TagBase as unknown as Context.Tag<Self, internal.RequestSession<A>>
  const notProvided = () =>
    Effect.dieMessage(`effect-session: ${id} is not provided: add ${id}.middleware() to the app, or use withSession`)
  // Every accessor call of every request goes through here: the session is
  // found and the operation run on the loaded session in one runtime step,
  // where `Effect.flatMap(tag, (h) => h.get(key))` takes four.
  const withHandle = <B>(f: (state: internal.RequestState<A>) => B) =>
    Effect.withFiberRuntime<B, SessionError, Self>((fiber) => {
      const h = internal.find(fiber, tag)
      return h === undefined ? notProvided() : h.loadThen(f, fiber)
    })
  // built once per options object, not per call (DESIGN §8)
  const configs = new WeakMap<Options, internal.Config<A>>()
  const defaultConfig = internal.makeConfig(dataSchema, empty, makeEmpty, undefined)
  const configFor = (options: Options | undefined): internal.Config<A> => {
    if (options === undefined) return defaultConfig
    let config = configs.get(options)
    if (config === undefined) configs.set(options, config = internal.makeConfig(dataSchema, empty, makeEmpty, options))
    return config
  }
  const statics = {
    fields,
    schema,
    get: (key: keyof A) => withHandle((state) => state.data[key]),
    getAll: withHandle((state) => state.data),
    set: (key: keyof A, value: any) => withHandle((state) => state.record({ _tag: "Set", key, value })),
    update: (key: keyof A, f: (value: any) => any) => withHandle((state) => state.record({ _tag: "Update", key, f })),
    remove: (key: keyof A) => withHandle((state) => state.record({ _tag: "Remove", key })),
    clear: withHandle((state) => state.record({ _tag: "Clear" })),
    regenerate: withHandle((state) => state.regenerate()),
    invalidate: withHandle((state) => state.invalidate()),
    login: (principal: string, options?: LoginOptions) => {
      const invalid = internal.invalidPrincipal(principal)
      return invalid === undefined
        ? withHandle((state) => state.login(principal, options?.keepData === true))
        : invalid
    },
    principal: withHandle(internal.principalOf),
    id: withHandle(internal.idOf),
    middleware: (options?: Options) => internal.middleware(tag, configFor(options)),
    withSession: <B, E, R>(sessionId: string, effect: Effect.Effect<B, E, R>, options?: Options) => {
      const config = configFor(options)
      return Effect.flatMap(Effect.zip(SessionStore, Revocation.currentRequestStart), ([store, startedAt]) => {
        const session = new internal.RequestSession(config, store, () => Id.parse(sessionId), startedAt)
        return Effect.provideService(effect, tag, session).pipe(
          // a failed effect saves nothing, except a logout, which always holds
          Effect.onError((cause) => session.revokeAfterFailure(cause)),
          Effect.zipLeft(session.commit)
        )
      })
    }
  }
  // `yield* Tag` is the tag's own lookup in the context, where the
  // middleware and `withSession` provide the handle
  return Object.assign(TagBase, statics) as unknown as TagClass<Self, Id, Fields>
}

/**
 * The storage keys of the live sessions of a principal.
 *
 * @since 1.0.0
 * @category principals
 */
export const list = (principal: string): Effect.Effect<ReadonlyArray<StorageKey>, SessionStoreError, SessionIndex> =>
  internal.invalidPrincipal(principal) ?? Effect.flatMap(SessionIndex, (index) => index.keys(principal))

/**
 * Ends every session of a principal ("log out everywhere"); returns how many
 * were live. Requires a store that provides `SessionIndex` (and so
 * `SessionStore`, which every such store provides too): it does not compile
 * against one that cannot.
 *
 * Final: once it has returned, no request that began before it was called
 * leaves a live session of the principal. It first stores a revocation
 * marker for the principal (a record of its own, kept 24 hours), then
 * removes the principal's sessions until a pass finds none. A `login` or
 * `regenerate` of a session of the principal racing it sees its old session
 * gone and removes the new one, or moved it before a removal pass, which
 * finds the new id; a `login` from another session (anonymous, or of
 * another principal) reads the marker after inserting its new session, and
 * removes it again when the principal was revoked after its request began.
 *
 * @since 1.0.0
 * @category principals
 */
export const revokeAll = (principal: string): Effect.Effect<number, SessionStoreError, SessionIndex | SessionStore> =>
  internal.invalidPrincipal(principal) ??
    Effect.zipRight(
      Effect.flatMap(SessionStore, (store) => Revocation.markRevoked(store, principal)),
      Effect.flatMap(SessionIndex, (index) => internal.removeAllUntilNone(index, principal))
    )
