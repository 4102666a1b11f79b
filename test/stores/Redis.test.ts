import { afterAll, describe, expect, it } from "@effect/vitest"
import { Cause, Config, ConfigProvider, Context, Effect, Exit, Layer, Option, Scope } from "effect"
import { Redis } from "ioredis"
import { randomBytes } from "node:crypto"
import { Socket } from "node:net"
import { performance } from "node:perf_hooks"
import { parseRecord, parseRecordText } from "../../src/core/redis.js"
import * as RedisStore from "../../src/RedisStore.js"
import { SessionStoreError } from "../../src/SessionError.js"
import * as SessionId from "../../src/SessionId.js"
import { SessionIndex, SessionStore } from "../../src/SessionStore.js"
import * as StoreConformance from "../../src/StoreConformance.js"
import { describeBackend, reachable } from "../utils/backend.js"
import { silentServer } from "../utils/tcp.js"
import { expectEndedAtTimeout, expectEndedBeforeTimeout } from "../utils/timing.js"

const host = "127.0.0.1"
const port = 6379
const available = await reachable(host, port)

// Every run writes under its own prefix, so that concurrent runs and other
// suites on the same server never see each other's keys.
const run = `test:${randomBytes(6).toString("hex")}`
const prefix = `${run}:`

const admin = new Redis({ host, port, lazyConnect: true })

const scan = async (pattern: string): Promise<Array<string>> => {
  const keys: Array<string> = []
  let cursor = "0"
  do {
    const [next, batch] = await admin.scan(cursor, "MATCH", pattern, "COUNT", 1000)
    keys.push(...batch)
    cursor = next
  } while (cursor !== "0")
  return keys
}

afterAll(async () => {
  if (!available) return
  const keys = await scan(`${run}*`)
  if (keys.length > 0) await admin.del(...keys)
  await admin.quit()
})

const now = Effect.clockWith((clock) => clock.currentTimeMillis)

describeBackend("RedisStore (single node)", {
  available,
  reason: `no Redis server answers on ${host}:${port}`
}, () => {
  const layer = RedisStore.layer({ host, port, prefix })

  describe("conformance", () => {
    for (const check of StoreConformance.checks(layer)) {
      it.effect(check.name, () => check.run)
    }
    for (const check of StoreConformance.indexChecks(layer)) {
      it.effect(check.name, () => check.run)
    }
  })

  it.effect("keys are prefix + storage key, and no raw session id appears in any key or value", () =>
    Effect.gen(function*() {
      const store = yield* SessionStore
      const index = yield* SessionIndex
      const id = SessionId.unsafeGenerate()
      const key = SessionId.storageKey(id)
      const principal = `user-${randomBytes(4).toString("hex")}`
      // the data holds no id either: the test looks for the id anywhere
      yield* store.insert(key, {
        data: new TextEncoder().encode(JSON.stringify({ cart: [1, 2] })),
        expiresAt: (yield* now) + 60_000,
        principal: Option.some(principal)
      })
      expect(yield* index.keys(principal)).toEqual([key])

      const keys = yield* Effect.promise(() => scan(`${prefix}*`))
      expect(keys).toContain(`${prefix}${key}`)
      expect(keys).toContain(`${prefix}principal:${principal}`)
      // other tests of this run share the prefix: every key of the run is checked
      for (const k of keys) {
        expect(k.includes(id)).toBe(false)
        const rest = k.slice(prefix.length)
        expect(rest.startsWith("principal:") || /^[A-Za-z0-9_-]{43}$/.test(rest), `unexpected key ${k}`).toBe(true)
        const values = rest.startsWith("principal:")
          ? yield* Effect.promise(() => admin.zrangeBuffer(k, 0, -1))
          : [yield* Effect.promise(() => admin.getBuffer(k))]
        // a key of another test may expire or be removed between the scan and
        // the read: a value that is gone holds no id
        for (const value of values) if (value !== null) expect(value.includes(id)).toBe(false)
      }

      // one string: "<version>:<expiresAt>:<principal length>:<principal><data>"
      const record = (yield* Effect.promise(() => admin.getBuffer(`${prefix}${key}`)))!
      expect(record.includes(id)).toBe(false)
      const expiresAt = Option.getOrThrow(yield* store.load(key)).expiresAt
      expect(record.toString()).toBe(
        `1:${expiresAt}:${Buffer.byteLength(principal)}:${principal}${JSON.stringify({ cart: [1, 2] })}`
      )
      const members = yield* Effect.promise(() => admin.zrange(`${prefix}principal:${principal}`, 0, -1))
      expect(members).toEqual([key])
    }).pipe(Effect.provide(layer)))

  it.effect("a record has a native TTL of expiresAt - now, refreshed by touch", () =>
    Effect.gen(function*() {
      const store = yield* SessionStore
      const key = SessionId.storageKey(SessionId.unsafeGenerate())
      const t = yield* now
      yield* store.insert(key, { data: new Uint8Array([1]), expiresAt: t + 60_000, principal: Option.none() })
      const pttl = yield* Effect.promise(() => admin.pttl(`${prefix}${key}`))
      expect(pttl).toBeGreaterThan(50_000)
      expect(pttl).toBeLessThanOrEqual(60_000)
      expect(yield* store.touch(key, t + 3_600_000)).toBe(true)
      const touched = yield* Effect.promise(() => admin.pttl(`${prefix}${key}`))
      expect(touched).toBeGreaterThan(3_500_000)
      expect(touched).toBeLessThanOrEqual(3_600_000)
    }).pipe(Effect.provide(layer)))

  it.effect("expiry is decided by the application's clock, not Redis' clock", () =>
    Effect.gen(function*() {
      const store = yield* SessionStore
      const key = SessionId.storageKey(SessionId.unsafeGenerate())
      // an hour in the past on the wall clock (and on Redis' clock), but
      // ahead of the TestClock, which starts at 0 here
      const expiresAt = Date.now() - 3_600_000
      yield* store.insert(key, { data: new Uint8Array([7]), expiresAt, principal: Option.none() })
      const record = yield* store.load(key)
      expect(Option.map(record, (r) => r.expiresAt)).toEqual(Option.some(expiresAt))
    }).pipe(Effect.provide(layer)))

  it.effect("a write whose expiry has already passed leaves nothing behind", () =>
    Effect.gen(function*() {
      const store = yield* SessionStore
      const key = SessionId.storageKey(SessionId.unsafeGenerate())
      const t = yield* now
      yield* store.insert(key, { data: new Uint8Array([1]), expiresAt: t, principal: Option.none() })
      expect(yield* Effect.promise(() => admin.exists(`${prefix}${key}`))).toBe(0)
      expect(Option.isNone(yield* store.load(key))).toBe(true)
    }).pipe(Effect.provide(layer)))

  it.effect("principals and data with colons, multibyte characters and arbitrary bytes round-trip", () =>
    Effect.gen(function*() {
      const store = yield* SessionStore
      const index = yield* SessionIndex
      const t = yield* now
      const principal = `tenant:a:ü🎉:${randomBytes(4).toString("hex")}`
      const data = new Uint8Array([58, 0, 255, 58, 49, 58, 0xc3])
      const key = SessionId.storageKey(SessionId.unsafeGenerate())
      yield* store.insert(key, { data, expiresAt: t + 60_000, principal: Option.some(principal) })
      const loaded = Option.getOrThrow(yield* store.load(key))
      expect([...loaded.data]).toEqual([...data])
      expect(loaded.principal).toEqual(Option.some(principal))
      expect(yield* index.keys(principal)).toEqual([key])
      const next = yield* store.update(key, { data: new Uint8Array([]), expiresAt: t + 60_000, principal: Option.none() }, 1)
      expect(next).toBe(2)
      const emptied = Option.getOrThrow(yield* store.load(key))
      expect(emptied.data.length).toBe(0)
      expect(emptied.principal).toEqual(Option.none())
      expect(yield* store.touch(key, t + 120_000)).toBe(true)
      const touched = Option.getOrThrow(yield* store.load(key))
      expect(touched.expiresAt).toBe(t + 120_000)
      expect(touched.version).toBe(2)
    }).pipe(Effect.provide(layer)))

  it("record values are parsed strictly: anything malformed is not a record", () => {
    const parse = (text: string) => parseRecord(Buffer.from(text))
    expect(parse("7:1000:-:{}")).toEqual({ version: 7, expiresAt: 1000, principal: undefined, data: new Uint8Array(Buffer.from("{}")) })
    expect(parse("1:1000.5:2:ab")).toEqual({ version: 1, expiresAt: 1000.5, principal: "ab", data: new Uint8Array() })
    expect(parse("1:1000:3:a:b:c")?.principal).toBe("a:b")
    for (const bad of ["", "1", "1:2", "1:2:-", "0:5:-:x", "x:5:-:x", "1.5:5:-:x", ":5:-:x", "1::-:x", "1:zz:-:x", "1:5:9:ab", "1:5:-1:x", "1:5:x:y"]) {
      expect(parse(bad), bad).toBeUndefined()
    }
  })

  it("a value read as a string is parsed the same way, and sent back to be read as bytes when a string cannot hold it exactly", () => {
    expect(parseRecordText("7:1000:-:{}")).toEqual({ version: 7, expiresAt: 1000, principal: undefined, text: "{}" })
    expect(parseRecordText("1:1000:3:a:b:c")).toEqual({ version: 1, expiresAt: 1000, principal: "a:b", text: ":c" })
    // a principal's length is in bytes: a non-ASCII one is read from the bytes
    expect(parseRecordText("1:1000:2:ü{}")).toBe("bytes")
    // a replacement character may stand for bytes that are not UTF-8
    expect(parseRecordText("1:1000:-:{\"a\":\"\ufffd\"}")).toBe("bytes")
    for (const bad of ["", "1", "1:2", "1:2:-", "0:5:-:x", "x:5:-:x", "1.5:5:-:x", ":5:-:x", "1::-:x", "1:zz:-:x", "1:5:-1:x", "1:5:x:y"]) {
      expect(parseRecordText(bad), bad).toBeUndefined()
    }
  })

  it.effect("text and bytes read back exactly on every path: text, a replacement character in text, a non-ASCII principal", () =>
    Effect.gen(function*() {
      const store = yield* SessionStore
      const t = yield* now
      const utf8 = new TextEncoder()
      const cases: ReadonlyArray<readonly [string, Option.Option<string>]> = [
        [JSON.stringify({ v: 1, data: { name: "plain" } }), Option.none()],
        [JSON.stringify({ v: 1, data: { name: "\ufffd is a character too" } }), Option.none()],
        [JSON.stringify({ v: 1, data: { name: "caf\u00e9 \ud83c\udf89" } }), Option.some("\u00fcser-\ud83c\udf89")]
      ]
      for (const [text, principal] of cases) {
        const key = SessionId.storageKey(SessionId.unsafeGenerate())
        yield* store.insert(key, { data: utf8.encode(text), expiresAt: t + 60_000, principal })
        const loaded = Option.getOrThrow(yield* store.load(key))
        expect([...loaded.data]).toEqual([...utf8.encode(text)])
        if (loaded.text !== undefined) expect(loaded.text).toBe(text)
        expect(loaded.principal).toEqual(principal)
      }
      // the common case is handed over as text
      const key = SessionId.storageKey(SessionId.unsafeGenerate())
      yield* store.insert(key, { data: utf8.encode("{}"), expiresAt: t + 60_000, principal: Option.some("ascii") })
      expect(Option.getOrThrow(yield* store.load(key)).text).toBe("{}")
    }).pipe(Effect.provide(layer)))

  it.effect("a record that is not a session fails load with SessionStoreError", () =>
    Effect.gen(function*() {
      const store = yield* SessionStore
      const key = SessionId.storageKey(SessionId.unsafeGenerate())
      yield* Effect.promise(() => admin.set(`${prefix}${key}`, "not a session", "PX", 60_000))
      const result = yield* Effect.flip(store.load(key))
      expect(result).toBeInstanceOf(SessionStoreError)
      expect(result.operation).toBe("load")
      expect(result.message).toMatch(/not a session record/)
      // a key of another type entirely
      const other = SessionId.storageKey(SessionId.unsafeGenerate())
      yield* Effect.promise(() => admin.hset(`${prefix}${other}`, "v", "1"))
      yield* Effect.promise(() => admin.pexpire(`${prefix}${other}`, 60_000))
      const wrongType = yield* Effect.flip(store.load(other))
      expect(wrongType).toBeInstanceOf(SessionStoreError)
      expect(wrongType.message).toMatch(/WRONGTYPE/)
    }).pipe(Effect.provide(layer)))

  // The principal index itself (a sorted set pruned by score, trimmed by
  // keys, emptied by removeAll) is tested in RedisScale.test.ts.

  it.effect("a client passed in is used and not closed; a client the layer creates is closed with it", () =>
    Effect.gen(function*() {
      const connectionName = `effect-session-test-${randomBytes(4).toString("hex")}`
      const own = new Redis({ host, port })
      yield* Effect.addFinalizer(() => Effect.promise(() => own.quit()))

      const scope = yield* Scope.make()
      const context = yield* Layer.buildWithScope(RedisStore.layer({ client: own, prefix }), scope)
      const store = Context.get(context, SessionStore)
      const key = SessionId.storageKey(SessionId.unsafeGenerate())
      yield* store.insert(key, { data: new Uint8Array([1]), expiresAt: (yield* now) + 60_000, principal: Option.none() })
      yield* Scope.close(scope, Exit.void)
      expect(own.status).toBe("ready")
      expect(yield* Effect.promise(() => own.exists(`${prefix}${key}`))).toBe(1)

      const names = () => admin.client("LIST").then((list) => String(list))
      const created = yield* Scope.make()
      yield* Layer.buildWithScope(RedisStore.layer({ host, port, prefix, connectionName }), created)
      expect(yield* Effect.promise(names)).toContain(`name=${connectionName}`)
      yield* Scope.close(created, Exit.void)
      expect(yield* Effect.promise(names)).not.toContain(`name=${connectionName}`)
    }).pipe(Effect.scoped))

  it.live("the layer's own client sends the commands of a busy turn in one write, and one at a time each at once", () =>
    Effect.gen(function*() {
      const store = Context.get(yield* Layer.build(RedisStore.layer({ host, port, prefix })), SessionStore)
      const t = yield* now
      const keys = Array.from({ length: 200 }, () => SessionId.storageKey(SessionId.unsafeGenerate()))
      // the system calls that write to Redis, counted on every socket to it
      // (only this layer's is used meanwhile)
      const writes = { count: 0 }
      const socket = Socket.prototype as unknown as Record<"_write" | "_writev", (this: Socket, ...args: Array<unknown>) => void>
      const original = { _write: socket._write, _writev: socket._writev }
      for (const method of ["_write", "_writev"] as const) {
        socket[method] = function(this: Socket, ...args) {
          if (this.remotePort === port) writes.count++
          return original[method].apply(this, args)
        }
      }
      yield* Effect.addFinalizer(() => Effect.sync(() => Object.assign(socket, original)))

      // one at a time: a write per command
      for (const [i, key] of keys.slice(0, 20).entries()) {
        yield* store.insert(key, { data: new Uint8Array([i]), expiresAt: t + 60_000, principal: Option.none() })
      }
      expect(writes.count).toBe(20)

      // 200 at once: the first command is written at once, the rest of the
      // turn's together; every reply still reaches its own operation
      writes.count = 0
      yield* Effect.forEach(
        keys.slice(20),
        (key, i) => store.insert(key, { data: new Uint8Array([20 + i]), expiresAt: t + 60_000, principal: Option.none() }),
        { concurrency: "unbounded", discard: true }
      )
      expect(writes.count).toBeLessThan(10)
      writes.count = 0
      const loaded = yield* Effect.forEach(keys, (key) => store.load(key), { concurrency: "unbounded" })
      expect(writes.count).toBeLessThan(10)
      expect(loaded.map((record) => Option.getOrThrow(record).data[0])).toEqual(keys.map((_, i) => i))
    }).pipe(Effect.scoped))

  it.effect("a client call that throws fails the operation; a reply of the wrong shape is a defect, not a hang", () =>
    Effect.gen(function*() {
      // a passed-in client whose `get` breaks its contract in the two ways
      // ioredis itself never does: a synchronous throw, a reply that is not a string
      const client = new Redis({ host, port })
      yield* Effect.addFinalizer(() => Effect.promise(() => client.quit()))
      const commandTimeout = 2_000
      const store = yield* Effect.provide(SessionStore, RedisStore.layer({ client, prefix, commandTimeout }))
      const key = SessionId.storageKey(SessionId.unsafeGenerate())
      const get = client.get
      const started = performance.now()

      client.get = (() => {
        throw new Error("the client refused the command")
      }) as typeof client.get
      const thrown = yield* Effect.flip(store.load(key))
      expect(thrown).toBeInstanceOf(SessionStoreError)
      expect(thrown.operation).toBe("load")
      expect(String((thrown as SessionStoreError).cause)).toMatch(/the client refused the command/)

      client.get = (() => Promise.resolve(42)) as unknown as typeof client.get
      const wrongShape = yield* Effect.exit(store.load(key))
      expect(Exit.isFailure(wrongShape) && Cause.isDie(wrongShape.cause)).toBe(true)

      // both answered at once, not at the command timeout, and the store still works
      expectEndedBeforeTimeout(performance.now() - started, commandTimeout)
      client.get = get
      expect(Option.isNone(yield* store.load(key))).toBe(true)
    }).pipe(Effect.scoped))

  it.effect("layerConfig reads the options from Config", () =>
    Effect.gen(function*() {
      const store = yield* SessionStore
      const key = SessionId.storageKey(SessionId.unsafeGenerate())
      yield* store.insert(key, { data: new Uint8Array([5]), expiresAt: (yield* now) + 60_000, principal: Option.none() })
      expect(yield* Effect.promise(() => admin.exists(`${run}-cfg:${key}`))).toBe(1)
    }).pipe(
      Effect.provide(RedisStore.layerConfig({
        url: Config.string("REDIS_URL_FOR_THIS_TEST_IS_UNSET").pipe(Config.withDefault(`redis://${host}:${port}`)),
        prefix: Config.succeed(`${run}-cfg:`)
      }))
    ))

  it.live("layerConfig's commandTimeout ends an operation a server never answers", () =>
    Effect.gen(function*() {
      // a server that accepts and stays silent; without the ready check and
      // the client-info handshake (both wait for replies) ioredis is ready on
      // connect and sends the command, and only the timeout ends the wait
      const silent = yield* silentServer
      const commandTimeout = 300
      const layer = RedisStore.layerConfig({
        url: Config.string("REDIS_URL"),
        enableReadyCheck: Config.succeed(false),
        disableClientInfo: Config.succeed(true),
        commandTimeout: Config.duration("SESSION_REDIS_TIMEOUT")
      }).pipe(Layer.provide(Layer.setConfigProvider(ConfigProvider.fromMap(
        new Map([["REDIS_URL", `redis://127.0.0.1:${silent.port}`], ["SESSION_REDIS_TIMEOUT", `${commandTimeout} millis`]])
      ))))
      // built in the test's scope: the store must outlive this line
      const store = Context.get(yield* Layer.build(layer), SessionStore)
      const started = performance.now()
      const error = yield* Effect.flip(store.load(SessionId.storageKey(SessionId.unsafeGenerate())))
      const elapsed = performance.now() - started
      expect(error).toBeInstanceOf(SessionStoreError)
      expect(String(error.cause)).toContain(`did not answer within ${commandTimeout} ms`)
      expectEndedAtTimeout(elapsed, commandTimeout)
    }).pipe(Effect.scoped))
})
