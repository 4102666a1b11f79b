/**
 * This package's SqlClient modules on their databases: SqlMysql on MariaDB
 * (127.0.0.1:3306) and SqlSqlite on a temporary file. Statements with
 * parameters, each compiler's quoting and placeholders, transactions
 * (commit, rollback, savepoints, concurrent transactions), streams, errors
 * classified with the driver's words, and the resources closed with the
 * layer.
 */
import { afterAll, describe, expect, it } from "@effect/vitest"
import { Config, ConfigProvider, Context, Effect, Exit, Layer, Option, Scope, Stream, String as Str } from "effect"
import { SqlClient } from "effect/sql"
import { mkdtempSync, rmSync } from "node:fs"
import { DatabaseSync } from "node:sqlite"
import { tmpdir } from "node:os"
import { join } from "node:path"
import type { StorageKey } from "../src/SessionId.js"
import { SessionStore } from "../src/SessionStore.js"
import * as SqlMysql from "../src/SqlMysql.js"
import * as SqlSqlite from "../src/SqlSqlite.js"
import * as SqlStore from "../src/SqlStore.js"
import { describeBackend, mysqlServer, sqlBackends, uniqueTable } from "./utils/sql.js"

const directory = mkdtempSync(join(tmpdir(), "e4-session-sqlclient-"))
afterAll(() => rmSync(directory, { recursive: true, force: true }))

const mysqlBackend = (await sqlBackends()).find((backend) => backend.name.endsWith("SqlMysql)"))!

const clients = [
  {
    name: "SqlMysql (MariaDB)",
    backend: mysqlBackend,
    layer: () => SqlMysql.layer({ ...mysqlServer, maxConnections: 5 }),
    blob: "LONGBLOB",
    text: "VARCHAR(64)",
    quote: "`"
  },
  {
    name: "SqlSqlite (file)",
    backend: { ...mysqlBackend, name: "SqlSqlite", dialect: "sqlite" as const, missing: undefined },
    layer: () => SqlSqlite.layer({ filename: join(directory, "client.db") }),
    blob: "BLOB",
    text: "TEXT",
    quote: "\""
  }
]

for (const client of clients) {
  describeBackend(client.name, client.backend, () => {
    const table = uniqueTable("client")
    const withTable = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        yield* sql.unsafe(`CREATE TABLE ${table} (name ${client.text} PRIMARY KEY, n INTEGER NOT NULL, bytes ${client.blob})`)
        return yield* Effect.ensuring(effect, Effect.orDie(sql.unsafe(`DROP TABLE ${table}`)))
      }).pipe(Effect.provide(client.layer()))

    it.effect("statements bind their parameters: text, numbers, bytes, null, booleans and undefined", () =>
      withTable(Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const bytes = new Uint8Array([0, 1, 2, 255])
        yield* sql`INSERT INTO ${sql(table)} ${sql.insert([{ name: "a'; DROP TABLE x; --", n: 1, bytes }, { name: "é 🦊", n: 2, bytes: null }])}`
        yield* sql`INSERT INTO ${sql(table)} (name, n, bytes) VALUES (${"flag"}, ${true}, ${undefined})`
        const rows = yield* sql<{ readonly name: string; readonly n: number; readonly bytes: Uint8Array | null }>`
          SELECT name, n, bytes FROM ${sql(table)} WHERE n >= ${1} ORDER BY n, name`
        expect(rows.map((row) => [row.name, Number(row.n), row.bytes === null ? null : [...row.bytes]])).toEqual([
          ["a'; DROP TABLE x; --", 1, [0, 1, 2, 255]],
          ["flag", 1, null],
          ["é 🦊", 2, null]
        ])
        const [[count]] = yield* sql`SELECT COUNT(*) FROM ${sql(table)} WHERE ${sql.in("name", ["flag", "é 🦊"])}`.values
        expect(Number(count)).toBe(2)
      })))

    it.effect("the compiler quotes identifiers and places parameters as the dialect does, names transformed when asked", () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const [text, params] = sql`SELECT ${sql("userName")} FROM ${sql("my`table\"")} WHERE id = ${1} AND x = ${"y"}`.compile()
        const q = client.quote
        const escaped = q === "`" ? "`my``table\"`" : "\"my`table\"\"\""
        expect([text, params]).toEqual([`SELECT ${q}userName${q} FROM ${escaped} WHERE id = ? AND x = ?`, [1, "y"]])
        const transformed = client.name.startsWith("SqlMysql")
          ? SqlMysql.layer({ ...mysqlServer, transformQueryNames: Str.camelToSnake })
          : SqlSqlite.layer({ filename: ":memory:", transformQueryNames: Str.camelToSnake })
        const [snake] = yield* Effect.provide(
          Effect.map(SqlClient.SqlClient, (other) => other`SELECT ${other("userName")}`.compile()),
          transformed
        )
        expect(snake).toBe(`SELECT ${q}user_name${q}`)
      }).pipe(Effect.provide(client.layer())))

    it.effect("a transaction commits on success and rolls back on failure; a failed savepoint keeps the outer work", () =>
      withTable(Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const names = Effect.map(sql<{ readonly name: string }>`SELECT name FROM ${sql(table)} ORDER BY name`, (rows) =>
          rows.map((row) => row.name))
        yield* sql.withTransaction(sql`INSERT INTO ${sql(table)} (name, n) VALUES ('committed', 1)`)
        const failed = yield* Effect.exit(sql.withTransaction(Effect.andThen(
          sql`INSERT INTO ${sql(table)} (name, n) VALUES ('rolled back', 1)`,
          Effect.fail("boom")
        )))
        expect(Exit.isFailure(failed)).toBe(true)
        expect(yield* names).toEqual(["committed"])
        yield* sql.withTransaction(Effect.gen(function*() {
          yield* sql`INSERT INTO ${sql(table)} (name, n) VALUES ('outer', 1)`
          yield* Effect.exit(sql.withTransaction(Effect.andThen(
            sql`INSERT INTO ${sql(table)} (name, n) VALUES ('inner', 1)`,
            Effect.fail("inner fails")
          )))
        }))
        expect(yield* names).toEqual(["committed", "outer"])
      })))

    it.effect("concurrent read-modify-write transactions do not lose an update", () =>
      withTable(Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        yield* sql`INSERT INTO ${sql(table)} (name, n) VALUES ('counter', 0)`
        // SQLite: one connection, one transaction at a time; MySQL: the row lock
        const lock = client.name.startsWith("SqlMysql") ? sql.literal(" FOR UPDATE") : sql.literal("")
        const increment = sql.withTransaction(Effect.gen(function*() {
          const [[n]] = yield* sql`SELECT n FROM ${sql(table)} WHERE name = 'counter'${lock}`.values
          yield* sql`UPDATE ${sql(table)} SET n = ${Number(n) + 1} WHERE name = 'counter'`
        }))
        yield* Effect.all(Array.from({ length: 25 }, () => increment), { concurrency: "unbounded", discard: true })
        const [[n]] = yield* sql`SELECT n FROM ${sql(table)} WHERE name = 'counter'`.values
        expect(Number(n)).toBe(25)
      })))

    it.effect("a stream gives every row", () =>
      withTable(Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const rows = Array.from({ length: 300 }, (_, i) => ({ name: `row-${`${i}`.padStart(4, "0")}`, n: i }))
        yield* sql`INSERT INTO ${sql(table)} ${sql.insert(rows as [typeof rows[number], ...Array<typeof rows[number]>])}`
        const streamed = yield* Stream.runCollect(sql<{ readonly n: number }>`SELECT n FROM ${sql(table)} ORDER BY n`.stream)
        expect(streamed.map((row) => Number(row.n))).toEqual(rows.map((row) => row.n))
      })))

    it.effect("errors are SqlErrors classified by the database's error, with its words", () =>
      withTable(Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        yield* sql`INSERT INTO ${sql(table)} (name, n) VALUES ('taken', 1)`
        const duplicate = yield* Effect.flip(sql`INSERT INTO ${sql(table)} (name, n) VALUES ('taken', 2)`)
        expect(duplicate.reason._tag).toBe("UniqueViolation")
        expect((duplicate.reason.cause as Error).message).toMatch(/Duplicate entry 'taken'|UNIQUE constraint failed/)
        const notNull = yield* Effect.flip(sql`INSERT INTO ${sql(table)} (name, n) VALUES ('null n', ${null})`)
        expect(notNull.reason._tag).toBe("ConstraintError")
        const syntax = yield* Effect.flip(sql.unsafe("SELEC 1"))
        expect(syntax.reason._tag).toBe("SqlSyntaxError")
        const missing = yield* Effect.flip(sql.unsafe(`SELECT * FROM ${table}_absent`))
        expect(missing.message).toMatch(/^Failed to (execute|prepare) statement$/)
        expect((missing.reason.cause as Error).message).toMatch(new RegExp(`${table}_absent`))
      })))
  })
}

describeBackend("SqlMysql: the pool", mysqlBackend, () => {
  it.effect("its connections are closed when the layer's scope closes", () =>
    Effect.gen(function*() {
      const scope = yield* Scope.make()
      const context = yield* Layer.buildWithScope(SqlMysql.layer({ ...mysqlServer, maxConnections: 3 }), scope)
      const sql = Context.get(context, SqlClient.SqlClient)
      // three connections busy at once
      const ids = yield* Effect.all(
        Array.from({ length: 3 }, () => sql.withTransaction(Effect.map(sql`SELECT CONNECTION_ID(), SLEEP(0.05)`.values, ([[id]]) => Number(id)))),
        { concurrency: "unbounded" }
      )
      expect(new Set(ids).size).toBe(3)
      const open = Effect.provide(
        Effect.flatMap(SqlClient.SqlClient, (other) =>
          Effect.map(other`SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE ${other.in("ID", ids)}`.values, ([[n]]) => Number(n))),
        SqlMysql.layer(mysqlServer)
      )
      expect(yield* open).toBe(3)
      yield* Scope.close(scope, Exit.void)
      // the server notices each COM_QUIT on its own thread: wait for it, boundedly
      let left = yield* open
      for (let i = 0; i < 100 && left > 0; i++) left = yield* Effect.andThen(Effect.sleep("20 millis"), open)
      expect(left).toBe(0)
    }).pipe(Effect.scoped), 30_000)

  it.effect("layerConfig reads the URL from Config, and a store runs on it", () =>
    Effect.gen(function*() {
      const table = uniqueTable("mycfg")
      const ClientLive = SqlMysql.layerConfig({ url: Config.Redacted("DATABASE_URL") }).pipe(
        Layer.provide(ConfigProvider.layer(ConfigProvider.fromUnknown({
          DATABASE_URL: `mysql://${mysqlServer.username}@${mysqlServer.host}:${mysqlServer.port}/${mysqlServer.database}`
        })))
      )
      const loaded = yield* Effect.gen(function*() {
        const store = yield* SessionStore
        const key = "K".repeat(43) as StorageKey
        yield* store.insert(key, { text: "{}", expiresAt: Date.now() + 60_000, principal: Option.none() })
        const record = yield* store.load(key)
        const sql = yield* SqlClient.SqlClient
        yield* sql`DROP TABLE ${sql(table)}`
        return record
      }).pipe(Effect.provide(SqlStore.layer({ table }).pipe(Layer.provideMerge(ClientLive))))
      expect(Option.map(loaded, (r) => r.text)).toEqual(Option.some("{}"))
    }))

  it.live("a server that does not answer fails the layer with a ConnectionError", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(Effect.scoped(Layer.build(SqlMysql.layer({ host: "127.0.0.1", port: 1, connectTimeout: "2 seconds" }))))
      expect(error._tag).toBe("SqlError")
      expect(error.reason._tag).toBe("ConnectionError")
      expect(error.message).toBe("Failed to connect")
    }))
})

describe("SqlSqlite: the connection", () => {
  it.effect("layerConfig reads the file name from Config", () =>
    Effect.gen(function*() {
      const filename = join(directory, "configured.db")
      const ClientLive = SqlSqlite.layerConfig({ filename: Config.String("SQLITE_FILE") }).pipe(
        Layer.provide(ConfigProvider.layer(ConfigProvider.fromUnknown({ SQLITE_FILE: filename })))
      )
      yield* Effect.provide(Effect.flatMap(SqlClient.SqlClient, (sql) => sql`CREATE TABLE configured (x INTEGER)`), ClientLive)
      // the table is in that file: another client on it sees it
      const tables = yield* Effect.provide(
        Effect.flatMap(SqlClient.SqlClient, (sql) => sql`SELECT name FROM sqlite_master WHERE type = 'table'`.values),
        SqlSqlite.layer({ filename })
      )
      expect(tables).toEqual([["configured"]])
    }))

  it.effect("is closed when the layer's scope closes: the client's statements fail afterwards", () =>
    Effect.gen(function*() {
      const scope = yield* Scope.make()
      const context = yield* Layer.buildWithScope(SqlSqlite.layer({ filename: join(directory, "closed.db") }), scope)
      const sql = Context.get(context, SqlClient.SqlClient)
      expect(yield* sql`SELECT 1 AS one`.values).toEqual([[1]])
      yield* Scope.close(scope, Exit.void)
      const error = yield* Effect.flip(sql`SELECT 1 AS one`.values)
      expect(error._tag).toBe("SqlError")
      expect((error.reason.cause as Error).message).toMatch(/database is not open/)
    }))

  it.effect("a file is in WAL mode, and a writer kept waiting past busyTimeout fails with a LockTimeoutError", () =>
    Effect.gen(function*() {
      const filename = join(directory, "busy.db")
      const sql = yield* SqlClient.SqlClient
      expect(yield* sql`PRAGMA journal_mode`.values).toEqual([["wal"]])
      yield* sql`CREATE TABLE busy (x INTEGER)`
      // another process's connection holds the write lock
      const other = new DatabaseSync(filename)
      other.exec("BEGIN IMMEDIATE; INSERT INTO busy VALUES (1)")
      const error = yield* Effect.flip(sql`INSERT INTO busy VALUES (2)`)
      other.exec("ROLLBACK")
      other.close()
      expect(error.reason._tag).toBe("LockTimeoutError")
      expect((error.reason.cause as Error).message).toMatch(/database is locked/)
      yield* sql`INSERT INTO busy VALUES (3)`
      expect(yield* sql`SELECT x FROM busy`.values).toEqual([[3]])
    }).pipe(Effect.provide(SqlSqlite.layer({ filename: join(directory, "busy.db"), busyTimeout: "100 millis" }))))

  it.effect("a file that cannot be opened fails the layer with a ConnectionError", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(Effect.scoped(Layer.build(SqlSqlite.layer({ filename: join(directory, "no", "such", "dir.db") }))))
      expect(error.reason._tag).toBe("ConnectionError")
      expect(error.message).toBe("Failed to open the database")
    }))
})
