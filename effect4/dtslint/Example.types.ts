/**
 * The Session module's example, compiled (with this package's relative
 * imports for "effect-session").
 */
import { Effect, Layer, Schema } from "effect"
import { HttpRouter, HttpServerResponse } from "effect/http"
import { MemoryStore, Session, SessionError } from "../src/index.js"

class AppSession extends Session.Tag<AppSession>()("app/AppSession", {
  username: Schema.optional(Schema.String),
  visits: Schema.Int.pipe(Schema.withDecodingDefault(Effect.succeed(0)))
}) {}

const handler = Effect.andThen(
  AppSession.update("visits", (n) => n + 1),
  Effect.map(AppSession.get("visits"), (n) => HttpServerResponse.text(`visit ${n}`))
)

export const Routes = HttpRouter.add("GET", "/", handler).pipe(
  Layer.provide(AppSession.middleware({ cookie: { secure: false } }).combine(SessionError.respond).layer),
  Layer.provide(MemoryStore.layer())
)
// served without further requirements but the HTTP server
export const served = HttpRouter.serve(Routes)
