import { afterAll, describe, expect, it } from "@effect/vitest"
import { Context, Effect, Layer, Option, TestClock } from "effect"
import type { MongoClient } from "mongodb"
import { MongoClient as RealMongoClient } from "mongodb"
import { randomBytes } from "node:crypto"
import * as MongoStore from "../../src/MongoStore.js"
import { SessionStoreError } from "../../src/SessionError.js"
import * as SessionId from "../../src/SessionId.js"
import { SessionIndex, SessionStore } from "../../src/SessionStore.js"
import { describeBackend } from "../utils/backend.js"

// An application that forwards unvalidated JSON can pass an object where the
// types say string: `{ "$ne": null }` as a principal must never reach
// MongoDB as an operator (issue 12, finding 4).
const operator = { $ne: null } as unknown as string

const write = (data: string, expiresAt: number, principal?: string) => ({
  data: new TextEncoder().encode(data),
  expiresAt,
  principal: Option.fromNullable(principal)
})

const freshKey = () => SessionId.storageKey(SessionId.unsafeGenerate())

/**
 * A stand-in for the driver's client that records the filters the store
 * sends and answers like an empty collection: what the store does with a
 * principal is visible without a server.
 */
const recordingClient = () => {
  const calls: Array<{ readonly method: string; readonly filter: unknown }> = []
  const collection = {
    createIndexes: () => Promise.resolve([]),
    find: (filter: unknown) => {
      calls.push({ method: "find", filter })
      return { toArray: () => Promise.resolve([]) }
    },
    deleteMany: (filter: unknown) => {
      calls.push({ method: "deleteMany", filter })
      return Promise.resolve({ acknowledged: true, deletedCount: 0 })
    },
    updateOne: (filter: unknown) => {
      calls.push({ method: "updateOne", filter })
      return Promise.resolve({ acknowledged: true, matchedCount: 1, modifiedCount: 1, upsertedCount: 0 })
    }
  }
  const client = { db: () => ({ collection: () => collection }) } as unknown as MongoClient
  return { client, calls }
}

const withRecordingStore = <A, E>(
  body: (
    services: { readonly store: SessionStore["Type"]; readonly index: SessionIndex["Type"] },
    calls: ReadonlyArray<{ readonly method: string; readonly filter: unknown }>
  ) => Effect.Effect<A, E>
) =>
  Effect.gen(function*() {
    const { calls, client } = recordingClient()
    const context = yield* Layer.build(MongoStore.layer({ client }))
    return yield* body({ store: Context.get(context, SessionStore), index: Context.get(context, SessionIndex) }, calls)
  }).pipe(Effect.scoped)

describe("MongoStore principals (no server)", () => {
  it.effect("keys and removeAll refuse a principal that is not a string before sending anything", () =>
    withRecordingStore(({ index }, calls) =>
      Effect.gen(function*() {
        for (const principal of [operator, 42, null, ["alice"]] as ReadonlyArray<unknown>) {
          const keys = yield* Effect.flip(index.keys(principal as string))
          expect(keys).toBeInstanceOf(SessionStoreError)
          expect(keys.operation).toBe("keys")
          expect(keys.message).toMatch(/principal must be a string/)
          const removed = yield* Effect.flip(index.removeAll(principal as string))
          expect(removed).toBeInstanceOf(SessionStoreError)
          expect(removed.operation).toBe("removeAll")
        }
        expect(calls).toEqual([])
      })
    ))

  it.effect("insert and update refuse a write whose principal is not a string before sending anything", () =>
    withRecordingStore(({ store }, calls) =>
      Effect.gen(function*() {
        const t = Date.now()
        const inserted = yield* Effect.flip(store.insert(freshKey(), write("x", t + 60_000, operator)))
        expect(inserted).toBeInstanceOf(SessionStoreError)
        expect((inserted as SessionStoreError).operation).toBe("insert")
        const updated = yield* Effect.flip(store.update(freshKey(), write("x", t + 60_000, operator), 1))
        expect((updated as SessionStoreError).operation).toBe("update")
        expect(calls).toEqual([])
      })
    ))

  it.effect("a string principal is matched with $eq, so even one that looks like an operator is a value", () =>
    withRecordingStore(({ index, store }, calls) =>
      Effect.gen(function*() {
        yield* TestClock.setTime(1_000_000)
        yield* index.keys("alice")
        yield* index.removeAll("$ne")
        yield* store.insert(freshKey(), write("x", 2_000_000, "bob"))
        expect(calls.slice(0, 2)).toEqual([
          { method: "find", filter: { principal: { $eq: "alice" }, expiresAt: { $gt: new Date(1_000_000) } } },
          { method: "deleteMany", filter: { principal: { $eq: "$ne" }, expiresAt: { $gt: new Date(1_000_000) } } }
        ])
        expect(calls[2]?.method).toBe("updateOne")
      })
    ))
})

// The same against a real server, when MONGODB_URL points at one.
const url = process.env.MONGODB_URL
const database = process.env.MONGODB_DATABASE ?? "effect_session_test"
const collection = `sessions_principal_${randomBytes(6).toString("hex")}`

describeBackend(
  "MongoStore principals (server)",
  { available: url !== undefined, reason: "MONGODB_URL is not set", required: url !== undefined },
  () => {
    afterAll(async () => {
      const client = await new RealMongoClient(url!).connect()
      try {
        await client.db(database).collection(collection).drop().catch(() => undefined)
      } finally {
        await client.close()
      }
    })

    it.effect("removeAll with an operator object removes nothing and fails; every other user keeps their sessions", () =>
      Effect.gen(function*() {
        yield* TestClock.setTime(Date.now())
        const store = yield* SessionStore
        const index = yield* SessionIndex
        const t = Date.now()
        const alice = `alice-${randomBytes(4).toString("hex")}`
        const bob = `bob-${randomBytes(4).toString("hex")}`
        const keys = [freshKey(), freshKey()]
        yield* store.insert(keys[0]!, write("a", t + 60_000, alice))
        yield* store.insert(keys[1]!, write("b", t + 60_000, bob))
        const error = yield* Effect.flip(index.removeAll(operator))
        expect(error).toBeInstanceOf(SessionStoreError)
        expect(yield* Effect.flip(index.keys(operator))).toBeInstanceOf(SessionStoreError)
        expect(yield* index.keys(alice)).toEqual([keys[0]])
        expect(yield* index.keys(bob)).toEqual([keys[1]])
        // a principal spelled like an operator is only ever itself
        expect(yield* index.removeAll("$ne")).toBe(0)
        expect(yield* index.keys(alice)).toEqual([keys[0]])
      }).pipe(Effect.provide(MongoStore.layer({ url: url!, database, collection }))))
  }
)
