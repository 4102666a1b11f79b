import type { StoreOperation } from "../SessionError.js"
import { SessionStoreError } from "../SessionError.js"

/**
 * The error a store gives for a principal that is not a string. The types say `string`, but an application
 * forwarding unvalidated JSON can pass anything, and each backend would
 * misread something else in its own way (an operator object on MongoDB, an
 * array spread into several script arguments by ioredis), so the server
 * stores refuse it before sending a command.
 *
 * @internal
 */
export const notAString = (store: string, operation: StoreOperation, principal: unknown): SessionStoreError =>
  new SessionStoreError({
    store,
    operation,
    cause: new TypeError(`the principal must be a string, got ${principal === null ? "null" : typeof principal}`)
  })
