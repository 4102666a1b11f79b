/**
 * effect-session for Effect 4.
 *
 * @since 2.0.0
 */

/**
 * @since 2.0.0
 */
export * as MemoryStore from "./MemoryStore.js"
/**
 * @since 2.0.0
 */
export * as Session from "./Session.js"
/**
 * @since 2.0.0
 */
export * as SessionCodec from "./SessionCodec.js"
/**
 * @since 2.0.0
 */
export * as SessionError from "./SessionError.js"
/**
 * @since 2.0.0
 */
export * as SessionId from "./SessionId.js"
/**
 * @since 2.0.0
 */
export * as SessionMetrics from "./SessionMetrics.js"
/**
 * @since 2.0.0
 */
export * as SessionStore from "./SessionStore.js"
