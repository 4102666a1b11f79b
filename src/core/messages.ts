/**
 * What each session error says, without Effect: the words of the tagged
 * errors both Effect lines define, so that a log line reads the same on
 * either line. The answers the client gets are `failure.ts`'s.
 *
 * @internal
 */
import { conflictMessage, describeCause } from "./failure.js"

/**
 * The operations of a store, as named in errors and spans.
 *
 * @internal
 */
export type StoreOperation = "load" | "insert" | "update" | "touch" | "remove" | "keys" | "removeAll" | "setup" | "cleanup"

/** @internal */
export const storeErrorMessage = (store: string, operation: StoreOperation, cause: unknown): string =>
  `${store} store: ${operation} failed: ${describeCause(cause)}`

/** @internal */
export { conflictMessage }

/** @internal */
export const decodeErrorMessage = (cause: unknown): string => `stored session could not be decoded: ${describeCause(cause)}`

/** @internal */
export const tooLargeMessage = (size: number, limit: number): string =>
  `session data encodes to ${size} bytes, over the limit of ${limit} bytes`

/** @internal */
export const encodeErrorMessage = (cause: unknown): string =>
  `session data does not match its schema: ${describeCause(cause)}`
