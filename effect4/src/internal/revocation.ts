/**
 * The revocation marker's glue (the rules are the core's, see
 * src/core/revocation.ts): `revokeAll` stores it before removing the
 * principal's sessions; a login from a session that was not the
 * principal's reads it once its new record is inserted, and is undone when
 * the principal was revoked after its request began.
 *
 * @internal
 */
import { Clock, Effect, Metric, Option } from "effect"
import * as Revocation from "../../../src/core/revocation.js"
import type { CookieDecision } from "../../../src/core/save.js"
import type { SessionError, SessionStoreError } from "../SessionError.js"
import type { SessionId, StorageKey } from "../SessionId.js"
import * as Id from "../SessionId.js"
import * as SessionMetrics from "../SessionMetrics.js"
import type { SessionStore } from "../SessionStore.js"
import { SessionIndex } from "../SessionStore.js"

const markerKey = (principal: string): StorageKey => Id.storageKeyUnsafe(Revocation.markerKey(principal))

/**
 * Stores the marker "every session of `principal` revoked now", keeping a
 * later one; a write lost to another revocation loads again.
 *
 * @internal
 */
export const markRevoked = (store: SessionStore["Service"], principal: string): Effect.Effect<void, SessionStoreError> =>
  Effect.clockWith((clock) => {
    const t = clock.currentTimeMillisUnsafe()
    const key = markerKey(principal)
    const attempt = (): Effect.Effect<void, SessionStoreError> =>
      Effect.flatMap(store.load(key), (found) => {
        const step = Revocation.nextMarkerStep(Option.getOrUndefined(found), t)
        if (step._tag === "Done") return Effect.void
        const write = { ...step.record, principal: Option.none() }
        return Effect.catchTag(
          Effect.asVoid(step._tag === "Insert" ? store.insert(key, write) : store.update(key, write, step.version)),
          "SessionConflict",
          attempt
        )
      })
    return attempt()
  })

/**
 * When a request began, as a login in it compares it with a marker; only
 * on a store with an index (`index`: where the middleware was built): without
 * one there is no `revokeAll`, and a login reads no marker.
 *
 * @internal
 */
export const requestStart = (index: boolean, clock: Clock.Clock): number | undefined =>
  index ? clock.currentTimeMillisUnsafe() : undefined

/**
 * Whether the current context has a `SessionIndex`.
 *
 * @internal
 */
export const hasIndex: Effect.Effect<boolean> = Effect.map(Effect.serviceOption(SessionIndex), Option.isSome)

const undone = Metric.withAttributes(SessionMetrics.revocations, { kind: "moveUndone" })

/**
 * Runs the save of a login (`from`: the principal of the record it
 * replaced, `null` for none) and, if the core's `loginCheck` says so, reads
 * the principal's marker and acts on `afterLoginSave`.
 *
 * @internal
 */
export const guardLogin = (
  session: Revocation.LoginSession<SessionStore["Service"], SessionId, StorageKey>,
  from: string | null,
  save: Effect.Effect<CookieDecision, SessionError>
): Effect.Effect<CookieDecision, SessionError> => {
  const check = Revocation.loginCheck(session, from)
  if (check === undefined) return save
  const { store } = session
  return Effect.flatMap(save, (cookie) => {
    const key = Revocation.markerToRead(check, cookie)
    return key === undefined ? Effect.succeed(cookie) : Effect.flatMap(store.load(Id.storageKeyUnsafe(key)), (marker) => {
      const undo = Revocation.afterLoginSave(cookie, Option.getOrUndefined(marker), check.startedAt)
      return undo === undefined ? Effect.succeed(cookie) : store.remove(session.config.storageKey(undo.remove as SessionId)).pipe(
        Effect.andThen(Effect.annotateCurrentSpan("effect-session.outcome", Revocation.loginUndoneOutcome)),
        Effect.andThen(Metric.update(undone, 1)),
        Effect.as(undo.cookie)
      )
    })
  })
}
