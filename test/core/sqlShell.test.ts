/**
 * What both lines' SqlStore take from the core besides the statements: the
 * operations with the arguments of the store's methods, and how a shell's
 * runner is driven through an operation's steps to its outcome.
 */
import { Buffer } from "node:buffer"
import { describe, expect, it } from "vitest"
import * as Sql from "../../src/core/sql.js"

const key = "k".repeat(43)
const now = 1_000
const write = { data: new Uint8Array([123, 125]), expiresAt: 2_000, principal: undefined }

/** An outcome, as a runner of plain values tells it. */
type Told = { readonly done: unknown } | { readonly conflict: string } | { readonly fail: unknown }

/**
 * A runner answering the statements in order from `answers` (a result, or
 * `{ error }` for a failed one whose driver error is the same object), and
 * recording the first word of each statement it runs.
 */
const runner = <A, C extends Sql.SqlConflictReason>(
  answers: ReadonlyArray<unknown>,
  sent: Array<string>
): Sql.StepRunner<A, C, Told> => ({
  done: (value) => ({ done: value }),
  conflict: (reason) => ({ conflict: reason }),
  fail: (cause) => ({ fail: cause }),
  run: (call, answered, failed) => {
    sent.push(call.text.split(/\s/)[0]!)
    const answer = answers[sent.length - 1] as { readonly error?: unknown } | undefined
    if (answer === undefined) throw new Error(`no answer for statement ${sent.length}: ${call.text}`)
    return answer.error === undefined ? answered(answer) : failed(answer, answer.error)
  }
})

const run = <A, C extends Sql.SqlConflictReason>(step: Sql.SqlStep<A, C>, answers: ReadonlyArray<unknown>) => {
  const sent: Array<string> = []
  return { sent, told: Sql.runSteps(step, runner<A, C>(answers, sent)) }
}

describe("runSteps", () => {
  const pg = Sql.storeSteps("pg", "sessions", 100)
  const mysql = Sql.storeSteps("mysql", "sessions", 100)

  it("hands each statement's result to the next step, to the outcome the runner tells", () => {
    expect(run(pg.update(key, write, 4, now), [{ rowCount: 1 }])).toEqual({ sent: ["UPDATE"], told: { done: 5 } })
    expect(run(pg.update(key, write, 4, now), [{ rowCount: 0 }, [[5]]]))
      .toEqual({ sent: ["UPDATE", "SELECT"], told: { conflict: "VersionMismatch" } })
    expect(run(pg.insert(key, write, now), [{ rowCount: 0 }])).toEqual({ sent: ["INSERT"], told: { conflict: "Exists" } })
  })

  it("hands a failed statement's driver error to the core, and the runner's error to the failure", () => {
    const duplicate = { error: { errno: 1062, code: "ER_DUP_ENTRY" } }
    // a duplicate key is the core's to read: it deletes an expired row and inserts again
    expect(run(mysql.insert(key, write, now), [duplicate, {}, {}]))
      .toEqual({ sent: ["INSERT", "DELETE", "INSERT"], told: { done: undefined } })
    const other = { error: { errno: 1146 } }
    expect(run(pg.remove(key), [other])).toEqual({ sent: ["DELETE"], told: { fail: other } })
  })

  it("tells the core's own failure without running a statement", () => {
    const { sent, told } = run(pg.keys({ $ne: null } as unknown as string, now), [])
    expect(sent).toEqual([])
    expect(String((told as { readonly fail: Error }).fail.message)).toMatch(/the principal must be a string/)
  })
})

describe("storeSteps", () => {
  const operations = Sql.sessionOperations("pg", "sessions", 100)
  const steps = Sql.storeSteps("pg", "sessions", 100)
  const call = (step: Sql.SqlStep<unknown, Sql.SqlConflictReason>) =>
    step._tag === "Run" ? { text: step.call.text, params: step.call.params } : step

  it("sends the statements of sessionOperations, from the arguments of the store's methods", () => {
    const principal = "alice"
    expect(call(steps.load(key, now))).toEqual(call(operations.load({ key, now })))
    expect(call(steps.insert(key, { ...write, principal }, now)))
      .toEqual(call(operations.insert({ key, now, ...write, principal })))
    expect(call(steps.update(key, write, 4, now)))
      .toEqual(call(operations.update({ key, now, ...write, expectedVersion: 4 })))
    expect(call(steps.touch(key, 3_000, now))).toEqual(call(operations.touch({ key, expiresAt: 3_000, now })))
    expect(call(steps.remove(key))).toEqual(call(operations.remove({ key })))
    expect(call(steps.keys(principal, now))).toEqual(call(operations.keys({ principal, now })))
    expect(call(steps.removeAll(principal, now))).toEqual(call(operations.removeAll({ principal, now })))
    expect(call(steps.cleanupBatch(now))).toEqual(call(operations.cleanupBatch({ now })))
  })

  it("binds the write's bytes, expiry and principal, and the clock's now", () => {
    const step = steps.insert(key, { ...write, principal: "alice" }, now)
    if (step._tag !== "Run") throw new Error("expected a statement")
    expect(step.call.params).toEqual([key, Buffer.from(write.data), 2_000, "alice", now])
  })
})

describe("the layer's settings", () => {
  it("creates the table unless createTable is false, and sweeps every 5 minutes by default", () => {
    expect(Sql.createsTable(undefined)).toBe(true)
    expect(Sql.createsTable({})).toBe(true)
    expect(Sql.createsTable({ createTable: true })).toBe(true)
    expect(Sql.createsTable({ createTable: false })).toBe(false)
    expect(Sql.defaultCleanupInterval).toBe(5 * 60_000)
  })
})
