/**
 * A URL the layer's own client cannot use fails the layer when it is built,
 * with SessionStoreError (operation "setup") in words that never repeat the
 * URL, since it may carry a password: one of another scheme (ioredis read
 * `http://host:6379` as the host `http`) and one ioredis cannot read (it
 * threw, a defect whose error held the whole URL). Each URL below points at
 * the live server, so only the URL itself can be what is refused.
 */
import { expect, it } from "@effect/vitest"
import { Cause, Config, ConfigProvider, Context, Effect, Exit, Layer, Option } from "effect"
import { randomBytes } from "node:crypto"
import { performance } from "node:perf_hooks"
import { inspect } from "node:util"
import * as RedisStore from "../../src/RedisStore.js"
import { SessionStoreError } from "../../src/SessionError.js"
import * as SessionId from "../../src/SessionId.js"
import { SessionStore } from "../../src/SessionStore.js"
import { describeBackend, reachable } from "../utils/backend.js"

const host = "127.0.0.1"
const port = 6379
const available = await reachable(host, port)
const prefix = `url:${randomBytes(6).toString("hex")}:`
const password = "s3cret-Redis-pw"

/** How building the layer ended, everything it says as text, and how long it took. */
const build = <A, E>(layer: Layer.Layer<A, E>) =>
  Effect.gen(function*() {
    const started = performance.now()
    const exit = yield* Effect.exit(Effect.scoped(Layer.build(layer)))
    const elapsed = performance.now() - started
    const shown = Exit.isFailure(exit) ? `${Cause.pretty(exit.cause)}\n${inspect(exit.cause, { depth: null })}` : ""
    const error = Exit.isFailure(exit) ? Option.getOrUndefined(Cause.failureOption(exit.cause)) : undefined
    return { exit, error, shown, elapsed }
  })

describeBackend(`RedisStore with a URL it cannot use (server at ${host}:${port})`, {
  available,
  reason: `no Redis server on ${host}:${port}`
}, () => {
  // the URLs the client can use still reach the server: with a scheme, or
  // host:port without one (ioredis's own reading)
  for (const url of [`redis://${host}:${port}`, `${host}:${port}`]) {
    it.live(`the server is there: ${url} builds the layer and a record round-trips`, () =>
      Effect.gen(function*() {
        const store = Context.get(yield* Layer.build(RedisStore.layer({ url, prefix })), SessionStore)
        const key = SessionId.storageKey(SessionId.unsafeGenerate())
        const expiresAt = (yield* Effect.clockWith((clock) => clock.currentTimeMillis)) + 60_000
        yield* store.insert(key, { data: new TextEncoder().encode("{}"), expiresAt, principal: Option.none() })
        expect(Option.map(yield* store.load(key), (record) => record.version)).toEqual(Option.some(1))
        yield* store.remove(key)
      }).pipe(Effect.scoped))
  }

  it.live("an http:// URL fails the layer with SessionStoreError at setup, naming the scheme and not the password", () =>
    Effect.gen(function*() {
      const { elapsed, error, exit, shown } = yield* build(
        RedisStore.layer({ url: `http://:${password}@${host}:${port}`, prefix })
      )
      expect(Exit.isFailure(exit)).toBe(true)
      expect(error).toBeInstanceOf(SessionStoreError)
      expect((error as SessionStoreError).operation).toBe("setup")
      expect((error as SessionStoreError).message).toBe(
        "redis store: setup failed: the Redis URL's scheme is http://, not redis:// or rediss://"
      )
      expect(shown).not.toContain(password)
      // refused before any connection: no wait for one
      expect(elapsed).toBeLessThan(1_000)
    }))

  it.live("a URL ioredis cannot read fails the layer with SessionStoreError at setup, and the password shows nowhere", () =>
    Effect.gen(function*() {
      // a doubled port, as a typo in configuration gives
      const { error, exit, shown } = yield* build(
        RedisStore.layer({ url: `redis://:${password}@${host}:${port}:${port}`, prefix })
      )
      expect(Exit.isFailure(exit)).toBe(true)
      expect(error).toBeInstanceOf(SessionStoreError)
      expect((error as SessionStoreError).operation).toBe("setup")
      expect((error as SessionStoreError).message).toBe("redis store: setup failed: the Redis URL cannot be read: Invalid URL")
      expect(shown).not.toContain(password)
    }))

  it.live("through layerConfig too: the URL from Config fails the same way, without its password", () =>
    Effect.gen(function*() {
      const provider = ConfigProvider.fromMap(new Map([["REDIS_URL", `redis://:${password}@${host}:${port}:${port}`]]))
      const { error, shown } = yield* build(
        RedisStore.layerConfig({ url: Config.string("REDIS_URL"), prefix: Config.succeed(prefix) }).pipe(
          Layer.provide(Layer.setConfigProvider(provider))
        )
      )
      expect(error).toBeInstanceOf(SessionStoreError)
      expect((error as SessionStoreError).message).toBe("redis store: setup failed: the Redis URL cannot be read: Invalid URL")
      expect(shown).not.toContain(password)
    }))
})
