/**
 * The conditional operations of the Memcached core as conversations
 * (`insertOperation`, `updateOperation`, `touchOperation`), played against
 * scripted server replies: which commands each sends, and how each ends.
 */
import { describe, expect, it } from "vitest"
import type { Command, MemcachedRecord, Operation, Outcome, Reply } from "../../src/core/memcached.js"
import { insertOperation, maxRounds, touchOperation, updateOperation } from "../../src/core/memcached.js"

const now = 1_800_000_000_000
const record = (overrides: Partial<MemcachedRecord> = {}): MemcachedRecord => ({
  data: new TextEncoder().encode("{}"),
  version: 1,
  expiresAt: now + 60_000,
  principal: undefined,
  ...overrides
})

/**
 * Plays an operation: each command it sends is answered by `server`; gives
 * the commands in order and the outcome.
 */
const play = <A>(operation: Operation<A>, server: (command: Command, index: number) => Reply) => {
  const sent: Array<Command> = []
  let step = operation.next()
  while (!step.done) {
    sent.push(step.value)
    step = operation.next(server(step.value, sent.length - 1))
  }
  return { sent: sent.map((command) => command._tag), commands: sent, outcome: step.value as Outcome<A> }
}

const read = (stored?: MemcachedRecord, casUniq: string | number = 7): Reply => ({
  _tag: "Read",
  stored: stored === undefined ? undefined : { record: stored, casUniq },
  now
})
const written = (reply: "STORED" | "NOT_STORED" | "EXISTS" | "NOT_FOUND"): Reply => ({ _tag: "Written", reply })

describe("insert", () => {
  it("one add when the key is free", () => {
    const { outcome, sent } = play(insertOperation(record()), () => written("STORED"))
    expect([sent, outcome]).toEqual([["Add"], { _tag: "Done", value: undefined }])
  })

  it("Exists when add is refused by a live record", () => {
    const { outcome, sent } = play(insertOperation(record()), (c) => c._tag === "Add" ? written("NOT_STORED") : read(record()))
    expect([sent, outcome]).toEqual([["Add", "Gets"], { _tag: "Conflict", reason: "Exists" }])
  })

  it("an expired record is replaced with a cas of the unique read, carrying version 1", () => {
    const expired = record({ version: 9, expiresAt: now - 1 })
    const { commands, outcome } = play(insertOperation(record()), (c) =>
      c._tag === "Add" ? written("NOT_STORED") : c._tag === "Gets" ? read(expired, "u42") : written("STORED"))
    expect(commands.map((c) => c._tag)).toEqual(["Add", "Gets", "Cas"])
    expect(commands[2]).toMatchObject({ casUniq: "u42", record: { version: 1 } })
    expect(outcome).toEqual({ _tag: "Done", value: undefined })
  })

  it("adds again when the item vanished between the add and the gets", () => {
    const { outcome, sent } = play(insertOperation(record()), (_, i) => i === 0 ? written("NOT_STORED") : i === 1 ? read() : written("STORED"))
    expect([sent, outcome]).toEqual([["Add", "Gets", "Add"], { _tag: "Done", value: undefined }])
  })
})

describe("update", () => {
  it("gets, then a cas of the next version with the unique read", () => {
    const write = { data: new Uint8Array([1]), expiresAt: now + 1, principal: "alice" }
    const { commands, outcome } = play(updateOperation(write, 3), (c) => c._tag === "Gets" ? read(record({ version: 3 }), 5) : written("STORED"))
    expect(commands).toEqual([{ _tag: "Gets" }, { _tag: "Cas", casUniq: 5, record: { ...write, version: 4 } }])
    expect(outcome).toEqual({ _tag: "Done", value: 4 })
  })

  it("Missing when gone or expired, VersionMismatch on another version: no cas is sent", () => {
    const missing = play(updateOperation(record(), 1), () => read())
    const expired = play(updateOperation(record(), 1), () => read(record({ expiresAt: now })))
    const other = play(updateOperation(record(), 1), () => read(record({ version: 2 })))
    expect([missing, expired, other].map(({ outcome, sent }) => [sent, outcome])).toEqual([
      [["Gets"], { _tag: "Conflict", reason: "Missing" }],
      [["Gets"], { _tag: "Conflict", reason: "Missing" }],
      [["Gets"], { _tag: "Conflict", reason: "VersionMismatch" }]
    ])
  })

  it("a cas lost to a touch (same version) is read again and then wins", () => {
    const { outcome, sent } = play(updateOperation(record(), 1), (c, i) => c._tag === "Gets" ? read(record(), i) : written(i === 1 ? "EXISTS" : "STORED"))
    expect([sent, outcome]).toEqual([["Gets", "Cas", "Gets", "Cas"], { _tag: "Done", value: 2 }])
  })

  it("a cas lost to a remove is read again and ends Missing", () => {
    const { outcome } = play(updateOperation(record(), 1), (c, i) => c._tag === "Cas" ? written("NOT_FOUND") : read(i === 0 ? record() : undefined))
    expect(outcome).toEqual({ _tag: "Conflict", reason: "Missing" })
  })

  it("gives up with Contention after maxRounds lost rounds", () => {
    const { outcome, sent } = play(updateOperation(record(), 1), (c) => c._tag === "Gets" ? read(record()) : written("EXISTS"))
    expect([sent.length, outcome]).toEqual([2 * maxRounds, { _tag: "Contention" }])
  })
})

describe("touch", () => {
  it("writes the live record back with the new expiry only", () => {
    const stored = record({ version: 5, principal: "bob" })
    const { commands, outcome } = play(touchOperation(now + 99), (c) => c._tag === "Gets" ? read(stored, 8) : written("STORED"))
    expect(commands[1]).toEqual({ _tag: "Cas", casUniq: 8, record: { ...stored, expiresAt: now + 99 } })
    expect(outcome).toEqual({ _tag: "Done", value: true })
  })

  it("false, without a write, for a missing or expired record", () => {
    for (const stored of [undefined, record({ expiresAt: now })]) {
      const { outcome, sent } = play(touchOperation(now + 99), () => read(stored))
      expect([sent, outcome]).toEqual([["Gets"], { _tag: "Done", value: false }])
    }
  })

  it("a shell answering a gets with a storage reply is a programming error, not a silent success", () => {
    expect(() => play(touchOperation(now + 99), () => written("STORED"))).toThrow(TypeError)
  })
})
