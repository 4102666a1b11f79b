/**
 * What a RedisStore operation says when it fails: while Redis is unreachable
 * the error names the server and the connection's error code, not ioredis's
 * words for a command it would not queue; while connected, Redis' own error
 * comes through as it is.
 */
import { describe, expect, it } from "@effect/vitest"
import { Context, Effect, Layer, Option } from "effect"
import { Redis } from "ioredis"
import { randomBytes } from "node:crypto"
import * as RedisStore from "../../src/RedisStore.js"
import { SessionStoreError } from "../../src/SessionError.js"
import * as SessionId from "../../src/SessionId.js"
import { SessionStore } from "../../src/SessionStore.js"
import { describeBackend, reachable } from "../utils/backend.js"
import { freePort } from "../utils/redisServer.js"

const host = "127.0.0.1"
const prefix = `errors:${randomBytes(6).toString("hex")}:`
const freshKey = () => SessionId.storageKey(SessionId.unsafeGenerate())
const write = (expiresAt: number) => ({ data: new Uint8Array([1]), expiresAt, principal: Option.none() })

const storeOf = (options: RedisStore.Options) =>
  Effect.map(Layer.build(RedisStore.layer(options)), (context) => Context.get(context, SessionStore))

const failureOf = <A, E>(effect: Effect.Effect<A, E>) =>
  Effect.map(Effect.flip(effect), (error) => {
    expect(error).toBeInstanceOf(SessionStoreError)
    return error as SessionStoreError
  })

describe("RedisStore with nothing listening", () => {
  it.live("the layer's own client: each operation says it is not connected to host:port, and why", () =>
    Effect.gen(function*() {
      const port = yield* Effect.promise(freePort)
      // connection errors are logged by the layer (once lost, then at debug level)
      const store = yield* storeOf({ host, port, prefix, commandTimeout: 200 })
      const now = yield* Effect.clockWith((clock) => clock.currentTimeMillis)
      const load = yield* failureOf(store.load(freshKey()))
      expect(load.message).toBe(`redis store: load failed: not connected to ${host}:${port} (ECONNREFUSED)`)
      expect(load.message).not.toContain("enableOfflineQueue")
      const insert = yield* failureOf(store.insert(freshKey(), write(now + 60_000)))
      expect(insert.message).toBe(`redis store: insert failed: not connected to ${host}:${port} (ECONNREFUSED)`)
      const touch = yield* failureOf(store.touch(freshKey(), now + 60_000))
      expect(touch.message).toBe(`redis store: touch failed: not connected to ${host}:${port} (ECONNREFUSED)`)
      expect((load.cause as { readonly code?: unknown }).code).toBe("ECONNREFUSED")
    }).pipe(Effect.scoped))

  it.live("a client configured by URL names the URL's host and port", () =>
    Effect.gen(function*() {
      const port = yield* Effect.promise(freePort)
      const store = yield* storeOf({ url: `redis://${host}:${port}`, prefix, commandTimeout: 200 })
      const load = yield* failureOf(store.load(freshKey()))
      expect(load.message).toBe(`redis store: load failed: not connected to ${host}:${port} (ECONNREFUSED)`)
    }).pipe(Effect.scoped))

  it.live("a client passed in that refuses to queue: the address, without a code (its events are the application's)", () =>
    Effect.gen(function*() {
      const port = yield* Effect.promise(freePort)
      const client = new Redis({ host, port, enableOfflineQueue: false, retryStrategy: () => 50 })
      client.on("error", () => {})
      yield* Effect.addFinalizer(() => Effect.sync(() => client.disconnect()))
      const store = yield* storeOf({ client, prefix, commandTimeout: 200 })
      const load = yield* failureOf(store.load(freshKey()))
      expect(load.message).toBe(`redis store: load failed: not connected to ${host}:${port}`)
    }).pipe(Effect.scoped))
})

const available = await reachable(host, 6379)

describeBackend("RedisStore connected", {
  available,
  reason: `no Redis server on ${host}:6379`
}, () => {
  it.live("Redis' own error is reported as it is, not as a lost connection", () =>
    Effect.gen(function*() {
      const admin = new Redis({ host, port: 6379 })
      yield* Effect.addFinalizer(() => Effect.promise(() => admin.quit()))
      const store = yield* storeOf({ host, port: 6379, prefix })
      const key = freshKey()
      // something else's value under the record's key: GET answers WRONGTYPE
      yield* Effect.promise(() => admin.hset(`${prefix}${key}`, "field", "value"))
      yield* Effect.addFinalizer(() => Effect.promise(() => admin.del(`${prefix}${key}`)))
      const load = yield* failureOf(store.load(key))
      expect(load.message).toMatch(/^redis store: load failed: WRONGTYPE/)
      expect(load.message).not.toContain("not connected")
    }).pipe(Effect.scoped))
})
