import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { Context, Effect, Layer, Option, TestClock } from "effect"
import { Cluster, Redis } from "ioredis"
import { randomBytes } from "node:crypto"
import * as RedisStore from "../../src/RedisStore.js"
import * as SessionId from "../../src/SessionId.js"
import { SessionIndex, SessionStore } from "../../src/SessionStore.js"
import { describeBackend, reachable } from "../utils/backend.js"
import {
  type RedisServer,
  monitorCommands,
  redisBinaries,
  removeDir,
  startRedisCluster,
  startRedisServerOnFreePort,
  tempDir
} from "../utils/redisServer.js"

// Issue 15, item 2: a principal's index costs O(1) store work per insert
// (a sorted set scored by expiry, pruned by score), and keys/removeAll cost
// what the principal's sessions cost, in few round trips. The index stays
// exact: a session extended by touch or update is never pruned while live.

const host = "127.0.0.1"
const minute = 60_000
const now = Effect.clockWith((clock) => clock.currentTimeMillis)
const freshKey = () => SessionId.storageKey(SessionId.unsafeGenerate())
const freshPrincipal = () => `user-${randomBytes(4).toString("hex")}`
const write = (expiresAt: number, principal?: string) => ({
  data: new TextEncoder().encode("{}"),
  expiresAt,
  principal: Option.fromNullable(principal)
})
const sorted = (keys: ReadonlyArray<string>) => [...keys].sort()
const services = Effect.all({ store: SessionStore, index: SessionIndex })
const wallClock = Effect.suspend(() => TestClock.setTime(Date.now()))

/**
 * What every topology must do; `admin` sees the keys behind the store's
 * back (a node client, or the cluster client).
 */
const behaviour = (
  layer: () => Layer.Layer<SessionStore | SessionIndex, unknown>,
  admin: () => Redis | Cluster,
  prefix: string
) => {
  const indexKey = (principal: string) => `${prefix}principal:${principal}`
  const run = <A, E>(effect: Effect.Effect<A, E, SessionStore | SessionIndex>) =>
    Effect.zipRight(wallClock, Effect.provide(effect, Layer.suspend(layer)))

  it.effect("a write drops the expired members of its principal's index by score", () =>
    run(Effect.gen(function*() {
      const { store } = yield* services
      const principal = freshPrincipal()
      const t = yield* now
      for (let i = 0; i < 40; i++) yield* store.insert(freshKey(), write(t + 1000, principal))
      expect(yield* Effect.promise(() => admin().zcard(indexKey(principal)))).toBe(40)
      yield* TestClock.adjust(2000)
      const key = freshKey()
      yield* store.insert(key, write((yield* now) + minute, principal))
      expect(yield* Effect.promise(() => admin().zrange(indexKey(principal), 0, -1))).toEqual([key])
    })))

  it.effect("a session kept alive by touch or update stays listed after the expiry it was inserted with", () =>
    run(Effect.gen(function*() {
      const { index, store } = yield* services
      const principal = freshPrincipal()
      const t = yield* now
      const touched = freshKey()
      const updated = freshKey()
      const shortened = freshKey()
      yield* store.insert(touched, write(t + minute, principal))
      yield* store.insert(updated, write(t + minute, principal))
      yield* store.insert(shortened, write(t + 10 * minute, principal))
      expect(yield* store.touch(touched, t + 10 * minute)).toBe(true)
      yield* store.update(updated, write(t + 10 * minute, principal), 1)
      // a shorter expiry never lowers the score (a concurrent longer touch
      // might have raised it): the index may hold a member longer, never less
      yield* store.update(shortened, write(t + 2 * minute, principal), 1)
      yield* TestClock.adjust(5 * minute)
      // a write prunes by score: past the first expiry, before the second
      yield* store.insert(freshKey(), write((yield* now) + minute, principal))
      const listed = yield* index.keys(principal)
      expect(listed).toContain(touched)
      expect(listed).toContain(updated)
      expect(listed).not.toContain(shortened)
      expect(listed.length).toBe(3)
      expect(yield* index.removeAll(principal)).toBe(3)
      expect(Option.isNone(yield* store.load(touched))).toBe(true)
      expect(yield* index.keys(principal)).toEqual([])
    })))

  it.effect("keys drops the members whose sessions were removed or moved; removeAll empties the index", () =>
    run(Effect.gen(function*() {
      const { index, store } = yield* services
      const principal = freshPrincipal()
      const t = yield* now
      const keys = Array.from({ length: 6 }, freshKey)
      for (const key of keys) yield* store.insert(key, write(t + minute, principal))
      yield* store.remove(keys[0]!)
      yield* store.update(keys[1]!, write(t + minute, freshPrincipal()), 1)
      yield* store.update(keys[2]!, write(t + minute), 1)
      expect(yield* Effect.promise(() => admin().zcard(indexKey(principal)))).toBe(6)
      expect(sorted(yield* index.keys(principal))).toEqual(sorted(keys.slice(3)))
      expect(sorted(yield* Effect.promise(() => admin().zrange(indexKey(principal), 0, -1)))).toEqual(
        sorted(keys.slice(3))
      )
      expect(yield* index.removeAll(principal)).toBe(3)
      expect(yield* Effect.promise(() => admin().exists(indexKey(principal)))).toBe(0)
      // the moved and the anonymous sessions are left alone
      expect(Option.isSome(yield* store.load(keys[1]!))).toBe(true)
      expect(Option.isSome(yield* store.load(keys[2]!))).toBe(true)
    })))

  it.effect("the index lives as long as its longest session: its native TTL follows touch", () =>
    run(Effect.gen(function*() {
      const { store } = yield* services
      const principal = freshPrincipal()
      const t = yield* now
      const key = freshKey()
      yield* store.insert(key, write(t + minute, principal))
      yield* store.insert(freshKey(), write(t + 2 * minute, principal))
      const ttl = yield* Effect.promise(() => admin().pttl(indexKey(principal)))
      expect(ttl).toBeGreaterThan(minute)
      expect(ttl).toBeLessThanOrEqual(2 * minute)
      yield* store.touch(key, t + 30 * minute)
      expect(yield* Effect.promise(() => admin().pttl(indexKey(principal)))).toBeGreaterThan(29 * minute)
    })))

  it.effect("1,200 sessions of one principal (several batches) are listed and revoked exactly", () =>
    run(Effect.gen(function*() {
      const { index, store } = yield* services
      const principal = freshPrincipal()
      const t = yield* now
      const keys = Array.from({ length: 1200 }, freshKey)
      yield* Effect.forEach(keys, (key) => store.insert(key, write(t + minute, principal)), {
        concurrency: 50,
        discard: true
      })
      const gone = keys.filter((_, i) => i % 3 === 0)
      yield* Effect.forEach(gone, (key) => store.remove(key), { concurrency: 50, discard: true })
      const live = keys.filter((_, i) => i % 3 !== 0)
      expect(sorted(yield* index.keys(principal))).toEqual(sorted(live))
      expect(yield* index.removeAll(principal)).toBe(live.length)
      expect(yield* index.keys(principal)).toEqual([])
    })), 60_000)

  it.effect("an index written by an earlier version (a plain set) is converted in place and keeps working", () =>
    run(Effect.gen(function*() {
      const { index, store } = yield* services
      const principal = freshPrincipal()
      const t = yield* now
      // what the earlier layout left: a set of storage keys, one session
      // live, one removed since, one junk member
      const live = freshKey()
      const removed = freshKey()
      yield* Effect.promise(() =>
        admin().set(`${prefix}${live}`, `1:${t + minute}:${Buffer.byteLength(principal)}:${principal}{}`, "PX", minute)
      )
      yield* Effect.promise(() => admin().sadd(indexKey(principal), live, removed, "not-a-storage-key"))
      const added = freshKey()
      yield* store.insert(added, write(t + minute, principal))
      expect(yield* Effect.promise(() => admin().type(indexKey(principal)))).toBe("zset")
      expect(sorted(yield* index.keys(principal))).toEqual(sorted([live, added]))
      expect(sorted(yield* Effect.promise(() => admin().zrange(indexKey(principal), 0, -1)))).toEqual(
        sorted([live, added])
      )
      // a converted member's expiry is unknown: the index keeps no TTL
      expect(yield* Effect.promise(() => admin().pttl(indexKey(principal)))).toBe(-1)
      expect(yield* index.removeAll(principal)).toBe(2)
      // a set that keys reads first is converted too
      const other = freshPrincipal()
      yield* Effect.promise(() => admin().sadd(indexKey(other), removed))
      expect(yield* index.keys(other)).toEqual([])
      expect(yield* Effect.promise(() => admin().exists(indexKey(other)))).toBe(0)
    })))
}

// ---------------------------------------------------------------- single node

const sharedPrefix = `test:scale:${randomBytes(6).toString("hex")}:`
const sharedAvailable = await reachable(host, 6379)

describeBackend("RedisStore index (single node)", {
  available: sharedAvailable,
  reason: `no Redis server on ${host}:6379`
}, () => {
  const admin = new Redis({ host, port: 6379, lazyConnect: true })
  afterAll(async () => {
    let cursor = "0"
    do {
      const [next, keys] = await admin.scan(cursor, "MATCH", `${sharedPrefix}*`, "COUNT", 1000)
      if (keys.length > 0) await admin.del(...keys)
      cursor = next
    } while (cursor !== "0")
    await admin.quit()
  })
  behaviour(() => RedisStore.layer({ host, port: 6379, prefix: sharedPrefix }), () => admin, sharedPrefix)
})

// -------------------------------------------- round trips, counted with MONITOR

const binaries = redisBinaries()

describeBackend("RedisStore index: commands per operation (private redis-server)", binaries, () => {
  let server: RedisServer | undefined
  let dir = ""
  let port = 0
  beforeAll(async () => {
    dir = tempDir("redis-scale")
    server = await startRedisServerOnFreePort(dir, () => ["--save", "", "--appendonly", "no"])
    port = server.port
  })
  afterAll(async () => {
    await server?.stop("SIGKILL")
    if (dir !== "") removeDir(dir)
  })

  it.live("an insert costs the same commands whatever its principal holds; keys and removeAll two round trips", () =>
    Effect.gen(function*() {
      // every command seen while an effect ran: those a script ran are
      // marked "lua:" (work on the server, not round trips)
      const commandsOf = yield* monitorCommands(host, port)

      const context = yield* Layer.build(RedisStore.layer({ host, port, prefix: "scale:" }))
      const store = Context.get(context, SessionStore)
      const index = Context.get(context, SessionIndex)
      const t = yield* now
      const principal = "many"
      // warm the script cache, as in a running application
      const warm = freshKey()
      yield* store.insert(warm, write(t + minute, "warm"))
      yield* store.touch(warm, t + 2 * minute)
      yield* index.keys("warm")

      yield* Effect.forEach(Array.from({ length: 10 }, freshKey), (key) => store.insert(key, write(t + minute, principal)))
      const atTen = yield* commandsOf(store.insert(freshKey(), write(t + minute, principal)))
      yield* Effect.forEach(Array.from({ length: 300 }, freshKey), (key) => store.insert(key, write(t + minute, principal)), {
        concurrency: 20
      })
      const atThreeHundred = yield* commandsOf(store.insert(freshKey(), write(t + minute, principal)))
      yield* Effect.log(`an insert with a principal: ${atThreeHundred.join(" ")}`)
      expect(atThreeHundred).toEqual(atTen)
      expect(atThreeHundred.filter((command) => !command.startsWith("lua:"))).toEqual(["evalsha"])
      // the record's own GET only: no member's record is read
      expect(atThreeHundred.filter((command) => command === "lua:get")).toEqual(["lua:get"])
      expect(atThreeHundred.some((command) => command === "lua:smembers")).toBe(false)

      const listing = yield* commandsOf(index.keys(principal))
      expect(listing.filter((command) => !command.startsWith("lua:"))).toEqual(["evalsha", "evalsha"])
      const revoking = yield* commandsOf(index.removeAll(principal))
      expect(revoking.filter((command) => !command.startsWith("lua:"))).toEqual(["evalsha", "evalsha"])
      // a touch of a session with a principal raises its index: a second script
      const key = freshKey()
      yield* store.insert(key, write(t + minute, principal))
      const touching = yield* commandsOf(store.touch(key, t + 10 * minute))
      expect(touching.filter((command) => !command.startsWith("lua:"))).toEqual(["evalsha", "evalsha"])
      const anonymous = freshKey()
      yield* store.insert(anonymous, write(t + minute))
      const touchingAnonymous = yield* commandsOf(store.touch(anonymous, t + 10 * minute))
      expect(touchingAnonymous.filter((command) => !command.startsWith("lua:"))).toEqual(["evalsha"])
    }).pipe(Effect.scoped), 60_000)
})

// ------------------------------------------------------------------- cluster

describeBackend("RedisStore index (Redis Cluster, 3 private nodes)", binaries, () => {
  const prefix = `scale:${randomBytes(4).toString("hex")}:`
  const servers: Array<RedisServer> = []
  let dir = ""
  let cluster: Cluster | undefined

  beforeAll(async () => {
    dir = tempDir("redis-scale-cluster")
    cluster = await startRedisCluster(dir, 3, servers)
  }, 60_000)

  afterAll(async () => {
    await cluster?.quit().catch(() => cluster?.disconnect())
    for (const server of servers) await server.stop("SIGKILL")
    if (dir !== "") removeDir(dir)
  })

  describe("behaviour", () => {
    behaviour(() => RedisStore.layer({ client: cluster!, prefix }), () => cluster!, prefix)
  })
})
