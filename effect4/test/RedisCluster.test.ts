/**
 * The Redis store on a Redis Cluster of three private masters this file
 * starts (and kills by pid when it ends): the conformance checks, a
 * principal's sessions spread over the nodes listed and revoked together,
 * and the session over HTTP. Records are keyed without a hash tag, so they
 * spread over the slots; a principal's index lives in its own slot and is
 * raised by a second script (the core's layout, `src/core/redis.ts`).
 * Without `redis-server` the suite is skipped and says so; with
 * SESSION_TEST_REQUIRE_ALL=1 it fails instead.
 */
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { Context, Effect, Layer, Option, Schema } from "effect"
import { HttpRouter, HttpServerResponse } from "effect/http"
import { randomBytes } from "node:crypto"
import * as Ids from "../../src/core/ids.js"
import * as RedisStore from "../src/RedisStore.js"
import * as Session from "../src/Session.js"
import type { StorageKey } from "../src/SessionId.js"
import { SessionIndex, SessionStore } from "../src/SessionStore.js"
import * as StoreConformance from "../src/StoreConformance.js"
import { type RedisCluster, missingBinaries, startRedisCluster } from "./utils/redisCluster.js"
import { browser, get, serve } from "./utils/server.js"

const missing = missingBinaries()
const required = process.env.SESSION_TEST_REQUIRE_ALL === "1"
const suite = `RedisStore on a Redis Cluster (3 private nodes)${missing === undefined ? "" : ` (skipped: ${missing})`}`
if (missing !== undefined) {
  if (required) describe(suite, () => it("redis-server is installed", () => expect.fail(`${missing} (SESSION_TEST_REQUIRE_ALL=1)`)))
  else console.warn(`[effect-session tests] SKIPPED ${suite}`)
}

const prefix = `e4cluster:${randomBytes(4).toString("hex")}:`
const storageKey = Ids.storageKeyFunction()
const freshKey = () => storageKey(Ids.generateId()) as StorageKey

class Counter extends Session.Tag<Counter>()("test/ClusterCounter", {
  count: Schema.Int.pipe(Schema.withDecodingDefault(Effect.succeed(0)))
}) {}

describe.skipIf(missing !== undefined)(suite, () => {
  let cluster: RedisCluster | undefined
  beforeAll(async () => {
    cluster = await startRedisCluster(3)
  }, 120_000)
  afterAll(() => cluster?.stop())

  // built per test, once beforeAll has started the cluster
  const StoreLive = Layer.suspend(() => RedisStore.layer({ client: cluster!.client, prefix }))

  /** How many of the given records each master holds. */
  const perNode = (keys: ReadonlyArray<StorageKey>) =>
    Effect.promise(() =>
      Promise.all(cluster!.client.nodes("master").map(async (node) => {
        const held = await Promise.all(keys.map((key) => node.exists(`${prefix}${key}`).catch(() => 0)))
        return held.reduce((sum, n) => sum + n, 0)
      }))
    )

  describe("conformance", () => {
    // 200 racing writers: the cluster's scripts and slots under load
    for (const check of StoreConformance.checks(StoreLive, { concurrency: 200 })) {
      it.effect(check.name, () => check.run, 120_000)
    }
    for (const check of StoreConformance.indexChecks(StoreLive)) it.effect(check.name, () => check.run)
  })

  it.live("a principal's sessions on different nodes are listed and revoked together", () =>
    Effect.gen(function*() {
      const store = yield* SessionStore
      const principal = `spread-${randomBytes(4).toString("hex")}`
      const keys = Array.from({ length: 30 }, freshKey)
      const other = freshKey()
      const write = (principal: string) => ({ text: "{}", expiresAt: Date.now() + 60_000, principal: Option.some(principal) })
      yield* Effect.forEach(keys, (key) => store.insert(key, write(principal)), { concurrency: 10 })
      yield* store.insert(other, write(`${principal}-other`))
      // the records really are on more than one node
      const counts = yield* perNode(keys)
      expect(counts.reduce((a, b) => a + b, 0)).toBe(30)
      expect(counts.filter((n) => n > 0).length).toBeGreaterThanOrEqual(2)

      expect([...(yield* Session.list(principal))].sort()).toEqual([...keys].sort())
      expect(yield* Session.revokeAll(principal)).toBe(30)
      expect(yield* Session.list(principal)).toEqual([])
      for (const key of keys) expect(Option.isNone(yield* store.load(key))).toBe(true)
      expect(yield* perNode(keys)).toEqual([0, 0, 0])
      // another principal's session stays
      expect(Option.isSome(yield* store.load(other))).toBe(true)
    }).pipe(Effect.provide(StoreLive)))

  it.live("over HTTP: 200 concurrent increments of one session all count; revokeAll logs out every browser of a user", () =>
    Effect.gen(function*() {
      const state = Effect.gen(function*() {
        const count = yield* Counter.get("count")
        const principal = yield* Counter.principal
        return HttpServerResponse.text(`${count} ${Option.getOrElse(principal, () => "-")}`)
      })
      const user = Effect.map(HttpRouter.params, (params) => params.user ?? "")
      const sessionRoutes = Layer.mergeAll(
        HttpRouter.add("GET", "/read", state),
        HttpRouter.add("GET", "/incr", Effect.andThen(Counter.update("count", (n) => n + 1), state)),
        HttpRouter.add("GET", "/login/:user", Effect.andThen(Effect.flatMap(user, (u) => Counter.login(u)), state))
      ).pipe(Layer.provide(Counter.middleware({ cookie: { secure: false } }).layer))
      // a handler's requirements are the request's: the index is given to it
      const stores = yield* Layer.build(StoreLive)
      const revoke = HttpRouter.add("POST", "/revoke/:user", Effect.flatMap(user, (u) =>
        Effect.map(Session.revokeAll(u).pipe(
          Effect.provideService(SessionIndex, Context.get(stores, SessionIndex)),
          Effect.provideService(SessionStore, Context.get(stores, SessionStore))
        ), (n) =>
          HttpServerResponse.text(String(n)))))
      const base = yield* serve(Layer.mergeAll(sessionRoutes, revoke).pipe(Layer.provide(Layer.succeedContext(stores))))

      const counter = browser(base)
      yield* counter.get("/incr")
      yield* Effect.forEach(Array.from({ length: 200 }), () => get(`${base}/incr`, counter.cookie), { concurrency: "unbounded" })
      expect((yield* counter.get("/read")).body).toBe("201 -")

      const name = `alice-${randomBytes(4).toString("hex")}`
      const alices = [browser(base), browser(base), browser(base), browser(base)]
      for (const alice of alices) expect((yield* alice.get(`/login/${name}`)).body).toBe(`0 ${name}`)
      const bob = browser(base)
      yield* bob.get(`/login/bob-${name}`)
      const revoked = yield* get(`${base}/revoke/${name}`, undefined, "POST")
      expect([revoked.status, revoked.body]).toEqual([200, "4"])
      for (const alice of alices) expect((yield* get(`${base}/read`, alice.cookie)).body).toBe("0 -")
      expect((yield* bob.get("/read")).body).toBe(`0 bob-${name}`)
    }).pipe(Effect.scoped), 120_000)

  it.effect("a prefix with a hash tag is refused on a cluster", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(Layer.build(RedisStore.layer({ client: cluster!.client, prefix: "{app}:session:" })))
      expect(error._tag).toBe("SessionStoreError")
      expect(error.operation).toBe("setup")
      expect(error.message).toMatch(/hash tag/)
    }).pipe(Effect.scoped))

  it.effect("the layer leaves a cluster client passed in open", () =>
    Effect.gen(function*() {
      yield* Effect.scoped(Layer.build(StoreLive))
      expect(cluster!.client.status).toBe("ready")
      expect(yield* Effect.promise(() => cluster!.client.ping())).toBe("PONG")
    }))
})

describe.skipIf(missing !== undefined)(`${suite}: a crashed node`, () => {
  let cluster: RedisCluster | undefined
  beforeAll(async () => {
    cluster = await startRedisCluster(3)
  }, 120_000)
  afterAll(() => cluster?.stop())

  it.live("an operation on a crashed node's slot fails with a SessionStoreError, not a hang; the other nodes' sessions still load", () =>
    Effect.gen(function*() {
      const client = cluster!.client
      const { store } = yield* RedisStore.make({ client, prefix, commandTimeout: "1 second" })
      const keys = Array.from({ length: 12 }, freshKey)
      for (const key of keys) yield* store.insert(key, { text: "{}", expiresAt: Date.now() + 60_000, principal: Option.none() })
      // the node holding the first record, and a record held elsewhere
      const holders = yield* Effect.promise(() =>
        Promise.all(keys.map(async (key) => {
          // a node asked for a key of another slot answers MOVED
          for (const node of client.nodes("master")) if (await node.exists(`${prefix}${key}`).catch(() => 0) === 1) return node.options.port
          return undefined
        }))
      )
      const elsewhere = keys.find((_, i) => holders[i] !== holders[0])!
      yield* Effect.promise(() => cluster!.crash(holders[0]!))
      const error = yield* Effect.flip(store.load(keys[0]!))
      expect(error._tag).toBe("SessionStoreError")
      expect(error.message).toMatch(/^redis store: load failed: /)
      expect(Option.isSome(yield* store.load(elsewhere))).toBe(true)
    }).pipe(Effect.scoped), 60_000)
})
