/**
 * The DynamoDB protocol of the core (`src/core/dynamodb.ts`), without a
 * server: the requests of every operation, the table layout check, the
 * reading of items and index entries, and the batching of deletes.
 */
import { describe, expect, it } from "vitest"
import * as Dynamo from "../../src/core/dynamodb.js"

const key = "k".repeat(43)
const data = new TextEncoder().encode(`{"n":1}`)
const t = 1_800_000_000_000

describe("items", () => {
  it("an item holds the key, data, version, expiry, TTL in epoch seconds, and a principal only when there is one", () => {
    expect(Dynamo.itemOf(key, { data, expiresAt: t + 1_500, principal: undefined }, 4)).toEqual({
      pk: { S: key },
      data: { B: data },
      version: { N: "4" },
      expiresAt: { N: String(t + 1_500) },
      ttl: { N: String(t / 1000 + 2) }
    })
    expect(Dynamo.itemOf(key, { data, expiresAt: t, principal: "alice" }, 1).principal).toEqual({ S: "alice" })
  })

  it("the TTL is the first whole second at or after the expiry, never before it", () => {
    expect(Dynamo.ttlSeconds(t)).toBe(t / 1000)
    expect(Dynamo.ttlSeconds(t + 1)).toBe(t / 1000 + 1)
    expect(Dynamo.ttlSeconds(t + 1) * 1000).toBeGreaterThanOrEqual(t + 1)
  })

  it("reads a record back from an item", () => {
    const item = Dynamo.itemOf(key, { data, expiresAt: t, principal: "alice" }, 7)
    expect(Dynamo.recordOfItem(item)).toEqual({ data, version: 7, expiresAt: t, principal: "alice" })
    const anonymous = Dynamo.itemOf(key, { data, expiresAt: t, principal: undefined }, 1)
    expect(Dynamo.recordOfItem(anonymous)?.principal).toBeUndefined()
  })

  it("refuses an item it did not write", () => {
    const item = Dynamo.itemOf(key, { data, expiresAt: t, principal: undefined }, 1)
    expect(Dynamo.recordOfItem({ ...item, data: { S: "text" } })).toBeUndefined()
    expect(Dynamo.recordOfItem({ ...item, version: { N: "1.5" } })).toBeUndefined()
    expect(Dynamo.recordOfItem({ ...item, version: undefined })).toBeUndefined()
    expect(Dynamo.recordOfItem({ ...item, expiresAt: { S: "tomorrow" } })).toBeUndefined()
  })

  it("a malformed item is named by the first characters of its key, never the whole key", () => {
    const message = Dynamo.malformedItem(key.slice(0, 8))
    expect(message).toContain("kkkkkkkk… ")
    expect(message).not.toContain(key)
    expect(Dynamo.malformedItem(undefined)).toMatch(/^the item is malformed/)
  })
})

describe("requests", () => {
  const write = { data, expiresAt: t + 60_000, principal: "alice" }

  it("load reads consistently", () => {
    expect(Dynamo.getRequest("sessions", key)).toEqual({ TableName: "sessions", Key: { pk: { S: key } }, ConsistentRead: true })
  })

  it("insert puts version 1 over a missing or expired item only", () => {
    const request = Dynamo.insertRequest("sessions", key, write, t)
    expect(request.Item.version).toEqual({ N: "1" })
    expect(request.ConditionExpression).toBe("attribute_not_exists(#pk) OR #expiresAt <= :now")
    expect(request.ExpressionAttributeNames).toEqual({ "#pk": "pk", "#expiresAt": "expiresAt" })
    expect(request.ExpressionAttributeValues).toEqual({ ":now": { N: String(t) } })
  })

  it("update is a compare-and-set on the version of a live item, returning the stored item on failure", () => {
    const request = Dynamo.updateRequest("sessions", key, write, 5, t)
    expect(request.Item.version).toEqual({ N: "6" })
    expect(request.ConditionExpression).toBe("#version = :expected AND #expiresAt > :now")
    expect(request.ExpressionAttributeValues).toEqual({ ":expected": { N: "5" }, ":now": { N: String(t) } })
    expect(request.ReturnValuesOnConditionCheckFailure).toBe("ALL_OLD")
  })

  it("touch moves the expiry and the TTL of a live item, not its version", () => {
    const request = Dynamo.touchRequest("sessions", key, t + 90_500, t)
    expect(request.Key).toEqual({ pk: { S: key } })
    expect(request.UpdateExpression).toBe("SET #expiresAt = :expiresAt, #ttl = :ttl")
    expect(request.ConditionExpression).toBe("attribute_exists(#pk) AND #expiresAt > :now")
    expect(request.ExpressionAttributeValues).toEqual({
      ":expiresAt": { N: String(t + 90_500) },
      ":ttl": { N: String(t / 1000 + 91) },
      ":now": { N: String(t) }
    })
    expect(JSON.stringify(request)).not.toContain("version")
  })

  it("remove deletes by key, unconditionally", () => {
    expect(Dynamo.deleteRequest("sessions", key)).toEqual({ TableName: "sessions", Key: { pk: { S: key } } })
  })

  it("the principal query reads keys and expiries from the index, page after page", () => {
    const first = Dynamo.principalQuery("sessions", "principal-index", "alice", undefined)
    expect(first).toMatchObject({
      IndexName: "principal-index",
      KeyConditionExpression: "#principal = :principal",
      ProjectionExpression: "#pk, #expiresAt",
      ExpressionAttributeValues: { ":principal": { S: "alice" } },
      ExclusiveStartKey: undefined
    })
    const start = { pk: { S: key }, principal: { S: "alice" } }
    expect(Dynamo.principalQuery("sessions", "principal-index", "alice", start).ExclusiveStartKey).toBe(start)
  })

  it("index entries need a key and an expiry; only the live ones count", () => {
    const items = [
      { pk: { S: "a" }, expiresAt: { N: String(t + 1) } },
      { pk: { S: "b" }, expiresAt: { N: String(t) } }
    ]
    const entries = Dynamo.indexEntries(items)!
    expect(entries).toEqual([{ key: "a", expiresAt: t + 1 }, { key: "b", expiresAt: t }])
    expect(Dynamo.liveKeys(entries, t)).toEqual(["a"])
    expect(Dynamo.indexEntries([...items, { pk: { S: "c" } }])).toBeUndefined()
    expect(Dynamo.indexEntries([{ expiresAt: { N: "1" } }])).toBeUndefined()
  })

  it("deletes go in batches of at most 25", () => {
    const keys = Array.from({ length: 60 }, (_, i) => `key${i}`)
    const batches = Dynamo.deleteBatches(keys)
    expect(batches.map((batch) => batch.length)).toEqual([25, 25, 10])
    expect(batches[2]![9]).toEqual({ DeleteRequest: { Key: { pk: { S: "key59" } } } })
    expect(Dynamo.deleteBatches([])).toEqual([])
  })
})

describe("the table", () => {
  it("the table it creates passes its own layout check", () => {
    const definition = Dynamo.tableDefinition("sessions", "principal-index")
    expect(definition.KeySchema).toEqual([{ AttributeName: "pk", KeyType: "HASH" }])
    expect(Dynamo.layoutProblem(definition, "sessions", "principal-index")).toBeUndefined()
  })

  it("refuses a sort key, a missing index, an index on another attribute, and an index without expiresAt", () => {
    const good = Dynamo.tableDefinition("sessions", "principal-index")
    const index = good.GlobalSecondaryIndexes[0]!
    const problem = (layout: Dynamo.TableLayout) => Dynamo.layoutProblem(layout, "sessions", "principal-index")
    expect(problem({ ...good, KeySchema: [...good.KeySchema, { AttributeName: "sk", KeyType: "RANGE" }] }))
      .toMatch(/partition key "pk"/)
    expect(problem({ ...good, GlobalSecondaryIndexes: [] })).toMatch(/no global secondary index "principal-index"/)
    expect(problem({ ...good, GlobalSecondaryIndexes: [{ ...index, KeySchema: [{ AttributeName: "user" }] }] }))
      .toMatch(/partition key "principal"/)
    expect(problem({ ...good, GlobalSecondaryIndexes: [{ ...index, Projection: { ProjectionType: "KEYS_ONLY" } }] }))
      .toMatch(/must project "expiresAt"/)
    expect(problem({ ...good, GlobalSecondaryIndexes: [{ ...index, Projection: { ProjectionType: "ALL" } }] }))
      .toBeUndefined()
  })

  it("TTL: the attribute it is on when enabled or enabling, else undefined (then it is enabled on ttl)", () => {
    expect(Dynamo.enabledTimeToLive({ TimeToLiveStatus: "ENABLED", AttributeName: "ttl" })).toBe("ttl")
    expect(Dynamo.enabledTimeToLive({ TimeToLiveStatus: "ENABLING", AttributeName: "expires" })).toBe("expires")
    expect(Dynamo.enabledTimeToLive({ TimeToLiveStatus: "DISABLED" })).toBeUndefined()
    expect(Dynamo.enabledTimeToLive(undefined)).toBeUndefined()
    expect(Dynamo.enableTimeToLiveRequest("sessions").TimeToLiveSpecification).toEqual({
      AttributeName: "ttl",
      Enabled: true
    })
  })
})

describe("errors and client configuration", () => {
  it("AWS errors are known by name, and described by name and message", () => {
    const error = Object.assign(new Error("The conditional request failed"), {
      name: "ConditionalCheckFailedException",
      Item: { pk: { S: key } }
    })
    expect(Dynamo.isAwsError(error, "ConditionalCheckFailedException")).toBe(true)
    expect(Dynamo.isAwsError(error, "ResourceNotFoundException")).toBe(false)
    expect(Dynamo.isAwsError("ConditionalCheckFailedException", "ConditionalCheckFailedException")).toBe(false)
    expect(Dynamo.itemOfConditionFailure(error)).toEqual({ pk: { S: key } })
    expect(Dynamo.itemOfConditionFailure(new Error("x"))).toBeUndefined()
    expect(Dynamo.describeAwsError(error)).toBe("ConditionalCheckFailedException: The conditional request failed")
    expect(Dynamo.describeAwsError({ name: "UnknownOperationException", message: "UnknownError" }))
      .toBe("UnknownOperationException")
  })

  it("a created client times out by default; the application's config and the explicit options win in that order", () => {
    const defaults = Dynamo.clientConfig(undefined, { endpoint: undefined, region: undefined, credentials: undefined })
    expect(defaults).toEqual({
      requestHandler: {
        connectionTimeout: Dynamo.defaultConnectionTimeoutMillis,
        requestTimeout: Dynamo.defaultRequestTimeoutMillis,
        throwOnRequestTimeout: true
      }
    })
    const config = Dynamo.clientConfig({ maxAttempts: 1, region: "us-east-1", requestHandler: { requestTimeout: 50 } }, {
      endpoint: "http://127.0.0.1:8000",
      region: "eu-west-1",
      credentials: { accessKeyId: "id", secretAccessKey: "secret", sessionToken: undefined }
    })
    expect(config).toEqual({
      maxAttempts: 1,
      region: "eu-west-1",
      requestHandler: { requestTimeout: 50 },
      endpoint: "http://127.0.0.1:8000",
      credentials: { accessKeyId: "id", secretAccessKey: "secret" }
    })
  })
})
