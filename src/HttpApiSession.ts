/**
 * Sessions for `HttpApi` and `HttpLayerRouter` apps.
 *
 * ```ts
 * import { HttpApi, HttpApiBuilder, HttpApiEndpoint, HttpApiGroup } from "@effect/platform"
 * import { Effect, Schema } from "effect"
 * import { Session } from "effect-session"
 * import * as HttpApiSession from "effect-session/HttpApiSession"
 *
 * class AppSession extends Session.Tag<AppSession>()("app/AppSession", {
 *   visits: Schema.optionalWith(Schema.Int, { default: () => 0 })
 * }) {}
 *
 * class AppSessionMiddleware extends HttpApiSession.Tag<AppSessionMiddleware>()(
 *   "app/AppSessionMiddleware",
 *   AppSession
 * ) {}
 *
 * class Api extends HttpApi.make("api").add(
 *   HttpApiGroup.make("visits")
 *     .add(HttpApiEndpoint.get("count", "/count").addSuccess(Schema.Int))
 *     .middleware(AppSessionMiddleware)
 * ) {}
 *
 * const VisitsLive = HttpApiBuilder.group(Api, "visits", (handlers) =>
 *   handlers.handle("count", () =>
 *     Effect.gen(function*() {
 *       yield* AppSession.update("visits", (n) => n + 1)
 *       return yield* AppSession.get("visits")
 *     })))
 *
 * // provide AppSessionMiddleware.layer (and a store) to HttpApiBuilder.serve()
 * ```
 *
 * @since 1.0.0
 */
import type { HttpApp, HttpServerRequest } from "@effect/platform"
import { HttpApiBuilder, HttpApiMiddleware, HttpApiSchema, HttpApiSecurity, HttpLayerRouter, HttpServerResponse } from "@effect/platform"
import type { Context } from "effect"
import { Effect, Layer, ParseResult, Schema } from "effect"
import type * as Session from "./Session.js"
import type { SessionError, StoreOperation } from "./SessionError.js"
import { isSessionError, SessionConflict, SessionEncodeError, SessionStoreError, SessionTooLarge } from "./SessionError.js"
import { SessionStore } from "./SessionStore.js"

// --- The errors, as an API declares them ------------------------------------

// every operation, once (a record's keys: the compiler checks both)
const operations: Record<StoreOperation, true> = {
  load: true,
  insert: true,
  update: true,
  touch: true,
  remove: true,
  keys: true,
  removeAll: true,
  setup: true,
  cleanup: true
}
const storeOperations = Object.keys(operations) as [StoreOperation, ...Array<StoreOperation>]

const hasTag = <T extends SessionError["_tag"]>(tag: T) => (u: unknown): u is Extract<SessionError, { _tag: T }> =>
  isSessionError(u) && (u as { readonly _tag: string })._tag === tag

/**
 * A session error as a response: what the client sees of it is a fixed
 * `message` (the error's own message, which names the backend, is for the
 * log), and the status.
 */
const errorSchema = <E extends SessionError, const Tag extends E["_tag"], Fields extends Schema.Struct.Fields>(
  tag: Tag,
  status: number,
  description: string,
  fields: Fields,
  encode: (error: E) => Schema.Struct.Encoded<Fields>,
  decode: (encoded: Schema.Struct.Type<Fields> & { readonly message: string }) => E
): Schema.Schema<E, { readonly _tag: Tag; readonly message: string } & Schema.Struct.Encoded<Fields>> => {
  const encoded = Schema.Struct({ _tag: Schema.Literal(tag), message: Schema.String, ...fields })
  const declared = Schema.declare(hasTag(tag) as unknown as (u: unknown) => u is E, { identifier: tag })
  return Schema.transformOrFail(encoded, declared, {
    strict: false,
    decode: (value) => ParseResult.succeed(decode(value as Schema.Struct.Type<Fields> & { readonly message: string })),
    encode: (error) => ParseResult.succeed({ _tag: tag, message: description, ...encode(error) })
  }).annotations(HttpApiSchema.annotations({ status, description })) as any
}

/**
 * `SessionStoreError` as a 503 response, `{ "_tag": "SessionStoreError",
 * "message": …, "operation": "load" }`: the store failed, the request may
 * succeed later. (A client decoding it gets a `SessionStoreError` of store
 * `"remote"`.)
 *
 * @since 1.0.0
 * @category errors
 */
export const StoreErrorResponse: Schema.Schema<
  SessionStoreError,
  { readonly _tag: "SessionStoreError"; readonly message: string; readonly operation: StoreOperation }
> = errorSchema<SessionStoreError, "SessionStoreError", { operation: Schema.Literal<typeof storeOperations> }>(
  "SessionStoreError",
  503,
  "The session store is unavailable",
  { operation: Schema.Literal(...storeOperations) },
  (error) => ({ operation: error.operation }),
  ({ message, operation }) => new SessionStoreError({ store: "remote", operation, cause: message })
)

/**
 * `SessionTooLarge` as a 413 response, `{ "_tag": "SessionTooLarge",
 * "message": …, "size": n, "limit": n }`: the request would make the session
 * larger than `maxSize`.
 *
 * @since 1.0.0
 * @category errors
 */
export const TooLargeResponse: Schema.Schema<
  SessionTooLarge,
  { readonly _tag: "SessionTooLarge"; readonly message: string; readonly size: number; readonly limit: number }
> = errorSchema<SessionTooLarge, "SessionTooLarge", { size: typeof Schema.Number; limit: typeof Schema.Number }>(
  "SessionTooLarge",
  413,
  "The session would be too large",
  { size: Schema.Number, limit: Schema.Number },
  (error) => ({ size: error.size, limit: error.limit }),
  ({ size, limit }) => new SessionTooLarge({ size, limit })
)

/**
 * `SessionConflict` as a 503 response: concurrent writers of other
 * processes kept winning for the whole `conflictTimeout`; trying again
 * later succeeds.
 *
 * @since 1.0.0
 * @category errors
 */
export const ConflictResponse: Schema.Schema<
  SessionConflict,
  { readonly _tag: "SessionConflict"; readonly message: string; readonly reason: SessionConflict["reason"] }
> = errorSchema<SessionConflict, "SessionConflict", { reason: Schema.Literal<["Exists", "VersionMismatch", "Missing"]> }>(
  "SessionConflict",
  503,
  "The session is busy, try again",
  { reason: Schema.Literal("Exists", "VersionMismatch", "Missing") },
  (error) => ({ reason: error.reason }),
  ({ reason }) => new SessionConflict({ reason })
)

/**
 * `SessionEncodeError` as a 500 response: a value the app wrote does not
 * match the session schema (a bug in the app; nothing was saved).
 *
 * @since 1.0.0
 * @category errors
 */
export const EncodeErrorResponse: Schema.Schema<
  SessionEncodeError,
  { readonly _tag: "SessionEncodeError"; readonly message: string }
> = errorSchema<SessionEncodeError, "SessionEncodeError", {}>(
  "SessionEncodeError",
  500,
  "The session data does not match its schema",
  {},
  () => ({}),
  ({ message }) => new SessionEncodeError({ cause: message })
)

/**
 * Every `SessionError` as the response the API declares for it: the failure
 * of a session middleware, so that a handler can fail with a session error
 * (an accessor whose load failed) and the OpenAPI document lists the
 * responses.
 *
 * @since 1.0.0
 * @category errors
 */
export const ErrorResponse: Schema.Union<[
  typeof StoreErrorResponse,
  typeof TooLargeResponse,
  typeof ConflictResponse,
  typeof EncodeErrorResponse
]> = Schema.Union(StoreErrorResponse, TooLargeResponse, ConflictResponse, EncodeErrorResponse)

const encodeErrorResponse = Schema.encodeSync(ErrorResponse)
const statusOf = (error: SessionError): number =>
  HttpApiSchema.getStatusErrorAST(
    error._tag === "SessionStoreError"
      ? StoreErrorResponse.ast
      : error._tag === "SessionTooLarge"
      ? TooLargeResponse.ast
      : error._tag === "SessionConflict"
      ? ConflictResponse.ast
      : EncodeErrorResponse.ast
  )

/**
 * The response `ErrorResponse` declares for a session error, for code
 * outside an `HttpApi` (the `HttpLayerRouter` middleware answers with it);
 * a conflict's also says `Retry-After: 1`.
 *
 * @since 1.0.0
 * @category errors
 */
export const toResponse = (error: SessionError): HttpServerResponse.HttpServerResponse =>
  HttpServerResponse.unsafeJson(encodeErrorResponse(error), {
    status: statusOf(error),
    // a conflict clears as soon as the other writers are done
    ...(error._tag === "SessionConflict" ? { headers: { "retry-after": "1" } } : {})
  })

const isResponseError = (u: unknown): u is SessionError =>
  isSessionError(u) && (u as { readonly _tag: string })._tag !== "SessionDecodeError"

/** A session error answered: logged with its full message, then the declared response. */
const respond = (error: SessionError) =>
  Effect.as(
    error._tag === "SessionStoreError" || error._tag === "SessionEncodeError"
      ? Effect.logError(`effect-session: ${error.message}`)
      : Effect.logWarning(`effect-session: ${error.message}`),
    toResponse(error)
  )

// --- HttpApi ----------------------------------------------------------------

/**
 * Any `Session.Tag` class.
 *
 * @since 1.0.0
 * @category models
 */
export interface SessionTagAny extends Context.Tag<any, any> {
  readonly middleware: (options?: Session.Options) => Session.Middleware<never>
}

/**
 * The security of a session middleware: the session cookie, an API key in
 * a cookie, named after the cookie.
 *
 * @since 1.0.0
 * @category models
 */
export type Security = Record<string, HttpApiSecurity.ApiKey>

/**
 * What a session middleware tag declares to `HttpApiMiddleware`.
 *
 * @since 1.0.0
 * @category models
 */
export interface MiddlewareOptions<S extends SessionTagAny> {
  readonly provides: S
  readonly failure: typeof ErrorResponse
  readonly security: Security
}

/**
 * The class `Tag` builds: an `HttpApiMiddleware` tag (add it to a group, an
 * endpoint or the whole API with `.middleware(…)`) that provides the session
 * to the handlers, declares the session errors and the session cookie, and
 * the layers that implement it.
 *
 * @since 1.0.0
 * @category models
 */
export interface TagClass<Self, Name extends string, S extends SessionTagAny> extends
  HttpApiMiddleware.TagClass.BaseSecurity<
    Self,
    Name,
    MiddlewareOptions<S>,
    HttpApiMiddleware.HttpApiMiddlewareSecurity<Security, Context.Tag.Service<S>, SessionError>,
    Security
  >
{
  /** The session this middleware provides. */
  readonly session: S
  /** The name of the session cookie (and of its security scheme). */
  readonly cookieName: string
  /**
   * The middleware, for `HttpApiBuilder.serve` (or `HttpApiBuilder.toWebHandler`):
   * loads the session lazily for the handlers, saves it and sets the cookie
   * before the response is sent. Requires a `SessionStore`.
   */
  readonly layer: Layer.Layer<Self, never, SessionStore>
  /**
   * The middleware for an `HttpApi` served by `HttpLayerRouter.addHttpApi`
   * (provide it to the `addHttpApi` layer). Requires a `SessionStore`.
   */
  readonly layerHttpLayerRouter: Layer.Layer<
    Self | HttpLayerRouter.Request<"Requires", Context.Tag.Identifier<S>>,
    never,
    SessionStore
  >
}

/**
 * Defines the `HttpApiMiddleware` of a session: the handlers of the groups
 * and endpoints it is added to `yield*` the session's accessors, the API
 * declares the session errors (503, 413, 500; see `ErrorResponse`) and the
 * OpenAPI document names the session cookie as a security scheme. The
 * options are the session middleware's (`Session.Options`), given here so
 * that the document names the cookie the layer sets.
 *
 * ```ts
 * class AppSessionMiddleware extends HttpApiSession.Tag<AppSessionMiddleware>()(
 *   "app/AppSessionMiddleware",
 *   AppSession,
 *   { cookie: { secure: false } }
 * ) {}
 * ```
 *
 * Provide `AppSessionMiddleware.layer` to `HttpApiBuilder.serve()`: the
 * session is saved, and its cookie set, between the handler and the sending
 * of the response, inside the API's error handling (a failed save is the
 * declared 503). Never pass `AppSession.middleware()` to
 * `HttpApiBuilder.serve(…)`: that position wraps the sending of the response.
 *
 * @since 1.0.0
 * @category constructors
 */
export const Tag = <Self>() =>
<const Name extends string, S extends SessionTagAny>(
  id: Name,
  session: S,
  options?: Session.Options
): TagClass<Self, Name, S> => {
  const cookieName = options?.cookie?.name ?? "session"
  const security: Security = { [cookieName]: HttpApiSecurity.apiKey({ in: "cookie", key: cookieName }) }
  const Base = HttpApiMiddleware.Tag<Self>()(id, { provides: session, failure: ErrorResponse, security }) as any
  // (validates the options now, as `Session.Tag`'s middleware does)
  const middleware = session.middleware(options)
  const notInstalled = Effect.dieMessage(
    `effect-session: ${id} found no session for this request: its layer is not installed where the API is served. ` +
      `Provide ${id}.layer to HttpApiBuilder.serve(), or, under HttpLayerRouter.addHttpApi, ${id}.layerHttpLayerRouter`
  )
  // The session middleware around the app has made the request's session:
  // the handlers get it in their context.
  const handle = Effect.catchAllDefect(session as unknown as Effect.Effect<unknown>, () => notInstalled)
  const implementation = Layer.succeed(Base, { [cookieName]: () => handle })
  const layer = Layer.merge(
    implementation,
    // the session middleware around the whole API, inside its error
    // encoding (a failed save answers with the declared response) and
    // before the response is sent
    HttpApiBuilder.middleware(
      (app: HttpApp.Default) => middleware(app) as HttpApp.Default<never, SessionStore>,
      { withContext: true }
    )
  )
  const layerHttpLayerRouter = Layer.merge(implementation, layerRouterMiddleware(session, options).layer)
  return Object.assign(Base, { session, cookieName, layer, layerHttpLayerRouter }) as TagClass<Self, Name, S>
}

// --- HttpLayerRouter --------------------------------------------------------

/**
 * The `HttpLayerRouter` middleware of a session: the routes it is provided
 * to `yield*` the session's accessors; the session is saved, and its cookie
 * set, before the response is sent. A session error (the store down, the
 * session too large) is answered with the response `ErrorResponse` declares
 * for it and logged.
 *
 * ```ts
 * const SessionMiddleware = HttpApiSession.layerRouterMiddleware(AppSession)
 *
 * const Routes = HttpLayerRouter.add("GET", "/count", countHandler).pipe(
 *   Layer.provide(SessionMiddleware.layer)
 * )
 * HttpLayerRouter.serve(Routes).pipe(Layer.provide(MemoryStore.layer()), …)
 * ```
 *
 * @since 1.0.0
 * @category HttpLayerRouter
 */
export const layerRouterMiddleware = <S extends SessionTagAny>(
  session: S,
  options?: Session.Options
): HttpLayerRouter.Middleware<{
  provides: Context.Tag.Identifier<S>
  handles: never
  error: never
  requires: never
  layerError: never
  layerRequires: SessionStore
}> => {
  const middleware = session.middleware(options) as Session.Middleware<Context.Tag.Identifier<S>>
  return HttpLayerRouter.middleware<{ provides: Context.Tag.Identifier<S> }>()(
    Effect.map(SessionStore, (store) => (app) =>
      middleware(app).pipe(
        Effect.provideService(SessionStore, store),
        Effect.catchIf(isResponseError, respond)
      ) as Effect.Effect<HttpServerResponse.HttpServerResponse, HttpLayerRouter.unhandled, HttpServerRequest.HttpServerRequest>)
  ) as any
}
