/**
 * The errors of effect-session. Every one is a tagged, yieldable error with a
 * `message` a person can act on.
 *
 * @since 1.0.0
 */
import { Data, Predicate } from "effect"

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
export type StoreOperation = "load" | "insert" | "update" | "touch" | "remove" | "keys" | "removeAll" | "setup" | "cleanup"

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
    return `${this.store} store: ${this.operation} failed: ${describeCause(this.cause)}`
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
    switch (this.reason) {
      case "Exists":
        return "insert: a live session is already stored under this key"
      case "VersionMismatch":
        return "update: the stored session has a newer version"
      case "Missing":
        return "update: no live session is stored under this key"
    }
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
    return `stored session could not be decoded: ${describeCause(this.cause)}`
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
    return `session data encodes to ${this.size} bytes, over the limit of ${this.limit} bytes`
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
    return `session data does not match its schema: ${describeCause(this.cause)}`
  }
}

/**
 * The errors a request can fail with because of its session. A
 * `SessionConflict` reaches the app only when concurrent writers kept
 * winning for `maxConflictRetries` replays in a row.
 *
 * @since 1.0.0
 * @category errors
 */
export type SessionError = SessionStoreError | SessionTooLarge | SessionEncodeError | SessionConflict

const describeCause = (cause: unknown): string => {
  if (cause instanceof Error) return cause.message
  if (Predicate.hasProperty(cause, "message") && typeof cause.message === "string") return cause.message
  return String(cause)
}
