/**
 * The file-system store's protocol (`src/core/files.ts`) without a file
 * system: the layout, the session file format, the expiry minutes, what a
 * write changes in the indexes, what a sweep visits and decides, the
 * `maxSessions` rule, lock staleness and the redaction of keys.
 */
import { describe, expect, it } from "vitest"
import * as Files from "../../src/core/files.js"

const key = "AbCdEfGh" + "x".repeat(34) + "_"
const minute = Files.expiryBucketWidth
const t = 1_800_000_000_000
const data = new TextEncoder().encode(`{"n":1}`)

describe("layout", () => {
  it("only 43 base64url characters are a storage key", () => {
    expect(Files.isStorageKeyName(key)).toBe(true)
    for (const bad of ["../" + key.slice(3), key + "a", key.slice(1), key.slice(1) + "/", 42, undefined]) {
      expect(Files.isStorageKeyName(bad)).toBe(false)
    }
  })

  it("names: lock, breaker, temp file, principal directory, index directories", () => {
    expect(Files.lockFileName(key)).toBe(`${key}.lock`)
    expect(Files.breakerFileName(`${key}.lock`)).toBe(`${key}.lock.break`)
    expect(Files.isBreakerFileName(`${key}.lock.break`)).toBe(true)
    const temporary = Files.temporaryFileName(key)
    expect(temporary).toMatch(new RegExp(`^\\.${key}\\.[A-Za-z0-9_-]{12}\\.tmp$`))
    expect(Files.temporaryFileName(key)).not.toBe(temporary)
    expect(Files.principalDirectoryName("alice")).toBe("K9gGyX8OAK8aH8Myj6djqSaXI8jbj6xPk69x2xhtbpA")
    expect([Files.principalsDirectory, Files.expiryDirectory, Files.indexedFlag]).toEqual([
      "principals",
      "expiry",
      ".indexed"
    ])
  })

  it("what the sweep makes of a name at the top of the directory", () => {
    expect(Files.topLevelEntry(key)).toBe("session")
    expect(Files.topLevelEntry(Files.temporaryFileName(key))).toBe("temporary")
    expect(Files.topLevelEntry(`${key}.lock`)).toBe("lock")
    expect(Files.topLevelEntry(`${key}.lock.break`)).toBe("lock")
    expect(Files.topLevelEntry("principals")).toBe("other")
    expect(Files.topLevelEntry("expiry")).toBe("other")
  })
})

describe("session file format", () => {
  it("round-trips a record with and without a principal", () => {
    for (const principal of ["alice", "ünï", "", undefined]) {
      const record = { data, version: 7, expiresAt: t + 0.5, principal }
      expect(Files.decodeRecord(Files.encodeRecord(record))).toEqual({ record })
    }
  })

  it("the header: magic ESS, format 1, version, expiresAt, principal length (-1 when absent)", () => {
    const bytes = Files.encodeRecord({ data, version: 2, expiresAt: t, principal: undefined })
    expect([...bytes.subarray(0, 4)]).toEqual([0x45, 0x53, 0x53, 0x01])
    const view = new DataView(bytes.buffer)
    expect([view.getFloat64(4), view.getFloat64(12), view.getInt32(20)]).toEqual([2, t, -1])
    expect(bytes.length).toBe(24 + data.length)
  })

  it("refuses what is not a session file, saying why", () => {
    const good = Files.encodeRecord({ data, version: 1, expiresAt: t, principal: "bob" })
    const with_ = (offset: number, set: (view: DataView) => void) => {
      const copy = new Uint8Array(good)
      set(new DataView(copy.buffer))
      return copy.subarray(offset)
    }
    expect(Files.decodeRecord(good.subarray(0, 10))).toEqual({ problem: "10 bytes is shorter than the header" })
    expect(Files.decodeRecord(with_(0, (v) => v.setUint8(3, 2)))).toEqual({ problem: "unknown format" })
    expect(Files.decodeRecord(with_(0, (v) => v.setFloat64(4, 0)))).toEqual({ problem: "bad header" })
    expect(Files.decodeRecord(with_(0, (v) => v.setFloat64(4, 1.5)))).toEqual({ problem: "bad header" })
    expect(Files.decodeRecord(with_(0, (v) => v.setFloat64(12, NaN)))).toEqual({ problem: "bad header" })
    expect(Files.decodeRecord(with_(0, (v) => v.setInt32(20, 1_000)))).toEqual({ problem: "bad principal length" })
    expect(Files.decodeRecord(with_(0, (v) => v.setInt32(20, -2)))).toEqual({ problem: "bad principal length" })
    expect(Files.decodeRecord(with_(0, (v) => v.setUint8(24, 0xff)))).toEqual({ problem: "principal is not UTF-8" })
  })

  it("the decoded data is a copy, not a view of the read buffer", () => {
    const bytes = Files.encodeRecord({ data, version: 1, expiresAt: t, principal: undefined })
    const read = Files.decodeRecord(bytes) as { record: Files.FileRecord }
    bytes.fill(0)
    expect(read.record.data).toEqual(data)
  })
})

describe("expiry index", () => {
  it("files a session under the minute it expires in, or the current one when that ended", () => {
    expect(Files.expiryBucketWidth).toBe(60_000)
    expect(Files.expiryBucketOf(2 * minute - 1)).toBe(1)
    expect(Files.filingBucket(5 * minute, 3 * minute)).toBe(5)
    expect(Files.filingBucket(2 * minute, 3 * minute + 1)).toBe(3)
  })

  it("a sweep visits the minutes that ended, oldest first, and skips other names", () => {
    expect(Files.endedBuckets(["12", ".indexed", "9", "10", "11", "-3", "x1"], 11 * minute + 5)).toEqual([-3, 9, 10])
  })

  it("an empty minute's directory goes only once the minute after it ended too", () => {
    expect(Files.isRemovableBucket(0, 9, 11 * minute)).toBe(true)
    expect(Files.isRemovableBucket(0, 10, 11 * minute)).toBe(false)
    expect(Files.isRemovableBucket(1, 5, 11 * minute)).toBe(false)
  })
})

describe("index maintenance", () => {
  const record = (expiresAt: number, principal: string | undefined) => ({ data, version: 1, expiresAt, principal })

  it("a new session: filed and marked before the write, counted", () => {
    expect(Files.planWrite(undefined, record(t + 10 * minute, "alice"), t)).toEqual({
      addExpiry: Files.expiryBucketOf(t + 10 * minute),
      addPrincipal: "alice",
      created: true,
      removePrincipal: undefined,
      removeExpiry: undefined
    })
  })

  it("the same minute and principal: nothing but the file", () => {
    const previous = record(t + 10 * minute, "alice")
    expect(Files.planWrite(previous, record(t + 10 * minute + 1, "alice"), t)).toEqual({
      addExpiry: undefined,
      addPrincipal: undefined,
      created: false,
      removePrincipal: undefined,
      removeExpiry: undefined
    })
  })

  it("another minute and principal: new markers first, the old ones after", () => {
    const plan = Files.planWrite(record(t + 10 * minute, "alice"), record(t + 30 * minute, "bob"), t)
    expect(plan).toEqual({
      addExpiry: Files.expiryBucketOf(t + 30 * minute),
      addPrincipal: "bob",
      created: false,
      removePrincipal: "alice",
      removeExpiry: Files.expiryBucketOf(t + 10 * minute)
    })
    expect(Files.planWrite(record(t + minute, "alice"), record(t + minute, undefined), t).removePrincipal).toBe("alice")
  })

  it("what a sweep does with a key its listing led to", () => {
    expect(Files.settlement("corrupt", t)).toBe("deleteCorrupt")
    expect(Files.settlement(undefined, t)).toBe("unfile")
    expect(Files.settlement(record(t + 1, undefined), t)).toBe("refile")
    expect(Files.settlement(record(t, undefined), t)).toBe("delete")
  })
})

describe("maxSessions", () => {
  it("anonymous sessions are refused from 90%, any from 100%, replacing a file never", () => {
    expect(Files.isRefused(8, 10, true, false)).toBe(false)
    expect(Files.isRefused(9, 10, true, false)).toBe(true)
    expect(Files.isRefused(9, 10, false, false)).toBe(false)
    expect(Files.isRefused(10, 10, false, false)).toBe(true)
    expect(Files.isRefused(10, 10, true, true)).toBe(false)
    expect(Files.isRefused(1_000_000, undefined, true, false)).toBe(false)
    expect(Files.storeFullMessage(9, 10, true)).toBe(
      "the directory holds 9 sessions; sessions without a principal are refused from 90% of maxSessions (10)"
    )
    expect(Files.storeFullMessage(10, 10, false)).toBe("the directory holds 10 sessions, maxSessions is 10")
  })
})

describe("sweep schedule, leftovers and locks", () => {
  it("the whole directory is listed first, with maxSessions always, else hourly", () => {
    expect(Files.isListingDue(false, false, t, t)).toBe(true)
    expect(Files.isListingDue(true, true, t, t)).toBe(true)
    expect(Files.isListingDue(true, false, t + 59 * minute, t)).toBe(false)
    expect(Files.isListingDue(true, false, t + 60 * minute, t)).toBe(true)
    expect(Files.isListingDue(true, false, t, Number.NEGATIVE_INFINITY)).toBe(true)
  })

  it("a temp file is an orphan past lockStaleAfter and at least a minute", () => {
    expect(Files.isLeftover(t - 60_000, t, 10_000)).toBe(false)
    expect(Files.isLeftover(t - 60_001, t, 10_000)).toBe(true)
    expect(Files.isLeftover(t - 100_000, t, 120_000)).toBe(false)
    expect(Files.isLeftover(undefined, t, 0)).toBe(false)
  })

  it("a lock is stale once older than staleAfter; an unknown mtime never is", () => {
    expect(Files.isStaleLock(t - 10_000, t, 10_000)).toBe(false)
    expect(Files.isStaleLock(t - 10_001, t, 10_000)).toBe(true)
    expect(Files.isStaleLock(undefined, t, 0)).toBe(false)
    expect(Files.fileIdentity(12, 34)).toBe("12:34")
    expect(Files.fileIdentity(undefined, undefined)).toBe("-1:-1")
  })

  it("back-off doubles from 1 ms up to 50 ms", () => {
    const waits = [Files.firstLockBackoff]
    for (let i = 0; i < 8; i++) waits.push(Files.nextLockBackoff(waits.at(-1)!))
    expect(waits).toEqual([1, 2, 4, 8, 16, 32, 50, 50, 50])
  })
})

describe("redaction", () => {
  it("keys and principal hashes are cut to 8 characters in any text", () => {
    const hash = Files.principalDirectoryName("alice")
    expect(Files.shortKey(key)).toBe("AbCdEfGh…")
    expect(Files.redact(`ENOENT: open '/srv/s/${key}.lock' (principals/${hash})`)).toBe(
      `ENOENT: open '/srv/s/AbCdEfGh….lock' (principals/${hash.slice(0, 8)}…)`
    )
    expect(Files.invalidKeyMessage(Files.keyPrefix("../etc/passwd"))).toBe(
      `refusing a storage key that is not 43 base64url characters ("../etc/p"…)`
    )
    expect(Files.corruptRecordMessage("AbCdEfGh", "bad header")).toBe("session file AbCdEfGh… is not readable: bad header")
  })
})
