/**
 * The DynamoDB store on dynalite, started in this process on a free loopback
 * port: the conformance checks, the table it creates and the items it
 * writes, the principal index, its clients' lifetimes, `layerConfig`, the
 * session over HTTP, and failures that name their cause instead of hanging.
 */
import {
  DeleteTableCommand,
  DescribeTableCommand,
  DynamoDBClient,
  GetItemCommand,
  ListTablesCommand,
  QueryCommand
} from "@aws-sdk/client-dynamodb"
import { afterAll, beforeAll, describe, expect, it, vi } from "@effect/vitest"
import { Config, ConfigProvider, Context, Effect, Exit, Layer, Logger, Option, References, Schema, Scope } from "effect"
import { HttpRouter, HttpServerResponse } from "effect/http"
import { TestClock } from "effect/testing"
import { randomBytes } from "node:crypto"
import { createServer, type Server as NetServer } from "node:net"
import * as Ids from "../../src/core/ids.js"
import * as DynamoDbStore from "../src/DynamoDbStore.js"
import * as Session from "../src/Session.js"
import type { StorageKey } from "../src/SessionId.js"
import { SessionIndex, SessionStore } from "../src/SessionStore.js"
import * as StoreConformance from "../src/StoreConformance.js"
import { clientOptions, startDynalite } from "./utils/dynalite.js"
import { browser, get, serve } from "./utils/server.js"

const server = await startDynalite()
const options = clientOptions(server.endpoint)
// the tests' own client, to look at what the store wrote
const raw = new DynamoDBClient({
  endpoint: server.endpoint,
  region: options.region,
  credentials: { accessKeyId: "effect4-session-test", secretAccessKey: "effect4-session-test" }
})
const tableName = "e4dyn_sessions"
const StoreLive = DynamoDbStore.layer({ ...options, tableName })

const quiet = Effect.provideService(References.MinimumLogLevel, "Error")
const freshTable = () => `e4dyn_${randomBytes(5).toString("hex")}`
const storageKey = Ids.storageKeyFunction()
const freshKey = () => storageKey(Ids.generateId()) as StorageKey
const wallClock = Effect.suspend(() => TestClock.setTime(Date.now()))
const item = (table: string, key: string) =>
  Effect.promise(() => raw.send(new GetItemCommand({ TableName: table, Key: { pk: { S: key } }, ConsistentRead: true }))).pipe(
    Effect.map((out) => out.Item)
  )
const failureOf = <A, E>(exit: Exit.Exit<A, E>) => Exit.isFailure(exit) ? exit.cause.reasons.find((r) => r._tag === "Fail")?.error : undefined
const write = (text: string, expiresAt: number, principal?: string) => ({ text, expiresAt, principal: Option.fromUndefinedOr(principal) })

beforeAll(() => Effect.runPromise(Effect.scoped(Layer.build(DynamoDbStore.layer({ ...options, tableName, createTable: true }))).pipe(quiet)))
afterAll(async () => {
  raw.destroy()
  await server.close()
})

class Counter extends Session.Tag<Counter>()("test/DynamoDbCounter", {
  count: Schema.Int.pipe(Schema.withDecodingDefault(Effect.succeed(0)))
}) {}

describe("DynamoDbStore (dynalite)", () => {
  describe("conformance", () => {
    // racing writers cost many requests against dynalite on a busy machine
    for (const check of StoreConformance.checks(StoreLive)) it.effect(check.name, () => check.run, 180_000)
    for (const check of StoreConformance.indexChecks(StoreLive)) it.effect(check.name, () => check.run)
  })

  it.effect("createTable creates the table with its principal index, and says that dynalite leaves TTL off", () =>
    Effect.gen(function*() {
      const table = freshTable()
      const logged: Array<string> = []
      const capture = Logger.layer([Logger.make(({ logLevel, message }) => logged.push(`${logLevel} ${String(message)}`))])
      yield* Effect.scoped(Layer.build(DynamoDbStore.layer({ ...options, tableName: table, createTable: true }))).pipe(Effect.provide(capture))
      const { Table } = yield* Effect.promise(() => raw.send(new DescribeTableCommand({ TableName: table })))
      expect(Table?.TableStatus).toBe("ACTIVE")
      expect(Table?.KeySchema).toEqual([{ AttributeName: "pk", KeyType: "HASH" }])
      const gsi = Table?.GlobalSecondaryIndexes?.find((index) => index.IndexName === DynamoDbStore.defaultIndexName)
      expect(gsi?.KeySchema).toEqual([{ AttributeName: "principal", KeyType: "HASH" }])
      expect(gsi?.Projection).toEqual({ ProjectionType: "INCLUDE", NonKeyAttributes: ["expiresAt"] })
      expect(logged.some((line) => line.startsWith("Info") && line.includes(`creating table "${table}"`))).toBe(true)
      expect(logged.some((line) => line.startsWith("Warn") && line.includes(`TTL garbage collection is NOT enabled on table "${table}"`))).toBe(true)
    }))

  it.effect("a missing table fails the layer with a SessionStoreError naming it, and is not created", () =>
    Effect.gen(function*() {
      const table = freshTable()
      const failure = failureOf(yield* Effect.exit(Effect.scoped(Layer.build(DynamoDbStore.layer({ ...options, tableName: table })))))
      expect(failure?._tag).toBe("SessionStoreError")
      expect(failure?.operation).toBe("setup")
      expect(failure?.message).toContain(`table "${table}" does not exist`)
      expect((yield* Effect.promise(() => raw.send(new ListTablesCommand({})))).TableNames).not.toContain(table)
    }))

  it.effect("the item holds pk, the text's UTF-8 bytes, version, expiresAt and ttl in seconds; principal only when there is one", () =>
    Effect.gen(function*() {
      yield* wallClock
      const store = yield* SessionStore
      const key = freshKey()
      const expiresAt = Date.now() + 90_001
      yield* store.insert(key, write("{\"name\":\"Zoë 🦊\"}", expiresAt, "carol"))
      const stored = (yield* item(tableName, key))!
      expect(stored.pk?.S).toBe(key)
      expect(new TextDecoder().decode(stored.data?.B)).toBe("{\"name\":\"Zoë 🦊\"}")
      expect(stored.version?.N).toBe("1")
      expect(stored.expiresAt?.N).toBe(String(expiresAt))
      expect(stored.ttl?.N).toBe(String(Math.ceil(expiresAt / 1000)))
      expect(stored.principal?.S).toBe("carol")
      expect(yield* store.update(key, write("{}", expiresAt), 1)).toBe(2)
      const updated = (yield* item(tableName, key))!
      expect(updated.principal).toBeUndefined()
      expect(updated.version?.N).toBe("2")
      const loaded = yield* store.load(key)
      expect(Option.map(loaded, (r) => [r.text, r.version, Option.isNone(r.principal)])).toEqual(Option.some(["{}", 2, true]))
    }).pipe(Effect.provide(StoreLive)))

  it.effect("the principal index: keys lists the live sessions, removeAll deletes over several batches and counts the live ones", () =>
    Effect.gen(function*() {
      yield* wallClock
      const store = yield* SessionStore
      const index = yield* SessionIndex
      const principal = `many-${randomBytes(4).toString("hex")}`
      const now = Date.now()
      const live = Array.from({ length: 57 }, freshKey)
      const expired = Array.from({ length: 6 }, freshKey)
      yield* Effect.forEach(live, (key) => store.insert(key, write("{}", now + 600_000, principal)), { concurrency: 10 })
      yield* Effect.forEach(expired, (key) => store.insert(key, write("{}", now + 1_000, principal)), { concurrency: 10 })
      yield* TestClock.adjust("2 seconds")
      expect([...(yield* index.keys(principal))].sort()).toEqual([...live].sort())
      expect(yield* index.removeAll(principal)).toBe(57)
      // the expired ones are deleted too: nothing is left for TTL
      const left = yield* Effect.promise(() =>
        raw.send(new QueryCommand({
          TableName: tableName,
          IndexName: DynamoDbStore.defaultIndexName,
          KeyConditionExpression: "principal = :p",
          ExpressionAttributeValues: { ":p": { S: principal } }
        }))
      )
      expect(left.Count).toBe(0)
      expect(yield* index.keys(principal)).toEqual([])
    }).pipe(Effect.provide(StoreLive)), 60_000)

  it.effect("layerConfig reads table, index, createTable, endpoint, region and credentials from Config", () =>
    Effect.gen(function*() {
      yield* wallClock
      const table = freshTable()
      const principal = `fay-${randomBytes(4).toString("hex")}`
      const key = freshKey()
      const configured = DynamoDbStore.layerConfig({
        tableName: Config.String("SESSION_TABLE"),
        indexName: Config.String("SESSION_INDEX"),
        createTable: Config.Boolean("SESSION_CREATE_TABLE"),
        endpoint: Config.String("DYNAMODB_ENDPOINT"),
        region: Config.String("AWS_REGION"),
        credentials: Config.all({ accessKeyId: Config.String("AWS_ACCESS_KEY_ID"), secretAccessKey: Config.Redacted("AWS_SECRET_ACCESS_KEY") })
      }).pipe(Layer.provide(ConfigProvider.layer(ConfigProvider.fromUnknown({
        SESSION_TABLE: table,
        SESSION_INDEX: "by-user",
        SESSION_CREATE_TABLE: "true",
        DYNAMODB_ENDPOINT: server.endpoint,
        AWS_REGION: "us-east-1",
        AWS_ACCESS_KEY_ID: "effect4-session-test",
        AWS_SECRET_ACCESS_KEY: "effect4-session-test"
      }))))
      yield* Effect.gen(function*() {
        yield* (yield* SessionStore).insert(key, write("{}", Date.now() + 60_000, principal))
        expect(yield* (yield* SessionIndex).keys(principal)).toEqual([key])
      }).pipe(Effect.provide(configured), quiet)
      expect((yield* item(table, key))?.principal?.S).toBe(principal)
      const { Table } = yield* Effect.promise(() => raw.send(new DescribeTableCommand({ TableName: table })))
      expect(Table?.GlobalSecondaryIndexes?.map((gsi) => gsi.IndexName)).toEqual(["by-user"])
    }))

  it.effect("a client passed in is used and not destroyed; a client the layer creates is destroyed with its scope", () =>
    Effect.gen(function*() {
      yield* wallClock
      const destroy = vi.spyOn(DynamoDBClient.prototype, "destroy")
      try {
        const client = new DynamoDBClient({ endpoint: server.endpoint, region: "us-east-1", credentials: { accessKeyId: "t", secretAccessKey: "t" } })
        const key = freshKey()
        yield* Effect.flatMap(SessionStore, (store) => store.insert(key, write("{\"passed\":1}", Date.now() + 60_000))).pipe(
          Effect.provide(DynamoDbStore.layer({ client, tableName }))
        )
        expect(destroy).not.toHaveBeenCalled()
        // the layer is gone; the client still works
        expect((yield* Effect.promise(() => client.send(new GetItemCommand({ TableName: tableName, Key: { pk: { S: key } } })))).Item).toBeDefined()
        client.destroy()
        destroy.mockClear()

        const scope = yield* Scope.make()
        yield* Layer.buildWithScope(StoreLive, scope)
        expect(destroy).not.toHaveBeenCalled()
        yield* Scope.close(scope, Exit.void)
        expect(destroy).toHaveBeenCalledTimes(1)
      } finally {
        destroy.mockRestore()
      }
    }))

  it.live("over HTTP: 200 concurrent increments of one session are exactly 200 more; revokeAll logs out every browser of a user", () =>
    Effect.gen(function*() {
      const state = Effect.gen(function*() {
        const count = yield* Counter.get("count")
        const principal = yield* Counter.principal
        return HttpServerResponse.text(`${count} ${Option.getOrElse(principal, () => "-")}`)
      })
      const user = Effect.map(HttpRouter.params, (params) => params.user ?? "")
      const stores = yield* Layer.build(StoreLive)
      const routes = Layer.mergeAll(
        HttpRouter.add("GET", "/read", state),
        HttpRouter.add("GET", "/incr", Effect.andThen(Counter.update("count", (n) => n + 1), state)),
        HttpRouter.add("GET", "/login/:user", Effect.andThen(Effect.flatMap(user, (u) => Counter.login(u)), state))
      ).pipe(Layer.provide(Counter.middleware({ cookie: { secure: false } }).layer))
      // a handler's requirements are the request's: the index is given to it
      const revoke = HttpRouter.add("POST", "/revoke/:user", Effect.flatMap(user, (u) =>
        Effect.map(Session.revokeAll(u).pipe(
          Effect.provideService(SessionIndex, Context.get(stores, SessionIndex)),
          Effect.provideService(SessionStore, Context.get(stores, SessionStore))
        ), (n) =>
          HttpServerResponse.text(String(n)))))
      const base = yield* serve(Layer.mergeAll(routes, revoke).pipe(Layer.provide(Layer.succeedContext(stores))))

      const counter = browser(base)
      yield* counter.get("/incr")
      yield* Effect.forEach(Array.from({ length: 200 }), () => get(`${base}/incr`, counter.cookie), { concurrency: "unbounded" })
      expect((yield* counter.get("/read")).body).toBe("201 -")

      const name = `alice-${randomBytes(4).toString("hex")}`
      const alices = [browser(base), browser(base), browser(base)]
      for (const alice of alices) expect((yield* alice.get(`/login/${name}`)).body).toBe(`0 ${name}`)
      const bob = browser(base)
      yield* bob.get(`/login/bob-${name}`)
      const revoked = yield* get(`${base}/revoke/${name}`, undefined, "POST")
      expect([revoked.status, revoked.body]).toEqual([200, "3"])
      for (const alice of alices) expect((yield* get(`${base}/read`, alice.cookie)).body).toBe("0 -")
      expect((yield* bob.get("/read")).body).toBe(`0 bob-${name}`)
    }).pipe(Effect.scoped), 180_000)

  it.effect("backend failures are SessionStoreErrors naming the operation and the AWS error", () =>
    Effect.gen(function*() {
      yield* wallClock
      const table = freshTable()
      // every operation of the store and its index, on a table deleted under them
      const failed = yield* Effect.gen(function*() {
        const store = yield* SessionStore
        const index = yield* SessionIndex
        yield* Effect.promise(() => raw.send(new DeleteTableCommand({ TableName: table })))
        const key = freshKey()
        const expiresAt = Date.now() + 60_000
        const operations = {
          load: store.load(key),
          insert: store.insert(key, write("{}", expiresAt)),
          update: store.update(key, write("{}", expiresAt), 1),
          touch: store.touch(key, expiresAt),
          remove: store.remove(key),
          keys: index.keys("x"),
          removeAll: index.removeAll("x")
        }
        return yield* Effect.forEach(Object.entries(operations), ([operation, attempt]) =>
          Effect.map(Effect.flip(attempt), (error) => ({ operation, error })))
      }).pipe(Effect.provide(DynamoDbStore.layer({ ...options, tableName: table, createTable: true })), quiet)
      expect(failed).toHaveLength(7)
      for (const { error, operation } of failed) {
        expect(error._tag === "SessionStoreError" && error.operation).toBe(operation)
      }
      const errors = failed.map(({ error }) => error)
      expect(errors[0]!.message).toBe("dynamodb store: load failed: Requested resource not found")
      expect(errors[0]!.cause).toHaveProperty("name", "ResourceNotFoundException")
    }))

  it.live("an unreachable endpoint fails the layer with a SessionStoreError naming the cause, not a hang", () =>
    Effect.gen(function*() {
      const exit = yield* Effect.exit(Effect.scoped(Layer.build(
        DynamoDbStore.layer({ ...options, endpoint: "http://127.0.0.1:1", tableName, clientConfig: { maxAttempts: 1 } })
      )))
      const failure = failureOf(exit)
      expect(failure?._tag).toBe("SessionStoreError")
      expect(failure?.operation).toBe("setup")
      expect(failure?.message).toMatch(/^dynamodb store: setup failed: .*ECONNREFUSED/)
    }))

  it.live("an endpoint that accepts but never answers fails the layer at the created client's request timeout, not never", () =>
    Effect.gen(function*() {
      // takes connections and says nothing, like a wedged load balancer
      const silent = yield* Effect.acquireRelease(
        Effect.promise(() => new Promise<NetServer>((resolve) => {
          const listening = createServer(() => undefined).listen(0, "127.0.0.1", () => resolve(listening))
        })),
        (listening) => Effect.sync(() => listening.close())
      )
      const { port } = silent.address() as { readonly port: number }
      const exit = yield* Effect.exit(Effect.scoped(Layer.build(
        DynamoDbStore.layer({ ...options, endpoint: `http://127.0.0.1:${port}`, tableName, clientConfig: { maxAttempts: 1 } })
      )))
      const failure = failureOf(exit)
      expect(failure?._tag).toBe("SessionStoreError")
      expect(failure?.message).toMatch(/^dynamodb store: setup failed: .*timeout/i)
    }).pipe(Effect.scoped), 30_000)

  it.live("a server that goes away fails an operation with a SessionStoreError naming the cause", () =>
    Effect.gen(function*() {
      const own = yield* Effect.promise(startDynalite)
      const store = yield* Effect.gen(function*() {
        const stores = yield* Layer.build(DynamoDbStore.layer({
          ...clientOptions(own.endpoint),
          tableName,
          createTable: true,
          clientConfig: { maxAttempts: 1 }
        }))
        return Context.get(stores, SessionStore)
      }).pipe(quiet)
      const key = freshKey()
      yield* store.insert(key, write("{}", Date.now() + 60_000))
      yield* Effect.promise(own.close)
      const error = yield* Effect.flip(store.load(key))
      expect(error._tag).toBe("SessionStoreError")
      // the connection the client kept was reset, or a new one refused
      expect(error.message).toMatch(/^dynamodb store: load failed: .*(ECONNRESET|ECONNREFUSED)/)
    }).pipe(Effect.scoped))
})
