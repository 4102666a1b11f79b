/**
 * The Memcached value format (`core/memcached.ts`) in the Effect 3 line's
 * record type: the core carries a principal as `string | undefined`, the
 * store's records as an `Option`.
 */
import { Option } from "effect"
import * as Core from "../core/memcached.js"
import type { SessionRecord, SessionWrite } from "../SessionStore.js"

/** @internal */
export { exptime, keyPrefix, maxRelativeSeconds } from "../core/memcached.js"

/**
 * A write as the core's operations carry it.
 *
 * @internal
 */
export const toCore = (write: SessionWrite): Omit<Core.MemcachedRecord, "version"> => ({
  data: write.data,
  expiresAt: write.expiresAt,
  principal: Option.getOrUndefined(write.principal)
})

/**
 * A record the core read, as the store returns it.
 *
 * @internal
 */
export const fromCore = (record: Core.MemcachedRecord): SessionRecord => ({
  ...record,
  principal: Option.fromNullable(record.principal)
})

/**
 * A stored value read back, or `undefined` when it is not a session record.
 *
 * @internal
 */
export const decode = (value: unknown): SessionRecord | undefined => {
  const record = Core.decode(value)
  return record === undefined ? undefined : fromCore(record)
}
