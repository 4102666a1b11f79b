/**
 * The core's SQL operation steps (`sessionOperations`), which the Effect 4
 * SqlStore runs, driven without a database: each answer a driver can give,
 * including the ones a server rarely gives on demand (a deadlock, a result
 * without a row count), and what the operation does next.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Sql from "../../src/core/sql.js"

type Answer = Sql.SqlAnswer

/**
 * Runs an operation's steps, answering its statements in order from
 * `answers`; returns the statements sent and the outcome.
 */
const drive = <A, C extends Sql.SqlConflictReason>(step: Sql.SqlStep<A, C>, answers: ReadonlyArray<Answer>) => {
  const sent: Array<string> = []
  let at = step
  while (at._tag === "Run") {
    sent.push(at.call.text.split(/\s/)[0]!)
    const answer = answers[sent.length - 1]
    if (answer === undefined) throw new Error(`no answer for statement ${sent.length}: ${at.call.text}`)
    at = at.next(answer)
  }
  return { sent, outcome: at }
}

const answered = (result: unknown): Answer => ({ _tag: "Answered", result })
const failed = (driverError: unknown): Answer => ({ _tag: "Failed", error: { wraps: driverError }, driverError })
const duplicate = failed({ errno: 1062, code: "ER_DUP_ENTRY" })
const deadlock = failed({ errno: 1213, code: "ER_LOCK_DEADLOCK" })
const row = { key: "k".repeat(43), data: new Uint8Array([123, 125]), expiresAt: 2_000, now: 1_000 }

const mysql = Sql.sessionOperations("mysql", "sessions", 100)
const pg = Sql.sessionOperations("pg", "sessions", 100)

describe("core SQL operation steps", () => {
  it("MySQL insert: a duplicate deletes an expired row and inserts again; a second duplicate is Exists", () => {
    const fresh = drive(mysql.insert({ ...row, principal: undefined }), [answered({ affectedRows: 1 })])
    expect(fresh).toEqual({ sent: ["INSERT"], outcome: { _tag: "Done", value: undefined } })
    const overExpired = drive(mysql.insert({ ...row, principal: undefined }), [duplicate, answered({}), answered({})])
    expect(overExpired).toEqual({ sent: ["INSERT", "DELETE", "INSERT"], outcome: { _tag: "Done", value: undefined } })
    const live = drive(mysql.insert({ ...row, principal: undefined }), [duplicate, answered({}), duplicate])
    expect(live.outcome).toEqual({ _tag: "Conflict", reason: "Exists" })
  })

  it("MySQL insert: a deadlock anywhere starts it again, three times at most, then fails with that statement's error", () => {
    const recovered = drive(mysql.insert({ ...row, principal: undefined }), [duplicate, deadlock, answered({})])
    expect(recovered).toEqual({ sent: ["INSERT", "DELETE", "INSERT"], outcome: { _tag: "Done", value: undefined } })
    const given = drive(mysql.insert({ ...row, principal: undefined }), [deadlock, deadlock, deadlock, deadlock])
    expect(given.sent).toEqual(["INSERT", "INSERT", "INSERT", "INSERT"])
    expect(given.outcome).toEqual({ _tag: "Fail", cause: { wraps: { errno: 1213, code: "ER_LOCK_DEADLOCK" } } })
    // any other error is not retried
    const other = drive(mysql.insert({ ...row, principal: undefined }), [failed({ errno: 1146 })])
    expect(other).toEqual({ sent: ["INSERT"], outcome: { _tag: "Fail", cause: { wraps: { errno: 1146 } } } })
  })

  it("update: a matched row is the next version; none asks whether a live row is there", () => {
    const input = { ...row, principal: undefined, expectedVersion: 4 }
    expect(drive(pg.update(input), [answered({ rowCount: 1 })]).outcome).toEqual({ _tag: "Done", value: 5 })
    const newer = drive(pg.update(input), [answered({ rowCount: 0 }), answered([[5]])])
    expect(newer).toEqual({ sent: ["UPDATE", "SELECT"], outcome: { _tag: "Conflict", reason: "VersionMismatch" } })
    expect(drive(pg.update(input), [answered({ rowCount: 0 }), answered([])]).outcome)
      .toEqual({ _tag: "Conflict", reason: "Missing" })
    // MySQL without CLIENT_FOUND_ROWS: the info line's matched rows count, not the changed ones
    const unchanged = drive(mysql.update(input), [answered({ affectedRows: 0, info: "Rows matched: 1  Changed: 0  Warnings: 0" })])
    expect(unchanged.outcome).toEqual({ _tag: "Done", value: 5 })
  })

  it("a result without a row count fails the operation instead of guessing", () => {
    const outcome = drive(pg.touch({ key: row.key, expiresAt: 3_000, now: 1_000 }), [answered({ rows: [] })]).outcome
    expect(outcome._tag).toBe("Fail")
    expect(String((outcome as { readonly cause: Error }).cause.message)).toMatch(/did not report an affected-row count/)
  })

  it("a principal that is not a string, or too long for MySQL's column, fails before any statement", () => {
    for (const principal of [null, 1, { $ne: null }, ["alice"]] as ReadonlyArray<unknown>) {
      const { outcome, sent } = drive(pg.insert({ ...row, principal }), [])
      expect(sent).toEqual([])
      expect((outcome as { readonly cause: Error }).cause.message).toMatch(/the principal must be a string/)
      expect(drive(pg.keys({ principal: principal as string, now: 1_000 }), []).sent).toEqual([])
    }
    const long = drive(mysql.removeAll({ principal: "x".repeat(256), now: 1_000 }), [])
    expect([long.sent, (long.outcome as { readonly cause: Error }).cause.message])
      .toEqual([[], expect.stringMatching(/longer than the 255 characters/)])
  })

  it("removeAll counts the live rows: PostgreSQL from the expiries it returns, MySQL from its first DELETE", () => {
    const returned = drive(pg.removeAll({ principal: "ann", now: 1_000 }), [answered([[500], [1_500], ["2500"]])])
    expect(returned).toEqual({ sent: ["DELETE"], outcome: { _tag: "Done", value: 2 } })
    const twice = drive(mysql.removeAll({ principal: "ann", now: 1_000 }), [answered({ affectedRows: 2 }), answered({ affectedRows: 7 })])
    expect(twice).toEqual({ sent: ["DELETE", "DELETE"], outcome: { _tag: "Done", value: 2 } })
  })

  it("load reads the live row, and refuses one whose columns are not what the table holds", () => {
    const found = drive(pg.load({ key: row.key, now: 1_000 }), [answered([[new Uint8Array([1]), "3", 2_000n, null]])])
    expect(found.outcome).toEqual({ _tag: "Done", value: { data: new Uint8Array([1]), version: 3, expiresAt: 2_000, principal: null } })
    expect(drive(pg.load({ key: row.key, now: 1_000 }), [answered([])]).outcome).toEqual({ _tag: "Done", value: undefined })
    const odd = drive(pg.load({ key: row.key, now: 1_000 }), [answered([["text", 1, 2_000, null]])]).outcome
    expect((odd as { readonly cause: Error }).cause.message).toMatch(/unexpected column types/)
  })
})
