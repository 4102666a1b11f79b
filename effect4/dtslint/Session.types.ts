/**
 * Type tests of the Effect 4 line, checked by `npm run typecheck` (tsc):
 * each `@ts-expect-error` must meet an error, or the check fails with
 * "Unused '@ts-expect-error' directive".
 */
import { Effect, Layer, Schema } from "effect"
import { HttpRouter, HttpServer, HttpServerResponse } from "effect/http"
import * as MemoryStore from "../src/MemoryStore.js"
import * as Session from "../src/Session.js"
import type { SessionError } from "../src/SessionError.js"
import type { SessionIndex, SessionStore } from "../src/SessionStore.js"

class Counter extends Session.Tag<Counter>()("dtslint/Counter", {
  count: Schema.Int.pipe(Schema.withDecodingDefault(Effect.succeed(0))),
  name: Schema.optional(Schema.String)
}) {}

// accessors are typed by the schema, and require the session
export const count: Effect.Effect<number, SessionError, Counter> = Counter.get("count")
export const name: Effect.Effect<string | undefined, SessionError, Counter> = Counter.get("name")
export const increment: Effect.Effect<void, SessionError, Counter> = Counter.update("count", (n) => n + 1)
// @ts-expect-error a field the schema does not have
export const unknownField = Counter.get("missing")
// @ts-expect-error a value of the wrong type
export const wrongType = Counter.set("count", "one")

// every field must be optional or have a default, so a new session decodes from {}
// @ts-expect-error a required field
export class Required extends Session.Tag<Required>()("dtslint/Required", { user: Schema.String }) {}

// revokeAll and list need a store that keeps an index of principals
export const revoke: Effect.Effect<number, unknown, SessionIndex> = Session.revokeAll("alice")
// @ts-expect-error not runnable without SessionIndex
export const revokeWithoutIndex: Effect.Effect<number, unknown, never> = Session.revokeAll("alice")

const Routes = HttpRouter.add("GET", "/", Effect.as(increment, HttpServerResponse.text("ok")))

// (each layer is built before it is checked against a type: an annotation on
// the call itself would let TypeScript infer serve's requirement from it)
const servedLayer = HttpRouter.serve(
  Routes.pipe(Layer.provide(Counter.middleware().layer), Layer.provide(MemoryStore.layer()))
)
const unservedLayer = HttpRouter.serve(Routes)
const noStoreLayer = HttpRouter.serve(Routes.pipe(Layer.provide(Counter.middleware().layer)))

// routes that use the session are served once the middleware provides it...
export const served: Layer.Layer<never, unknown, HttpServer.HttpServer> = servedLayer
// @ts-expect-error ...and not without it: the session is still required
export const unserved: Layer.Layer<never, unknown, HttpServer.HttpServer> = unservedLayer
// @ts-expect-error the middleware needs a store...
export const noStore: Layer.Layer<never, unknown, HttpServer.HttpServer> = noStoreLayer
// ...which is the SessionStore
export const storeNeeded: Layer.Layer<never, unknown, HttpServer.HttpServer | SessionStore> = noStoreLayer
