import * as Migrator from "@effect/sql/Migrator"
import * as SqlClient from "@effect/sql/SqlClient"
import { describe, expect, it } from "@effect/vitest"
import { Clock, Config, ConfigProvider, Effect, Exit, HashMap, Layer, Logger, LogLevel, Option, Queue, TestClock } from "effect"
import { SessionConflict, SessionStoreError } from "../../src/SessionError.js"
import * as SessionId from "../../src/SessionId.js"
import { SessionIndex, SessionStore } from "../../src/SessionStore.js"
import * as SqlStore from "../../src/SqlStore.js"
import * as StoreConformance from "../../src/StoreConformance.js"
import { describeBackend } from "../utils/backend.js"
import { sharedClient, sqlBackends, uniqueTable } from "../utils/sql.js"

const backends = await sqlBackends()

const minute = 60_000
const freshKey = () => SessionId.storageKey(SessionId.unsafeGenerate())
const bytes = (s: string) => new TextEncoder().encode(s)
const text = (b: Uint8Array) => new TextDecoder().decode(b)
const write = (data: string, expiresAt: number, principal?: string) => ({
  data: bytes(data),
  expiresAt,
  principal: Option.fromNullable(principal)
})

for (const backend of backends) {
  describeBackend(backend.name, backend.availability, () => {
    const table = uniqueTable("conf")
    const sweepTable = uniqueTable("sweep")
    const migratedTable = uniqueTable("migr")
    const migrationsTable = uniqueTable("migrations")
    const provideClient = sharedClient(backend, [table, sweepTable, migratedTable, migrationsTable])
    const layer = SqlStore.layer({ table })

    describe("conformance", () => {
      for (const check of StoreConformance.checks(layer, { concurrency: 100 })) {
        it.effect(check.name, () => provideClient(check.run))
      }
      for (const check of StoreConformance.indexChecks(layer)) {
        it.effect(check.name, () => provideClient(check.run))
      }
    })

    it.effect("cleanup deletes expired rows in batches of cleanupBatchSize and keeps live ones", () =>
      Effect.gen(function*() {
        yield* TestClock.setTime(Date.now())
        // -1 stands for a failed sweep, so the test fails instead of hanging
        const batches = yield* Queue.unbounded<number>()
        const recorder = Logger.make(({ annotations, logLevel }) => {
          const removed = HashMap.get(annotations, "effect-session.removed")
          if (Option.isSome(removed)) batches.unsafeOffer(Number(removed.value))
          else if (logLevel._tag === "Warning") batches.unsafeOffer(-1)
        })
        const body = Effect.gen(function*() {
          const sql = yield* SqlClient.SqlClient
          const store = yield* SessionStore
          const t0 = yield* Clock.currentTimeMillis
          const expiring = Array.from({ length: 2500 }, () => ({
            storage_key: freshKey(),
            data: Buffer.from("x"),
            version: 1,
            expires_at: t0 + 1000,
            principal: null
          }))
          for (let i = 0; i < expiring.length; i += 500) {
            yield* sql`INSERT INTO ${sql(sweepTable)} ${sql.insert(expiring.slice(i, i + 500))}`
          }
          const live = Array.from({ length: 7 }, freshKey)
          for (const key of live) yield* store.insert(key, write("live", t0 + 60 * minute))

          yield* TestClock.adjust("90 seconds")
          const seen: Array<number> = []
          while (true) {
            const removed = yield* Queue.take(batches)
            seen.push(removed)
            if (removed < 1000) break
          }
          expect(seen).toEqual([1000, 1000, 500])

          const [[count]] = yield* sql`SELECT COUNT(*) FROM ${sql(sweepTable)}`.values
          expect(Number(count)).toBe(live.length)
          for (const key of live) {
            const record = yield* store.load(key)
            expect(Option.map(record, (r) => text(r.data))).toEqual(Option.some("live"))
          }
        })
        yield* body.pipe(
          Effect.provide(SqlStore.layer({ table: sweepTable, cleanupInterval: "1 minute", cleanupBatchSize: 1000 })),
          Effect.provide(Logger.add(recorder)),
          Logger.withMinimumLogLevel(LogLevel.Debug)
        )
      }).pipe(provideClient))

    it.effect("the migrations create a table that serves a store with createTable: false", () =>
      Effect.gen(function*() {
        const migrate = Migrator.make({})({
          loader: Migrator.fromRecord(SqlStore.migrations({ table: migratedTable })),
          table: migrationsTable
        })
        expect(yield* migrate).toEqual([[1, `create_${migratedTable}`]])
        expect(yield* migrate).toEqual([])

        yield* Effect.gen(function*() {
          const store = yield* SessionStore
          const index = yield* SessionIndex
          const key = freshKey()
          const t = yield* Clock.currentTimeMillis
          yield* store.insert(key, write("one", t + minute, "carol"))
          expect(yield* store.update(key, write("two", t + minute, "carol"), 1)).toBe(2)
          expect(yield* index.keys("carol")).toEqual([key])
        }).pipe(Effect.provide(SqlStore.layer({ table: migratedTable, createTable: false })))
      }).pipe(provideClient))

    it.effect("with createTable: false and no table, operations fail with SessionStoreError", () =>
      Effect.gen(function*() {
        const missing = uniqueTable("absent")
        const error = yield* Effect.flip(
          Effect.flatMap(SessionStore, (store) => store.load(freshKey())).pipe(
            Effect.provide(SqlStore.layer({ table: missing, createTable: false }))
          )
        )
        expect(error).toBeInstanceOf(SessionStoreError)
        expect(error.operation).toBe("load")
        const sql = yield* SqlClient.SqlClient
        yield* sql`DROP TABLE IF EXISTS ${sql(missing)}`
      }).pipe(provideClient))

    // the clock is set before the layer is built: a sweep fiber started at
    // time 0 would otherwise replay every interval since the epoch
    const withStore = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
      Effect.zipRight(TestClock.setTime(Date.now()), Effect.provide(effect, layer))

    it.effect("keys that differ only in case are different sessions", () =>
      Effect.gen(function*() {
        const store = yield* SessionStore
        const base = freshKey().slice(1)
        const lower = SessionId.unsafeStorageKey(`a${base}`)
        const upper = SessionId.unsafeStorageKey(`A${base}`)
        const t = yield* Clock.currentTimeMillis
        yield* store.insert(lower, write("lower", t + minute))
        yield* store.insert(upper, write("upper", t + minute))
        expect(Option.map(yield* store.load(lower), (r) => text(r.data))).toEqual(Option.some("lower"))
        expect(Option.map(yield* store.load(upper), (r) => text(r.data))).toEqual(Option.some("upper"))
      }).pipe(withStore, provideClient))

    it.effect("a conflicting insert on a live row leaves version and expiry alone", () =>
      Effect.gen(function*() {
        const store = yield* SessionStore
        const key = freshKey()
        const t = yield* Clock.currentTimeMillis
        yield* store.insert(key, write("first", t + minute, "dave"))
        yield* store.update(key, write("second", t + minute, "dave"), 1)
        const conflict = yield* Effect.flip(store.insert(key, write("intruder", t + 10 * minute)))
        expect(conflict).toEqual(new SessionConflict({ reason: "Exists" }))
        const record = Option.getOrThrow(yield* store.load(key))
        expect([text(record.data), record.version, record.expiresAt]).toEqual(["second", 2, t + minute])
        expect(Option.getOrUndefined(record.principal)).toBe("dave")
      }).pipe(withStore, provideClient))

    it.effect("of 50 concurrent inserts of one key exactly one wins, over nothing and over an expired row", () =>
      Effect.gen(function*() {
        const store = yield* SessionStore
        const key = freshKey()
        const race = Effect.gen(function*() {
          const t = yield* Clock.currentTimeMillis
          const outcomes = yield* Effect.all(
            Array.from({ length: 50 }, (_, i) => Effect.either(store.insert(key, write(`writer ${i}`, t + 1000)))),
            { concurrency: "unbounded" }
          )
          const winners = outcomes.flatMap((outcome, i) => outcome._tag === "Right" ? [`writer ${i}`] : [])
          const losers = outcomes.filter((outcome) =>
            outcome._tag === "Left" && outcome.left instanceof SessionConflict && outcome.left.reason === "Exists"
          )
          expect(winners.length).toBe(1)
          expect(losers.length).toBe(49)
          const record = Option.getOrThrow(yield* store.load(key))
          expect([text(record.data), record.version]).toEqual([winners[0], 1])
        })
        yield* race
        yield* TestClock.adjust(2000)
        yield* race
      }).pipe(withStore, provideClient))

    it.effect("touch to the expiry already stored reports a live record", () =>
      Effect.gen(function*() {
        const store = yield* SessionStore
        const key = freshKey()
        const t = yield* Clock.currentTimeMillis
        yield* store.insert(key, write("same", t + minute))
        expect(yield* store.touch(key, t + minute)).toBe(true)
        expect(yield* store.touch(freshKey(), t + minute)).toBe(false)
      }).pipe(withStore, provideClient))

    it.effect("layerConfig reads the options from Config", () =>
      Effect.gen(function*() {
        const configured = SqlStore.layerConfig({
          table: Config.string("SESSION_TABLE"),
          cleanupBatchSize: Config.integer("SESSION_CLEANUP_BATCH")
        })
        const key = freshKey()
        yield* Effect.gen(function*() {
          const store = yield* SessionStore
          yield* store.insert(key, write("configured", (yield* Clock.currentTimeMillis) + minute))
        }).pipe(
          Effect.provide(configured),
          Effect.withConfigProvider(ConfigProvider.fromMap(
            new Map([["SESSION_TABLE", migratedTable], ["SESSION_CLEANUP_BATCH", "10"]])
          ))
        )
        const sql = yield* SqlClient.SqlClient
        const rows = yield* sql`SELECT storage_key FROM ${sql(migratedTable)} WHERE storage_key = ${key}`.values
        expect(rows.length).toBe(1)
      }).pipe(provideClient))

    it.effect("an unsafe table name fails the layer before any SQL runs", () =>
      Effect.gen(function*() {
        const exit = yield* Effect.scoped(Effect.exit(Layer.build(SqlStore.layer({ table: "sessions; DROP TABLE users" }))))
        expect(Exit.isFailure(exit)).toBe(true)
        const error = yield* Effect.flip(Effect.scoped(Layer.build(SqlStore.layer({ table: "a-b" }))))
        expect(error).toBeInstanceOf(SessionStoreError)
        expect(error.operation).toBe("setup")
      }).pipe(provideClient))
  })
}
