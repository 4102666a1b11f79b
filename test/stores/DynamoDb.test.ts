import {
  CreateTableCommand,
  DeleteTableCommand,
  DescribeTableCommand,
  DynamoDBClient,
  GetItemCommand,
  ListTablesCommand,
  QueryCommand
} from "@aws-sdk/client-dynamodb"
import type { AttributeValue } from "@aws-sdk/client-dynamodb"
import { afterAll, beforeAll, expect, it, vi } from "@effect/vitest"
import { Cause, Config, ConfigProvider, Context, Duration, Effect, Exit, Layer, Logger, LogLevel, Option, Scope, TestClock } from "effect"
import * as DynamoDbStore from "../../src/DynamoDbStore.js"
import { SessionStoreError } from "../../src/SessionError.js"
import * as SessionId from "../../src/SessionId.js"
import { SessionIndex, SessionStore } from "../../src/SessionStore.js"
import * as StoreConformance from "../../src/StoreConformance.js"
import { describeBackend } from "../utils/backend.js"
import type { Dynalite } from "../utils/dynalite.js"
import { clientOptions, startDynalite } from "../utils/dynalite.js"
import { countingProxy, silentServer } from "../utils/tcp.js"
import { eventually } from "../utils/timing.js"

const started: { server: Dynalite | undefined; reason: string } = await startDynalite().then(
  (server) => ({ server, reason: "" }),
  (error) => ({ server: undefined, reason: `dynalite did not start: ${String(error)}` })
)

describeBackend("DynamoDbStore (dynalite)", { available: started.server !== undefined, reason: started.reason }, () => {
  // the body is also run, to list its skipped tests, when dynalite did not start
  const options = clientOptions(started.server?.endpoint ?? "http://127.0.0.1:9")
  // a client of the tests' own, to look at what the store wrote
  const raw = new DynamoDBClient({
    endpoint: options.endpoint,
    region: options.region,
    credentials: { accessKeyId: "effect-session-test", secretAccessKey: "effect-session-test" }
  })
  const tableName = "effect_sessions_test"
  const storeLayer = DynamoDbStore.layer({ ...options, tableName })

  beforeAll(() =>
    Effect.runPromise(
      Effect.scoped(Layer.build(DynamoDbStore.layer({ ...options, tableName, createTable: true }))).pipe(
        Logger.withMinimumLogLevel(LogLevel.Error)
      )
    )
  )
  afterAll(async () => {
    raw.destroy()
    await started.server?.close()
  })

  const freshTable = () => `effect_sessions_${SessionId.unsafeGenerate().slice(0, 10).replace(/[^A-Za-z0-9]/g, "x")}`
  const key = () => SessionId.storageKey(SessionId.unsafeGenerate())
  const now = Effect.clockWith((clock) => clock.currentTimeMillis)
  const setWallClock = Effect.suspend(() => TestClock.setTime(Date.now()))
  const rawItem = (table: string, k: string) =>
    Effect.promise(() =>
      raw.send(new GetItemCommand({ TableName: table, Key: { pk: { S: k } }, ConsistentRead: true }))
    ).pipe(Effect.map((out) => Option.fromNullable(out.Item)))
  const numberOf = (item: Record<string, AttributeValue>, attribute: string) => Number(item[attribute]?.N)
  const captureLogs = () => {
    const lines: Array<string> = []
    const logger = Logger.make(({ logLevel, message }) => {
      lines.push(`${logLevel.label} ${Array.isArray(message) ? message.join(" ") : String(message)}`)
    })
    return { lines, layer: Logger.add(logger) }
  }

  for (const check of StoreConformance.checks(storeLayer, { concurrency: 100 })) {
    // 100 racing increments cost ~15,000 requests against dynalite (quadratic in the
    // contenders); on a busy machine that takes well over the default 30 s
    it.effect(check.name, () => check.run, 180_000)
  }
  for (const check of StoreConformance.indexChecks(storeLayer)) {
    it.effect(check.name, () => check.run)
  }

  it.effect("createTable: true creates the table with its principal index and warns that TTL is not enabled", () =>
    Effect.gen(function*() {
      const table = freshTable()
      const logs = captureLogs()
      yield* setWallClock
      const k = key()
      const stored = yield* Effect.gen(function*() {
        const store = yield* SessionStore
        yield* store.insert(k, { data: new Uint8Array([1, 2]), expiresAt: (yield* now) + 60_000, principal: Option.none() })
        return yield* store.load(k)
      }).pipe(
        Effect.provide(DynamoDbStore.layer({ ...options, tableName: table, createTable: true })),
        Effect.provide(logs.layer)
      )
      expect(Option.isSome(stored)).toBe(true)

      const { Table } = yield* Effect.promise(() => raw.send(new DescribeTableCommand({ TableName: table })))
      expect(Table?.TableStatus).toBe("ACTIVE")
      expect(Table?.KeySchema).toEqual([{ AttributeName: "pk", KeyType: "HASH" }])
      const gsi = Table?.GlobalSecondaryIndexes?.find((index) => index.IndexName === DynamoDbStore.defaultIndexName)
      expect(gsi?.KeySchema).toEqual([{ AttributeName: "principal", KeyType: "HASH" }])
      expect(gsi?.Projection).toEqual({ ProjectionType: "INCLUDE", NonKeyAttributes: ["expiresAt"] })
      // dynalite has no UpdateTimeToLive: the layer says so and goes on
      const warning = logs.lines.find((line) => line.startsWith("WARN") && line.includes("TTL garbage collection is NOT enabled"))
      expect(warning).toContain(`"${table}"`)

      // building it again over the existing table keeps what is stored
      const again = yield* Effect.flatMap(SessionStore, (store) => store.load(k)).pipe(
        Effect.provide(DynamoDbStore.layer({ ...options, tableName: table, createTable: true })),
        Logger.withMinimumLogLevel(LogLevel.Error)
      )
      expect(Option.map(again, (record) => record.data)).toEqual(Option.some(new Uint8Array([1, 2])))
    }))

  it.effect("a missing table fails the layer with a SessionStoreError naming the table", () =>
    Effect.gen(function*() {
      const table = freshTable()
      const exit = yield* Effect.scoped(Layer.build(DynamoDbStore.layer({ ...options, tableName: table }))).pipe(Effect.exit)
      expect(Exit.isFailure(exit)).toBe(true)
      const error = Exit.isFailure(exit) ? Cause.failureOption(exit.cause) : Option.none()
      const failure = Option.getOrThrow(error)
      expect(failure).toBeInstanceOf(SessionStoreError)
      expect(failure.operation).toBe("setup")
      expect(failure.message).toContain(`table "${table}" does not exist`)
      expect(failure.message).toContain("createTable")
      // and it did not create the table
      const tables = yield* Effect.promise(() => raw.send(new ListTablesCommand({})))
      expect(tables.TableNames).not.toContain(table)
    }))

  it.effect("a table without the principal index is refused at layer build", () =>
    Effect.gen(function*() {
      const table = freshTable()
      yield* Effect.promise(() =>
        raw.send(
          new CreateTableCommand({
            TableName: table,
            BillingMode: "PAY_PER_REQUEST",
            AttributeDefinitions: [{ AttributeName: "pk", AttributeType: "S" }],
            KeySchema: [{ AttributeName: "pk", KeyType: "HASH" }]
          })
        )
      )
      const exit = yield* Effect.scoped(Layer.build(DynamoDbStore.layer({ ...options, tableName: table }))).pipe(Effect.exit)
      const failure = Option.getOrThrow(Exit.isFailure(exit) ? Cause.failureOption(exit.cause) : Option.none())
      expect(failure.operation).toBe("setup")
      expect(failure.message).toContain(`no global secondary index "${DynamoDbStore.defaultIndexName}"`)
    }))

  it.effect("the item holds pk, data, version, expiresAt (ms) and ttl = ceil(expiresAt / 1000) s, in any TZ", () =>
    Effect.gen(function*() {
      const store = yield* SessionStore
      yield* setWallClock
      const zoneBefore = process.env.TZ
      const offsets: Array<number> = []
      try {
        for (const zone of ["UTC", "Pacific/Kiritimati", "America/Adak"]) {
          process.env.TZ = zone
          offsets.push(new Date(2026, 0, 1).getTimezoneOffset())
          const k = key()
          // not a whole second, so that rounding direction matters
          const expiresAt = (yield* now) + 90_001
          yield* store.insert(k, { data: new Uint8Array([7]), expiresAt, principal: Option.some("carol") })
          const item = Option.getOrThrow(yield* rawItem(tableName, k))
          expect(item.pk?.S).toBe(k)
          expect(item.data?.B).toEqual(new Uint8Array([7]))
          expect(numberOf(item, "version")).toBe(1)
          expect(numberOf(item, "expiresAt")).toBe(expiresAt)
          expect(numberOf(item, "ttl")).toBe(Math.ceil(expiresAt / 1000))
          expect(numberOf(item, "ttl") * 1000).toBeGreaterThanOrEqual(expiresAt)
          expect(item.principal?.S).toBe("carol")

          const touchedTo = expiresAt + 3_600_500
          expect(yield* store.touch(k, touchedTo)).toBe(true)
          const touched = Option.getOrThrow(yield* rawItem(tableName, k))
          expect(numberOf(touched, "expiresAt")).toBe(touchedTo)
          expect(numberOf(touched, "ttl")).toBe(Math.ceil(touchedTo / 1000))
        }
      } finally {
        if (zoneBefore === undefined) delete process.env.TZ
        else process.env.TZ = zoneBefore
      }
      // the zones really differed (+14 h, -10 h), so the numbers above did not depend on them
      expect(new Set(offsets).size).toBe(3)
    }).pipe(Effect.provide(storeLayer)))

  it.effect("a session without a principal has no principal attribute (and is not in the index)", () =>
    Effect.gen(function*() {
      const store = yield* SessionStore
      yield* setWallClock
      const k = key()
      const expiresAt = (yield* now) + 60_000
      yield* store.insert(k, { data: new Uint8Array([1]), expiresAt, principal: Option.some("dave") })
      yield* store.update(k, { data: new Uint8Array([2]), expiresAt, principal: Option.none() }, 1)
      const item = Option.getOrThrow(yield* rawItem(tableName, k))
      expect(item.principal).toBeUndefined()
      expect(numberOf(item, "version")).toBe(2)
    }).pipe(Effect.provide(storeLayer)))

  // what load, touch and update answer for an expired record is conformance;
  // here, what they leave in the table
  it.effect("an expired item still in the table (TTL has not run) is left unchanged by touch and update", () =>
    Effect.gen(function*() {
      const store = yield* SessionStore
      yield* setWallClock
      const k = key()
      yield* store.insert(k, { data: new Uint8Array([1]), expiresAt: (yield* now) + 10_000, principal: Option.none() })
      yield* TestClock.adjust("11 seconds")
      expect(Option.isSome(yield* rawItem(tableName, k))).toBe(true)
      expect(yield* store.touch(k, (yield* now) + 60_000)).toBe(false)
      yield* Effect.either(
        store.update(k, { data: new Uint8Array([2]), expiresAt: (yield* now) + 60_000, principal: Option.none() }, 1)
      )
      // still there, unchanged: the store only ever hides it
      const item = Option.getOrThrow(yield* rawItem(tableName, k))
      expect(item.data?.B).toEqual(new Uint8Array([1]))
      expect(numberOf(item, "version")).toBe(1)
    }).pipe(Effect.provide(storeLayer)))

  it.effect("removeAll deletes more than one BatchWriteItem of sessions and counts the live ones", () =>
    Effect.gen(function*() {
      const store = yield* SessionStore
      const index = yield* SessionIndex
      yield* setWallClock
      const principal = `many-${SessionId.unsafeGenerate().slice(0, 8)}`
      const t = yield* now
      const live = Array.from({ length: 57 }, key)
      const expired = Array.from({ length: 6 }, key)
      yield* Effect.forEach(live, (k) =>
        store.insert(k, { data: new Uint8Array([1]), expiresAt: t + 600_000, principal: Option.some(principal) }), {
        concurrency: 10
      })
      yield* Effect.forEach(expired, (k) =>
        store.insert(k, { data: new Uint8Array([1]), expiresAt: t + 1_000, principal: Option.some(principal) }), {
        concurrency: 10
      })
      yield* TestClock.adjust("2 seconds")
      expect((yield* index.keys(principal)).length).toBe(57)
      expect(yield* index.removeAll(principal)).toBe(57)
      // expired ones are deleted too: nothing is left for TTL
      const left = yield* Effect.promise(() =>
        raw.send(
          new QueryCommand({
            TableName: tableName,
            IndexName: DynamoDbStore.defaultIndexName,
            KeyConditionExpression: "principal = :p",
            ExpressionAttributeValues: { ":p": { S: principal } }
          })
        )
      )
      expect(left.Count).toBe(0)
      for (const k of [...live, ...expired]) expect(Option.isNone(yield* rawItem(tableName, k))).toBe(true)
    }).pipe(Effect.provide(storeLayer)))

  it.effect("a client passed in is used and not destroyed with the layer", () =>
    Effect.gen(function*() {
      yield* setWallClock
      const client = yield* Effect.acquireRelease(
        Effect.sync(() =>
          new DynamoDBClient({
            endpoint: options.endpoint,
            region: options.region,
            credentials: { accessKeyId: "effect-session-test", secretAccessKey: "effect-session-test" }
          })
        ),
        (client) => Effect.sync(() => client.destroy())
      )
      // a destroyed SDK client still sends (it opens new connections), so
      // the call itself is watched
      const destroy = vi.spyOn(client, "destroy")
      const k = key()
      yield* Effect.gen(function*() {
        const store = yield* SessionStore
        yield* store.insert(k, { data: new Uint8Array([5]), expiresAt: (yield* now) + 60_000, principal: Option.none() })
      }).pipe(Effect.provide(DynamoDbStore.layer({ client, tableName })))
      expect(destroy).not.toHaveBeenCalled()
      destroy.mockRestore()
      // the layer's scope is closed: the client still works
      const out = yield* Effect.promise(() =>
        client.send(new GetItemCommand({ TableName: tableName, Key: { pk: { S: k } }, ConsistentRead: true }))
      )
      expect(out.Item?.data?.B).toEqual(new Uint8Array([5]))
    }).pipe(Effect.scoped))

  it.live("a client the layer creates is destroyed with the layer", () =>
    Effect.gen(function*() {
      // the store reaches dynalite through a proxy that counts its connections;
      // dynalite keeps idle ones open for 30 s, so only the client closes them sooner
      const proxy = yield* countingProxy("127.0.0.1", started.server!.port)
      const scope = yield* Scope.make()
      const store = Context.get(
        yield* Layer.buildWithScope(
          DynamoDbStore.layer({ ...options, endpoint: `http://127.0.0.1:${proxy.port}`, tableName }),
          scope
        ),
        SessionStore
      )
      yield* store.insert(key(), { data: new Uint8Array([1]), expiresAt: Date.now() + 60_000, principal: Option.none() })
      expect(proxy.connections()).toBeGreaterThan(0)
      yield* Scope.close(scope, Exit.void)
      expect(yield* eventually(() => proxy.connections() === 0, 5_000)).toBe(true)
    }).pipe(Effect.scoped))

  it.effect("indexName names the principal index the store queries", () =>
    Effect.gen(function*() {
      yield* setWallClock
      const table = freshTable()
      const indexName = "by-user"
      const layer = DynamoDbStore.layer({ ...options, tableName: table, indexName, createTable: true })
      const principal = `erin-${SessionId.unsafeGenerate().slice(0, 8)}`
      const k = key()
      yield* Effect.gen(function*() {
        const store = yield* SessionStore
        const index = yield* SessionIndex
        yield* store.insert(k, { data: new Uint8Array([1]), expiresAt: (yield* now) + 60_000, principal: Option.some(principal) })
        expect(yield* index.keys(principal)).toEqual([k])
        expect(yield* index.removeAll(principal)).toBe(1)
      }).pipe(Effect.provide(layer), Logger.withMinimumLogLevel(LogLevel.Error))
      const { Table } = yield* Effect.promise(() => raw.send(new DescribeTableCommand({ TableName: table })))
      expect(Table?.GlobalSecondaryIndexes?.map((gsi) => gsi.IndexName)).toEqual([indexName])
      // the table has no index of the default name: a layer looking for it is refused
      const refused = yield* Effect.flip(Effect.scoped(Layer.build(DynamoDbStore.layer({ ...options, tableName: table }))))
      expect(refused.message).toContain(`no global secondary index "${DynamoDbStore.defaultIndexName}"`)
      // and one given the name serves the table without creating anything
      const listed = yield* Effect.flatMap(SessionIndex, (index) => index.keys(principal)).pipe(
        Effect.provide(DynamoDbStore.layer({ ...options, tableName: table, indexName }))
      )
      expect(listed).toEqual([])
    }))

  it.effect("layerConfig reads the table, index, endpoint, region and credentials from Config", () =>
    Effect.gen(function*() {
      yield* setWallClock
      const table = freshTable()
      const principal = `fay-${SessionId.unsafeGenerate().slice(0, 8)}`
      const k = key()
      const configured = DynamoDbStore.layerConfig({
        tableName: Config.string("SESSION_TABLE"),
        indexName: Config.string("SESSION_INDEX"),
        createTable: Config.boolean("SESSION_CREATE_TABLE"),
        endpoint: Config.string("DYNAMODB_ENDPOINT"),
        region: Config.string("AWS_REGION"),
        credentials: Config.all({
          accessKeyId: Config.string("AWS_ACCESS_KEY_ID"),
          secretAccessKey: Config.redacted("AWS_SECRET_ACCESS_KEY")
        })
      })
      yield* Effect.gen(function*() {
        const store = yield* SessionStore
        const index = yield* SessionIndex
        yield* store.insert(k, { data: new Uint8Array([9]), expiresAt: (yield* now) + 60_000, principal: Option.some(principal) })
        expect(yield* index.keys(principal)).toEqual([k])
      }).pipe(
        Effect.provide(configured),
        Effect.withConfigProvider(ConfigProvider.fromMap(
          new Map([
            ["SESSION_TABLE", table],
            ["SESSION_INDEX", "configured-index"],
            ["SESSION_CREATE_TABLE", "true"],
            ["DYNAMODB_ENDPOINT", options.endpoint],
            ["AWS_REGION", options.region],
            ["AWS_ACCESS_KEY_ID", "effect-session-test"],
            ["AWS_SECRET_ACCESS_KEY", "effect-session-test"]
          ])
        )),
        Logger.withMinimumLogLevel(LogLevel.Error)
      )
      // written to the configured table, which has the configured index
      const item = Option.getOrThrow(yield* rawItem(table, k))
      expect(item.data?.B).toEqual(new Uint8Array([9]))
      const { Table } = yield* Effect.promise(() => raw.send(new DescribeTableCommand({ TableName: table })))
      expect(Table?.GlobalSecondaryIndexes?.map((gsi) => gsi.IndexName)).toEqual(["configured-index"])
    }))

  it.effect("backend failures are SessionStoreErrors naming the operation", () =>
    Effect.gen(function*() {
      const table = freshTable()
      yield* setWallClock
      const errors = yield* Effect.gen(function*() {
        const store = yield* SessionStore
        const index = yield* SessionIndex
        yield* Effect.promise(() => raw.send(new DeleteTableCommand({ TableName: table })))
        const k = key()
        const write = { data: new Uint8Array([1]), expiresAt: (yield* now) + 60_000, principal: Option.none() }
        return yield* Effect.all([
          Effect.flip(store.load(k)),
          Effect.flip(store.insert(k, write)),
          Effect.flip(store.update(k, write, 1)),
          Effect.flip(store.touch(k, write.expiresAt)),
          Effect.flip(store.remove(k)),
          Effect.flip(index.keys("x")),
          Effect.flip(index.removeAll("x"))
        ])
      }).pipe(
        Effect.provide(DynamoDbStore.layer({ ...options, tableName: table, createTable: true })),
        Logger.withMinimumLogLevel(LogLevel.Error)
      )
      expect(errors.map((e) => e._tag)).toEqual(Array(7).fill("SessionStoreError"))
      expect(errors.map((e) => (e as SessionStoreError).operation)).toEqual([
        "load",
        "insert",
        "update",
        "touch",
        "remove",
        "keys",
        "removeAll"
      ])
      expect((errors[0] as SessionStoreError).message).toContain("dynamodb store: load failed")
      expect((errors[0] as SessionStoreError).cause).toHaveProperty("name", "ResourceNotFoundException")
    }))

  it.effect("an unreachable endpoint fails the layer with a SessionStoreError", () =>
    Effect.gen(function*() {
      const exit = yield* Effect.scoped(
        Layer.build(
          DynamoDbStore.layer({
            ...options,
            endpoint: "http://127.0.0.1:9",
            tableName,
            clientConfig: { maxAttempts: 1 }
          })
        )
      ).pipe(Effect.exit)
      const failure = Option.getOrThrow(Exit.isFailure(exit) ? Cause.failureOption(exit.cause) : Option.none())
      expect(failure).toBeInstanceOf(SessionStoreError)
      expect(failure.operation).toBe("setup")
    }))

  it.live("an endpoint that accepts but never answers fails within the default request timeout, not never", () =>
    Effect.gen(function*() {
      // a TCP server that takes connections and says nothing, like a wedged load balancer
      const { port } = yield* silentServer
      const [elapsed, exit] = yield* Effect.scoped(
        Layer.build(DynamoDbStore.layer({
          ...options,
          endpoint: `http://127.0.0.1:${port}`,
          tableName,
          clientConfig: { maxAttempts: 1 }
        }))
      ).pipe(Effect.exit, Effect.timed)
      const failure = Option.getOrThrow(Exit.isFailure(exit) ? Cause.failureOption(exit.cause) : Option.none())
      expect(failure).toBeInstanceOf(SessionStoreError)
      // the layer's client gives up at its request timeout (documented
      // default 5 s): never before it, and with as much again of headroom
      const requestTimeout = 5_000
      expect(Duration.toMillis(elapsed)).toBeGreaterThanOrEqual(requestTimeout - 100)
      expect(Duration.toMillis(elapsed)).toBeLessThan(2 * requestTimeout)
    }).pipe(Effect.scoped), 30_000)
})
