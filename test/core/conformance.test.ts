/**
 * The store contract's cases (core/conformance.ts) without Effect: run by a
 * plain interpreter over a correct map-backed store they all pass, and over
 * stores with one classic bug each, the cases about that bug fail.
 */
import { describe, expect, it } from "vitest"
import * as Conformance from "../../src/core/conformance.js"

interface Entry {
  payload: Conformance.Payload
  version: number
  expiresAt: number
  principal: string | undefined
}

type Bug = "none" | "loads expired" | "update ignores version" | "touch creates" | "insert overwrites"

const failure = Symbol("failure")

/**
 * Runs a case against an in-memory store with `bug`: undefined when it
 * passes, else the detail of its failure or the store's own error.
 */
const runCase = (c: Conformance.Case, bug: Bug): string | undefined => {
  const table = new Map<string, Entry>()
  let now = 1_700_000_000_000
  const live = (key: string) => {
    const entry = table.get(key)
    return entry !== undefined && (bug === "loads expired" || entry.expiresAt > now) ? entry : undefined
  }
  const conflict = (reason: Conformance.ConflictReason) => ({ ok: false as const, conflict: reason, error: reason })
  const answer = (step: Conformance.Step): unknown => {
    switch (step._tag) {
      case "Now":
        return now
      case "Advance":
        now += step.millis
        return undefined
      case "Load": {
        const entry = live(step.key)
        return entry === undefined ? undefined : { ...entry }
      }
      case "Insert": {
        const outcome = live(step.key) !== undefined && bug !== "insert overwrites"
          ? conflict("Exists")
          : (table.set(step.key, { ...step.write, version: 1 }), { ok: true as const, value: undefined })
        if (!step.attempt && !outcome.ok) throw new Error(outcome.conflict)
        return step.attempt ? outcome : undefined
      }
      case "Update": {
        const entry = live(step.key)
        const outcome = entry === undefined
          ? conflict("Missing")
          : entry.version !== step.expectedVersion && bug !== "update ignores version"
          ? conflict("VersionMismatch")
          : (table.set(step.key, { ...step.write, version: entry.version + 1 }),
            { ok: true as const, value: entry.version + 1 })
        if (!step.attempt && !outcome.ok) throw new Error(outcome.conflict)
        return step.attempt ? outcome : outcome.ok ? outcome.value : undefined
      }
      case "Touch": {
        const entry = live(step.key)
        if (entry === undefined && bug === "touch creates") {
          table.set(step.key, { payload: "", version: 1, expiresAt: step.expiresAt, principal: undefined })
          return true
        }
        if (entry !== undefined) entry.expiresAt = step.expiresAt
        return entry !== undefined
      }
      case "Remove":
        table.delete(step.key)
        return undefined
      case "Keys":
        return [...table].filter(([key, e]) => e.principal === step.principal && live(key) !== undefined).map(([k]) => k)
      case "RemoveAll": {
        const own = [...table].filter(([, e]) => e.principal === step.principal)
        own.forEach(([key]) => table.delete(key))
        return own.filter(([, e]) => e.expiresAt > now).length
      }
      case "All":
        return step.programs.map(run)
      case "Fail":
        throw { [failure]: step.detail }
      case "Raise":
        throw step.error
    }
  }
  const run = <A>(program: Conformance.Program<A>): A => {
    let next = program.next()
    while (!next.done) next = program.next(answer(next.value))
    return next.value
  }
  try {
    run(c.program({ concurrency: 5 }))
    return undefined
  } catch (error) {
    return typeof error === "object" && error !== null && failure in error ? String(error[failure]) : `store: ${error}`
  }
}

const all = [...Conformance.storeCases, ...Conformance.indexCases]
const failing = (bug: Bug) => all.filter((c) => runCase(c, bug) !== undefined).map((c) => c.name)

describe("core/conformance", () => {
  it("a correct store passes every case", () => {
    expect(all.length).toBeGreaterThanOrEqual(30)
    for (const c of all) expect(runCase(c, "none"), c.name).toBeUndefined()
  })

  it("a store that returns expired records fails the expiry cases", () => {
    expect(failing("loads expired")).toEqual(expect.arrayContaining([
      "an expired record is never returned",
      "update of an expired record conflicts with Missing",
      "a record expired long ago is invisible to every operation, and an insert replaces it"
    ]))
  })

  it("a store whose update ignores the version fails the compare-and-set cases", () => {
    expect(failing("update ignores version")).toEqual(expect.arrayContaining([
      "update with a stale version conflicts with VersionMismatch and writes nothing",
      "of N racing updates on one version exactly one wins"
    ]))
  })

  it("a store whose touch creates records fails the touch case, with what went wrong", () => {
    const c = all.find((c) => c.name === "touch never creates a record")!
    expect(runCase(c, "touch creates")).toBe("touch of an unknown key returned true")
  })

  it("a store whose insert overwrites fails the insert cases", () => {
    expect(failing("insert overwrites")).toEqual(expect.arrayContaining([
      "insert on a live key conflicts with Exists and keeps the stored record",
      "of N racing inserts of one key exactly one wins, over nothing and over an expired record"
    ]))
  })

  it("the text line runs every case but those needing bytes", () => {
    const text = Conformance.casesFor(Conformance.storeCases, "text").map((c) => c.name)
    expect(text).not.toContain("arbitrary bytes round-trip exactly")
    expect(text).toContain("64 KiB of text with any characters round-trips")
    expect(Conformance.casesFor(Conformance.storeCases, "bytes")).toHaveLength(Conformance.storeCases.length)
  })
})
