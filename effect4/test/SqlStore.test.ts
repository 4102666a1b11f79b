/**
 * SqlStore on PostgreSQL (@effect/sql-pg), MariaDB (SqlMysql, with and
 * without CLIENT_FOUND_ROWS) and SQLite (SqlSqlite on a temporary file, and
 * in memory with name transforms): the conformance checks, the cleanup in
 * batches, the migrations, layerConfig, the setup errors, the errors of a
 * missing table, and 200 concurrent increments over HTTP per dialect.
 */
import { describe, expect, it } from "@effect/vitest"
import { Clock, Config, ConfigProvider, Effect, Exit, Layer, Logger, Option, Queue, References, Schema } from "effect"
import { HttpRouter, HttpServerResponse } from "effect/http"
import { Migrator, SqlClient } from "effect/sql"
import { TestClock } from "effect/testing"
import * as Ids from "../../src/core/ids.js"
import * as Session from "../src/Session.js"
import { SessionConflict, SessionStoreError } from "../src/SessionError.js"
import type { StorageKey } from "../src/SessionId.js"
import { SessionIndex, SessionStore } from "../src/SessionStore.js"
import * as SqlStore from "../src/SqlStore.js"
import * as StoreConformance from "../src/StoreConformance.js"
import { get, serve, sessionCookie } from "./utils/server.js"
import { describeBackend, mysqlServer, sharedClient, sqlBackends, uniqueTable } from "./utils/sql.js"

const minute = 60_000
const storageKey = Ids.storageKeyFunction()
const freshKey = () => storageKey(Ids.generateId()) as StorageKey
const write = (text: string, expiresAt: number, principal?: string) => ({
  text,
  expiresAt,
  principal: Option.fromUndefinedOr(principal)
})

/**
 * Runs `effect` (which builds a store) with a logger putting what each
 * cleanup batch removed into `batches`; a failed sweep (a warning) as -1, so
 * that a test fails instead of waiting forever.
 */
const recordBatches = (batches: Queue.Queue<number>) => <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  effect.pipe(
    Effect.provide(Logger.layer([Logger.make(({ fiber, logLevel }) => {
      const removed = fiber.getRef(References.CurrentLogAnnotations)["effect-session.removed"]
      if (removed !== undefined) Queue.offerUnsafe(batches, Number(removed))
      else if (logLevel === "Warn") Queue.offerUnsafe(batches, -1)
    })])),
    Effect.provideService(References.MinimumLogLevel, "Debug")
  )

/** The batch sizes of one sweep: batches are taken until one is not a full `batchSize`. */
const sweepBatches = (batches: Queue.Queue<number>, batchSize: number) =>
  Effect.gen(function*() {
    const seen: Array<number> = []
    while (true) {
      const removed = yield* Queue.take(batches)
      seen.push(removed)
      if (removed !== batchSize) return seen
    }
  })

/** What each database says about a table that does not exist. */
const missingTable = (dialect: string, table: string): string =>
  dialect === "pg"
    ? `PgConnection: Query failed: relation "${table}" does not exist (42P01)`
    : dialect === "mysql"
    ? `Failed to execute statement: Table '${mysqlServer.database}.${table}' doesn't exist (ER_NO_SUCH_TABLE)`
    : `Failed to prepare statement: no such table: ${table} (ERR_SQLITE_ERROR)`

class Counter extends Session.Tag<Counter>()("test/SqlCounter", {
  started: Schema.optional(Schema.Boolean),
  count: Schema.Int.pipe(Schema.withDecodingDefault(Effect.succeed(0)))
}) {}

for (const backend of await sqlBackends()) {
  describeBackend(backend.name, backend, () => {
    const table = uniqueTable("conf")
    const sweepTable = uniqueTable("sweep")
    const migratedTable = uniqueTable("migr")
    const migrationsTable = uniqueTable("migrations")
    const configTable = uniqueTable("config")
    const httpTable = uniqueTable("http")
    const provideClient = sharedClient(backend, [table, sweepTable, migratedTable, migrationsTable, configTable, httpTable])
    const layer = SqlStore.layer({ table })

    describe("conformance", () => {
      for (const check of StoreConformance.checks(layer, { concurrency: 100 })) {
        it.effect(check.name, () => provideClient(check.run))
      }
      for (const check of StoreConformance.indexChecks(layer)) {
        it.effect(check.name, () => provideClient(check.run))
      }
    })

    // the clock is set before the layer is built: a sweep fiber started at
    // time 0 would otherwise replay every interval since the epoch
    const withStore = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
      Effect.andThen(TestClock.setTime(Date.now()), Effect.provide(effect, layer))

    it.effect("cleanup deletes expired rows in batches of cleanupBatchSize and keeps live ones", () =>
      Effect.gen(function*() {
        yield* TestClock.setTime(Date.now())
        const batches = yield* Queue.unbounded<number>()
        yield* Effect.gen(function*() {
          const sql = yield* SqlClient.SqlClient
          const store = yield* SessionStore
          const t0 = yield* Clock.currentTimeMillis
          const expiring: Array<Record<string, unknown>> = Array.from({ length: 2500 }, () => ({
            storage_key: freshKey(),
            data: new TextEncoder().encode("x"),
            version: 1,
            expires_at: t0 + 1000,
            principal: null
          }))
          for (let i = 0; i < expiring.length; i += 500) {
            yield* sql`INSERT INTO ${sql(sweepTable)} ${sql.insert(expiring.slice(i, i + 500) as [Record<string, unknown>, ...Array<Record<string, unknown>>])}`
          }
          const live = Array.from({ length: 7 }, freshKey)
          for (const key of live) yield* store.insert(key, write("live", t0 + 60 * minute))

          yield* TestClock.adjust("90 seconds")
          expect(yield* sweepBatches(batches, 1000)).toEqual([1000, 1000, 500])

          const [[count]] = yield* sql`SELECT COUNT(*) FROM ${sql(sweepTable)}`.values
          expect(Number(count)).toBe(live.length)
          for (const key of live) {
            expect(Option.map(yield* store.load(key), (r) => r.text)).toEqual(Option.some("live"))
          }
        }).pipe(
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

    it.effect("a missing table: every operation fails with SessionStoreError naming it and the database's reason", () =>
      Effect.gen(function*() {
        const missing = uniqueTable("absent")
        const { index, store } = yield* Effect.all({ store: SessionStore, index: SessionIndex }).pipe(
          Effect.provide(SqlStore.layer({ table: missing, createTable: false }))
        )
        const key = freshKey()
        const w = write("{}", Date.now() + minute, "ann")
        const operations = {
          load: store.load(key),
          insert: store.insert(key, w),
          update: store.update(key, w, 1),
          touch: store.touch(key, Date.now() + minute),
          remove: store.remove(key),
          keys: index.keys("ann"),
          removeAll: index.removeAll("ann")
        }
        for (const [operation, effect] of Object.entries(operations)) {
          const error = yield* Effect.flip(effect as Effect.Effect<unknown, SessionStoreError | SessionConflict>)
          expect(error).toBeInstanceOf(SessionStoreError)
          expect(error.message).toBe(`sql store: ${operation} failed: ${missingTable(backend.dialect, missing)}`)
        }
      }).pipe(provideClient))

    it.effect("keys that differ only in case are different sessions", () =>
      Effect.gen(function*() {
        const store = yield* SessionStore
        const base = freshKey().slice(1)
        const lower = `a${base}` as StorageKey
        const upper = `A${base}` as StorageKey
        const t = yield* Clock.currentTimeMillis
        yield* store.insert(lower, write("lower", t + minute))
        yield* store.insert(upper, write("upper", t + minute))
        expect(Option.map(yield* store.load(lower), (r) => r.text)).toEqual(Option.some("lower"))
        expect(Option.map(yield* store.load(upper), (r) => r.text)).toEqual(Option.some("upper"))
      }).pipe(withStore, provideClient))

    it.effect("a conflicting insert on a live row leaves its text, version, expiry and principal alone", () =>
      Effect.gen(function*() {
        const store = yield* SessionStore
        const key = freshKey()
        const t = yield* Clock.currentTimeMillis
        yield* store.insert(key, write("first", t + minute, "dave"))
        yield* store.update(key, write("second", t + minute, "dave"), 1)
        const conflict = yield* Effect.flip(store.insert(key, write("intruder", t + 10 * minute)))
        expect(conflict).toEqual(new SessionConflict({ reason: "Exists" }))
        const record = Option.getOrThrow(yield* store.load(key))
        expect([record.text, record.version, record.expiresAt, Option.getOrNull(record.principal)])
          .toEqual(["second", 2, t + minute, "dave"])
      }).pipe(withStore, provideClient))

    it.effect("text beyond ASCII is stored as its UTF-8 bytes and read back whole", () =>
      Effect.gen(function*() {
        const store = yield* SessionStore
        const key = freshKey()
        const t = yield* Clock.currentTimeMillis
        const text = "{\"name\":\"Zoë 🦊\",\"quote\":\"\\u0000 \\\" '\"}"
        yield* store.insert(key, write(text, t + minute, "Zoë 🦊"))
        const record = Option.getOrThrow(yield* store.load(key))
        expect([record.text, Option.getOrNull(record.principal)]).toEqual([text, "Zoë 🦊"])
        // the row holds the bytes the Effect 3 line's JSON codec writes
        const sql = yield* SqlClient.SqlClient
        const [[data]] = yield* sql`SELECT data FROM ${sql(table)} WHERE storage_key = ${key}`.values
        expect(new TextDecoder().decode(data as Uint8Array)).toBe(text)
      }).pipe(withStore, provideClient))

    it.effect("layerConfig reads the options from Config, and each one arrives", () =>
      Effect.gen(function*() {
        yield* TestClock.setTime(Date.now())
        const configured = SqlStore.layerConfig({
          table: Config.String("SESSION_TABLE"),
          cleanupInterval: Config.Duration("SESSION_CLEANUP_INTERVAL"),
          cleanupBatchSize: Config.Int("SESSION_CLEANUP_BATCH")
        }).pipe(Layer.provide(ConfigProvider.layer(ConfigProvider.fromUnknown({
          SESSION_TABLE: configTable,
          SESSION_CLEANUP_INTERVAL: "10 seconds",
          SESSION_CLEANUP_BATCH: "10"
        }))))
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
        }).pipe(Effect.provide(configured), recordBatches(batches))
        // and the configured table is the one written
        const sql = yield* SqlClient.SqlClient
        const rows = yield* sql`SELECT storage_key FROM ${sql(configTable)}`.values
        expect(rows.map(([key]) => key)).toEqual([live])
      }).pipe(provideClient))

    it.effect("a refused setting fails the layer with a setup error saying which, before any SQL", () =>
      Effect.gen(function*() {
        const build = (options: SqlStore.Options) => Effect.scoped(Effect.exit(Layer.build(SqlStore.layer(options))))
        const messageOf = (exit: Exit.Exit<unknown, unknown>) =>
          Exit.isFailure(exit) ? Exit.findErrorOption(exit).pipe(Option.map((e) => (e as SessionStoreError).message)) : exit
        expect(messageOf(yield* build({ table: "sessions; DROP TABLE users" }))).toEqual(Option.some(
          "sql store: setup failed: table name \"sessions; DROP TABLE users\" is not a safe identifier (letters, digits and _, at most 48 characters)"
        ))
        expect(messageOf(yield* build({ table: uniqueTable("batch"), cleanupBatchSize: 0 }))).toEqual(Option.some(
          "sql store: setup failed: cleanupBatchSize must be a positive integer, got 0"
        ))
      }).pipe(provideClient))

    it.live("200 concurrent increments of one session over HTTP all count", () =>
      Effect.gen(function*() {
        const routes = Layer.mergeAll(
          HttpRouter.add("GET", "/start", Effect.as(Counter.set("started", true), HttpServerResponse.text("started"))),
          HttpRouter.add(
            "GET",
            "/incr",
            Effect.as(Counter.update("count", (n) => n + 1), HttpServerResponse.text("ok"))
          ),
          HttpRouter.add("GET", "/count", Effect.map(Counter.get("count"), (n) => HttpServerResponse.text(String(n))))
        ).pipe(
          Layer.provide(Counter.middleware({ cookie: { secure: false }, conflictTimeout: "30 seconds" }).layer),
          Layer.provide(SqlStore.layer({ table: httpTable }))
        )
        const base = yield* serve(routes)
        const cookie = sessionCookie(yield* get(`${base}/start`))
        expect(cookie).toBeDefined()
        const answers = yield* Effect.forEach(Array.from({ length: 200 }), () => get(`${base}/incr`, cookie!), {
          concurrency: "unbounded"
        })
        expect(answers.filter((answer) => answer.status !== 200).map((answer) => answer.body)).toEqual([])
        expect((yield* get(`${base}/count`, cookie!)).body).toBe("200")
        // one row, the session's, written by compare-and-set updates (the
        // middleware may commit several requests' changes in one)
        const sql = yield* SqlClient.SqlClient
        const rows = yield* sql`SELECT version FROM ${sql(httpTable)}`.values
        expect(rows.length).toBe(1)
        expect(Number(rows[0]![0])).toBeGreaterThan(1)
      }).pipe(Effect.scoped, provideClient), 120_000)
  })
}
