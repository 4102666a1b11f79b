import { Duration, Effect, Schedule } from "effect"
import type { Scope } from "effect"

/**
 * Runs `sweep` on a jittered schedule in the current scope, so several
 * instances sharing a backend do not sweep in lockstep. A failed sweep is
 * logged and the next one runs as planned.
 *
 * @internal
 */
export const forkSweeper = <E, R>(
  store: string,
  interval: Duration.DurationInput,
  sweep: Effect.Effect<number, E, R>
): Effect.Effect<void, never, R | Scope.Scope> =>
  sweep.pipe(
    Effect.tap((removed) =>
      removed > 0 ? Effect.logDebug(`${store} store: removed ${removed} expired sessions`) : Effect.void
    ),
    Effect.catchAllCause((cause) => Effect.logWarning(`${store} store: expiry sweep failed`, cause)),
    Effect.repeat(Schedule.spaced(interval).pipe(Schedule.jittered)),
    Effect.delay(Duration.decode(interval)),
    Effect.interruptible,
    Effect.forkScoped,
    Effect.asVoid
  )
