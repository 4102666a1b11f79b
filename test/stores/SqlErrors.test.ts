/**
 * A missing table (the schema managed by migrations that have not run, with
 * `createTable: false`) fails every operation with a `SessionStoreError`
 * whose message says what the database said: the store, the operation, and
 * the driver's own words naming the table, on each dialect.
 */
import { expect, it } from "@effect/vitest"
import { Effect, Exit, Layer, Option } from "effect"
import { SessionStoreError } from "../../src/SessionError.js"
import * as SessionId from "../../src/SessionId.js"
import { SessionIndex, SessionStore } from "../../src/SessionStore.js"
import * as SqlStore from "../../src/SqlStore.js"
import { describeBackend } from "../utils/backend.js"
import { mysqlServer, sharedClient, sqlBackends, uniqueTable } from "../utils/sql.js"

/** What each database says about a table that does not exist. */
const missingTable = (backend: string, table: string): string =>
  backend.includes("PostgreSQL")
    ? `Failed to execute statement: relation "${table}" does not exist (42P01)`
    : backend.includes("MariaDB")
    ? `Failed to execute statement: Table '${mysqlServer.database}.${table}' doesn't exist (ER_NO_SUCH_TABLE)`
    : `Failed to prepare statement: no such table: ${table} (SQLITE_ERROR)`

for (const backend of await sqlBackends()) {
  describeBackend(`${backend.name}: errors`, backend.availability, () => {
    const provideClient = sharedClient(backend, [])

    it.effect("a missing table: every operation's error message names the operation and the database's reason", () =>
      Effect.gen(function*() {
        const table = uniqueTable("absent")
        const layer = SqlStore.layer({ table, createTable: false })
        const { index, store } = yield* Effect.all({ store: SessionStore, index: SessionIndex }).pipe(Effect.provide(layer))
        const key = SessionId.unsafeStorageKey("A".repeat(43))
        const write = { data: new Uint8Array([123, 125]), expiresAt: Date.now() + 60_000, principal: Option.some("ann") }
        const operations = {
          load: store.load(key),
          insert: store.insert(key, write),
          update: store.update(key, write, 1),
          touch: store.touch(key, Date.now() + 60_000),
          remove: store.remove(key),
          keys: index.keys("ann"),
          removeAll: index.removeAll("ann")
        }
        for (const [operation, effect] of Object.entries(operations)) {
          const error = yield* Effect.flip(effect)
          expect(error).toBeInstanceOf(SessionStoreError)
          expect(error.message).toBe(`sql store: ${operation} failed: ${missingTable(backend.name, table)}`)
        }
      }).pipe(provideClient))

    it.effect("a refused setting: the setup error says which and why", () =>
      Effect.gen(function*() {
        const build = (options: SqlStore.Options) => Effect.scoped(Effect.exit(Layer.build(SqlStore.layer(options))))
        const messageOf = (exit: Exit.Exit<unknown, unknown>) =>
          Exit.isFailure(exit) && exit.cause._tag === "Fail" && exit.cause.error instanceof SessionStoreError
            ? exit.cause.error.message
            : exit
        expect(messageOf(yield* build({ table: "a-b" }))).toBe(
          "sql store: setup failed: table name \"a-b\" is not a safe identifier (letters, digits and _, at most 48 characters)"
        )
        expect(messageOf(yield* build({ table: uniqueTable("batch"), cleanupBatchSize: 0 }))).toBe(
          "sql store: setup failed: cleanupBatchSize must be a positive integer, got 0"
        )
      }).pipe(provideClient))
  })
}
