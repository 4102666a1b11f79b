import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { Effect, Layer, Option } from "effect"
import { Cluster } from "ioredis"
import { randomBytes } from "node:crypto"
import * as RedisStore from "../../src/RedisStore.js"
import { SessionStoreError } from "../../src/SessionError.js"
import * as SessionId from "../../src/SessionId.js"
import { SessionStore } from "../../src/SessionStore.js"
import * as StoreConformance from "../../src/StoreConformance.js"
import { describeBackend } from "../utils/backend.js"
import {
  type RedisServer,
  redisBinaries,
  removeDir,
  startRedisCluster,
  tempDir
} from "../utils/redisServer.js"

const nodeCount = 3
const prefix = `test:${randomBytes(6).toString("hex")}:`

const now = Effect.clockWith((clock) => clock.currentTimeMillis)
const freshKey = () => SessionId.storageKey(SessionId.unsafeGenerate())
const bytes = (s: string) => new TextEncoder().encode(s)

describeBackend("RedisStore (Redis Cluster, 3 private nodes)", redisBinaries(), () => {
  const servers: Array<RedisServer> = []
  let dir = ""
  let cluster: Cluster | undefined

  beforeAll(async () => {
    dir = tempDir("redis-cluster")
    cluster = await startRedisCluster(dir, nodeCount, servers)
  })

  afterAll(async () => {
    if (cluster !== undefined) await cluster.quit().catch(() => cluster?.disconnect())
    for (const server of servers) await server.stop("SIGKILL")
    if (dir !== "") removeDir(dir)
  })

  // built per check, after beforeAll has started the cluster
  const layer = Layer.suspend(() => RedisStore.layer({ client: cluster!, prefix }))

  describe("conformance", () => {
    // 200 racing writers (increments with a principal, inserts) where the
    // single-node suite runs 50: the cluster's scripts and slots under load
    for (const check of StoreConformance.checks(layer, { concurrency: 200 })) {
      it.effect(check.name, () => check.run, 120_000)
    }
    for (const check of StoreConformance.indexChecks(layer)) {
      it.effect(check.name, () => check.run)
    }
  })

  it.effect("sessions are spread over the cluster's nodes, not kept in one slot", () =>
    Effect.gen(function*() {
      const store = yield* SessionStore
      const t = yield* now
      for (let i = 0; i < 30; i++) {
        yield* store.insert(freshKey(), { data: bytes("x"), expiresAt: t + 60_000, principal: Option.none() })
      }
      const perNode = yield* Effect.promise(() =>
        Promise.all(
          cluster!.nodes("master").map(async (node) => {
            const [, keys] = await node.scan("0", "MATCH", `${prefix}*`, "COUNT", 100_000)
            return keys.length
          })
        )
      )
      expect(perNode.filter((count) => count > 0).length).toBeGreaterThanOrEqual(2)
    }).pipe(Effect.provide(layer)))

  it.effect("a prefix with a hash tag is refused on a cluster", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(Layer.build(RedisStore.layer({ client: cluster!, prefix: "{app}:session:" })))
      expect(error).toBeInstanceOf(SessionStoreError)
      expect(error.operation).toBe("setup")
      expect(error.message).toMatch(/hash tag/)
    }).pipe(Effect.scoped))
})
