/**
 * The Memcached store on a real server (127.0.0.1:11211, or MEMCACHED_URL):
 * the conformance checks, what lands on the server, the client's life, and
 * 200 concurrent increments over HTTP through it. Without a server that
 * suite is skipped, and says so in its name; with SESSION_TEST_REQUIRE_ALL=1
 * a missing server fails it instead. What needs no Memcached — the options
 * the layer refuses, a server that never answers, a refused connection —
 * runs either way.
 */
import { describe, expect, it, vi } from "@effect/vitest"
import { Config, ConfigProvider, Context, Effect, Exit, Layer, Option, Schedule, Schema, Scope } from "effect"
import { HttpRouter, HttpServerResponse } from "effect/http"
import { TestClock } from "effect/testing"
import { MemcacheClient } from "memcache-client"
import { randomBytes } from "node:crypto"
import * as Protocol from "../../src/core/memcached.js"
import * as Ids from "../../src/core/ids.js"
import * as MemcachedStore from "../src/MemcachedStore.js"
import * as Session from "../src/Session.js"
import { SessionStoreError } from "../src/SessionError.js"
import { SessionStore } from "../src/SessionStore.js"
import * as StoreConformance from "../src/StoreConformance.js"
import { accepts, countingProxy, describeWithServer, host, port, server, silentServer } from "./utils/memcached.js"
import { get, serve, sessionCookie } from "./utils/server.js"
import { freshKey, now, storageKey, wallClock, write } from "./utils/storeRecords.js"

const day = 24 * 60 * 60 * 1000
// every run has its own keys; Memcached's expiry collects them
const prefix = `e4mc_${randomBytes(6).toString("hex")}:`
const StoreLive = MemcachedStore.layer({ servers: server, prefix })

const textOf = (record: Option.Option<{ readonly text: string }>) => Option.map(record, (r) => r.text)

/** A client of the test's own, to look at the server behind the store's back. */
const rawClient = Effect.acquireRelease(
  Effect.sync(() => new MemcacheClient({ server, cmdTimeout: 5_000, connectTimeout: 5_000 })),
  (client) => Effect.sync(() => client.shutdown())
)
/** The item under a key as Memcached holds it, decoded with the core's format; undefined on a miss. */
const rawRecord = (raw: MemcacheClient, item: string) =>
  Effect.map(
    Effect.promise(() => raw.get<Buffer>(item) as Promise<{ readonly value: unknown } | undefined>),
    (response) => response === undefined ? undefined : Protocol.decode(response.value) ?? "not a record"
  )

class Counter extends Session.Tag<Counter>()("test/MemcachedCounter", {
  count: Schema.Int.pipe(Schema.withDecodingDefault(Effect.succeed(0)))
}) {}

describeWithServer(`MemcachedStore on ${server}`, await accepts(host, port), `no Memcached on ${server}`, () => {
  describe("conformance", () => {
    for (const check of StoreConformance.checks(StoreLive, { concurrency: 100 })) {
      it.effect(check.name, () => check.run, 60_000)
    }
  })

  it.effect("the item is the prefix and the storage key, holding the core's value: the other line reads it", () =>
    Effect.gen(function*() {
      yield* wallClock
      const raw = yield* rawClient
      const store = yield* SessionStore
      const id = Ids.generateId()
      const key = storageKey(id)
      const expiresAt = (yield* now) + 60_000
      yield* store.insert(key, write("{\"é\":1}", expiresAt, "Zoë"))
      expect(yield* rawRecord(raw, prefix + id)).toBeUndefined()
      const stored = yield* rawRecord(raw, prefix + key)
      expect(stored).toEqual({ data: new Uint8Array(Buffer.from("{\"é\":1}")), version: 1, expiresAt, principal: "Zoë" })
      // a value the Effect 3 line wrote (the same core encoding), read by this one
      const other = freshKey()
      const value = Protocol.encode({ data: Buffer.from("{\"n\":2}"), version: 7, expiresAt, principal: undefined })
      yield* Effect.promise(() => raw.set(prefix + other, value, { lifetime: 60 }))
      const loaded = Option.getOrThrow(yield* store.load(other))
      expect([loaded.text, loaded.version, loaded.expiresAt, Option.isNone(loaded.principal)]).toEqual(["{\"n\":2}", 7, expiresAt, true])
    }).pipe(Effect.provide(StoreLive)))

  it.effect("a 60-day session stays on the server: its exptime is an absolute time, not 60 days read as 1970", () =>
    Effect.gen(function*() {
      yield* wallClock
      const raw = yield* rawClient
      const store = yield* SessionStore
      const key = freshKey()
      const expiresAt = (yield* now) + 60 * day
      yield* store.insert(key, write("long", expiresAt))
      expect((yield* rawRecord(raw, prefix + key)) !== undefined).toBe(true)
      expect(textOf(yield* store.load(key))).toEqual(Option.some("long"))
      // and after a touch that keeps it beyond 30 days
      expect(yield* store.touch(key, expiresAt + day)).toBe(true)
      expect((yield* rawRecord(raw, prefix + key)) !== undefined).toBe(true)
    }).pipe(Effect.provide(StoreLive)))

  it.effect("touches racing updates never make an update fail: a lost cas is read again, not a VersionMismatch", () =>
    Effect.gen(function*() {
      yield* wallClock
      const store = yield* SessionStore
      // the touches come from other instances, on connections of their own,
      // so that they land between an update's gets and its cas
      const others = yield* Effect.forEach(
        Array.from({ length: 4 }),
        () => Effect.map(Layer.build(StoreLive), (context) => Context.get(context, SessionStore))
      )
      const key = freshKey()
      const t = yield* now
      yield* store.insert(key, write("0", t + 60_000))
      const updates = Effect.forEach(
        Array.from({ length: 25 }, (_, i) => i + 1),
        (version) => store.update(key, write(String(version), t + 60_000), version),
        { discard: true }
      )
      // every lost round is another writer's success, and the store gives up
      // only after 100: 72 touches and 25 updates cannot reach that
      const touches = Effect.forEach(
        others,
        (other, i) => Effect.repeat(other.touch(key, t + 120_000 + i), Schedule.recurs(17)),
        { concurrency: "unbounded", discard: true }
      )
      yield* Effect.all([updates, touches], { concurrency: "unbounded", discard: true })
      const record = Option.getOrThrow(yield* store.load(key))
      expect([record.text, record.version]).toEqual(["25", 26])
    }).pipe(Effect.provide(StoreLive)))

  it.effect("insert replaces a record expired for the application that Memcached still holds", () =>
    Effect.gen(function*() {
      yield* wallClock
      const raw = yield* rawClient
      const store = yield* SessionStore
      const key = freshKey()
      yield* store.insert(key, write("old", (yield* now) + 30_000))
      yield* TestClock.adjust(60_000)
      // the item has 31 real seconds left: `add` alone would refuse
      expect(yield* rawRecord(raw, prefix + key)).toMatchObject({ version: 1 })
      yield* store.insert(key, write("new", (yield* now) + 60_000))
      const record = Option.getOrThrow(yield* store.load(key))
      expect([record.text, record.version]).toEqual(["new", 1])
    }).pipe(Effect.provide(StoreLive)))

  it.effect("an item another program wrote under the key fails with SessionStoreError, not a misread", () =>
    Effect.gen(function*() {
      yield* wallClock
      const raw = yield* rawClient
      const store = yield* SessionStore
      const key = freshKey()
      yield* Effect.promise(() => raw.set(prefix + key, "not a session", { lifetime: 60 }))
      const loaded = yield* Effect.flip(store.load(key))
      expect([loaded._tag, loaded.message]).toEqual([
        "SessionStoreError",
        "memcached store: load failed: the item under this key is not an effect-session record"
      ])
      const updated = yield* Effect.flip(store.update(key, write("x", (yield* now) + 60_000), 1))
      expect(updated._tag).toBe("SessionStoreError")
    }).pipe(Effect.provide(StoreLive)))

  it.effect("a 300-character prefix still gives keys Memcached accepts", () =>
    Effect.gen(function*() {
      yield* wallClock
      const store = yield* SessionStore
      const key = freshKey()
      const t = yield* now
      yield* store.insert(key, write("v1", t + 60_000))
      expect(yield* store.update(key, write("v2", t + 60_000), 1)).toBe(2)
      expect(yield* store.touch(key, t + 120_000)).toBe(true)
      const record = Option.getOrThrow(yield* store.load(key))
      expect([record.text, record.version, record.expiresAt]).toEqual(["v2", 2, t + 120_000])
      yield* store.remove(key)
      expect(yield* store.load(key)).toEqual(Option.none())
    }).pipe(Effect.provide(MemcachedStore.layer({ servers: server, prefix: `${prefix}${"p".repeat(300)}` }))))

  it.effect("a client passed in is used and not shut down with the layer", () =>
    Effect.gen(function*() {
      yield* wallClock
      const raw = yield* rawClient
      // memcache-client reconnects after shutdown(): the call itself is watched
      const shutdown = vi.spyOn(raw, "shutdown")
      const key = freshKey()
      const expiresAt = (yield* now) + 60_000
      yield* Effect.scoped(Effect.flatMap(
        Layer.build(MemcachedStore.layer({ client: raw, prefix })),
        (context) => Context.get(context, SessionStore).insert(key, write("via client", expiresAt))
      ))
      expect(shutdown).not.toHaveBeenCalled()
      shutdown.mockRestore()
      expect(yield* rawRecord(raw, prefix + key)).toMatchObject({ version: 1, expiresAt })
    }))

  it.live("a client the layer creates is shut down when its scope closes", () =>
    Effect.gen(function*() {
      const proxy = yield* countingProxy
      const scope = yield* Scope.make()
      const store = Context.get(
        yield* Layer.buildWithScope(MemcachedStore.layer({ servers: `127.0.0.1:${proxy.port}`, prefix }), scope),
        SessionStore
      )
      yield* store.insert(freshKey(), write("x", Date.now() + 60_000))
      expect(proxy.connections()).toBe(1)
      yield* Scope.close(scope, Exit.void)
      // Memcached never drops an idle connection: only the client's shutdown closes it
      const open = yield* Effect.repeat(
        Effect.sync(proxy.connections),
        { until: (n) => n === 0, schedule: Schedule.spaced("50 millis"), times: 100 }
      )
      expect(open).toBe(0)
    }))

  it.effect("layerConfig reads the server from Config (a memcached:// URL)", () =>
    Effect.gen(function*() {
      yield* wallClock
      const store = yield* SessionStore
      const key = freshKey()
      yield* store.insert(key, write("configured", (yield* now) + 60_000))
      expect(textOf(yield* store.load(key))).toEqual(Option.some("configured"))
    }).pipe(Effect.provide(
      MemcachedStore.layerConfig({ servers: Config.String("MEMCACHED_URL"), prefix: Config.succeed(prefix) }).pipe(
        Layer.provide(ConfigProvider.layer(ConfigProvider.fromUnknown({ MEMCACHED_URL: `memcached://${server}` })))
      )
    )))

  it.live("200 concurrent increments of one session over HTTP all count", () =>
    Effect.gen(function*() {
      const routes = HttpRouter.add(
        "GET",
        "/incr",
        Effect.andThen(
          Counter.update("count", (n) => n + 1),
          Effect.map(Counter.get("count"), (n) => HttpServerResponse.text(String(n)))
        )
      ).pipe(Layer.provide(Counter.middleware({ cookie: { secure: false } }).layer), Layer.provide(StoreLive))
      const base = yield* serve(routes)
      const cookie = sessionCookie(yield* get(`${base}/incr`))!
      const answers = yield* Effect.forEach(Array.from({ length: 200 }), () => get(`${base}/incr`, cookie), {
        concurrency: "unbounded"
      })
      expect(answers.filter((answer) => answer.status !== 200)).toEqual([])
      expect((yield* get(`${base}/incr`, cookie)).body).toBe("202")
    }), 60_000)
})

describe("MemcachedStore without a usable server", () => {
  const setupError = (options: MemcachedStore.Options) =>
    Effect.flip(Effect.scoped(Layer.build(MemcachedStore.layer(options))))

  it.effect("a prefix Memcached keys cannot hold fails the layer with SessionStoreError naming it", () =>
    Effect.gen(function*() {
      const error = yield* setupError({ prefix: "my sessions:" })
      expect([error._tag, error.operation]).toEqual(["SessionStoreError", "setup"])
      expect(error.message).toContain("\"my sessions:\" holds a space")
    }))

  it.effect("several servers fail the layer: memcache-client would spread one session over them", () =>
    Effect.gen(function*() {
      const error = yield* setupError({ servers: "10.0.0.1:11211,10.0.0.2:11211" })
      expect([error._tag, error.operation]).toEqual(["SessionStoreError", "setup"])
      expect(error.message).toContain("servers must be one \"host:port\"")
    }))

  it.live("a refused connection fails every operation with SessionStoreError naming the cause", () =>
    Effect.gen(function*() {
      const store = Context.get(
        yield* Layer.build(MemcachedStore.layer({ servers: "127.0.0.1:1", commandTimeout: "2 seconds" })),
        SessionStore
      )
      const key = freshKey()
      for (const operation of [store.load(key), store.insert(key, write("x", Date.now() + 60_000)), store.remove(key)].map(Effect.asVoid)) {
        const error = yield* Effect.flip(operation)
        expect(error).toBeInstanceOf(SessionStoreError)
        expect(error.message).toMatch(/^memcached store: (load|insert|remove) failed: .*ECONNREFUSED/)
      }
    }))

  // The test's own limit (4 s) is under the default commandTimeout (5 s): it
  // passes only if the configured 300 ms ends the wait.
  it.live("a server that accepts and never answers fails operations at commandTimeout, not a hang", () =>
    Effect.gen(function*() {
      const silent = yield* silentServer
      const store = Context.get(
        yield* Layer.build(MemcachedStore.layer({ servers: `127.0.0.1:${silent.port}`, commandTimeout: "300 millis" })),
        SessionStore
      )
      const key = freshKey()
      for (const operation of [Effect.asVoid(store.load(key)), Effect.asVoid(store.update(key, write("x", Date.now() + 60_000), 1))]) {
        const error = yield* Effect.flip(operation)
        expect(error).toBeInstanceOf(SessionStoreError)
        expect(error.message).toMatch(/^memcached store: (load|update) failed: .*timeout/i)
      }
      expect(silent.connections()).toBeGreaterThan(0)
    }), 4_000)

  it.live("layerConfig reads commandTimeout from Config", () =>
    Effect.gen(function*() {
      const silent = yield* silentServer
      const layer = MemcachedStore.layerConfig({
        servers: Config.String("MEMCACHED_URL"),
        commandTimeout: Config.Duration("MEMCACHED_TIMEOUT")
      }).pipe(Layer.provide(ConfigProvider.layer(ConfigProvider.fromUnknown({
        MEMCACHED_URL: `127.0.0.1:${silent.port}`,
        MEMCACHED_TIMEOUT: "300 millis"
      }))))
      const store = Context.get(yield* Layer.build(layer), SessionStore)
      const error = yield* Effect.flip(store.load(freshKey()))
      expect(error.message).toMatch(/^memcached store: load failed: .*timeout/i)
    }), 4_000)
})
