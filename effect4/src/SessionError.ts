/**
 * The errors of effect-session on Effect 4: the same five as the Effect 3
 * line, as `Data.TaggedError`s, so `Effect.catchTag` tells them apart.
 *
 * @since 2.0.0
 */
import type { Types } from "effect"
import { Data, Effect } from "effect"
import { HttpRouter, HttpServerResponse } from "effect/http"
import { failureAnswer } from "../../src/core/failure.js"
import * as Messages from "../../src/core/messages.js"

/**
 * The store operation that failed.
 *
 * @since 2.0.0
 * @category models
 */
export type StoreOperation = Messages.StoreOperation

/**
 * The backend failed: it is unreachable, timed out, refused the command or
 * answered something unreadable.
 *
 * @since 2.0.0
 * @category errors
 */
export class SessionStoreError extends Data.TaggedError("SessionStoreError")<{
  readonly store: string
  readonly operation: StoreOperation
  readonly cause: unknown
}> {
  override get message(): string {
    return Messages.storeErrorMessage(this.store, this.operation, this.cause)
  }
}

/**
 * A compare-and-set lost: `Exists` (an insert found a live record),
 * `VersionMismatch` (another writer saved first; from a save, the replay
 * budget is spent), `Missing` (no live record to update).
 *
 * @since 2.0.0
 * @category errors
 */
export class SessionConflict extends Data.TaggedError("SessionConflict")<{
  readonly reason: "Exists" | "VersionMismatch" | "Missing"
}> {
  override get message(): string {
    return Messages.conflictMessage(this.reason)
  }
}

/**
 * A stored record is not this session's envelope or schema. A request never
 * sees it: the session starts empty and a warning is logged.
 *
 * @since 2.0.0
 * @category errors
 */
export class SessionDecodeError extends Data.TaggedError("SessionDecodeError")<{
  readonly cause: unknown
}> {
  override get message(): string {
    return Messages.decodeErrorMessage(this.cause)
  }
}

/**
 * The encoded session is over `maxSize`: nothing was written.
 *
 * @since 2.0.0
 * @category errors
 */
export class SessionTooLarge extends Data.TaggedError("SessionTooLarge")<{
  readonly size: number
  readonly limit: number
}> {
  override get message(): string {
    return Messages.tooLargeMessage(this.size, this.limit)
  }
}

/**
 * A value of the session does not encode with its schema (a refinement such
 * as `Schema.Int` rejected it). The message names the field, never the value.
 *
 * @since 2.0.0
 * @category errors
 */
export class SessionEncodeError extends Data.TaggedError("SessionEncodeError")<{
  readonly cause: unknown
}> {
  override get message(): string {
    return Messages.encodeErrorMessage(this.cause)
  }
}

/**
 * Any error of a session operation.
 *
 * @since 2.0.0
 * @category errors
 */
export type SessionError = SessionStoreError | SessionConflict | SessionTooLarge | SessionEncodeError

const tags: ReadonlySet<unknown> = new Set(["SessionStoreError", "SessionConflict", "SessionTooLarge", "SessionEncodeError"])

/**
 * Whether a value is a `SessionError`.
 *
 * @since 2.0.0
 * @category refinements
 */
export const isSessionError = (u: unknown): u is SessionError =>
  typeof u === "object" && u !== null && "_tag" in u && tags.has(u._tag)

/**
 * The response a session error deserves: 503 when the store failed, 503
 * with `Retry-After: 1` when concurrent writers kept winning, 413 when the
 * session would be over `maxSize`, 500 when a value does not match the
 * schema. The body says only that much: the message is for the log.
 *
 * @since 2.0.0
 * @category responses
 */
export const toResponse = (error: SessionError): HttpServerResponse.HttpServerResponse => {
  const answer = failureAnswer(error._tag)
  return HttpServerResponse.text(answer.body, { status: answer.status, headers: answer.headers })
}

/**
 * The router middleware that answers session errors with `toResponse` and
 * logs each with its message. Combine it with the session's middleware so
 * that it also sees the errors of the save:
 * `Layer.provide(AppSession.middleware().combine(SessionError.respond).layer)`.
 *
 * @since 2.0.0
 * @category responses
 */
export const respond = HttpRouter.middleware<{ handles: SessionError }>()((app) =>
  answerSessionErrors(app) as Effect.Effect<HttpServerResponse.HttpServerResponse, Types.unhandled>
)

/**
 * Answers the session errors of an effect with `toResponse`, logging each;
 * other errors pass through as they are.
 *
 * @since 2.0.0
 * @category responses
 */
export const answerSessionErrors = <E, R>(
  app: Effect.Effect<HttpServerResponse.HttpServerResponse, E, R>
): Effect.Effect<HttpServerResponse.HttpServerResponse, Exclude<E, SessionError>, R> =>
  Effect.catchIf(app, isSessionError, (caught) => answer(caught as SessionError)) as Effect.Effect<
    HttpServerResponse.HttpServerResponse,
    Exclude<E, SessionError>,
    R
  >

const answer = (error: SessionError): Effect.Effect<HttpServerResponse.HttpServerResponse> =>
  Effect.as(
    failureAnswer(error._tag).logAs === "error" ? Effect.logError(error.message) : Effect.logWarning(error.message),
    toResponse(error)
  )

/**
 * `answerSessionErrors`, and the same for a session error that a handler
 * turned into a defect (`Effect.orDie`): an HttpApi endpoint declares its
 * errors, and a session error is none of them.
 *
 * @since 2.0.0
 * @category responses
 */
export const answerSessionFailures = <E, R>(
  app: Effect.Effect<HttpServerResponse.HttpServerResponse, E, R>
): Effect.Effect<HttpServerResponse.HttpServerResponse, Exclude<E, SessionError>, R> =>
  Effect.catchDefect(answerSessionErrors(app), (defect) => isSessionError(defect) ? answer(defect) : Effect.die(defect))
