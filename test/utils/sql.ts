import * as SqlClient from "@effect/sql/SqlClient"
import { MysqlClient } from "@effect/sql-mysql2"
import { PgClient } from "@effect/sql-pg"
import { SqliteClient } from "@effect/sql-sqlite-node"
import { afterAll, beforeAll } from "@effect/vitest"
import type { Context, Layer } from "effect"
import { Effect, ManagedRuntime, String } from "effect"
import { randomBytes } from "node:crypto"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { reachable } from "./backend.js"

/** The SQL servers of the development machines (DESIGN §7). */
export const pgServer = { host: "127.0.0.1", port: 5432, database: "test", username: "postgres" } as const
export const mysqlServer = { host: "127.0.0.1", port: 3306, database: "test", username: "root" } as const

export interface SqlBackend {
  readonly name: string
  readonly availability: { readonly available: boolean; readonly reason: string }
  /** Creates the client; called once per suite, when the suite runs. */
  readonly client: () => Layer.Layer<SqlClient.SqlClient, unknown>
}

/** A table name no other test run uses, so concurrent runs never collide. */
export const uniqueTable = (purpose: string): string => `effect_sessions_test_${purpose}_${randomBytes(4).toString("hex")}`

/** PostgreSQL, MariaDB and SQLite (on a temporary file and in memory). */
export const sqlBackends = async (): Promise<ReadonlyArray<SqlBackend>> => {
  const [pg, mysql] = await Promise.all([
    reachable(pgServer.host, pgServer.port),
    reachable(mysqlServer.host, mysqlServer.port)
  ])
  return [
    {
      name: "SqlStore (PostgreSQL)",
      availability: { available: pg, reason: `no PostgreSQL server on ${pgServer.host}:${pgServer.port}` },
      client: () => PgClient.layer({ ...pgServer, maxConnections: 20 })
    },
    {
      name: "SqlStore (MariaDB/MySQL)",
      availability: { available: mysql, reason: `no MySQL/MariaDB server on ${mysqlServer.host}:${mysqlServer.port}` },
      client: () => MysqlClient.layer({ ...mysqlServer, maxConnections: 20 })
    },
    {
      // mysql2 opens connections with CLIENT_FOUND_ROWS; without it an
      // UPDATE reports only the rows it changed, and the store must not care
      name: "SqlStore (MariaDB/MySQL, without CLIENT_FOUND_ROWS)",
      availability: { available: mysql, reason: `no MySQL/MariaDB server on ${mysqlServer.host}:${mysqlServer.port}` },
      client: () => MysqlClient.layer({ ...mysqlServer, maxConnections: 20, poolConfig: { flags: ["-FOUND_ROWS"] } })
    },
    {
      name: "SqlStore (SQLite file)",
      availability: { available: true, reason: "" },
      client: () => {
        const directory = mkdtempSync(join(tmpdir(), "effect-session-sql-"))
        afterAll(() => rmSync(directory, { recursive: true, force: true }))
        return SqliteClient.layer({ filename: join(directory, "sessions.db") })
      }
    },
    {
      name: "SqlStore (SQLite :memory:)",
      availability: { available: true, reason: "" },
      client: () => SqliteClient.layer({ filename: ":memory:" })
    },
    {
      // the store's SQL must not depend on how the application names columns
      name: "SqlStore (SQLite, client with name transforms)",
      availability: { available: true, reason: "" },
      client: () =>
        SqliteClient.layer({
          filename: ":memory:",
          transformQueryNames: String.camelToSnake,
          transformResultNames: String.snakeToCamel
        })
    }
  ]
}

/**
 * One client for a whole suite, built on the live clock before the tests and
 * closed after them, once the given tables are dropped. Returns a function
 * providing it to a test's effect (only the service: the test keeps its
 * TestClock).
 */
export const sharedClient = (
  backend: SqlBackend,
  tables: ReadonlyArray<string>
): <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E, Exclude<R, SqlClient.SqlClient>> => {
  const runtime = ManagedRuntime.make(backend.client())
  let context: Context.Context<SqlClient.SqlClient> | undefined
  beforeAll(async () => {
    context = await runtime.runPromise(Effect.context<SqlClient.SqlClient>())
  })
  afterAll(async () => {
    await runtime.runPromise(Effect.flatMap(SqlClient.SqlClient, (sql) =>
      Effect.forEach(tables, (table) => sql`DROP TABLE IF EXISTS ${sql(table)}`, { discard: true })))
    await runtime.dispose()
  })
  return (effect) =>
    Effect.suspend(() => {
      if (context === undefined) return Effect.dieMessage(`${backend.name}: the SQL client was not built`)
      return Effect.provide(effect, context)
    })
}
