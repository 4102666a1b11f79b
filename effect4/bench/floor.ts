/**
 * The Effect 4 floor: `effect/http` + `@effect/platform-node` 4 + ioredis with
 * no session library, doing by hand what the Effect 3 floor
 * (`bench/servers/floor.ts`) does — `GET` to read, `GET` + one
 * compare-and-set `EVALSHA` to modify, the id check, SHA-256 of the id, JSON
 * decode/encode and the expiry check (`bench/servers/floor-protocol.ts`,
 * shared by both floors). No retry on conflict, no schema, no spans of its
 * own. The request logger is off (`disableLogger`), as Effect 3's server logs
 * nothing per request by default.
 */
import { NodeHttpServer, NodeRuntime } from "@effect/platform-node"
import { Clock, Context, Effect, Layer } from "effect"
import type { HttpServerRequest } from "effect/http"
import { HttpRouter, HttpServerResponse } from "effect/http"
import { randomBytes } from "node:crypto"
import { createServer } from "node:http"
import { cookieName, idleTimeoutMs, port, redisUrl, storedValue } from "../../bench/servers/config.js"
import type { RedisWithCas } from "../../bench/servers/floor-protocol.js"
import { decode, encode, idPattern, makeClient, storageKey as keyUnder } from "../../bench/servers/floor-protocol.js"

const prefix = "bench-effect4-floor:"

class RedisClient extends Context.Service<RedisClient, RedisWithCas>()("bench/floor4/RedisClient") {}

const RedisLive = Layer.effect(RedisClient)(
  Effect.acquireRelease(Effect.sync(() => makeClient(redisUrl)), (redis) => Effect.promise(() => redis.quit()))
)

const storageKey = (id: string) => keyUnder(prefix, id)

const Routes = HttpRouter.addAll(Effect.gen(function*() {
  const redis = yield* RedisClient
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
}))

HttpRouter.serve(Routes, { disableLogger: true, disableListenLog: true }).pipe(
  Layer.provide(NodeHttpServer.layer(createServer, { port, host: "127.0.0.1" })),
  // the client first: the server listens only once it is ready
  Layer.provide(RedisLive),
  Layer.launch,
  NodeRuntime.runMain
)
