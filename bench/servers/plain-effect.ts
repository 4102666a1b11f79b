/**
 * (e) The effect-session server WITHOUT the session middleware: the baseline
 * for `/plain` (a route that never touches the session). The same router
 * (its five routes; those that would use the session answer a constant),
 * the same layers (`RedisStore` with its client included, though nothing
 * uses it), the same platform and server layer: the only difference from
 * `effect-session.ts` is the middleware.
 */
import { router, run } from "./no-session-app.js"

run(router, "bench-no-mw:")
