/**
 * What both lines' DynamoDB stores take from the core beyond the requests
 * (`src/core/dynamodb.ts`): what `removeAll` deletes and counts, and the
 * enabling of TTL a layer that manages its table does, with its warnings.
 */
import { describe, expect, it } from "vitest"
import * as Dynamo from "../../src/core/dynamodb.js"

const t = 1_800_000_000_000
const awsError = (name: string, message = "") => Object.assign(new Error(message), { name })

describe("removal", () => {
  it("deletes every listed session, expired ones too, in batches of 25, and counts the live ones", () => {
    const sessions = Array.from({ length: 30 }, (_, i) => ({ key: `k${i}`, expiresAt: i % 3 === 0 ? t : t + 1 }))
    const { batches, live } = Dynamo.removal(sessions, t)
    expect(batches.map((batch) => batch.length)).toEqual([25, 5])
    expect(batches.flat().map((request) => request.DeleteRequest.Key.pk)).toEqual(sessions.map(({ key }) => ({ S: key })))
    expect(live).toBe(20)
  })

  it("a principal without sessions sends nothing", () => {
    expect(Dynamo.removal([], t)).toEqual({ batches: [], live: 0 })
  })
})

describe("enableTimeToLive", () => {
  const table = "sessions"
  const server = (
    description: { TimeToLiveStatus?: string; AttributeName?: string } | undefined,
    refuse?: Error
  ) => {
    const updates: Array<unknown> = []
    return {
      updates,
      requests: {
        describe: async () => ({ TimeToLiveDescription: description }),
        update: async (request: unknown) => {
          if (refuse !== undefined) throw refuse
          updates.push(request)
          return {}
        }
      }
    }
  }

  it("TTL off: enables it on ttl, no warning", async () => {
    const { requests, updates } = server({ TimeToLiveStatus: "DISABLED" })
    await expect(Dynamo.enableTimeToLive(table, requests)).resolves.toBeUndefined()
    expect(updates).toEqual([Dynamo.enableTimeToLiveRequest(table)])
  })

  it("TTL already on ttl: nothing sent, no warning", async () => {
    const { requests, updates } = server({ TimeToLiveStatus: "ENABLED", AttributeName: "ttl" })
    await expect(Dynamo.enableTimeToLive(table, requests)).resolves.toBeUndefined()
    expect(updates).toEqual([])
  })

  it("TTL on another attribute: nothing sent, the warning names it", async () => {
    const { requests, updates } = server({ TimeToLiveStatus: "ENABLING", AttributeName: "expires" })
    await expect(Dynamo.enableTimeToLive(table, requests)).resolves.toBe(Dynamo.timeToLiveElsewhere(table, "expires"))
    expect(updates).toEqual([])
  })

  it("a server that refuses it (dynalite): a warning, not a failure", async () => {
    const refusal = awsError("UnknownOperationException")
    const { requests } = server(undefined, refusal)
    await expect(Dynamo.enableTimeToLive(table, requests)).resolves.toBe(Dynamo.timeToLiveRefused(table, refusal))
  })

  it("any other failure rejects with it", async () => {
    const denied = awsError("AccessDeniedException", "no")
    const { requests } = server(undefined, denied)
    await expect(Dynamo.enableTimeToLive(table, requests)).rejects.toBe(denied)
  })
})
