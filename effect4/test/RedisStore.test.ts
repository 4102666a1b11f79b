/**
 * The Redis store on a real server (127.0.0.1:6379, or REDIS_URL): the
 * conformance checks, and 200 concurrent increments over HTTP through it.
 * Without a server the suite is skipped, and says so in its name; with
 * SESSION_TEST_REQUIRE_ALL=1 a missing server fails it instead.
 */
import { afterAll, describe, expect, it } from "@effect/vitest"
import { Context, Effect, Layer, Option, Schema } from "effect"
import { HttpRouter, HttpServerResponse } from "effect/http"
import { Redis } from "ioredis"
import { connect, Socket } from "node:net"
import { NodeRedis } from "@effect/platform-node"
import * as RedisStore from "../src/RedisStore.js"
import * as Session from "../src/Session.js"
import { SessionStore } from "../src/SessionStore.js"
import * as StoreConformance from "../src/StoreConformance.js"
import { get, serve, sessionCookie } from "./utils/server.js"

const url = process.env.REDIS_URL ?? "redis://127.0.0.1:6379"
const { hostname, port } = new URL(url)

const reachable = await new Promise<boolean>((resolve) => {
  const socket = connect(Number(port || 6379), hostname)
  socket.setTimeout(1_000, () => (socket.destroy(), resolve(false)))
  socket.once("connect", () => (socket.end(), resolve(true)))
  socket.once("error", () => resolve(false))
})
if (!reachable && process.env.SESSION_TEST_REQUIRE_ALL === "1") throw new Error(`no Redis at ${url}`)

// every run has its own keys, and removes them afterwards
const prefix = `effect4-test:${process.pid}:${Date.now()}:`
const StoreLive = RedisStore.layer({ url, prefix })
// the same store over Effect's own Redis service (node-redis underneath)
const ServiceStoreLive = RedisStore.layerFromService({ prefix: `${prefix}service:` }).pipe(
  Layer.provide(NodeRedis.layer({ url }))
)

afterAll(async () => {
  if (!reachable) return
  const redis = new Redis(url)
  const keys = await redis.keys(`${prefix}*`)
  if (keys.length > 0) await redis.del(...keys)
  await redis.quit()
})

class Counter extends Session.Tag<Counter>()("test/RedisCounter", {
  count: Schema.Int.pipe(Schema.withDecodingDefault(Effect.succeed(0)))
}) {}

describe.skipIf(!reachable)(`RedisStore${reachable ? "" : ` (skipped: no Redis at ${url})`}`, () => {
  describe("conformance", () => {
    for (const check of StoreConformance.checks(StoreLive)) it.effect(check.name, () => check.run)
  })
  describe("index conformance", () => {
    for (const check of StoreConformance.indexChecks(StoreLive)) it.effect(check.name, () => check.run)
  })
  describe("over Effect's Redis service: conformance", () => {
    for (const check of StoreConformance.checks(ServiceStoreLive)) it.effect(check.name, () => check.run)
    for (const check of StoreConformance.indexChecks(ServiceStoreLive)) it.effect(check.name, () => check.run)
  })

  it.live("a principal beyond ASCII round-trips over both transports", () =>
    Effect.gen(function*() {
      for (const live of [StoreLive, ServiceStoreLive]) {
        const record = yield* Effect.provide(
          Effect.gen(function*() {
            const store = yield* SessionStore
            const key = "Z".repeat(43) as never
            yield* store.remove(key)
            yield* store.insert(key, { text: "{\"é\":1}", expiresAt: Date.now() + 60_000, principal: Option.some("Zoë 🦊") })
            return yield* store.load(key)
          }),
          live
        )
        expect(Option.map(record, (r) => [r.text, Option.getOrNull(r.principal)])).toEqual(Option.some(["{\"é\":1}", "Zoë 🦊"]))
      }
    }))

  it.live("200 concurrent increments of one session over HTTP all count", () =>
    Effect.gen(function*() {
      const routes = HttpRouter.add(
        "GET",
        "/incr",
        Effect.andThen(Counter.update("count", (n) => n + 1), Effect.map(Counter.get("count"), (n) => HttpServerResponse.text(String(n))))
      ).pipe(Layer.provide(Counter.middleware({ cookie: { secure: false } }).layer), Layer.provide(StoreLive))
      const base = yield* serve(routes)
      const cookie = sessionCookie(yield* get(`${base}/incr`))!
      yield* Effect.forEach(Array.from({ length: 200 }), () => get(`${base}/incr`, cookie), { concurrency: "unbounded" })
      expect((yield* get(`${base}/incr`, cookie)).body).toBe("202")
    }).pipe(Effect.scoped), 60_000)

  it.live("the layer's own client sends the commands of a busy turn in one write, and one at a time each at once", () =>
    Effect.gen(function*() {
      const store = Context.get(yield* Layer.build(StoreLive), SessionStore)
      const keys = Array.from({ length: 200 }, (_, i) => `${String(i).padStart(3, "0")}${"w".repeat(40)}` as never)
      const write = (key: never, i: number) =>
        Effect.andThen(store.remove(key), store.insert(key, { text: String(i), expiresAt: Date.now() + 60_000, principal: Option.none() }))
      // the system calls that write to Redis, counted on every socket to it
      // (only this layer's is used meanwhile)
      const writes = { count: 0 }
      const socket = Socket.prototype as unknown as Record<"_write" | "_writev", (this: Socket, ...args: Array<unknown>) => void>
      const original = { _write: socket._write, _writev: socket._writev }
      for (const method of ["_write", "_writev"] as const) {
        socket[method] = function(this: Socket, ...args) {
          if (this.remotePort === Number(port || 6379)) writes.count++
          return original[method].apply(this, args)
        }
      }
      yield* Effect.addFinalizer(() => Effect.sync(() => Object.assign(socket, original)))

      // one at a time: a write per command (a remove and an insert each)
      for (const [i, key] of keys.slice(0, 10).entries()) yield* write(key, i)
      expect(writes.count).toBe(20)

      // 200 at once: the first command is written at once, the rest of the
      // turn's together; every reply still reaches its own operation
      writes.count = 0
      yield* Effect.forEach(keys.slice(10), (key, i) => write(key, 10 + i), { concurrency: "unbounded", discard: true })
      expect(writes.count).toBeLessThan(20)
      writes.count = 0
      const loaded = yield* Effect.forEach(keys, (key) => store.load(key), { concurrency: "unbounded" })
      expect(writes.count).toBeLessThan(10)
      expect(loaded.map((record) => Option.getOrThrow(record).text)).toEqual(keys.map((_, i) => String(i)))
    }).pipe(Effect.scoped))

  it.live("a store whose server is down fails with SessionStoreError naming it, not a hang", () =>
    Effect.gen(function*() {
      const { store } = yield* RedisStore.make({ url: "redis://127.0.0.1:1", commandTimeout: "200 millis", retryStrategy: () => null })
      const error = yield* Effect.flip(store.load("k".repeat(43) as never))
      expect(error._tag).toBe("SessionStoreError")
      expect(error.message).toMatch(/^redis store: load failed/)
    }).pipe(Effect.scoped))
})
