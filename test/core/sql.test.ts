/**
 * The SQL store's protocol without a server: the settings it accepts, the
 * DDL and statement text per dialect, the order its parameters are bound in,
 * the principal checks, how driver results and rows are read.
 */
import { Buffer } from "node:buffer"
import { describe, expect, it } from "vitest"
import * as Sql from "../../src/core/sql.js"

const dialects: ReadonlyArray<Sql.SqlDialect> = ["pg", "mysql", "sqlite"]
const now = 1_700_000_000_000

const settings = (dialect: string, options?: Parameters<typeof Sql.storeSetup>[1]) => {
  const result = Sql.storeSetup(dialect, options)
  return "problem" in result ? result.problem.message : result
}

/** The placeholders of a statement's text, in order. */
const placeholders = (text: string) => text.match(/\$\d+|\?/g) ?? []

describe("storeSetup", () => {
  it("defaults the table and the cleanup batch size", () => {
    expect(settings("pg")).toEqual({ dialect: "pg", table: "effect_sessions", batchSize: 1000 })
    expect(settings("sqlite", { table: "App_Sessions_2", cleanupBatchSize: 10 })).toEqual({
      dialect: "sqlite",
      table: "App_Sessions_2",
      batchSize: 10
    })
  })

  it("refuses a table name that would need escaping, or one too long for the index names", () => {
    for (const table of ["sessions; DROP TABLE users", "a-b", "1sessions", "", "ses\"sions", "ses`sions", "x".repeat(49)]) {
      expect(settings("mysql", { table })).toBe(
        `table name ${JSON.stringify(table)} is not a safe identifier (letters, digits and _, at most 48 characters)`
      )
    }
    expect(settings("mysql", { table: `_${"x".repeat(47)}` })).toMatchObject({ table: `_${"x".repeat(47)}` })
  })

  it("refuses a dialect other than PostgreSQL, MySQL and SQLite, after the table name", () => {
    expect(settings("mssql")).toBe("the SqlClient's dialect is not supported: use PostgreSQL, MySQL/MariaDB or SQLite")
    expect(settings("mssql", { table: "a-b" })).toMatch(/^table name "a-b"/)
  })

  it("refuses a cleanup batch size that is not a positive integer (it is spliced into LIMIT)", () => {
    for (const cleanupBatchSize of [0, -1, 1.5, Number.NaN, Number.POSITIVE_INFINITY, 2 ** 53]) {
      expect(settings("pg", { cleanupBatchSize })).toBe(`cleanupBatchSize must be a positive integer, got ${cleanupBatchSize}`)
    }
    expect(settings("pg", { cleanupBatchSize: 1 })).toMatchObject({ batchSize: 1 })
  })
})

describe("schema", () => {
  it("quotes identifiers as each dialect does", () => {
    expect(Sql.quoteIdentifier("pg", "Sessions")).toBe("\"Sessions\"")
    expect(Sql.quoteIdentifier("sqlite", "sessions")).toBe("\"sessions\"")
    expect(Sql.quoteIdentifier("mysql", "sessions")).toBe("`sessions`")
  })

  it("MySQL: one statement, binary collations for the key and the principal, 255 characters, LONGBLOB", () => {
    const [create, ...rest] = Sql.schemaStatements("mysql", "s")
    expect(rest).toEqual([])
    expect(create).toContain("CREATE TABLE IF NOT EXISTS `s` (")
    expect(create).toContain("storage_key VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL")
    expect(create).toContain("data LONGBLOB NOT NULL")
    expect(create).toContain("principal VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NULL")
    expect(create).toContain("INDEX `s_expires_at_idx` (expires_at)")
    expect(create).toContain("INDEX `s_principal_idx` (principal)")
    expect(create).toMatch(/ENGINE=InnoDB$/)
  })

  it("PostgreSQL and SQLite: the table, then the expiry index and a partial principal index", () => {
    const pg = Sql.schemaStatements("pg", "s")
    expect(pg).toHaveLength(3)
    expect(pg[0]).toContain("data BYTEA NOT NULL")
    expect(pg[0]).toContain("expires_at BIGINT NOT NULL")
    expect(pg.slice(1)).toEqual([
      "CREATE INDEX IF NOT EXISTS \"s_expires_at_idx\" ON \"s\" (expires_at)",
      "CREATE INDEX IF NOT EXISTS \"s_principal_idx\" ON \"s\" (principal) WHERE principal IS NOT NULL"
    ])
    const sqlite = Sql.schemaStatements("sqlite", "s")
    expect(sqlite).toHaveLength(3)
    expect(sqlite[0]).toMatch(/\) WITHOUT ROWID$/)
    expect(sqlite.slice(1)).toEqual(pg.slice(1))
  })

  it("locks the DDL per table on PostgreSQL, and names the migration after the table", () => {
    expect(Sql.schemaLock("s")).toEqual({ text: "SELECT pg_advisory_xact_lock(hashtext($1))", params: ["effect-session:s"] })
    expect(Sql.migrationName("s")).toBe("1_create_s")
  })
})

describe("compileStatement", () => {
  it("numbers placeholders on PostgreSQL and binds the values in the text's order", () => {
    const statement = Sql.compileStatement<{ a: number; b: string }>("pg", "SELECT :b, :a, :b")
    expect(statement.text).toBe("SELECT $1, $2, $3")
    expect(statement.order).toEqual(["b", "a", "b"])
    expect(statement.params({ a: 1, b: "x" })).toEqual(["x", 1, "x"])
  })

  it("uses ? on MySQL and SQLite", () => {
    for (const dialect of ["mysql", "sqlite"] as const) {
      expect(Sql.compileStatement(dialect, "SELECT :b, :a").text).toBe("SELECT ?, ?")
    }
  })

  it("binds null, and refuses a value that was not given rather than binding undefined", () => {
    const statement = Sql.compileStatement<{ principal: string | null; now?: number }>("sqlite", ":principal :now")
    expect(() => statement.params({ principal: null })).toThrow("SQL statement parameter now was not given")
    expect(statement.params({ principal: null, now: 1 })).toEqual([null, 1])
  })
})

describe("statements", () => {
  const row: Sql.RowInput = { key: "k", data: new Uint8Array([1, 2, 3]), expiresAt: now + 60_000, principal: "alice", now }

  it("every statement of every dialect binds as many values as its text has placeholders, with no name left over", () => {
    for (const dialect of dialects) {
      const all = Object.entries(Sql.statements(dialect, "s", 10))
      expect(all).toHaveLength(11)
      for (const [name, statement] of all) {
        expect(statement.text, `${dialect} ${name}`).not.toMatch(/:[A-Za-z]/)
        const marks = placeholders(statement.text)
        expect(marks.length, `${dialect} ${name}`).toBe(statement.order.length)
        if (dialect === "pg") expect(marks).toEqual(marks.map((_, i) => `$${i + 1}`))
      }
    }
  })

  it("load reads the live row's four columns", () => {
    const { load } = Sql.statements("pg", "s", 10)
    expect(load.text).toBe("SELECT data, version, expires_at, principal FROM \"s\"\nWHERE storage_key = $1 AND expires_at > $2")
    expect(load.params({ key: "k", now })).toEqual(["k", now])
  })

  it("insert: an upsert over an expired row on PostgreSQL and SQLite, a plain INSERT on MySQL; bytes as a Buffer", () => {
    for (const dialect of ["pg", "sqlite"] as const) {
      const { insert } = Sql.statements(dialect, "s", 10)
      expect(insert.text).toContain("ON CONFLICT (storage_key) DO UPDATE SET")
      expect(insert.text).toMatch(/WHERE "s"\.expires_at <= (\$5|\?)$/)
      expect(insert.order).toEqual(["key", "data", "expiresAt", "principal", "now"])
    }
    const mysql = Sql.statements("mysql", "s", 10)
    expect(mysql.insert.text).toBe(
      "INSERT INTO `s` (storage_key, data, version, expires_at, principal)\nVALUES (?, ?, 1, ?, ?)"
    )
    const params = mysql.insert.params(row)
    expect(params).toEqual(["k", Buffer.from([1, 2, 3]), now + 60_000, "alice"])
    expect(Buffer.isBuffer(params[1])).toBe(true)
    expect(mysql.deleteExpiredKey.text).toBe("DELETE FROM `s` WHERE storage_key = ? AND expires_at <= ?")
    expect(mysql.deleteExpiredKey.params(row)).toEqual(["k", now])
  })

  it("update is a compare-and-set on the version of a live row", () => {
    const { liveVersion, update } = Sql.statements("pg", "s", 10)
    expect(update.text).toBe(
      "UPDATE \"s\" SET data = $1, version = version + 1,\n  expires_at = $2, principal = $3\n" +
        "WHERE storage_key = $4 AND version = $5 AND expires_at > $6"
    )
    expect(update.params({ ...row, principal: null, expectedVersion: 4 })).toEqual([
      Buffer.from([1, 2, 3]),
      now + 60_000,
      null,
      "k",
      4,
      now
    ])
    expect(liveVersion.params({ key: "k", now })).toEqual(["k", now])
  })

  it("touch never revives an expired row; remove takes the key alone", () => {
    const { remove, touch } = Sql.statements("sqlite", "s", 10)
    expect(touch.text).toBe("UPDATE \"s\" SET expires_at = ? WHERE storage_key = ? AND expires_at > ?")
    expect(touch.params({ key: "k", expiresAt: 5, now })).toEqual([5, "k", now])
    expect(remove.params({ key: "k" })).toEqual(["k"])
  })

  it("keys and removeAll: exact principal on MySQL by byte length, expiry as an expression no index holds", () => {
    const mysql = Sql.statements("mysql", "s", 10)
    expect(mysql.keys.text).toBe(
      "SELECT storage_key FROM `s` WHERE principal = ? AND LENGTH(principal) = ? AND expires_at + 0 > ?"
    )
    // UTF-8 bytes, not characters: trailing spaces count, é is 2, 😀 is 4
    expect(mysql.keys.params({ principal: "alice  ", now })).toEqual(["alice  ", 7, now])
    expect(mysql.keys.params({ principal: "é😀", now })).toEqual(["é😀", 6, now])
    expect(mysql.removeAll.text).toBe(
      "DELETE FROM `s` WHERE principal = ? AND LENGTH(principal) = ? AND expires_at + 0 > ?"
    )
    expect(mysql.removeAllExpired.text).toBe(
      "DELETE FROM `s` WHERE principal = ? AND LENGTH(principal) = ? AND expires_at + 0 <= ?"
    )
    const pg = Sql.statements("pg", "s", 10)
    expect(pg.keys.text).toBe("SELECT storage_key FROM \"s\" WHERE principal = $1 AND expires_at + 0 > $2")
    expect(pg.keys.params({ principal: "alice  ", now })).toEqual(["alice  ", now])
    expect(pg.removeAll.text).toBe("DELETE FROM \"s\" WHERE principal = $1 RETURNING expires_at")
    expect(pg.removeAll.params({ principal: "alice", now })).toEqual(["alice"])
  })

  it("a cleanup batch deletes at most batchSize expired rows; PostgreSQL skips rows another sweep holds", () => {
    expect(Sql.statements("mysql", "s", 250).cleanupBatch.text).toBe("DELETE FROM `s` WHERE expires_at <= ? LIMIT 250")
    expect(Sql.statements("pg", "s", 250).cleanupBatch.text).toBe(
      "DELETE FROM \"s\" WHERE storage_key IN (\n  SELECT storage_key FROM \"s\" WHERE expires_at <= $1 LIMIT 250 FOR UPDATE SKIP LOCKED)"
    )
    expect(Sql.statements("sqlite", "s", 250).cleanupBatch.text).toBe(
      "DELETE FROM \"s\" WHERE storage_key IN (\n  SELECT storage_key FROM \"s\" WHERE expires_at <= ? LIMIT 250)"
    )
    expect(Sql.sweepContinues(250, 250)).toBe(true)
    expect(Sql.sweepContinues(249, 250)).toBe(false)
  })
})

describe("principalProblem", () => {
  it("refuses a principal that is not a string, on every dialect", () => {
    for (const dialect of dialects) {
      expect(Sql.principalProblem(dialect, "s", null)).toEqual(new TypeError("the principal must be a string, got null"))
      expect(Sql.principalProblem(dialect, "s", { $ne: null })?.message).toBe("the principal must be a string, got object")
      expect(Sql.principalProblem(dialect, "s", ["a"])?.message).toBe("the principal must be a string, got object")
      expect(Sql.principalProblem(dialect, "s", "alice")).toBeUndefined()
    }
  })

  it("on MySQL, refuses more than 255 characters, counted in code points", () => {
    const astral = "😀".repeat(255) // 510 UTF-16 units, 255 characters
    expect(Sql.principalProblem("mysql", "s", astral)).toBeUndefined()
    const error = Sql.principalProblem("mysql", "s", `${astral}x`)
    expect(error).toBeInstanceOf(RangeError)
    expect(error?.message).toBe("the principal is longer than the 255 characters the principal column of s holds")
    expect(Sql.principalProblem("pg", "s", "x".repeat(10_000))).toBeUndefined()
    expect(Sql.principalProblem("sqlite", "s", "x".repeat(10_000))).toBeUndefined()
  })
})

describe("driver results", () => {
  it("reads the matched rows of each driver's result", () => {
    expect(Sql.matchedRows("pg", { rowCount: 2 })).toBe(2)
    expect(Sql.matchedRows("sqlite", { changes: 1 })).toBe(1)
    expect(Sql.matchedRows("sqlite", { changes: 3n })).toBe(3)
    expect(Sql.matchedRows("mysql", { affectedRows: 1 })).toBe(1)
    expect(Sql.matchedRows("pg", { rowCount: null })).toBeUndefined()
    expect(Sql.matchedRows("pg", { changes: 1 })).toBeUndefined()
    expect(Sql.matchedRows("sqlite", undefined)).toBeUndefined()
    expect(Sql.noRowCount().message).toBe("the driver did not report an affected-row count")
  })

  it("on MySQL, the rows an UPDATE matched, not the rows it changed (connections without CLIENT_FOUND_ROWS)", () => {
    expect(Sql.matchedRows("mysql", { affectedRows: 0, info: "Rows matched: 1  Changed: 0  Warnings: 0" })).toBe(1)
    expect(Sql.matchedRows("mysql", { affectedRows: 2, info: "" })).toBe(2)
  })

  it("tells MySQL's duplicate-key and deadlock errors by errno or code", () => {
    expect(Sql.isDuplicateKey({ errno: 1062 })).toBe(true)
    expect(Sql.isDuplicateKey({ code: "ER_DUP_ENTRY" })).toBe(true)
    expect(Sql.isDuplicateKey({ errno: 1213 })).toBe(false)
    expect(Sql.isDuplicateKey("ER_DUP_ENTRY")).toBe(false)
    expect(Sql.isDeadlock({ errno: 1213 })).toBe(true)
    expect(Sql.isDeadlock({ code: "ER_LOCK_DEADLOCK" })).toBe(true)
    expect(Sql.isDeadlock(undefined)).toBe(false)
  })

  it("a failed update is a version mismatch when a live row is there, Missing otherwise", () => {
    expect(Sql.updateConflict(1)).toBe("VersionMismatch")
    expect(Sql.updateConflict(0)).toBe("Missing")
  })
})

describe("decodeRow", () => {
  const data = new Uint8Array([1])

  it("decodes the row, whatever integer type the driver gives", () => {
    expect(Sql.decodeRow([data, 2, now, "alice"])).toEqual({ data, version: 2, expiresAt: now, principal: "alice" })
    expect(Sql.decodeRow([Buffer.from([1]), "2", String(now), null])).toEqual({
      data: Buffer.from([1]),
      version: 2,
      expiresAt: now,
      principal: null
    })
    expect(Sql.decodeRow([data, 2n, BigInt(now), null])).toMatchObject({ version: 2, expiresAt: now })
  })

  it("refuses a row whose columns are not what the table holds", () => {
    expect(Sql.decodeRow(["text", 1, now, null])).toBeUndefined()
    expect(Sql.decodeRow([data, 1.5, now, null])).toBeUndefined()
    expect(Sql.decodeRow([data, 1, "soon", null])).toBeUndefined()
    expect(Sql.decodeRow([data, 1, 2 ** 53, null])).toBeUndefined()
    expect(Sql.decodeRow([data, 1, now, 7])).toBeUndefined()
    expect(Sql.decodeRow([data, 1, now])).toBeUndefined()
    expect(Sql.unexpectedRow("s").message).toBe("the row of s has unexpected column types")
  })

  it("counts the live rows removeAll returned", () => {
    expect(Sql.liveRows([[now + 1], [String(now + 5)], [now], [now - 1]], now)).toBe(2)
  })
})
