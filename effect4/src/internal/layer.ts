import { Context, Effect, Layer } from "effect"
import { SessionIndex, SessionStore } from "../SessionStore.js"

/**
 * The layer of a store that can also list by principal: both services from
 * one `make`, built once for the layer's scope.
 *
 * @internal
 */
export const storeAndIndex = <E, R>(
  make: Effect.Effect<{ readonly store: SessionStore["Service"]; readonly index: SessionIndex["Service"] }, E, R>
) =>
  Layer.effectContext(
    Effect.map(make, ({ index, store }) => Context.make(SessionStore, store).pipe(Context.add(SessionIndex, index)))
  )
