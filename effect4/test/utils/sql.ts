/**
 * The SQL backends of the Effect 4 line's tests: PostgreSQL through
 * `@effect/sql-pg`, MariaDB/MySQL through this package's `SqlMysql` (with
 * and without CLIENT_FOUND_ROWS), SQLite through `SqlSqlite` (a temporary
 * file, and `:memory:` with name transforms). A suite whose server is not
 * reachable is skipped and says so in its name; with
 * SESSION_TEST_REQUIRE_ALL=1 it fails instead.
 */
import { PgClient } from "@effect/sql-pg"
import { afterAll, beforeAll, describe, it } from "@effect/vitest"
import type { Context, Layer } from "effect"
import { Effect, ManagedRuntime, String } from "effect"
import { SqlClient } from "effect/sql"
import { randomBytes } from "node:crypto"
import { mkdtempSync, rmSync } from "node:fs"
import { connect } from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"
import * as SqlMysql from "../../src/SqlMysql.js"
import * as SqlSqlite from "../../src/SqlSqlite.js"

/** The SQL servers of the development machines. */
export const pgServer = { host: "127.0.0.1", port: 5432, database: "test", username: "postgres" } as const
export const mysqlServer = { host: "127.0.0.1", port: 3306, database: "test", username: "root" } as const

export type Dialect = "pg" | "mysql" | "sqlite"

export interface SqlBackend {
  readonly name: string
  readonly dialect: Dialect
  /** Why the backend cannot run here, or `undefined` when it can. */
  readonly missing: string | undefined
  /** Creates the client; called once per suite, when the suite runs. */
  readonly client: () => Layer.Layer<SqlClient.SqlClient, unknown>
}

const requireAll = process.env.SESSION_TEST_REQUIRE_ALL === "1"

const reachable = (host: string, port: number): Promise<boolean> =>
  new Promise((resolve) => {
    const socket = connect(port, host)
    socket.setTimeout(1_000, () => (socket.destroy(), resolve(false)))
    socket.once("connect", () => (socket.end(), resolve(true)))
    socket.once("error", () => resolve(false))
  })

/** A table name no other run or test file uses (every one of this line starts with `e4_`). */
export const uniqueTable = (purpose: string): string => `e4_sessions_${purpose}_${randomBytes(4).toString("hex")}`

/** Every backend, each with what is missing for it. */
export const sqlBackends = async (): Promise<ReadonlyArray<SqlBackend>> => {
  const [pg, mysql] = await Promise.all([
    reachable(pgServer.host, pgServer.port),
    reachable(mysqlServer.host, mysqlServer.port)
  ])
  const noPg = pg ? undefined : `no PostgreSQL server on ${pgServer.host}:${pgServer.port}`
  const noMysql = mysql ? undefined : `no MySQL/MariaDB server on ${mysqlServer.host}:${mysqlServer.port}`
  return [
    {
      name: "SqlStore (PostgreSQL, @effect/sql-pg)",
      dialect: "pg",
      missing: noPg,
      client: () => PgClient.layer({ ...pgServer, maxConnections: 20 })
    },
    {
      name: "SqlStore (MariaDB/MySQL, SqlMysql)",
      dialect: "mysql",
      missing: noMysql,
      client: () => SqlMysql.layer({ ...mysqlServer, maxConnections: 20 })
    },
    {
      // mysql2 opens connections with CLIENT_FOUND_ROWS; without it an
      // UPDATE reports only the rows it changed, and the store must not care
      name: "SqlStore (MariaDB/MySQL, SqlMysql without CLIENT_FOUND_ROWS)",
      dialect: "mysql",
      missing: noMysql,
      client: () => SqlMysql.layer({ ...mysqlServer, maxConnections: 20, poolConfig: { flags: ["-FOUND_ROWS"] } })
    },
    {
      name: "SqlStore (SQLite file, SqlSqlite)",
      dialect: "sqlite",
      missing: undefined,
      client: () => {
        const directory = mkdtempSync(join(tmpdir(), "e4-session-sql-"))
        afterAll(() => rmSync(directory, { recursive: true, force: true }))
        return SqlSqlite.layer({ filename: join(directory, "sessions.db") })
      }
    },
    {
      // the store's SQL must not depend on how the application names columns
      name: "SqlStore (SQLite :memory:, SqlSqlite with name transforms)",
      dialect: "sqlite",
      missing: undefined,
      client: () =>
        SqlSqlite.layer({
          filename: ":memory:",
          transformQueryNames: String.camelToSnake,
          transformResultNames: String.snakeToCamel
        })
    }
  ]
}

/**
 * Declares a backend's suite. Without its server the suite is skipped and
 * its name says why; under SESSION_TEST_REQUIRE_ALL=1 it is one failing
 * test that says what is missing.
 */
export const describeBackend = (name: string, backend: SqlBackend, body: () => void): void => {
  if (backend.missing === undefined) {
    describe(name, body)
  } else if (requireAll) {
    describe(name, () => {
      it(`${name}: the server is there`, () => {
        throw new Error(`${name}: ${backend.missing} (SESSION_TEST_REQUIRE_ALL=1 requires every backend)`)
      })
    })
  } else {
    describe.skip(`${name} (skipped: ${backend.missing})`, body)
  }
}

/**
 * One client for a whole suite, built before the tests and closed after
 * them, once the given tables are dropped. Returns a function providing it
 * to a test's effect (only the service: the test keeps its TestClock).
 */
export const sharedClient = (
  backend: SqlBackend,
  tables: ReadonlyArray<string>
): <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E, Exclude<R, SqlClient.SqlClient>> => {
  let runtime: ManagedRuntime.ManagedRuntime<SqlClient.SqlClient, unknown> | undefined
  let context: Context.Context<SqlClient.SqlClient> | undefined
  beforeAll(async () => {
    runtime = ManagedRuntime.make(backend.client())
    context = await runtime.runPromise(Effect.context<SqlClient.SqlClient>())
  })
  afterAll(async () => {
    if (runtime === undefined) return
    await runtime.runPromise(Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      for (const table of tables) yield* sql`DROP TABLE IF EXISTS ${sql(table)}`
    }))
    await runtime.dispose()
  })
  return (effect) =>
    Effect.suspend(() => {
      if (context === undefined) return Effect.die(new Error(`${backend.name}: the SQL client was not built`))
      return Effect.provideContext(effect, context)
    })
}
