/**
 * (b) The Effect floor: `@effect/platform-node` + ioredis with no session
 * library, doing by hand the round trips a session library cannot avoid —
 * `GET` to read, `GET` + one compare-and-set `EVALSHA` to modify — plus the
 * per-request work any server-side session with hashed ids needs (cookie
 * parse, id check, SHA-256 of the id, JSON decode/encode, expiry check).
 * No retry on conflict, no schema, no spans of its own: the cost of the
 * I/O, not of a library.
 */
import { HttpRouter, HttpServer, HttpServerRequest, HttpServerResponse } from "@effect/platform"
import { NodeHttpServer, NodeRuntime } from "@effect/platform-node"
import { Clock, Context, Effect, Layer } from "effect"
import { Redis } from "ioredis"
import { createHash, randomBytes } from "node:crypto"
import { createServer } from "node:http"
import { cookieName, idleTimeoutMs, port, redisUrl, storedValue } from "./config.js"

const prefix = "bench-floor:"
const idPattern = /^[A-Za-z0-9_-]{43}$/

// Stored value: "<version>:<expiresAt>:<json>", so the CAS script can compare
// the version without decoding JSON.
const compareAndSet = `
local current = redis.call("GET", KEYS[1])
if not current then return -1 end
local version = tonumber(string.match(current, "^(%d+):"))
if version ~= tonumber(ARGV[1]) then return 0 end
redis.call("SET", KEYS[1], ARGV[2], "PX", ARGV[3])
return version + 1
`

interface RedisWithCas extends Redis {
  sessionCas(key: string, expectedVersion: number, value: string, ttlMs: number): Promise<number>
}

class RedisClient extends Context.Tag("bench/floor/RedisClient")<RedisClient, RedisWithCas>() {}

const RedisLive = Layer.scoped(
  RedisClient,
  Effect.acquireRelease(
    Effect.sync(() => {
      const redis = new Redis(redisUrl, { lazyConnect: false })
      redis.defineCommand("sessionCas", { numberOfKeys: 1, lua: compareAndSet })
      return redis as RedisWithCas
    }),
    (redis) => Effect.promise(() => redis.quit())
  )
)

const redisCall = <A>(f: (redis: RedisWithCas) => Promise<A>) =>
  Effect.flatMap(RedisClient, (redis) => Effect.tryPromise({ try: () => f(redis), catch: (cause) => cause }))

interface Stored {
  readonly version: number
  readonly expiresAt: number
  readonly data: { readonly value?: string; readonly counter?: number }
}

const decode = (raw: string): Stored => {
  const first = raw.indexOf(":")
  const second = raw.indexOf(":", first + 1)
  return {
    version: Number(raw.slice(0, first)),
    expiresAt: Number(raw.slice(first + 1, second)),
    data: JSON.parse(raw.slice(second + 1))
  }
}
const encode = (version: number, expiresAt: number, data: Stored["data"]) =>
  `${version}:${expiresAt}:${JSON.stringify(data)}`

const storageKey = (id: string) => prefix + createHash("sha256").update(id).digest("base64url")

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
