/**
 * (f) The app of `plain-effect.ts` (the effect-session server without its
 * session middleware) wrapped in a middleware that does nothing:
 * `(app) => Effect.flatMap(app, Effect.succeed)`. Its `/plain` shows what
 * wrapping the router in any middleware costs an untouched route, next to
 * what the session middleware costs it.
 */
import type { HttpApp } from "@effect/platform"
import { Effect } from "effect"
import { router, run } from "./no-session-app.js"

const nothing = <E, R>(app: HttpApp.Default<E, R>): HttpApp.Default<E, R> =>
  Effect.flatMap(app, (response) => Effect.succeed(response))

run(router.pipe(nothing), "bench-identity-mw:")
