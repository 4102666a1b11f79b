/**
 * What putting the request's session in the fiber's context costs (the
 * middleware's `FiberRef.set(FiberRef.currentContext, …)` and the set that
 * puts the context it found back, `docs/design.md`, "The request's session is
 * a service of the request's context"), against the same steps without the
 * two sets, on a fiber that carries a few fiber refs as a request's does
 * (annotations, a log span, a service, a concurrency setting). Prints µs per
 * request of each, round after round.
 *
 *   npx tsx bench/context-provide.ts [requests per round] [rounds]
 */
import { Context, Effect, FiberRef } from "effect"

class Session extends Context.Tag("bench/Session")<Session, { readonly n: number }>() {}
class Other extends Context.Tag("bench/Other")<Other, object>() {}

const perRound = Number(process.argv[2] ?? 200_000)
const rounds = Number(process.argv[3] ?? 5)
const session = { n: 1 }

const withSessionAndBack = Effect.flatMap(FiberRef.get(FiberRef.currentContext), (outer) =>
  Effect.zipRight(
    FiberRef.set(FiberRef.currentContext, Context.add(outer, Session, session)),
    FiberRef.set(FiberRef.currentContext, outer)
  ))
const sameStepsWithout = Effect.flatMap(FiberRef.get(FiberRef.currentContext), () => Effect.zipRight(Effect.void, Effect.void))

const perRequest = (step: Effect.Effect<void>): number => {
  const program = Effect.gen(function*() {
    for (let i = 0; i < perRound; i++) yield* step
  }).pipe(
    Effect.annotateLogs("request", 1),
    Effect.withLogSpan("request"),
    Effect.provideService(Other, {}),
    Effect.withConcurrency(4)
  )
  const start = performance.now()
  Effect.runSync(program)
  return (performance.now() - start) * 1000 / perRound
}

for (let round = 1; round <= rounds; round++) {
  const set = perRequest(withSessionAndBack)
  const without = perRequest(sameStepsWithout)
  console.log(
    `round ${round}: set and put back ${set.toFixed(2)} µs, without ${without.toFixed(2)} µs, ` +
      `difference ${(set - without).toFixed(2)} µs per request`
  )
}
