/**
 * The DynamoDB decisions both lines' stores act on (`src/core/dynamodb.ts`),
 * without a server: the steps of a layer's table setup, what an item read at
 * a time holds, and the TTL and batch-delete outcomes.
 */
import { describe, expect, it } from "vitest"
import * as Dynamo from "../../src/core/dynamodb.js"

const tableName = "sessions"
const indexName = "principal-index"
const setup = (createTable: boolean, waited: boolean) => ({ tableName, indexName, createTable, waited })
const fitting: Dynamo.DescribedTable = { ...Dynamo.tableDefinition(tableName, indexName), TableStatus: "ACTIVE" }

describe("table setup", () => {
  it("a missing table is created only when the layer may, and one that vanished after the wait is refused", () => {
    expect(Dynamo.tableStep(undefined, setup(true, false))).toEqual({ _tag: "Create" })
    const refused = Dynamo.tableStep(undefined, setup(false, false))
    expect(refused._tag === "Refuse" && refused.message).toContain(`table "${tableName}" does not exist`)
    const vanished = Dynamo.tableStep(undefined, setup(true, true))
    expect(vanished._tag === "Refuse" && vanished.message).toContain("vanished")
  })

  it("a table being created is waited for once, then judged by its layout", () => {
    const creating = { ...fitting, TableStatus: "CREATING" }
    expect(Dynamo.tableStep(creating, setup(false, false))).toEqual({ _tag: "Wait" })
    expect(Dynamo.tableStep(creating, setup(false, true))).toEqual({ _tag: "Ready", enableTimeToLive: false })
  })

  it("a fitting table is ready, with TTL enabled only by a layer that manages the table; one without the index is refused", () => {
    expect(Dynamo.tableStep(fitting, setup(true, false))).toEqual({ _tag: "Ready", enableTimeToLive: true })
    expect(Dynamo.tableStep(fitting, setup(false, false))).toEqual({ _tag: "Ready", enableTimeToLive: false })
    const withoutIndex = Dynamo.tableStep({ ...fitting, GlobalSecondaryIndexes: [] }, setup(true, false))
    expect(withoutIndex._tag === "Refuse" && withoutIndex.message).toContain(`no global secondary index "${indexName}"`)
  })
})

describe("reading an item", () => {
  const now = 1_800_000_000_000
  const data = new Uint8Array([1, 2])
  const item = (expiresAt: number) => Dynamo.itemOf("k".repeat(43), { data, expiresAt, principal: "ann" }, 3)

  it("a record is live until its expiry; no item and an expired one are absent", () => {
    expect(Dynamo.readItem(item(now + 1), now)).toEqual({
      _tag: "Live",
      record: { data, version: 3, expiresAt: now + 1, principal: "ann" }
    })
    expect(Dynamo.readItem(item(now), now)).toEqual({ _tag: "Absent" })
    expect(Dynamo.readItem(undefined, now)).toEqual({ _tag: "Absent" })
  })

  it("an item the store did not write is malformed, named by a prefix of its key only", () => {
    const read = Dynamo.readItem({ pk: { S: "abcdefghijklmnop" }, data: { S: "text" } }, now)
    expect(read._tag).toBe("Malformed")
    const message = read._tag === "Malformed" ? read.message : ""
    expect(message).toContain("abcdefgh…")
    expect(message).not.toContain("abcdefghi")
  })
})

describe("TTL and batch deletes", () => {
  it("TTL on another attribute is a warning; refusals of UpdateTimeToLive are told from other failures", () => {
    expect(Dynamo.timeToLiveWarning(tableName, Dynamo.ttlAttribute)).toBeUndefined()
    expect(Dynamo.timeToLiveWarning(tableName, "expires")).toContain(`enabled on attribute "expires"`)
    expect(Dynamo.isTimeToLiveRefusal({ name: "UnknownOperationException" })).toBe(true)
    expect(Dynamo.isTimeToLiveRefusal({ name: "ValidationException" })).toBe(true)
    expect(Dynamo.isTimeToLiveRefusal({ name: "AccessDeniedException" })).toBe(false)
  })

  it("deletes still unprocessed after every attempt say how many and after how many attempts", () => {
    expect(Dynamo.stillUnprocessed(3)).toBe(`3 deletes were still unprocessed (throttled) after ${Dynamo.deleteAttempts} attempts`)
  })
})
