/**
 * The errors of effect-session. Every one is a tagged, yieldable error with a
 * `message` a person can act on.
 *
 * @since 1.0.0
 */
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import { Data, Effect, Predicate } from "effect"
import { failureAnswer } from "./core/failure.js"
import * as Messages from "./core/messages.js"

/**
 * @since 1.0.0
 * @category type ids
 */
export const TypeId: unique symbol = Symbol.for("effect-session/SessionError")

/**
 * @since 1.0.0
 * @category type ids
 */
export type TypeId = typeof TypeId

/**
 * @since 1.0.0
 * @category refinements
 */
export const isSessionError = (u: unknown): u is SessionError => Predicate.hasProperty(u, TypeId)

/**
 * The operations of a store, as named in errors and spans.
 *
 * @since 1.0.0
 * @category models
 */
export type StoreOperation = Messages.StoreOperation

/**
 * The backend failed: it is unreachable, timed out, refused the command or
 * answered with something the store cannot read. Nothing was silently
 * dropped: the operation either did not happen or its outcome is unknown.
 *
 * @since 1.0.0
 * @category errors
 */
export class SessionStoreError extends Data.TaggedError("SessionStoreError")<{
  readonly store: string
  readonly operation: StoreOperation
  readonly cause: unknown
}> {
  /**
   * @since 1.0.0
   */
  readonly [TypeId]: TypeId = TypeId

  /**
   * @since 1.0.0
   */
  override get message(): string {
    return Messages.storeErrorMessage(this.store, this.operation, this.cause)
  }
}

/**
 * A conditional write lost: `Exists` when `insert` met a live record,
 * `VersionMismatch` when `update` met a newer version, `Missing` when
 * `update` found no live record (the session was removed or expired).
 *
 * @since 1.0.0
 * @category errors
 */
export class SessionConflict extends Data.TaggedError("SessionConflict")<{
  readonly reason: "Exists" | "VersionMismatch" | "Missing"
}> {
  /**
   * @since 1.0.0
   */
  readonly [TypeId]: TypeId = TypeId

  /**
   * @since 1.0.0
   */
  override get message(): string {
    return Messages.conflictMessage(this.reason)
  }
}

/**
 * Stored bytes could not be decoded into the session schema (the schema
 * changed, or the record is corrupt). The middleware logs it and treats the
 * session as absent.
 *
 * @since 1.0.0
 * @category errors
 */
export class SessionDecodeError extends Data.TaggedError("SessionDecodeError")<{
  readonly cause: unknown
}> {
  /**
   * @since 1.0.0
   */
  readonly [TypeId]: TypeId = TypeId

  /**
   * @since 1.0.0
   */
  override get message(): string {
    return Messages.decodeErrorMessage(this.cause)
  }
}

/**
 * The session data would encode to more than the configured limit. Raised
 * before anything is written.
 *
 * @since 1.0.0
 * @category errors
 */
export class SessionTooLarge extends Data.TaggedError("SessionTooLarge")<{
  readonly size: number
  readonly limit: number
}> {
  /**
   * @since 1.0.0
   */
  readonly [TypeId]: TypeId = TypeId

  /**
   * @since 1.0.0
   */
  override get message(): string {
    return Messages.tooLargeMessage(this.size, this.limit)
  }
}

/**
 * A session value failed the session schema when it was written (for
 * example a refinement such as `Schema.Int` rejected it).
 *
 * @since 1.0.0
 * @category errors
 */
export class SessionEncodeError extends Data.TaggedError("SessionEncodeError")<{
  readonly cause: unknown
}> {
  /**
   * @since 1.0.0
   */
  readonly [TypeId]: TypeId = TypeId

  /**
   * @since 1.0.0
   */
  override get message(): string {
    return Messages.encodeErrorMessage(this.cause)
  }
}

/**
 * The errors a request can fail with because of its session. A
 * `SessionConflict` reaches the app only when concurrent writers kept
 * winning for `conflictTimeout` (or `maxConflictRetries` replays, when set).
 *
 * @since 1.0.0
 * @category errors
 */
export type SessionError = SessionStoreError | SessionTooLarge | SessionEncodeError | SessionConflict

/**
 * The response a session error deserves: 503 when the store failed (the
 * request may succeed later), 503 with `Retry-After: 1` when concurrent
 * writers kept winning for `conflictTimeout`, 413 when the session
 * would be larger than `maxSize`, 500 when a value does not match the
 * session schema (a bug in the app). The body says only that much: the
 * error's message, which names the backend, is for the log.
 *
 * @since 1.0.0
 * @category responses
 */
export const toResponse = (error: SessionError): HttpServerResponse.HttpServerResponse => {
  const answer = failureAnswer(error._tag)
  return HttpServerResponse.text(answer.body, { status: answer.status, headers: answer.headers })
}

const isInChannel = (u: unknown): u is SessionError =>
  isSessionError(u) && (u as { readonly _tag: string })._tag !== "SessionDecodeError"

/**
 * Answers the session errors of an app with {@link toResponse} and logs each
 * one with its message (a store that is down names itself, the operation and
 * the backend's own error). Apply it after the middleware:
 *
 * ```ts
 * const app = router.pipe(AppSession.middleware(), SessionError.respond)
 * ```
 *
 * Errors of other kinds pass through unchanged.
 *
 * @since 1.0.0
 * @category responses
 */
export const respond = <A, E, R>(
  app: Effect.Effect<A, E, R>
): Effect.Effect<A | HttpServerResponse.HttpServerResponse, Exclude<E, SessionError>, R> =>
  Effect.catchAll(app, (error) =>
    isInChannel(error)
      ? Effect.as(
        failureAnswer(error._tag).logAs === "error"
          ? Effect.logError(error.message)
          : Effect.logWarning(error.message),
        toResponse(error)
      )
      : Effect.fail(error as Exclude<E, SessionError>))
