/**
 * The MongoDB store. No MongoDB server can run on the development machines:
 * the suite on a server runs when MONGODB_URL points at one (MongoDB 6.0 or
 * later) and is skipped otherwise, saying so in its name — under
 * SESSION_TEST_REQUIRE_ALL=1 too, as on the Effect 3 line. What needs no
 * server runs either way: a server that cannot be reached fails the layer
 * with SessionStoreError within serverSelectionTimeoutMS, and what the store
 * asks of the driver is seen through a client that records it.
 */
import { afterAll, describe, expect, it, vi } from "@effect/vitest"
import { Config, ConfigProvider, Context, Effect, Exit, Layer, Schedule, Scope } from "effect"
import { MongoClient } from "mongodb"
import { randomBytes } from "node:crypto"
import * as Mongo from "../../src/core/mongo.js"
import * as MongoStore from "../src/MongoStore.js"
import type { SessionConflict } from "../src/SessionError.js"
import { SessionStoreError } from "../src/SessionError.js"
import { SessionIndex, SessionStore } from "../src/SessionStore.js"
import * as StoreConformance from "../src/StoreConformance.js"
import { silentServer } from "./utils/memcached.js"
import { freshKey, now, wallClock, write } from "./utils/storeRecords.js"

const url = process.env.MONGODB_URL
const database = process.env.MONGODB_DATABASE ?? "effect_session_test"
const collection = `e4mongo_${randomBytes(6).toString("hex")}`

describe("MongoStore without a server", () => {
  const setupError = (options: MongoStore.Options) => Effect.flip(Effect.scoped(Layer.build(MongoStore.layer(options))))

  // The test's limit (5 s) is far under the driver's default server selection
  // (30 s): it passes only if the configured 500 ms ends the wait.
  it.live("a server that cannot be reached fails the layer with SessionStoreError naming the cause, not a hang", () =>
    Effect.gen(function*() {
      const error = yield* setupError({ url: "mongodb://127.0.0.1:1", clientOptions: { serverSelectionTimeoutMS: 500 } })
      expect(error).toBeInstanceOf(SessionStoreError)
      expect(error.operation).toBe("setup")
      expect(error.message).toMatch(/^mongodb store: setup failed: .*ECONNREFUSED/)
    }), 5_000)

  it.live("a server that accepts and never answers fails the layer at serverSelectionTimeoutMS, not a hang", () =>
    Effect.gen(function*() {
      // it connects: only the handshake goes unanswered
      const silent = yield* silentServer
      const error = yield* setupError({ url: `mongodb://127.0.0.1:${silent.port}`, clientOptions: { serverSelectionTimeoutMS: 500 } })
      expect(error.message).toMatch(/^mongodb store: setup failed: .*timed out after 500 ms/)
    }), 5_000)

  it.effect("a malformed connection string or neither url nor client fails the layer with SessionStoreError", () =>
    Effect.gen(function*() {
      const malformed = yield* setupError({ url: "http://127.0.0.1:27017" })
      expect([malformed._tag, malformed.operation]).toEqual(["SessionStoreError", "setup"])
      expect(malformed.message).toMatch(/^mongodb store: setup failed: .*scheme/i)
      const neither = yield* setupError({})
      expect(neither.message).toBe("mongodb store: setup failed: MongoStore needs a `url` or a `client`")
    }))

  it.effect("layerConfig reads the connection from Config", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(Effect.scoped(Layer.build(
        MongoStore.layerConfig({
          url: Config.String("MONGODB_URL"),
          clientOptions: Config.succeed({ serverSelectionTimeoutMS: 300 })
        }).pipe(Layer.provide(ConfigProvider.layer(ConfigProvider.fromUnknown({ MONGODB_URL: "mongodb://127.0.0.1:1" }))))
      )))
      expect(error).toBeInstanceOf(SessionStoreError)
      expect(error.message).toMatch(/ECONNREFUSED/)
    }), 5_000)

  /**
   * A client standing in for the driver's: it records what the store sends
   * and answers like an empty collection, so what the store asks for is
   * visible without a server.
   */
  const recording = () => {
    const calls: Array<{ readonly method: string; readonly argument: unknown }> = []
    const record = <A>(method: string, answer: A) => (argument: unknown) => {
      calls.push({ method, argument })
      return answer
    }
    const empty = Promise.resolve({ acknowledged: true, matchedCount: 0, modifiedCount: 0, deletedCount: 0 })
    const collection = {
      createIndexes: record("createIndexes", Promise.resolve([])),
      find: record("find", { toArray: () => Promise.resolve([]) }),
      findOne: record("findOne", Promise.resolve(null)),
      updateOne: record("updateOne", empty),
      deleteOne: record("deleteOne", empty),
      deleteMany: record("deleteMany", empty)
    }
    const client = { db: () => ({ collection: () => collection }), close: vi.fn() }
    return { calls, client: client as unknown as MongoClient, close: client.close }
  }

  const withRecordedStore = <A, E>(
    body: (services: { readonly store: SessionStore["Service"]; readonly index: SessionIndex["Service"] }) => Effect.Effect<A, E>
  ) =>
    Effect.gen(function*() {
      const { calls, client, close } = recording()
      const context = yield* Effect.scoped(
        Effect.flatMap(Layer.build(MongoStore.layer({ client })), (context) =>
          Effect.as(body({ store: Context.get(context, SessionStore), index: Context.get(context, SessionIndex) }), context))
      )
      return { calls, close, context }
    })

  it.effect("the layer creates the TTL and principal indexes, and leaves a client passed in open", () =>
    Effect.gen(function*() {
      const { calls, close } = yield* withRecordedStore(() => Effect.void)
      expect(calls.map((call) => call.method)).toEqual(["createIndexes"])
      expect(calls[0]!.argument).toEqual([
        { key: { expiresAt: 1 }, name: "effect_session_expiresAt_ttl", expireAfterSeconds: 0 },
        { key: { principal: 1 }, name: "effect_session_principal", sparse: true }
      ])
      expect(close).not.toHaveBeenCalled()
    }))

  it.effect("a principal is matched with $eq, and one that is not a string never reaches the driver", () =>
    Effect.gen(function*() {
      const operator = { $ne: null } as unknown as string
      let refused: ReadonlyArray<SessionStoreError | SessionConflict> = []
      const { calls } = yield* withRecordedStore(({ index, store }) =>
        Effect.gen(function*() {
          yield* index.keys("alice")
          refused = yield* Effect.all([
            Effect.flip(index.keys(operator)),
            Effect.flip(index.removeAll(operator)),
            Effect.flip(store.insert(freshKey(), write("x", Date.now() + 60_000, operator)))
          ])
        })
      )
      expect(calls.map((call) => call.method)).toEqual(["createIndexes", "find"])
      expect(calls[1]!.argument).toMatchObject({ principal: { $eq: "alice" } })
      expect(refused.map((error) => [error._tag === "SessionStoreError" && error.operation, error.message.includes("must be a string")])).toEqual([
        ["keys", true],
        ["removeAll", true],
        ["insert", true]
      ])
    }))
})

// required only where MONGODB_URL is set, even under SESSION_TEST_REQUIRE_ALL=1
if (url === undefined) console.warn("[effect-session tests] SKIPPED MongoStore on a server: MONGODB_URL is not set")
const describeOnServer = url === undefined ? describe.skip : describe

describeOnServer(
  `MongoStore on a server${url === undefined ? " (skipped: MONGODB_URL is not set; no MongoDB server runs here)" : ""}`,
  () => {
    const mongoUrl = url!
    const StoreLive = MongoStore.layer({ url: mongoUrl, database, collection })
    /** A client of the test's own, to look at the server behind the store's back. */
    const rawClient = Effect.acquireRelease(
      Effect.promise(() => new MongoClient(mongoUrl).connect()),
      (client) => Effect.promise(() => client.close())
    )
    const rawCollection = Effect.map(rawClient, (client) => client.db(database).collection<MongoStore.SessionDocument>(collection))

    afterAll(async () => {
      const client = await new MongoClient(mongoUrl).connect()
      try {
        await client.db(database).collection(collection).drop().catch(() => undefined)
      } finally {
        await client.close()
      }
    })

    describe("conformance", () => {
      for (const check of StoreConformance.checks(StoreLive, { concurrency: 100 })) {
        it.effect(check.name, () => check.run, 60_000)
      }
      for (const check of StoreConformance.indexChecks(StoreLive)) it.effect(check.name, () => check.run, 60_000)
    })

    it.effect("the layer creates the TTL and principal indexes, and starting it again is a no-op", () =>
      Effect.gen(function*() {
        const raw = yield* rawCollection
        yield* Layer.build(StoreLive)
        yield* Effect.scoped(Layer.build(StoreLive))
        const indexes = yield* Effect.promise(() => raw.listIndexes().toArray())
        const ttl = indexes.find((index) => index.name === "effect_session_expiresAt_ttl")
        expect([ttl?.key, ttl?.expireAfterSeconds]).toEqual([{ expiresAt: 1 }, 0])
        const principal = indexes.find((index) => index.name === "effect_session_principal")
        expect([principal?.key, principal?.sparse]).toEqual([{ principal: 1 }, true])
      }))

    it.effect("a document is keyed by the storage key and holds the text as Binary, a Date and the principal", () =>
      Effect.gen(function*() {
        yield* wallClock
        const raw = yield* rawCollection
        const store = yield* SessionStore
        const key = freshKey()
        const expiresAt = (yield* now) + 60_000
        yield* store.insert(key, write("{\"é\":1}", expiresAt, "alice"))
        const document = yield* Effect.promise(() => raw.findOne({ _id: key }))
        expect([document?.version, document?.expiresAt, document?.principal]).toEqual([1, new Date(expiresAt), "alice"])
        expect((document?.data as { readonly _bsontype?: string } | undefined)?._bsontype).toBe("Binary")
        expect(Buffer.from(Mongo.bytes(document?.data)!).toString("utf8")).toBe("{\"é\":1}")
        yield* store.update(key, write("bye", expiresAt), 1)
        const anonymous = yield* Effect.promise(() => raw.findOne({ _id: key }))
        expect(anonymous !== null && "principal" in anonymous).toBe(false)
      }).pipe(Effect.provide(StoreLive)))

    it.effect("a client passed in is used and not closed with the layer", () =>
      Effect.gen(function*() {
        yield* wallClock
        const raw = yield* rawCollection
        const client = yield* rawClient
        // a closed MongoClient reconnects on its next command: the call itself is watched
        const close = vi.spyOn(client, "close")
        const key = freshKey()
        yield* Effect.scoped(Effect.flatMap(
          Layer.build(MongoStore.layer({ client, database, collection })),
          (context) => Context.get(context, SessionStore).insert(key, write("via client", Date.now() + 60_000))
        ))
        expect(close).not.toHaveBeenCalled()
        close.mockRestore()
        expect(yield* Effect.promise(() => raw.countDocuments({ _id: key }))).toBe(1)
      }))

    it.live("clientOptions reach the client the layer opens, and that client is closed with the layer", () =>
      Effect.gen(function*() {
        const raw = yield* rawClient
        // the server lists every connection, idle ones included, with the appName its client sent
        const appName = `e4mongo-${randomBytes(4).toString("hex")}`
        const connections = Effect.map(
          Effect.promise(() =>
            raw.db("admin").aggregate([{ $currentOp: { allUsers: true, idleConnections: true } }, { $match: { appName } }]).toArray()
          ),
          (operations) => operations.length
        )
        const scope = yield* Scope.make()
        const store = Context.get(
          yield* Layer.buildWithScope(MongoStore.layer({ url: mongoUrl, clientOptions: { appName }, database, collection }), scope),
          SessionStore
        )
        yield* store.insert(freshKey(), write("x", Date.now() + 60_000))
        expect(yield* connections).toBeGreaterThan(0)
        yield* Scope.close(scope, Exit.void)
        const left = yield* Effect.repeat(connections, { until: (n) => n === 0, schedule: Schedule.spaced("100 millis"), times: 50 })
        expect(left).toBe(0)
      }))
  }
)
