/**
 * What both lines' FileSystemStore take from the core besides the
 * directory's operations: which cause a store error carries for what an
 * operation threw, and how an outcome of `insert` or `update` is told from
 * a conflict.
 */
import { describe, expect, it } from "vitest"
import * as Directory from "../../src/core/fileSystemStore.js"

const key = "AbCdEfGh" + "x".repeat(34) + "_"

/** A shell's reports as plain values; `isSystemError` as the Effect 4 line's. */
const shell: Directory.FailureShell = {
  isSystemError: (error) => !Directory.isStoreError(error),
  storeFull: (full) => ({ storeFull: full }),
  systemFailure: (detail) => ({ systemFailure: detail })
}

const nodeError = (code: string, path: string) =>
  Object.assign(new Error(`${code}: no such file or directory, open '${path}'`), { code })

describe("failureCause", () => {
  it("reports a full store as the shell's own error, with its counts", () => {
    expect(Directory.failureCause(new Directory.StoreFull(90, 100, true), shell))
      .toEqual({ storeFull: { sessions: 90, maxSessions: 100, anonymous: true } })
  })

  it("reports a file system error as the shell's failure, its message cut to the key's prefix", () => {
    const cause = Directory.failureCause(nodeError("ENOENT", `/var/sessions/${key}`), shell)
    expect(cause).toEqual({ systemFailure: "ENOENT: no such file or directory, open '/var/sessions/AbCdEfGh…'" })
    expect(JSON.stringify(cause)).not.toContain(key)
    expect(Directory.failureCause(`lost ${key}`, shell)).toEqual({ systemFailure: "lost AbCdEfGh…" })
  })

  it("passes the store's own errors as they are", () => {
    for (
      const error of [
        new Directory.LockTimeout("/var/sessions/AbCdEfGh….lock", 5_000),
        new Directory.InvalidStorageKey("../etc"),
        new Directory.CorruptRecord("AbCdEfGh", "bad header")
      ]
    ) {
      expect(Directory.isStoreError(error)).toBe(true)
      expect(Directory.failureCause(error, shell)).toBe(error)
    }
  })

  it("leaves to the shell which errors are the file system's", () => {
    const platformOnly: Directory.FailureShell = { ...shell, isSystemError: (error) => error instanceof RangeError }
    const other = new TypeError(`not the file system's ${key}`)
    expect(Directory.failureCause(other, platformOnly)).toBe(other)
    expect(Directory.failureCause(new RangeError(`at ${key}`), platformOnly)).toEqual({ systemFailure: "at AbCdEfGh…" })
    expect(Directory.isStoreError(other)).toBe(false)
  })
})

describe("isConflict", () => {
  it("tells a conflict from an insert's or an update's value", () => {
    for (const reason of ["Exists", "VersionMismatch", "Missing"] as const) expect(Directory.isConflict(reason)).toBe(true)
    expect(Directory.isConflict(undefined)).toBe(false)
    expect(Directory.isConflict(2)).toBe(false)
  })
})
