/**
 * `RedisStore.layerConfig` on the server at 127.0.0.1:6379 (or REDIS_URL):
 * its options read from a ConfigProvider arrive (the URL, the prefix the
 * keys are written under, the commandTimeout), a missing URL fails the layer
 * with ConfigError unless the documented default is given, a URL the client
 * cannot use fails it with SessionStoreError at setup without showing the
 * URL, and a port where nothing listens neither hangs the layer nor a
 * request. Without a server the suite is skipped, and says so in its name;
 * with SESSION_TEST_REQUIRE_ALL=1 a missing server fails it instead.
 */
import { afterAll, describe, expect, it } from "@effect/vitest"
import { Config, ConfigProvider, Context, Effect, Layer, Logger, Option, Redacted, Schema } from "effect"
import { HttpRouter, HttpServerResponse } from "effect/http"
import { Redis } from "ioredis"
import { connect } from "node:net"
import { inspect } from "node:util"
import { freePort } from "../../test/quickstartProcess.js"
import * as RedisStore from "../src/RedisStore.js"
import * as Session from "../src/Session.js"
import { SessionStoreError } from "../src/SessionError.js"
import * as SessionId from "../src/SessionId.js"
import { SessionStore } from "../src/SessionStore.js"
import { silentServer } from "./utils/memcached.js"
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
const prefix = `effect4-config-test:${process.pid}:${Date.now()}:`

afterAll(async () => {
  if (!reachable) return
  const redis = new Redis(url)
  const keys = await redis.keys(`${prefix}*`)
  if (keys.length > 0) await redis.del(...keys)
  await redis.quit()
})

const fromValues = (values: Record<string, string>) => Layer.provide(ConfigProvider.layer(ConfigProvider.fromUnknown(values)))

/** What building the layer failed with, with how long it took. */
const buildFailure = <A, E>(layer: Layer.Layer<A, E>) =>
  Effect.gen(function*() {
    const started = performance.now()
    const error = yield* Effect.flip(Effect.scoped(Layer.build(layer)))
    return { error, elapsed: performance.now() - started }
  })

const freshKey = () => SessionId.storageKey(SessionId.generateUnsafe())

class Counter extends Session.Tag<Counter>()("test/RedisConfigCounter", {
  count: Schema.Int.pipe(Schema.withDecodingDefault(Effect.succeed(0)))
}) {}

describe.skipIf(!reachable)(`RedisStore.layerConfig${reachable ? "" : ` (skipped: no Redis at ${url})`}`, () => {
  it.live("reads the URL and prefix from Config, and sessions are loaded and saved over HTTP through it", () =>
    Effect.gen(function*() {
      const StoreLive = RedisStore.layerConfig({
        url: Config.Redacted("REDIS_URL"),
        prefix: Config.String("SESSION_PREFIX"),
        commandTimeout: Config.Duration("SESSION_REDIS_TIMEOUT")
      }).pipe(fromValues({ REDIS_URL: url, SESSION_PREFIX: `${prefix}http:`, SESSION_REDIS_TIMEOUT: "2 seconds" }))
      const routes = HttpRouter.add(
        "GET",
        "/incr",
        Effect.andThen(Counter.update("count", (n) => n + 1), Effect.map(Counter.get("count"), (n) => HttpServerResponse.text(String(n))))
      ).pipe(Layer.provide(Counter.middleware({ cookie: { secure: false } }).layer), Layer.provide(StoreLive))
      const base = yield* serve(routes)
      const first = yield* get(`${base}/incr`)
      const cookie = sessionCookie(first)!
      expect([first.status, first.body]).toEqual([200, "1"])
      expect((yield* get(`${base}/incr`, cookie)).body).toBe("2")
      expect((yield* get(`${base}/incr`, cookie)).body).toBe("3")
      // the record is under the configured prefix, on the configured server
      const admin = new Redis(url)
      const keys = yield* Effect.promise(() => admin.keys(`${prefix}http:*`))
      yield* Effect.promise(() => admin.quit())
      expect(keys).toHaveLength(1)
    }).pipe(Effect.scoped))

  it.live("a missing URL fails the layer with ConfigError naming it, at once", () =>
    Effect.gen(function*() {
      const { elapsed, error } = yield* buildFailure(
        RedisStore.layerConfig({ url: Config.Redacted("REDIS_URL"), prefix: Config.succeed(prefix) }).pipe(fromValues({}))
      )
      expect(error._tag).toBe("ConfigError")
      expect(error.message).toContain("REDIS_URL")
      expect(elapsed).toBeLessThan(1_000)
    }))

  it.live("a missing URL with the documented default reaches the server there", () =>
    Effect.gen(function*() {
      const layer = RedisStore.layerConfig({
        url: Config.Redacted("REDIS_URL").pipe(Config.withDefault(Redacted.make(url))),
        prefix: Config.succeed(`${prefix}default:`)
      }).pipe(fromValues({}))
      const store = Context.get(yield* Layer.build(layer), SessionStore)
      const key = freshKey()
      yield* store.insert(key, { text: "{\"a\":1}", expiresAt: Date.now() + 60_000, principal: Option.none() })
      const version = yield* store.update(key, { text: "{\"a\":2}", expiresAt: Date.now() + 60_000, principal: Option.none() }, 1)
      const loaded = yield* store.load(key)
      expect(Option.map(loaded, (record) => [record.text, record.version])).toEqual(Option.some(["{\"a\":2}", version]))
    }).pipe(Effect.scoped))

  it.live("commandTimeout from Config ends an operation a server never answers", () =>
    Effect.gen(function*() {
      // without the ready check and the client-info handshake (both wait for
      // replies) ioredis is ready on connect and sends the command, and only
      // the timeout ends the wait
      const silent = yield* silentServer
      const layer = RedisStore.layerConfig({
        url: Config.Redacted("REDIS_URL"),
        enableReadyCheck: Config.succeed(false),
        disableClientInfo: Config.succeed(true),
        commandTimeout: Config.Duration("SESSION_REDIS_TIMEOUT")
      }).pipe(fromValues({ REDIS_URL: `redis://127.0.0.1:${silent.port}`, SESSION_REDIS_TIMEOUT: "300 millis" }))
      const store = Context.get(yield* Layer.build(layer), SessionStore)
      const started = performance.now()
      const error = yield* Effect.flip(store.load(freshKey()))
      expect(error).toBeInstanceOf(SessionStoreError)
      expect(error.message).toBe("redis store: load failed: Redis did not answer within 300 ms")
      expect(performance.now() - started).toBeLessThan(1_500)
    }).pipe(Effect.scoped), 5_000)
})

// these need no server
describe("RedisStore.layerConfig with a URL it cannot use", () => {
  it.live("a URL of another scheme fails the layer with SessionStoreError at setup, naming the scheme", () =>
    Effect.gen(function*() {
      const { elapsed, error } = yield* buildFailure(
        RedisStore.layerConfig({ url: Config.Redacted("REDIS_URL") }).pipe(fromValues({ REDIS_URL: "http://127.0.0.1:6379" }))
      )
      expect(error).toBeInstanceOf(SessionStoreError)
      expect(error.message).toBe("redis store: setup failed: the Redis URL's scheme is http://, not redis:// or rediss://")
      expect(elapsed).toBeLessThan(1_000)
    }))

  it.live("a URL the client cannot read fails the layer with SessionStoreError, and its password shows nowhere", () =>
    Effect.gen(function*() {
      const { error } = yield* buildFailure(
        RedisStore.layerConfig({ url: Config.Redacted("REDIS_URL") }).pipe(fromValues({ REDIS_URL: "redis://:s3cret@127.0.0.1:99999" }))
      )
      expect(error).toBeInstanceOf(SessionStoreError)
      expect(error.message).toBe("redis store: setup failed: the Redis URL cannot be read: Invalid URL")
      expect(inspect(error, { depth: 10 })).not.toContain("s3cret")
    }))

  // the layer is built when Redis is not there yet (docs/stores/redis.md):
  // it waits commandTimeout, warns, and every operation then fails at once
  it.live("a port where nothing listens: the layer is built after commandTimeout, and a load fails at once naming the cause", () =>
    Effect.gen(function*() {
      const closed = yield* Effect.promise(freePort)
      const layer = RedisStore.layerConfig({
        url: Config.Redacted("REDIS_URL"),
        commandTimeout: Config.Duration("SESSION_REDIS_TIMEOUT")
      }).pipe(fromValues({ REDIS_URL: `redis://127.0.0.1:${closed}`, SESSION_REDIS_TIMEOUT: "300 millis" }))
      const built = performance.now()
      const store = Context.get(yield* Layer.build(layer), SessionStore)
      expect(performance.now() - built).toBeLessThan(300 + 1_000)
      expect(logged.some((line) => line.startsWith("Warn redis store: not connected after 300 ms"))).toBe(true)
      const started = performance.now()
      const error = yield* Effect.flip(store.load(freshKey()))
      expect(error).toBeInstanceOf(SessionStoreError)
      expect(error.message).toBe(`redis store: load failed: not connected to 127.0.0.1:${closed} (ECONNREFUSED)`)
      expect(performance.now() - started).toBeLessThan(300)
    }).pipe(Effect.scoped, Effect.provide(capture)), 5_000)

  const logged: Array<string> = []
  const capture = Logger.layer([Logger.make(({ logLevel, message }) => logged.push(`${logLevel} ${String(message)}`))])
})
