import { describe, expect, it, vi } from "@effect/vitest"
import { Config, ConfigProvider, Context, Duration, Effect, Exit, Layer, Option, Scope, TestClock } from "effect"
import { MemcacheClient } from "memcache-client"
import { randomBytes } from "node:crypto"
import { decode, exptime, keyPrefix, maxRelativeSeconds } from "../../src/internal/memcached.js"
import * as MemcachedStore from "../../src/MemcachedStore.js"
import { SessionStoreError } from "../../src/SessionError.js"
import * as SessionId from "../../src/SessionId.js"
import { SessionStore } from "../../src/SessionStore.js"
import * as StoreConformance from "../../src/StoreConformance.js"
import { describeBackend } from "../utils/backend.js"
import { availability, dump, host, port, server } from "../utils/memcached.js"
import { countingProxy, silentServer } from "../utils/tcp.js"
import { eventually, expectEndedAtTimeout } from "../utils/timing.js"

const day = 24 * 60 * 60 * 1000
const run = randomBytes(6).toString("hex")
const prefix = `effect-session-test:${run}:`

const write = (data: string, expiresAt: number) => ({
  data: new TextEncoder().encode(data),
  expiresAt,
  principal: Option.none()
})

const wallClock = Effect.suspend(() => TestClock.setTime(Date.now()))
const now = Effect.clockWith((clock) => clock.currentTimeMillis)

/** The record stored under an item key, read with a client of the test's own: [] when there is none. */
const storedRecord = (raw: MemcacheClient, item: string) =>
  Effect.promise(() => raw.get<Buffer>(item)).pipe(
    Effect.map((response) => {
      // a miss resolves to undefined, whatever the declared type says
      const value = (response as { value?: unknown } | undefined)?.value
      if (value === undefined) return []
      const record = decode(value)
      if (record === undefined) throw new Error(`${item} does not hold a session record`)
      return [record]
    })
  )

/** A client of the test's own, to look at the server behind the store's back. */
const rawClient = Effect.acquireRelease(
  Effect.sync(() => new MemcacheClient({ server, cmdTimeout: 5_000, connectTimeout: 5_000 })),
  (client) => Effect.sync(() => client.shutdown())
)

describe("MemcachedStore exptime", () => {
  const t = 1_800_000_000_000

  it("is relative seconds, rounded up plus one, up to 30 days", () => {
    expect(exptime(t + 1, t)).toBe(2)
    expect(exptime(t + 1_000, t)).toBe(2)
    expect(exptime(t + 1_001, t)).toBe(3)
    expect(exptime(t + 14 * day, t)).toBe(14 * 86_400 + 1)
    expect(exptime(t + (maxRelativeSeconds - 1) * 1000, t)).toBe(maxRelativeSeconds)
  })

  it("is an absolute Unix time beyond 30 days", () => {
    expect(exptime(t + maxRelativeSeconds * 1000, t)).toBe((t + maxRelativeSeconds * 1000) / 1000 + 1)
    expect(exptime(t + 60 * day, t)).toBe((t + 60 * day) / 1000 + 1)
  })

  it("never asks for an immortal item (0) or one that is gone before the write lands", () => {
    expect(exptime(t, t)).toBe(2)
    expect(exptime(t - 60_000, t)).toBe(2)
  })
})

describe("MemcachedStore key prefix", () => {
  it("keeps a short printable prefix as it is", () => {
    expect(keyPrefix("session:")).toEqual({ _tag: "Right", prefix: "session:" })
  })

  it("shortens a long prefix so that prefix + storage key fit in 250 bytes, keeping prefixes distinct", () => {
    const a = keyPrefix("a".repeat(400))
    const b = keyPrefix(`${"a".repeat(399)}b`)
    if (a._tag === "Left" || b._tag === "Left") throw new Error("a long ASCII prefix was rejected")
    expect(a.prefix.length + 43).toBeLessThanOrEqual(250)
    expect(a.prefix).not.toBe(b.prefix)
  })

  it("rejects spaces, control and non-ASCII characters", () => {
    for (const bad of ["my session:", "line\r\nflush_all", "tab\t", "sessão:"]) {
      expect(keyPrefix(bad)._tag).toBe("Left")
    }
  })
})

describeBackend(`MemcachedStore on ${server}`, await availability(), () => {
  const layer = MemcachedStore.layer({ servers: server, prefix })

  describe("conformance", () => {
    for (const check of StoreConformance.checks(layer, { concurrency: 100 })) {
      it.effect(check.name, () => check.run, 60_000)
    }
  })

  it.effect("a 60-day expiry is stored as an absolute Unix time and the item stays on the server", () =>
    Effect.gen(function*() {
      yield* wallClock
      const store = yield* SessionStore
      const key = SessionId.storageKey(SessionId.unsafeGenerate())
      const expiresAt = (yield* now) + 60 * day
      yield* store.insert(key, write("long", expiresAt))
      const [item] = yield* Effect.promise(() => dump(prefix + key))
      // relative 5,184,000 s would be read as a date in 1970 and the item
      // would be gone already
      expect(item?.key).toBe(prefix + key)
      expect(Math.abs(item!.exp - expiresAt / 1000)).toBeLessThanOrEqual(5)
      const record = yield* store.load(key)
      expect(Option.map(record, (r) => r.expiresAt)).toEqual(Option.some(expiresAt))
    }).pipe(Effect.provide(layer)))

  it.effect("a 10-day expiry is relative and lands at the same instant on the server", () =>
    Effect.gen(function*() {
      yield* wallClock
      const store = yield* SessionStore
      const key = SessionId.storageKey(SessionId.unsafeGenerate())
      const expiresAt = (yield* now) + 10 * day
      yield* store.insert(key, write("ten days", expiresAt))
      const [item] = yield* Effect.promise(() => dump(prefix + key))
      expect(Math.abs(item!.exp - expiresAt / 1000)).toBeLessThanOrEqual(5)
    }).pipe(Effect.provide(layer)))

  it.effect("touch moves the expiry inside the value and the native one", () =>
    Effect.gen(function*() {
      yield* wallClock
      const store = yield* SessionStore
      const key = SessionId.storageKey(SessionId.unsafeGenerate())
      const t = yield* now
      yield* store.insert(key, write("x", t + 60_000))
      expect(yield* store.touch(key, t + 20 * day)).toBe(true)
      const [item] = yield* Effect.promise(() => dump(prefix + key))
      expect(Math.abs(item!.exp - (t + 20 * day) / 1000)).toBeLessThanOrEqual(5)
      yield* TestClock.adjust(2 * 60_000)
      const record = yield* store.load(key)
      expect(Option.map(record, (r) => [r.expiresAt, r.version])).toEqual(Option.some([t + 20 * day, 1]))
    }).pipe(Effect.provide(layer)))

  it.scoped("touches racing updates never make an update fail: a lost cas is re-read, not a VersionMismatch", () =>
    Effect.gen(function*() {
      yield* wallClock
      const store = yield* SessionStore
      // the touches come from other instances, on connections of their own,
      // so that they really land between an update's `gets` and its `cas`
      const others = yield* Effect.forEach(
        Array.from({ length: 4 }),
        () => Effect.map(Layer.build(layer), (context) => Context.get(context, SessionStore))
      )
      const key = SessionId.storageKey(SessionId.unsafeGenerate())
      const t = yield* now
      yield* store.insert(key, write("0", t + 60_000))
      const updates = Effect.forEach(
        Array.from({ length: 25 }, (_, i) => i + 1),
        (version) => store.update(key, write(String(version), t + 60_000), version),
        { discard: true }
      )
      // A lost compare-and-set round means another write succeeded in
      // between, and the store gives up after 100 rounds: with 4 × 18
      // touches and 25 updates, no write can see 100 others succeed, so any
      // failure here is the store's, never an unlucky schedule.
      const touches = Effect.forEach(
        others,
        (other, i) => Effect.repeatN(other.touch(key, t + 120_000 + i), 17),
        { concurrency: "unbounded", discard: true }
      )
      yield* Effect.all([updates, touches], { concurrency: "unbounded", discard: true })
      const record = Option.getOrThrow(yield* store.load(key))
      expect([new TextDecoder().decode(record.data), record.version]).toEqual(["25", 26])
    }).pipe(Effect.provide(layer)))

  it.scoped("insert replaces a record that is expired for the application while Memcached still holds it", () =>
    Effect.gen(function*() {
      yield* wallClock
      const raw = yield* rawClient
      const store = yield* SessionStore
      const key = SessionId.storageKey(SessionId.unsafeGenerate())
      yield* store.insert(key, write("old", (yield* now) + 30_000))
      yield* TestClock.adjust(60_000)
      // the native item has 31 real seconds left: `add` alone would refuse
      const stillThere = yield* storedRecord(raw, prefix + key)
      expect(stillThere.map((r) => new TextDecoder().decode(r.data))).toEqual(["old"])
      yield* store.insert(key, write("new", (yield* now) + 60_000))
      const record = Option.getOrThrow(yield* store.load(key))
      expect(new TextDecoder().decode(record.data)).toBe("new")
      expect(record.version).toBe(1)
    }).pipe(Effect.provide(layer)))

  const idPrefix = `${prefix}ids:`
  it.effect("keys are the prefix and the storage key, never the raw id", () =>
    Effect.gen(function*() {
      yield* wallClock
      const store = yield* SessionStore
      const ids = Array.from({ length: 3 }, SessionId.unsafeGenerate)
      for (const id of ids) yield* store.insert(SessionId.storageKey(id), write("x", (yield* now) + 60_000))
      const keys = (yield* Effect.promise(() => dump(idPrefix))).map((item) => item.key).sort()
      expect(keys).toEqual(ids.map((id) => idPrefix + SessionId.storageKey(id)).sort())
      for (const key of keys) {
        for (const id of ids) expect(key.includes(id)).toBe(false)
      }
    }).pipe(Effect.provide(MemcachedStore.layer({ servers: server, prefix: idPrefix }))))

  // unique head, so that the dump below finds only this test's items
  const longPrefix = `${prefix}long:${"p".repeat(300)}`
  it.effect("a 300-character prefix still gives keys within 250 bytes that Memcached accepts", () =>
    Effect.gen(function*() {
      yield* wallClock
      const store = yield* SessionStore
      const key = SessionId.storageKey(SessionId.unsafeGenerate())
      const t = yield* now
      yield* store.insert(key, write("v1", t + 60_000))
      expect(yield* store.update(key, write("v2", t + 60_000), 1)).toBe(2)
      expect(yield* store.touch(key, t + 120_000)).toBe(true)
      const record = Option.getOrThrow(yield* store.load(key))
      expect([new TextDecoder().decode(record.data), record.version, record.expiresAt]).toEqual(["v2", 2, t + 120_000])
      const items = yield* Effect.promise(() => dump(`${prefix}long:`))
      expect(items.length).toBe(1)
      expect(Buffer.byteLength(items[0]!.key)).toBeLessThanOrEqual(250)
      expect(items[0]!.key.endsWith(key)).toBe(true)
      yield* store.remove(key)
      expect(yield* store.load(key)).toEqual(Option.none())
    }).pipe(Effect.provide(MemcachedStore.layer({ servers: server, prefix: longPrefix }))))

  it.scoped("an item another program wrote under the key fails with SessionStoreError, not a crash", () =>
    Effect.gen(function*() {
      yield* wallClock
      const raw = yield* rawClient
      const store = yield* SessionStore
      const key = SessionId.storageKey(SessionId.unsafeGenerate())
      yield* Effect.promise(() => raw.set(prefix + key, "not a session", { lifetime: 60 }))
      const loaded = yield* Effect.flip(store.load(key))
      expect(loaded).toBeInstanceOf(SessionStoreError)
      expect(loaded.operation).toBe("load")
      const updated = yield* Effect.flip(store.update(key, write("x", (yield* now) + 60_000), 1))
      expect(updated).toBeInstanceOf(SessionStoreError)
    }).pipe(Effect.provide(layer)))

  it.scoped("a client passed in is used and not closed with the layer", () =>
    Effect.gen(function*() {
      yield* wallClock
      const raw = yield* rawClient
      // memcache-client reconnects after shutdown(): a closed client would
      // still answer, so the call itself is watched
      const shutdown = vi.spyOn(raw, "shutdown")
      const key = SessionId.storageKey(SessionId.unsafeGenerate())
      const expiresAt = (yield* now) + 60_000
      yield* Effect.scoped(
        Effect.flatMap(Layer.build(MemcachedStore.layer({ client: raw, prefix })), (context) => {
          const store = Context.get(context, SessionStore)
          return store.insert(key, write("via client", expiresAt))
        })
      )
      expect(shutdown).not.toHaveBeenCalled()
      shutdown.mockRestore()
      // the layer's scope is closed: the client still answers, with what the store wrote through it
      const stored = yield* storedRecord(raw, prefix + key)
      expect(stored.map((r) => [new TextDecoder().decode(r.data), r.version, r.expiresAt]))
        .toEqual([["via client", 1, expiresAt]])
    }))

  it.scoped("a client the layer creates is closed with the layer", () =>
    Effect.gen(function*() {
      yield* wallClock
      // the store talks to Memcached through a proxy that counts its connections
      const proxy = yield* countingProxy(host, port)
      const scope = yield* Scope.make()
      const store = Context.get(
        yield* Layer.buildWithScope(MemcachedStore.layer({ servers: `127.0.0.1:${proxy.port}`, prefix }), scope),
        SessionStore
      )
      const key = SessionId.storageKey(SessionId.unsafeGenerate())
      yield* store.insert(key, write("x", (yield* now) + 60_000))
      expect(proxy.connections()).toBe(1)
      yield* Scope.close(scope, Exit.void)
      // closed at once by the client; Memcached itself never drops an idle connection
      expect(yield* eventually(() => proxy.connections() === 0, 5_000)).toBe(true)
    }))

  // the quickstart's `SESSION_STORE=memcached` wiring
  const fromEnv = (env: Record<string, string>) =>
    MemcachedStore.layerConfig({
      servers: Config.withDefault(Config.string("MEMCACHED_URL"), "127.0.0.1:11211"),
      prefix: Config.succeed(prefix)
    }).pipe(Layer.provide(Layer.setConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(env))))))

  it.effect("layerConfig reads the server from MEMCACHED_URL", () =>
    Effect.gen(function*() {
      yield* wallClock
      const store = yield* SessionStore
      const key = SessionId.storageKey(SessionId.unsafeGenerate())
      yield* store.insert(key, write("configured", (yield* now) + 60_000))
      expect(Option.isSome(yield* store.load(key))).toBe(true)
    }).pipe(Effect.provide(fromEnv({ MEMCACHED_URL: `memcached://${server}` }))))

  it.effect("layerConfig honours a MEMCACHED_URL where nothing listens", () =>
    Effect.gen(function*() {
      const store = yield* SessionStore
      const error = yield* Effect.flip(store.load(SessionId.storageKey(SessionId.unsafeGenerate())))
      expect(error._tag).toBe("SessionStoreError")
    }).pipe(Effect.provide(fromEnv({ MEMCACHED_URL: "127.0.0.1:1" }))))

  it.effect("a refused connection fails operations with SessionStoreError", () =>
    Effect.gen(function*() {
      const store = yield* SessionStore
      const key = SessionId.storageKey(SessionId.unsafeGenerate())
      const error = yield* Effect.flip(store.load(key))
      expect(error).toBeInstanceOf(SessionStoreError)
      expect(error.store).toBe("memcached")
      const insertError = yield* Effect.flip(store.insert(key, write("x", (yield* now) + 60_000)))
      expect(insertError._tag).toBe("SessionStoreError")
    }).pipe(Effect.provide(MemcachedStore.layer({ servers: "127.0.0.1:1", commandTimeout: "1 second" }))))
})

describe("MemcachedStore against a server that accepts and never answers", () => {
  // the connection succeeds; only commandTimeout can end the wait
  const commandTimeout = 500
  // memcache-client checks its commands every min(250, timeout / 4) ms, and
  // a loaded machine adds its own delay; the window stays well under the
  // 5 s default, so that passing shows the configured value at work
  const headroom = 2_000

  it.live("operations fail with SessionStoreError at commandTimeout", () =>
    Effect.gen(function*() {
      const silent = yield* silentServer
      // built in the test's scope: the store must outlive this line
      const store = Context.get(
        yield* Layer.build(MemcachedStore.layer({ servers: `127.0.0.1:${silent.port}`, commandTimeout })),
        SessionStore
      )
      const key = SessionId.storageKey(SessionId.unsafeGenerate())
      for (const operation of [store.load(key), store.insert(key, write("x", Date.now() + 60_000))]) {
        const [elapsed, error] = yield* Effect.timed(Effect.flip(operation))
        expect(error).toBeInstanceOf(SessionStoreError)
        expectEndedAtTimeout(Duration.toMillis(elapsed), commandTimeout, headroom)
      }
      expect(silent.connections()).toBeGreaterThan(0)
    }).pipe(Effect.scoped))

  it.live("layerConfig reads commandTimeout from Config", () =>
    Effect.gen(function*() {
      const silent = yield* silentServer
      const layer = MemcachedStore.layerConfig({
        servers: Config.string("MEMCACHED_URL"),
        commandTimeout: Config.duration("MEMCACHED_TIMEOUT")
      }).pipe(Layer.provide(Layer.setConfigProvider(ConfigProvider.fromMap(
        new Map([["MEMCACHED_URL", `127.0.0.1:${silent.port}`], ["MEMCACHED_TIMEOUT", `${commandTimeout} millis`]])
      ))))
      const store = Context.get(yield* Layer.build(layer), SessionStore)
      const [elapsed, error] = yield* Effect.timed(Effect.flip(store.load(SessionId.storageKey(SessionId.unsafeGenerate()))))
      expect(error).toBeInstanceOf(SessionStoreError)
      expectEndedAtTimeout(Duration.toMillis(elapsed), commandTimeout, headroom)
    }).pipe(Effect.scoped))
})

describe("MemcachedStore options", () => {
  it.effect("a prefix Memcached keys cannot hold fails the layer with SessionStoreError", () =>
    Effect.gen(function*() {
      const exit = yield* Effect.exit(Layer.build(MemcachedStore.layer({ prefix: "my sessions:" })).pipe(Effect.scoped))
      expect(Exit.isFailure(exit)).toBe(true)
      const error = yield* Effect.flip(Layer.build(MemcachedStore.layer({ prefix: "my sessions:" })).pipe(Effect.scoped))
      expect(error.operation).toBe("setup")
    }))

  it.effect("several servers fail the layer: memcache-client would spread one session over them", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(
        Layer.build(MemcachedStore.layer({ servers: "10.0.0.1:11211,10.0.0.2:11211" })).pipe(Effect.scoped)
      )
      expect(error).toBeInstanceOf(SessionStoreError)
      expect(error.operation).toBe("setup")
    }))
})
