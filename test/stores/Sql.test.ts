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

/**
 * Logs what each cleanup batch removed into `batches`; a failed sweep (a
 * warning) as -1, so that a test fails instead of waiting forever.
 */
const recordBatches = (batches: Queue.Queue<number>) => <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  effect.pipe(
    Effect.provide(Logger.add(Logger.make(({ annotations, logLevel }) => {
      const removed = HashMap.get(annotations, "effect-session.removed")
      if (Option.isSome(removed)) batches.unsafeOffer(Number(removed.value))
      else if (logLevel._tag === "Warning") batches.unsafeOffer(-1)
    }))),
    Logger.withMinimumLogLevel(LogLevel.Debug)
  )

/**
 * The batch sizes of one sweep: batches are taken until one is not a full
 * `batchSize` (the last, or one that shows another batch size at work).
 */
const sweepBatches = (batches: Queue.Queue<number>, batchSize: number) =>
  Effect.gen(function*() {
    const seen: Array<number> = []
    while (true) {
      const removed = yield* Queue.take(batches)
      seen.push(removed)
      if (removed !== batchSize) return seen
    }
  })

for (const backend of backends) {
  describeBackend(backend.name, backend.availability, () => {
    const table = uniqueTable("conf")
    const sweepTable = uniqueTable("sweep")
    const migratedTable = uniqueTable("migr")
    const migrationsTable = uniqueTable("migrations")
    const configTable = uniqueTable("config")
    const provideClient = sharedClient(backend, [table, sweepTable, migratedTable, migrationsTable, configTable])
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
        const batches = yield* Queue.unbounded<number>()
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
          expect(yield* sweepBatches(batches, 1000)).toEqual([1000, 1000, 500])

          const [[count]] = yield* sql`SELECT COUNT(*) FROM ${sql(sweepTable)}`.values
          expect(Number(count)).toBe(live.length)
          for (const key of live) {
            const record = yield* store.load(key)
            expect(Option.map(record, (r) => text(r.data))).toEqual(Option.some("live"))
          }
        })
        yield* body.pipe(
          Effect.provide(SqlStore.layer({ table: sweepTable, cleanupInterval: "1 minute", cleanupBatchSize: 1000 })),
          recordBatches(batches)
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

    it.effect("layerConfig reads the options from Config, and each one arrives", () =>
      Effect.gen(function*() {
        yield* TestClock.setTime(Date.now())
        const configured = SqlStore.layerConfig({
          table: Config.string("SESSION_TABLE"),
          cleanupInterval: Config.duration("SESSION_CLEANUP_INTERVAL"),
          cleanupBatchSize: Config.integer("SESSION_CLEANUP_BATCH")
        })
        const batches = yield* Queue.unbounded<number>()
        const live = freshKey()
        yield* Effect.gen(function*() {
          const store = yield* SessionStore
          const t = yield* Clock.currentTimeMillis
          yield* store.insert(live, write("configured", t + 60 * minute))
          for (let i = 0; i < 25; i++) yield* store.insert(freshKey(), write("expiring", t + 1000))
          // past the configured 10 s interval, well before the 5 minute default
          yield* TestClock.adjust("15 seconds")
          // batches of the configured 10, not one of the default 1000
          expect(yield* sweepBatches(batches, 10)).toEqual([10, 10, 5])
        }).pipe(
          Effect.provide(configured),
          Effect.withConfigProvider(ConfigProvider.fromMap(
            new Map([["SESSION_TABLE", configTable], ["SESSION_CLEANUP_INTERVAL", "10 seconds"], [
              "SESSION_CLEANUP_BATCH",
              "10"
            ]])
          )),
          recordBatches(batches)
        )
        // and the configured table is the one written
        const sql = yield* SqlClient.SqlClient
        const rows = yield* sql`SELECT storage_key FROM ${sql(configTable)}`.values
        expect(rows.map(([key]) => key)).toEqual([live])
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
