/**
 * The Memcached value format (`core/memcached.ts`) in the Effect 3 line's
 * record type: the core carries a principal as `string | undefined`, the
 * store's records as an `Option`.
 */
import { Option } from "effect"
import * as Core from "../core/memcached.js"
import type { SessionRecord } from "../SessionStore.js"

/** @internal */
export { exptime, keyPrefix, maxRelativeSeconds } from "../core/memcached.js"

/**
 * The stored value of a record (see `core/memcached.ts` for the layout).
 *
 * @internal
 */
export const encode = (record: SessionRecord): Buffer =>
  Core.encode({
    data: record.data,
    version: record.version,
    expiresAt: record.expiresAt,
    principal: Option.getOrUndefined(record.principal)
  })

/**
 * A stored value read back, or `undefined` when it is not a session record.
 *
 * @internal
 */
export const decode = (value: unknown): SessionRecord | undefined => {
  const record = Core.decode(value)
  return record === undefined ? undefined : { ...record, principal: Option.fromNullable(record.principal) }
}
