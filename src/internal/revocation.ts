/**
 * The revocation marker's glue (the rules are the core's, see
 * src/core/revocation.ts): `revokeAll` stores it before removing the
 * principal's sessions; a login from a session that was not the
 * principal's reads it once its new record is inserted, and is undone when
 * the principal was revoked after its request began.
 *
 * @internal
 */
import { Clock, Context, Effect, Metric, Option } from "effect"
import * as Revocation from "../core/revocation.js"
import type { CookieDecision } from "../core/save.js"
import type { SessionError, SessionStoreError } from "../SessionError.js"
import type { SessionId, StorageKey } from "../SessionId.js"
import * as Id from "../SessionId.js"
import * as SessionMetrics from "../SessionMetrics.js"
import type { SessionStore } from "../SessionStore.js"
import { SessionIndex } from "../SessionStore.js"
import { TextWrite } from "./text.js"

const markerKey = (principal: string): StorageKey => Id.unsafeStorageKey(Revocation.markerKey(principal))

const markerWrite = (record: Revocation.MarkerRecord): TextWrite => new TextWrite(record.text, record.expiresAt, Option.none())

/**
 * Stores the marker "every session of `principal` revoked now", keeping a
 * later one; a write lost to another revocation loads again.
 *
 * @internal
 */
export const markRevoked = (store: SessionStore["Type"], principal: string): Effect.Effect<void, SessionStoreError> =>
  Effect.clockWith((clock) => {
    const t = clock.unsafeCurrentTimeMillis()
    const key = markerKey(principal)
    const attempt = (): Effect.Effect<void, SessionStoreError> =>
      Effect.flatMap(store.load(key), (found) => {
        const step = Revocation.nextMarkerStep(Option.getOrUndefined(found), t)
        if (step._tag === "Done") return Effect.void
        const write = step._tag === "Insert"
          ? store.insert(key, markerWrite(step.record))
          : store.update(key, markerWrite(step.record), step.version)
        return Effect.catchTag(Effect.asVoid(write), "SessionConflict", attempt)
      })
    return attempt()
  })

/**
 * When a request began, as a login in it compares it with a marker: only
 * on a store with an index (without one there is no `revokeAll`, and a
 * login reads no marker).
 *
 * @internal
 */
export const requestStart = (context: Context.Context<never>, clock: Clock.Clock): number | undefined =>
  Option.isSome(Context.getOption(context as Context.Context<SessionIndex>, SessionIndex)) ? clock.unsafeCurrentTimeMillis() : undefined

/**
 * `requestStart` in the current context (`withSession`).
 *
 * @internal
 */
export const currentRequestStart: Effect.Effect<number | undefined> = Effect.flatMap(
  Effect.serviceOption(SessionIndex),
  (index) => Option.isNone(index) ? Effect.succeed(undefined) : Clock.currentTimeMillis
)

const undone = Metric.tagged(SessionMetrics.revocations, "kind", "moveUndone")

/**
 * `save`, the save of a request that bound its session to a principal
 * (from a record of principal `from`; `null`: none), then, when the core's
 * `loginCheck` asks for it, the marker's read and `afterLoginSave`.
 *
 * @internal
 */
export const guardLogin = (
  session: Revocation.LoginSession<SessionStore["Type"], SessionId, StorageKey>,
  from: string | null,
  save: Effect.Effect<CookieDecision, SessionError>
): Effect.Effect<CookieDecision, SessionError> => {
  const check = Revocation.loginCheck(session, from)
  if (check === undefined) return save
  const { store } = session
  return Effect.flatMap(save, (cookie) => {
    const key = Revocation.markerToRead(check, cookie)
    return key === undefined ? Effect.succeed(cookie) : Effect.flatMap(store.load(Id.unsafeStorageKey(key)), (marker) => {
      const undo = Revocation.afterLoginSave(cookie, Option.getOrUndefined(marker), check.startedAt)
      if (undo === undefined) return Effect.succeed(cookie)
      return store.remove(session.config.storageKey(undo.remove as SessionId)).pipe(
        Effect.zipRight(Effect.annotateCurrentSpan("effect-session.outcome", Revocation.loginUndoneOutcome)),
        Effect.zipRight(Metric.increment(undone)),
        Effect.as(undo.cookie)
      )
    })
  })
}
