/**
 * (b) The Effect floor: `@effect/platform-node` + ioredis with no session
 * library, doing by hand the round trips a session library cannot avoid —
 * `GET` to read, `GET` + one compare-and-set `EVALSHA` to modify — plus the
 * per-request work any server-side session with hashed ids needs (cookie
 * parse, id check, SHA-256 of the id, JSON decode/encode, expiry check).
 * No retry on conflict, no schema, no spans of its own: the cost of the
 * I/O, not of a library. What is not Effect glue is shared with the
 * Effect 4 floor (`floor-protocol.ts`).
 */
import { HttpRouter, HttpServer, HttpServerRequest, HttpServerResponse } from "@effect/platform"
import { NodeHttpServer, NodeRuntime } from "@effect/platform-node"
import { Clock, Context, Effect, Layer } from "effect"
import { randomBytes } from "node:crypto"
import { createServer } from "node:http"
import { cookieName, idleTimeoutMs, port, redisUrl, storedValue } from "./config.js"
import type { RedisWithCas } from "./floor-protocol.js"
import { decode, encode, idPattern, makeClient, storageKey as keyUnder } from "./floor-protocol.js"

const prefix = "bench-floor:"

class RedisClient extends Context.Tag("bench/floor/RedisClient")<RedisClient, RedisWithCas>() {}

const RedisLive = Layer.scoped(
  RedisClient,
  Effect.acquireRelease(
    Effect.sync(() => makeClient(redisUrl)),
    (redis) => Effect.promise(() => redis.quit())
  )
)

const redisCall = <A>(f: (redis: RedisWithCas) => Promise<A>) =>
  Effect.flatMap(RedisClient, (redis) => Effect.tryPromise({ try: () => f(redis), catch: (cause) => cause }))

const storageKey = (id: string) => keyUnder(prefix, id)

/** The live stored session of the request's cookie, or undefined. */
const loadSession = Effect.gen(function*() {
  const request = yield* HttpServerRequest.HttpServerRequest
  const id = request.cookies[cookieName]
  if (id === undefined || !idPattern.test(id)) return undefined
  const key = storageKey(id)
  const raw = yield* redisCall((redis) => redis.get(key))
  if (raw === null) return undefined
  const stored = decode(raw)
  const now = yield* Clock.currentTimeMillis
  return stored.expiresAt > now ? { key, stored } : undefined
})

const router = HttpRouter.empty.pipe(
  HttpRouter.get(
    "/setup",
    Effect.gen(function*() {
      const id = randomBytes(32).toString("base64url")
      const now = yield* Clock.currentTimeMillis
      const value = encode(1, now + idleTimeoutMs, { value: storedValue, counter: 0 })
      yield* redisCall((redis) => redis.set(storageKey(id), value, "PX", idleTimeoutMs))
      return yield* HttpServerResponse.text("ok").pipe(
        HttpServerResponse.setCookie(cookieName, id, { httpOnly: true, path: "/", sameSite: "lax" })
      )
    })
  ),
  HttpRouter.get(
    "/get",
    Effect.map(loadSession, (session) => HttpServerResponse.text(session?.stored.data.value ?? ""))
  ),
  HttpRouter.get(
    "/counter",
    Effect.map(loadSession, (session) => HttpServerResponse.text(String(session?.stored.data.counter ?? 0)))
  ),
  HttpRouter.get(
    "/incr",
    Effect.gen(function*() {
      const session = yield* loadSession
      if (session === undefined) return HttpServerResponse.text("no session", { status: 404 })
      const counter = (session.stored.data.counter ?? 0) + 1
      const now = yield* Clock.currentTimeMillis
      const value = encode(session.stored.version + 1, now + idleTimeoutMs, { ...session.stored.data, counter })
      const result = yield* redisCall((redis) =>
        redis.sessionCas(session.key, session.stored.version, value, idleTimeoutMs)
      )
      return result > 0
        ? HttpServerResponse.text(String(counter))
        : HttpServerResponse.text("conflict", { status: 409 })
    })
  ),
  HttpRouter.get("/plain", HttpServerResponse.text("plain"))
)

const app = router.pipe(
  Effect.catchAll((cause) => Effect.logError("floor: request failed", cause).pipe(
    Effect.as(HttpServerResponse.text("error", { status: 500 }))
  ))
)

HttpServer.serve(app).pipe(
  // the store first: the server listens only once it is ready
  Layer.provide(NodeHttpServer.layer(createServer, { port, host: "127.0.0.1" })),
  Layer.provide(RedisLive),
  Layer.launch,
  NodeRuntime.runMain
)
