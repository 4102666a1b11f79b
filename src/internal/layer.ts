import type { Scope } from "effect"
import { Context, Effect, Layer } from "effect"
import { SessionIndex, SessionStore } from "../SessionStore.js"

/**
 * A layer providing both services of a store that can list by principal.
 *
 * @internal
 */
export const storeAndIndex = <E, R>(
  make: Effect.Effect<{ readonly store: SessionStore["Type"]; readonly index: SessionIndex["Type"] }, E, R>
): Layer.Layer<SessionStore | SessionIndex, E, Exclude<R, Scope.Scope>> =>
  Layer.scopedContext(
    Effect.map(make, ({ index, store }) => Context.make(SessionStore, store).pipe(Context.add(SessionIndex, index)))
  )
