/**
 * The two Effect 4 apps of the benchmark, as router layers: effect-session
 * on Effect 4 (`session`) and the hand-written floor (`floor`). Served over
 * HTTP by `session.ts` and `floor.ts` (started by `bench/run.ts`), and in
 * process by `micro.ts`. Both answer the routes of every bench server
 * (`bench/README.md`).
 *
 * - `session`: the `Session.Tag` middleware of `effect4/src` provided to
 *   every route (`/plain` included, which never reads the session), sessions
 *   in Redis through its `RedisStore`: the app of the Effect 3 line's
 *   `bench/servers/effect-session.ts`.
 * - `floor`: no session library, doing by hand what the Effect 3 floor
 *   (`bench/servers/floor.ts`) does — `GET` to read, `GET` + one
 *   compare-and-set `EVALSHA` to modify, the id check, SHA-256 of the id,
 *   JSON decode/encode and the expiry check (`bench/servers/floor-protocol.ts`,
 *   shared by both floors). No retry on conflict, no schema, no spans of its
 *   own.
 */
import { Clock, Context, Effect, Layer, Schema } from "effect"
import type { HttpServerRequest } from "effect/http"
import { HttpRouter, HttpServerResponse } from "effect/http"
import { randomBytes } from "node:crypto"
import { cookieName, idleTimeoutMs, storedValue } from "../../bench/servers/config.js"
import type { RedisWithCas } from "../../bench/servers/floor-protocol.js"
import { decode, encode, idPattern, makeClient, storageKey as keyUnder } from "../../bench/servers/floor-protocol.js"
import * as RedisStore from "../src/RedisStore.js"
import * as Session from "../src/Session.js"

class AppSession extends Session.Tag<AppSession>()("bench/AppSession", {
  value: Schema.optional(Schema.String),
  counter: Schema.optional(Schema.Number)
}) {}

/**
 * effect-session's routes on its `RedisStore`, its records under `prefix`.
 */
export const session = (options: { readonly url: string; readonly prefix: string }) => Layer.mergeAll(
  HttpRouter.add(
    "GET",
    "/setup",
    Effect.gen(function*() {
      yield* AppSession.set("value", storedValue)
      yield* AppSession.set("counter", 0)
      return HttpServerResponse.text("ok")
    })
  ),
  HttpRouter.add("GET", "/get", Effect.map(AppSession.get("value"), (value) => HttpServerResponse.text(value ?? ""))),
  HttpRouter.add(
    "GET",
    "/counter",
    Effect.map(AppSession.get("counter"), (counter) => HttpServerResponse.text(String(counter ?? 0)))
  ),
  HttpRouter.add(
    "GET",
    "/incr",
    Effect.gen(function*() {
      yield* AppSession.update("counter", (n) => (n ?? 0) + 1)
      const counter = yield* AppSession.get("counter")
      return HttpServerResponse.text(String(counter ?? 0))
    })
  ),
  HttpRouter.add("GET", "/plain", HttpServerResponse.text("plain"))
).pipe(
  Layer.provide(AppSession.middleware({ cookie: { name: cookieName, secure: false }, idleTimeout: idleTimeoutMs }).layer),
  // the store first: the server listens only once it is ready
  Layer.provide(RedisStore.layer({ url: options.url, prefix: options.prefix }))
)

class RedisClient extends Context.Service<RedisClient, RedisWithCas>()("bench/floor4/RedisClient") {}

const RedisLive = (url: string) =>
  Layer.effect(RedisClient)(
    Effect.acquireRelease(Effect.sync(() => makeClient(url)), (redis) => Effect.promise(() => redis.quit()))
  )

/**
 * The floor's routes on their own ioredis client, its records under `prefix`.
 */
export const floor = (options: { readonly url: string; readonly prefix: string }) =>
  HttpRouter.addAll(Effect.gen(function*() {
    const redis = yield* RedisClient
    const storageKey = (id: string) => keyUnder(options.prefix, id)
    // a failed command is a defect: the router answers 500
    const call = <A>(f: () => Promise<A>) => Effect.promise(f)

    /** The live stored session of the request's cookie, or undefined. */
    const loadSession = Effect.fnUntraced(function*(request: HttpServerRequest.HttpServerRequest) {
      const id = request.cookies[cookieName]
      if (id === undefined || !idPattern.test(id)) return undefined
      const key = storageKey(id)
      const raw = yield* call(() => redis.get(key))
      if (raw === null) return undefined
      const stored = decode(raw)
      const now = yield* Clock.currentTimeMillis
      return stored.expiresAt > now ? { key, stored } : undefined
    })

    // (named before it is returned: returned directly, its element types are lost)
    const routes = [
      HttpRouter.route("GET", "/setup", Effect.gen(function*() {
        const id = randomBytes(32).toString("base64url")
        const now = yield* Clock.currentTimeMillis
        const value = encode(1, now + idleTimeoutMs, { value: storedValue, counter: 0 })
        yield* call(() => redis.set(storageKey(id), value, "PX", idleTimeoutMs))
        return yield* HttpServerResponse.setCookie(HttpServerResponse.text("ok"), cookieName, id, {
          httpOnly: true,
          path: "/",
          sameSite: "lax"
        })
      })),
      HttpRouter.route("GET", "/get", (request) =>
        Effect.map(loadSession(request), (session) => HttpServerResponse.text(session?.stored.data.value ?? ""))),
      HttpRouter.route("GET", "/counter", (request) =>
        Effect.map(loadSession(request), (session) => HttpServerResponse.text(String(session?.stored.data.counter ?? 0)))),
      HttpRouter.route("GET", "/incr", (request) =>
        Effect.gen(function*() {
          const session = yield* loadSession(request)
          if (session === undefined) return HttpServerResponse.text("no session", { status: 404 })
          const counter = (session.stored.data.counter ?? 0) + 1
          const now = yield* Clock.currentTimeMillis
          const value = encode(session.stored.version + 1, now + idleTimeoutMs, { ...session.stored.data, counter })
          const result = yield* call(() => redis.sessionCas(session.key, session.stored.version, value, idleTimeoutMs))
          return result > 0
            ? HttpServerResponse.text(String(counter))
            : HttpServerResponse.text("conflict", { status: 409 })
        })),
      HttpRouter.route("GET", "/plain", HttpServerResponse.text("plain"))
    ] as const
    return routes
  })).pipe(
    // the client first: the server listens only once it is ready
    Layer.provide(RedisLive(options.url))
  )

