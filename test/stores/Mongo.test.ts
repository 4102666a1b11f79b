import { afterAll, describe, expect, it, vi } from "@effect/vitest"
import { Clock, Config, ConfigProvider, Context, Effect, Exit, Layer, Option, Schedule, Scope, TestClock } from "effect"
import { MongoClient } from "mongodb"
import { randomBytes } from "node:crypto"
import * as MongoStore from "../../src/MongoStore.js"
import * as SessionId from "../../src/SessionId.js"
import { SessionStore } from "../../src/SessionStore.js"
import * as StoreConformance from "../../src/StoreConformance.js"
import { describeBackend } from "../utils/backend.js"

// No MongoDB server can run on the development machines: the suite runs when
// MONGODB_URL points at one (MongoDB 6.0 or later) and is then required.
const url = process.env.MONGODB_URL
const database = process.env.MONGODB_DATABASE ?? "effect_session_test"
const collection = `sessions_${randomBytes(6).toString("hex")}`

const write = (data: string, expiresAt: number, principal?: string) => ({
  data: new TextEncoder().encode(data),
  expiresAt,
  principal: Option.fromNullable(principal)
})

const wallClock = Effect.suspend(() => TestClock.setTime(Date.now()))
const now = Effect.clockWith((clock) => clock.currentTimeMillis)

describeBackend(
  "MongoStore",
  { available: url !== undefined, reason: "MONGODB_URL is not set", required: url !== undefined },
  () => {
    const mongoUrl = url!
    const layer = MongoStore.layer({ url: mongoUrl, database, collection })

    /** A client of the test's own, to look at the server behind the store's back. */
    const rawClient = Effect.acquireRelease(
      Effect.promise(() => new MongoClient(mongoUrl).connect()),
      (client) => Effect.promise(() => client.close())
    )
    const rawCollection = Effect.map(
      rawClient,
      (client) => client.db(database).collection<MongoStore.SessionDocument>(collection)
    )

    afterAll(async () => {
      const client = await new MongoClient(mongoUrl).connect()
      try {
        await client.db(database).collection(collection).drop().catch((error: unknown) => {
          // NamespaceNotFound: nothing was created
          if ((error as { code?: unknown }).code !== 26) throw error
        })
      } finally {
        await client.close()
      }
    })

    describe("conformance", () => {
      for (const check of StoreConformance.checks(layer, { concurrency: 100 })) {
        it.effect(check.name, () => check.run, 60_000)
      }
      for (const check of StoreConformance.indexChecks(layer)) {
        it.effect(check.name, () => check.run, 60_000)
      }
    })

    it.scoped("the layer creates the TTL and principal indexes, and starting it again is a no-op", () =>
      Effect.gen(function*() {
        const raw = yield* rawCollection
        yield* Layer.build(layer)
        yield* Effect.scoped(Layer.build(layer))
        const indexes = yield* Effect.promise(() => raw.listIndexes().toArray())
        const ttl = indexes.find((index) => index.name === "effect_session_expiresAt_ttl")
        expect(ttl?.key).toEqual({ expiresAt: 1 })
        expect(ttl?.expireAfterSeconds).toBe(0)
        const principal = indexes.find((index) => index.name === "effect_session_principal")
        expect(principal?.key).toEqual({ principal: 1 })
        expect(principal?.sparse).toBe(true)
      }))

    it.scoped("a document is keyed by the storage key and holds Binary data, a Date and the principal", () =>
      Effect.gen(function*() {
        yield* wallClock
        const raw = yield* rawCollection
        const store = yield* SessionStore
        const id = SessionId.unsafeGenerate()
        const key = SessionId.storageKey(id)
        const expiresAt = (yield* now) + 60_000
        yield* store.insert(key, write("hello", expiresAt, "alice"))
        expect(yield* Effect.promise(() => raw.findOne({ _id: id }))).toBeNull()
        const document = yield* Effect.promise(() => raw.findOne({ _id: key }))
        expect(document?.expiresAt).toEqual(new Date(expiresAt))
        expect(document?.version).toBe(1)
        expect(document?.principal).toBe("alice")
        expect((document?.data as { _bsontype?: string } | undefined)?._bsontype).toBe("Binary")
        yield* store.update(key, write("bye", expiresAt), 1)
        const anonymous = yield* Effect.promise(() => raw.findOne({ _id: key }))
        expect(anonymous !== null && "principal" in anonymous).toBe(false)
      }).pipe(Effect.provide(layer)))

    // what load, touch, update and insert answer for an expired record is
    // conformance; here, what they leave in the collection
    it.scoped("an expired document the TTL monitor has not removed yet is left in place, then replaced in place", () =>
      Effect.gen(function*() {
        yield* wallClock
        const raw = yield* rawCollection
        const store = yield* SessionStore
        const key = SessionId.storageKey(SessionId.unsafeGenerate())
        const t = yield* now
        yield* store.insert(key, write("old", t + 60 * 60_000, "alice"))
        // expired for the application an hour from now; the document stays
        yield* TestClock.adjust(2 * 60 * 60_000)
        yield* store.touch(key, (yield* now) + 60_000)
        yield* Effect.either(store.update(key, write("late", (yield* now) + 60_000), 1))
        const untouched = yield* Effect.promise(() => raw.findOne({ _id: key }))
        expect([untouched?.version, untouched?.expiresAt, untouched?.principal]).toEqual([1, new Date(t + 60 * 60_000), "alice"])
        yield* store.insert(key, write("new", (yield* now) + 60_000))
        expect(yield* Effect.promise(() => raw.countDocuments({ _id: key }))).toBe(1)
        const replaced = yield* Effect.promise(() => raw.findOne({ _id: key }))
        expect(replaced !== null && "principal" in replaced).toBe(false)
      }).pipe(Effect.provide(layer)))

    it.scoped("a client passed in is used and not closed with the layer", () =>
      Effect.gen(function*() {
        yield* wallClock
        const client = yield* Effect.acquireRelease(
          Effect.promise(() => new MongoClient(mongoUrl).connect()),
          (client) => Effect.promise(() => client.close())
        )
        // a closed MongoClient reconnects on its next command: the call itself is watched
        const close = vi.spyOn(client, "close")
        const key = SessionId.storageKey(SessionId.unsafeGenerate())
        const expiresAt = (yield* now) + 60_000
        yield* Effect.scoped(
          Effect.flatMap(
            Layer.build(MongoStore.layer({ client, database, collection })),
            (context) => Context.get(context, SessionStore).insert(key, write("via client", expiresAt))
          )
        )
        expect(close).not.toHaveBeenCalled()
        close.mockRestore()
        const count = yield* Effect.promise(() =>
          client.db(database).collection<MongoStore.SessionDocument>(collection).countDocuments({ _id: key })
        )
        expect(count).toBe(1)
      }))

    it.scoped("clientOptions reach the client the layer opens, and that client is closed with the layer", () =>
      Effect.gen(function*() {
        yield* wallClock
        const raw = yield* rawClient
        // the server lists every connection with the appName its client sent
        const appName = `effect-session-test-${randomBytes(4).toString("hex")}`
        const connections = Effect.promise(() =>
          raw.db("admin").aggregate([
            { $currentOp: { allUsers: true, idleConnections: true } },
            { $match: { appName } }
          ]).toArray()
        ).pipe(Effect.map((operations) => operations.length))
        const scope = yield* Scope.make()
        const store = Context.get(
          yield* Layer.buildWithScope(
            MongoStore.layer({ url: mongoUrl, clientOptions: { appName }, database, collection }),
            scope
          ),
          SessionStore
        )
        yield* store.insert(SessionId.storageKey(SessionId.unsafeGenerate()), write("x", (yield* now) + 60_000))
        expect(yield* connections).toBeGreaterThan(0)
        yield* Scope.close(scope, Exit.void)
        const closed = yield* connections.pipe(
          Effect.repeat({ until: (count) => count === 0, schedule: Schedule.spaced("100 millis"), times: 50 }),
          Effect.withClock(Clock.make())
        )
        expect(closed).toBe(0)
      }))

    it.effect("layerConfig reads the connection from Config", () =>
      Effect.gen(function*() {
        yield* wallClock
        const store = yield* SessionStore
        const key = SessionId.storageKey(SessionId.unsafeGenerate())
        yield* store.insert(key, write("configured", (yield* now) + 60_000))
        expect(Option.isSome(yield* store.load(key))).toBe(true)
      }).pipe(
        Effect.provide(
          MongoStore.layerConfig({
            url: Config.string("MONGODB_URL"),
            database: Config.succeed(database),
            collection: Config.succeed(collection)
          }).pipe(Layer.provide(Layer.setConfigProvider(ConfigProvider.fromMap(new Map([["MONGODB_URL", mongoUrl]])))))
        )
      ))
  }
)
