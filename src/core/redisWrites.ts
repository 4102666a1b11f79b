/**
 * What a Redis store does once a write script has answered, without Effect
 * or a client: the reply read (`redis.ts`), the conflict it means, and
 * whether the principal's index must be raised by a second script (on a
 * cluster the index lives in another slot; a touch learns the principal
 * only from the record). Both Effect lines act on these decisions.
 *
 * @internal
 */
import { describeReply, readInsertReply, readTouchReply, readUpdateReply } from "./redis.js"

/**
 * The decision after a write: refuse a malformed reply, report a lost
 * compare-and-set, or succeed — raising `raise`'s principal in its index
 * first when it is set.
 *
 * @internal
 */
export type WriteDecision<A> =
  | { readonly _tag: "Malformed"; readonly detail: string }
  | { readonly _tag: "Conflict"; readonly reason: "Exists" | "Missing" | "VersionMismatch" }
  | { readonly _tag: "Done"; readonly value: A; readonly raise: string | undefined }

/**
 * A decision that is not a lost compare-and-set: what a touch always meets.
 *
 * @internal
 */
export type Settled<A> = Exclude<WriteDecision<A>, { readonly _tag: "Conflict" }>

const malformed = (reply: unknown): Settled<never> => ({ _tag: "Malformed", detail: describeReply(reply) })

/**
 * After the insert script.
 *
 * @internal
 */
export const afterInsert = (reply: unknown, cluster: boolean, principal: string | undefined): WriteDecision<void> => {
  const outcome = readInsertReply(reply)
  if (outcome === undefined) return malformed(reply)
  if (outcome !== "inserted") return { _tag: "Conflict", reason: outcome }
  return { _tag: "Done", value: undefined, raise: cluster ? principal : undefined }
}

/**
 * After the update script: the new version.
 *
 * @internal
 */
export const afterUpdateScript = (reply: unknown, cluster: boolean, principal: string | undefined): WriteDecision<number> => {
  const outcome = readUpdateReply(reply)
  if (outcome === undefined) return malformed(reply)
  if (typeof outcome === "string") return { _tag: "Conflict", reason: outcome }
  return { _tag: "Done", value: outcome.version, raise: cluster && outcome.indexed ? principal : undefined }
}

/**
 * After the touch script: whether a live record was extended (one with a
 * principal is raised in that principal's index).
 *
 * @internal
 */
export const afterTouch = (reply: unknown): Settled<boolean> => {
  const outcome = readTouchReply(reply)
  if (outcome === undefined) return malformed(reply)
  return { _tag: "Done", value: outcome.extended, raise: outcome.principal }
}
