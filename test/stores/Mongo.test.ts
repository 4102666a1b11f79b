import { afterAll, describe, expect, it } from "@effect/vitest"
import { Config, ConfigProvider, Context, Effect, Layer, Option, TestClock } from "effect"
import { MongoClient } from "mongodb"
import { randomBytes } from "node:crypto"
import * as MongoStore from "../../src/MongoStore.js"
import * as SessionId from "../../src/SessionId.js"
import { SessionIndex, SessionStore } from "../../src/SessionStore.js"
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

    /** A client of the test's own, to look at the collection behind the store's back. */
    const rawCollection = Effect.map(
      Effect.acquireRelease(
        Effect.promise(() => new MongoClient(mongoUrl).connect()),
        (client) => Effect.promise(() => client.close())
      ),
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

    it.scoped("an expired document the TTL monitor has not removed yet is never served nor revived", () =>
      Effect.gen(function*() {
        yield* wallClock
        const raw = yield* rawCollection
        const store = yield* SessionStore
        const index = yield* SessionIndex
        const key = SessionId.storageKey(SessionId.unsafeGenerate())
        const principal = `user-${randomBytes(4).toString("hex")}`
        const t = yield* now
        yield* store.insert(key, write("old", t + 60 * 60_000, principal))
        // expired for the application an hour from now; the document stays
        yield* TestClock.adjust(2 * 60 * 60_000)
        expect(yield* Effect.promise(() => raw.countDocuments({ _id: key }))).toBe(1)
        expect(yield* store.load(key)).toEqual(Option.none())
        expect(yield* store.touch(key, (yield* now) + 60_000)).toBe(false)
        expect(yield* index.keys(principal)).toEqual([])
        const conflict = yield* Effect.flip(store.update(key, write("late", (yield* now) + 60_000), 1))
        expect(conflict._tag === "SessionConflict" && conflict.reason).toBe("Missing")
        yield* store.insert(key, write("new", (yield* now) + 60_000))
        const record = Option.getOrThrow(yield* store.load(key))
        expect([new TextDecoder().decode(record.data), record.version]).toEqual(["new", 1])
      }).pipe(Effect.provide(layer)))

    it.scoped("a client passed in is used and not closed with the layer", () =>
      Effect.gen(function*() {
        yield* wallClock
        const client = yield* Effect.acquireRelease(
          Effect.promise(() => new MongoClient(mongoUrl).connect()),
          (client) => Effect.promise(() => client.close())
        )
        const key = SessionId.storageKey(SessionId.unsafeGenerate())
        const expiresAt = (yield* now) + 60_000
        yield* Effect.scoped(
          Effect.flatMap(
            Layer.build(MongoStore.layer({ client, database, collection })),
            (context) => Context.get(context, SessionStore).insert(key, write("via client", expiresAt))
          )
        )
        const count = yield* Effect.promise(() =>
          client.db(database).collection<MongoStore.SessionDocument>(collection).countDocuments({ _id: key })
        )
        expect(count).toBe(1)
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
