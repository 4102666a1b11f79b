/**
 * The store contract's cases (core/conformance.ts) without Effect: walked by
 * the core's `runCase`, as both lines walk them, with a runner whose
 * operations are plain synchronous functions, over a correct map-backed
 * store they all pass, and over stores with one classic bug each, the cases
 * about that bug fail.
 */
import { describe, expect, it } from "vitest"
import * as Conformance from "../../src/core/conformance.js"

interface Entry {
  payload: Conformance.Payload
  version: number
  expiresAt: number
  principal: string | undefined
}

type Bug =
  | "none"
  | "loads expired"
  | "update ignores version"
  | "touch creates"
  | "insert overwrites"
  | "update errors"

/** An operation of the runner: called, it answers or throws. */
type Operation = () => unknown

/** The runner over a store that takes the cases' keys and writes as they are. */
type PlainRunner = Conformance.Runner<Operation, string, Conformance.Write, Conformance.Stored | undefined>

class Conflict extends Error {
  constructor(readonly reason: Conformance.ConflictReason) {
    super(`SessionConflict(${reason})`)
  }
}

class CaseFailure {
  constructor(readonly detail: string) {}
}

/** A store over a map at a clock the case moves, with `bug`. */
const storeWith = (bug: Bug) => {
  const table = new Map<string, Entry>()
  let now = 1_700_000_000_000
  const live = (key: string) => {
    const entry = table.get(key)
    return entry !== undefined && (bug === "loads expired" || entry.expiresAt > now) ? entry : undefined
  }
  const store: Conformance.StoreOperations<Operation, string, Conformance.Write> = {
    load: (key) => () => {
      const entry = live(key)
      return entry === undefined ? undefined : { ...entry }
    },
    insert: (key, write) => () => {
      if (live(key) !== undefined && bug !== "insert overwrites") throw new Conflict("Exists")
      table.set(key, { ...write, version: 1 })
    },
    update: (key, write, expectedVersion) => () => {
      if (bug === "update errors") throw new Error("connection reset")
      const entry = live(key)
      if (entry === undefined) throw new Conflict("Missing")
      if (entry.version !== expectedVersion && bug !== "update ignores version") throw new Conflict("VersionMismatch")
      table.set(key, { ...write, version: entry.version + 1 })
      return entry.version + 1
    },
    touch: (key, expiresAt) => () => {
      const entry = live(key)
      if (entry === undefined && bug === "touch creates") {
        table.set(key, { payload: "", version: 1, expiresAt, principal: undefined })
        return true
      }
      if (entry !== undefined) entry.expiresAt = expiresAt
      return entry !== undefined
    },
    remove: (key) => () => table.delete(key)
  }
  const index: Conformance.IndexOperations<Operation> = {
    keys: (principal) => () =>
      [...table].filter(([key, e]) => e.principal === principal && live(key) !== undefined).map(([key]) => key),
    removeAll: (principal) => () => {
      const own = [...table].filter(([, e]) => e.principal === principal)
      own.forEach(([key]) => table.delete(key))
      return own.filter(([, e]) => e.expiresAt > now).length
    }
  }
  const clock = {
    now: () => now,
    advance: (millis: number) => () => {
      now += millis
    }
  }
  return { store, index, clock }
}

const runner = (bug: Bug, withIndex = true): PlainRunner => {
  const { clock, index, store } = storeWith(bug)
  return {
    succeed: (value) => () => value,
    fail: (error) => () => {
      throw error
    },
    flatMap: (operation, next) => () => next(operation())(),
    match: (operation, onSuccess, onFailure) => () => {
      let value: unknown
      try {
        value = operation()
      } catch (error) {
        return onFailure(error)
      }
      return onSuccess(value)
    },
    suspend: (operation) => () => operation()(),
    all: (operations) => () => operations.map((operation) => operation()),
    now: clock.now,
    advance: clock.advance,
    store,
    index: withIndex ? index : undefined,
    storageKey: (key) => key,
    write: (write) => write,
    loaded: (stored) => stored,
    failure: (_check, detail) => new CaseFailure(detail),
    conflictOf: (error) => error instanceof Conflict ? error.reason : undefined
  }
}

/**
 * Runs a case against the store with `bug`: undefined when it passes, else
 * the detail of its failure or the store's own error.
 */
const runCase = (c: Conformance.Case, bug: Bug): string | undefined => {
  try {
    Conformance.runCase(c, runner(bug), { concurrency: 5 })()
    return undefined
  } catch (error) {
    return error instanceof CaseFailure ? error.detail : `store: ${error}`
  }
}

const all = [...Conformance.storeCases, ...Conformance.indexCases]
const failing = (bug: Bug) => all.filter((c) => runCase(c, bug) !== undefined).map((c) => c.name)
const named = (name: string) => all.find((c) => c.name === name)!

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
    expect(runCase(named("touch never creates a record"), "touch creates"))
      .toBe("touch of an unknown key returned true")
  })

  it("a store whose insert overwrites fails the insert cases", () => {
    expect(failing("insert overwrites")).toEqual(expect.arrayContaining([
      "insert on a live key conflicts with Exists and keeps the stored record",
      "of N racing inserts of one key exactly one wins, over nothing and over an expired record"
    ]))
  })

  it("a store error that is no conflict ends the case with that error, even where the case expects conflicts", () => {
    expect(runCase(named("concurrent compare-and-set increments lose nothing"), "update errors"))
      .toBe("store: Error: connection reset")
  })

  it("an index case over a store without the index throws, naming the case", () => {
    const c = Conformance.indexCases[0]!
    expect(Conformance.runCase(c, runner("none", false))).toThrow(`${c.name}: the case needs SessionIndex`)
  })

  it("the text line runs every case but those needing bytes", () => {
    const text = Conformance.casesFor(Conformance.storeCases, "text").map((c) => c.name)
    expect(text).not.toContain("arbitrary bytes round-trip exactly")
    expect(text).toContain("64 KiB of text with any characters round-trips")
    expect(Conformance.casesFor(Conformance.storeCases, "bytes")).toHaveLength(Conformance.storeCases.length)
  })
})
