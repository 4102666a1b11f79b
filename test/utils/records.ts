import { Option } from "effect"
import type { SessionRecord } from "effect-session/SessionStore"

/**
 * Whether what a store holds under a key is no session: nothing, or the
 * tombstone a `regenerate`/`login` (which points at the new key) or a logout
 * leaves behind, which carries no data and no principal.
 */
export const isEnded = (record: Option.Option<SessionRecord>): boolean =>
  Option.isNone(record) || new TextDecoder().decode(record.value.data).startsWith(`{"v":1,"tombstone":`)
