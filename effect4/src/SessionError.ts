/**
 * The errors of effect-session on Effect 4: the same five as the Effect 3
 * line, as `Data.TaggedError`s, so `Effect.catchTag` tells them apart.
 *
 * @since 2.0.0
 */
import { Data } from "effect"

/**
 * The store operation that failed.
 *
 * @since 2.0.0
 * @category models
 */
export type StoreOperation = "load" | "insert" | "update" | "touch" | "remove" | "keys" | "removeAll" | "setup" | "cleanup"

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
    return `effect-session: the ${this.store} store failed to ${this.operation}`
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
    return `effect-session: conflicting write (${this.reason})`
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
}> {}

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
    return `effect-session: the session is ${this.size} bytes encoded, over the limit of ${this.limit}`
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
}> {}

/**
 * Any error of a session operation.
 *
 * @since 2.0.0
 * @category errors
 */
export type SessionError = SessionStoreError | SessionConflict | SessionTooLarge | SessionEncodeError
