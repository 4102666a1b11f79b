/**
 * A store on Amazon DynamoDB, or a DynamoDB-compatible server (DynamoDB
 * Local, dynalite), through `@aws-sdk/client-dynamodb`.
 *
 * One item per session, keyed by the storage key. `update` is a
 * compare-and-set by `ConditionExpression` on the `version` attribute;
 * expiry is checked by the store against the application's `Clock` on every
 * read and conditional write, and the table's native TTL (attribute `ttl`,
 * epoch seconds) only garbage-collects expired items — DynamoDB may delete
 * them days late. A global secondary index on `principal` provides
 * `SessionIndex`; in DynamoDB it is eventually consistent (see
 * `docs/stores/dynamodb.md`).
 *
 * ```ts
 * import * as DynamoDbStore from "effect-session/DynamoDbStore"
 *
 * const StoreLive = DynamoDbStore.layer({ region: "eu-west-1", tableName: "app_sessions" })
 * ```
 *
 * @since 1.0.0
 */
import type {
  AttributeValue,
  DynamoDBClientConfig,
  QueryCommandOutput,
  TableDescription,
  WriteRequest
} from "@aws-sdk/client-dynamodb"
import {
  BatchWriteItemCommand,
  CreateTableCommand,
  DeleteItemCommand,
  DescribeTableCommand,
  DescribeTimeToLiveCommand,
  DynamoDBClient,
  GetItemCommand,
  PutItemCommand,
  QueryCommand,
  UpdateItemCommand,
  UpdateTimeToLiveCommand,
  waitUntilTableExists
} from "@aws-sdk/client-dynamodb"
import type { ConfigError, Scope } from "effect"
import { Config, Data, Effect, Layer, Option, Predicate, Redacted, Schedule } from "effect"
import { storeAndIndex } from "./internal/layer.js"
import type { StoreOperation } from "./SessionError.js"
import { SessionConflict, SessionStoreError } from "./SessionError.js"
import type { StorageKey } from "./SessionId.js"
import { logPrefix, unsafeStorageKey } from "./SessionId.js"
import * as SessionStore from "./SessionStore.js"

/**
 * Static credentials for a client the layer creates. Without them the SDK's
 * default provider chain is used (environment, shared config, instance or
 * task role).
 *
 * @since 1.0.0
 * @category models
 */
export interface Credentials {
  readonly accessKeyId: string
  readonly secretAccessKey: Redacted.Redacted<string>
  readonly sessionToken?: Redacted.Redacted<string> | undefined
}

/**
 * The options that can also come from `Config` (see `layerConfig`).
 *
 * @since 1.0.0
 * @category models
 */
export interface ConfigOptions {
  /** The table. Default `effect_sessions`. */
  readonly tableName?: string | undefined
  /** The global secondary index on `principal`. Default `principal-index`. */
  readonly indexName?: string | undefined
  /**
   * Create the table (with its index) when it is missing, wait until it is
   * ACTIVE and enable TTL on the `ttl` attribute. Default false: the table
   * must exist, and building the layer fails if it does not.
   */
  readonly createTable?: boolean | undefined
  /** Endpoint of a client the layer creates, e.g. `http://127.0.0.1:8000` for a local server. */
  readonly endpoint?: string | undefined
  /** Region of a client the layer creates. Default: the SDK's (`AWS_REGION`, shared config). */
  readonly region?: string | undefined
  /** Credentials of a client the layer creates. Default: the SDK's provider chain. */
  readonly credentials?: Credentials | undefined
}

/**
 * @since 1.0.0
 * @category models
 */
export interface Options extends ConfigOptions {
  /**
   * A client to use. The layer never destroys a client passed in; when it is
   * given, `endpoint`, `region`, `credentials` and `clientConfig` are ignored.
   * Without it the layer creates a client and destroys it with its scope.
   */
  readonly client?: DynamoDBClient | undefined
  /**
   * Further configuration of a client the layer creates (retries, request
   * handler timeouts, …). `endpoint`, `region` and `credentials` win over it.
   */
  readonly clientConfig?: DynamoDBClientConfig | undefined
}

const name = "dynamodb"

/**
 * The default table name.
 *
 * @since 1.0.0
 * @category constants
 */
export const defaultTableName = "effect_sessions"

/**
 * The default name of the global secondary index on `principal`.
 *
 * @since 1.0.0
 * @category constants
 */
export const defaultIndexName = "principal-index"

// A conditional write's condition did not hold; `item` is the stored item
// when the server returned it (ReturnValuesOnConditionCheckFailure).
class ConditionFailed extends Data.TaggedError("ConditionFailed")<{
  readonly item: Record<string, AttributeValue> | undefined
}> {}

// Some of a BatchWriteItem was throttled and must be sent again.
class Unprocessed extends Data.TaggedError("Unprocessed")<{
  readonly requests: ReadonlyArray<WriteRequest>
}> {}

// The backend answered with an error the caller expects and handles.
class Expected extends Data.TaggedError("Expected")<{}> {}

// The server does not implement TTL (dynalite) or refused to enable it.
class TimeToLiveUnavailable extends Data.TaggedError("TimeToLiveUnavailable")<{
  readonly cause: unknown
}> {}

const isAwsError = (cause: unknown, errorName: string): boolean =>
  Predicate.hasProperty(cause, "name") && cause.name === errorName

const describeAwsError = (cause: unknown): string => {
  const errorName = Predicate.hasProperty(cause, "name") ? String(cause.name) : "error"
  const message = Predicate.hasProperty(cause, "message") ? String(cause.message) : ""
  // dynalite answers unknown operations without a message; the SDK then says "UnknownError"
  return message === "" || message === "UnknownError" ? errorName : `${errorName}: ${message}`
}

const storeError = (operation: StoreOperation, cause: unknown) => new SessionStoreError({ store: name, operation, cause })

const send = <A>(operation: StoreOperation, request: (signal: AbortSignal) => Promise<A>) =>
  Effect.tryPromise({ try: request, catch: (cause) => storeError(operation, cause) })

// None when the backend fails with the AWS error `errorName`.
const sendUnless = <A>(
  operation: StoreOperation,
  errorName: string,
  request: (signal: AbortSignal) => Promise<A>
): Effect.Effect<Option.Option<A>, SessionStoreError> =>
  Effect.tryPromise({
    try: request,
    catch: (cause): Expected | SessionStoreError =>
      isAwsError(cause, errorName) ? new Expected() : storeError(operation, cause)
  }).pipe(
    Effect.map(Option.some),
    Effect.catchTag("Expected", () => Effect.succeedNone)
  )

const sendConditional = <A>(operation: StoreOperation, request: (signal: AbortSignal) => Promise<A>) =>
  Effect.tryPromise({
    try: request,
    catch: (cause): ConditionFailed | SessionStoreError =>
      isAwsError(cause, "ConditionalCheckFailedException")
        ? new ConditionFailed({
          item: Predicate.hasProperty(cause, "Item") ? cause.Item as Record<string, AttributeValue> | undefined : undefined
        })
        : storeError(operation, cause)
  })

/**
 * Epoch seconds for the `ttl` attribute: the first whole second at or after
 * the expiry, so the garbage collector never runs ahead of `load`. Epoch
 * arithmetic has no time zone.
 */
const ttlSeconds = (expiresAt: number): number => Math.ceil(expiresAt / 1000)

const now = Effect.clockWith((clock) => clock.currentTimeMillis)

const readRecord = (
  operation: StoreOperation,
  item: Record<string, AttributeValue>
): Effect.Effect<SessionStore.SessionRecord, SessionStoreError> => {
  const data = item.data?.B
  const version = Number(item.version?.N)
  const expiresAt = Number(item.expiresAt?.N)
  if (data === undefined || !Number.isSafeInteger(version) || !Number.isFinite(expiresAt)) {
    const key = item.pk?.S
    return Effect.fail(storeError(
      operation,
      new Error(
        `the item ${key === undefined ? "" : `${logPrefix(unsafeStorageKey(key))}… `}is malformed: ` +
          "expected attributes data (B), version (N) and expiresAt (N)"
      )
    ))
  }
  return Effect.succeed({ data, version, expiresAt, principal: Option.fromNullable(item.principal?.S) })
}

const defaultConnectionTimeoutMillis = 2_000
const defaultRequestTimeoutMillis = 5_000

const makeClient = (options: Options): Effect.Effect<DynamoDBClient, never, Scope.Scope> => {
  if (options.client !== undefined) return Effect.succeed(options.client)
  const config: DynamoDBClientConfig = {
    // the SDK's default is to wait forever: a request must fail instead of
    // holding the HTTP request that needs the session
    requestHandler: {
      connectionTimeout: defaultConnectionTimeoutMillis,
      requestTimeout: defaultRequestTimeoutMillis,
      // without it the handler only logs a warning and keeps waiting
      throwOnRequestTimeout: true
    },
    ...options.clientConfig
  }
  if (options.endpoint !== undefined) config.endpoint = options.endpoint
  if (options.region !== undefined) config.region = options.region
  if (options.credentials !== undefined) {
    const { accessKeyId, secretAccessKey, sessionToken } = options.credentials
    config.credentials = {
      accessKeyId,
      secretAccessKey: Redacted.value(secretAccessKey),
      ...(sessionToken === undefined ? {} : { sessionToken: Redacted.value(sessionToken) })
    }
  }
  return Effect.acquireRelease(
    Effect.sync(() => new DynamoDBClient(config)),
    (client) => Effect.sync(() => client.destroy())
  )
}

const setupError = (message: string) => storeError("setup", new Error(message))

/**
 * Makes sure the table can serve the store: it exists (or is created), its
 * key is `pk`, it has the principal index, and — when this layer manages the
 * table — TTL is enabled on `ttl`.
 */
const prepareTable = (
  client: DynamoDBClient,
  tableName: string,
  indexName: string,
  createTable: boolean
): Effect.Effect<void, SessionStoreError> =>
  Effect.gen(function*() {
    const describe = Effect.map(
      sendUnless("setup", "ResourceNotFoundException", (signal) =>
        client.send(new DescribeTableCommand({ TableName: tableName }), { abortSignal: signal })),
      (output) => Option.flatMap(output, ({ Table }) => Option.fromNullable(Table))
    )
    const waitUntilActive = send("setup", (signal) =>
      waitUntilTableExists(
        { client, maxWaitTime: 300, minDelay: 1, maxDelay: 10, abortSignal: signal },
        { TableName: tableName }
      ))

    let table = yield* describe
    if (Option.isNone(table)) {
      if (!createTable) {
        return yield* setupError(
          `table "${tableName}" does not exist; create it as described in docs/stores/dynamodb.md ` +
            "or build the layer with createTable: true"
        )
      }
      yield* Effect.logInfo(`${name} store: creating table "${tableName}"`)
      // ResourceInUseException: another instance is creating it: wait for theirs
      yield* sendUnless("setup", "ResourceInUseException", (signal) =>
        client.send(new CreateTableCommand(tableDefinition(tableName, indexName)), { abortSignal: signal }))
      yield* waitUntilActive
      table = yield* describe
    } else if (table.value.TableStatus === "CREATING") {
      yield* waitUntilActive
      table = yield* describe
    }
    if (Option.isNone(table)) return yield* setupError(`table "${tableName}" vanished while it was being created`)
    yield* checkLayout(table.value, tableName, indexName)
    if (createTable) yield* enableTimeToLive(client, tableName)
  })

const tableDefinition = (tableName: string, indexName: string) => ({
  TableName: tableName,
  BillingMode: "PAY_PER_REQUEST" as const,
  AttributeDefinitions: [
    { AttributeName: "pk", AttributeType: "S" as const },
    { AttributeName: "principal", AttributeType: "S" as const }
  ],
  KeySchema: [{ AttributeName: "pk", KeyType: "HASH" as const }],
  GlobalSecondaryIndexes: [{
    IndexName: indexName,
    KeySchema: [{ AttributeName: "principal", KeyType: "HASH" as const }],
    // the index answers "which live sessions does this principal have"
    // without reading the session data
    Projection: { ProjectionType: "INCLUDE" as const, NonKeyAttributes: ["expiresAt"] }
  }]
})

const checkLayout = (table: TableDescription, tableName: string, indexName: string) => {
  const key = table.KeySchema ?? []
  if (key.length !== 1 || key[0]?.AttributeName !== "pk" || key[0]?.KeyType !== "HASH") {
    return Effect.fail(setupError(`table "${tableName}" must have the partition key "pk" (S) and no sort key`))
  }
  const index = table.GlobalSecondaryIndexes?.find((gsi) => gsi.IndexName === indexName)
  const indexKey = index?.KeySchema ?? []
  if (index === undefined || indexKey.length !== 1 || indexKey[0]?.AttributeName !== "principal") {
    return Effect.fail(setupError(
      `table "${tableName}" has no global secondary index "${indexName}" with partition key "principal" (S); ` +
        "see docs/stores/dynamodb.md"
    ))
  }
  const projection = index.Projection
  const projectsExpiry = projection?.ProjectionType === "ALL" ||
    (projection?.ProjectionType === "INCLUDE" && (projection.NonKeyAttributes ?? []).includes("expiresAt"))
  if (!projectsExpiry) {
    return Effect.fail(setupError(
      `index "${indexName}" of table "${tableName}" must project "expiresAt" (ProjectionType INCLUDE or ALL)`
    ))
  }
  return Effect.void
}

const enableTimeToLive = (client: DynamoDBClient, tableName: string): Effect.Effect<void, SessionStoreError> =>
  Effect.tryPromise({
    try: async (signal) => {
      const described = await client.send(new DescribeTimeToLiveCommand({ TableName: tableName }), {
        abortSignal: signal
      })
      const ttl = described.TimeToLiveDescription
      if (ttl?.TimeToLiveStatus === "ENABLED" || ttl?.TimeToLiveStatus === "ENABLING") return ttl.AttributeName
      await client.send(
        new UpdateTimeToLiveCommand({
          TableName: tableName,
          TimeToLiveSpecification: { AttributeName: "ttl", Enabled: true }
        }),
        { abortSignal: signal }
      )
      return "ttl"
    },
    catch: (cause) =>
      isAwsError(cause, "UnknownOperationException") || isAwsError(cause, "ValidationException")
        ? new TimeToLiveUnavailable({ cause })
        : storeError("setup", cause)
  }).pipe(
    Effect.flatMap((attribute) =>
      attribute === "ttl" ? Effect.void : Effect.logWarning(
        `${name} store: TTL of table "${tableName}" is enabled on attribute "${attribute}", not "ttl": ` +
          "expired sessions are not garbage collected (they are never returned)"
      )
    ),
    Effect.catchTag("TimeToLiveUnavailable", ({ cause }) =>
      Effect.logWarning(
        `${name} store: TTL garbage collection is NOT enabled on table "${tableName}": the server refused ` +
          `UpdateTimeToLive (${describeAwsError(cause)}). ` +
          "Expired sessions are never returned, but they stay in the table until deleted. " +
          "This is expected with dynalite; on DynamoDB enable TTL on the attribute \"ttl\"."
      ))
  )

const backoff = Schedule.exponential("50 millis").pipe(
  Schedule.jittered,
  Schedule.intersect(Schedule.recurs(8))
)

/**
 * @since 1.0.0
 * @category constructors
 */
export const make = Effect.fnUntraced(function*(options?: Options): Effect.fn.Return<
  { readonly store: SessionStore.SessionStore["Type"]; readonly index: SessionStore.SessionIndex["Type"] },
  SessionStoreError,
  Scope.Scope
> {
  const tableName = options?.tableName ?? defaultTableName
  const indexName = options?.indexName ?? defaultIndexName
  const client = yield* makeClient(options ?? {})
  yield* prepareTable(client, tableName, indexName, options?.createTable ?? false)

  const keyOf = (key: StorageKey) => ({ pk: { S: key } })
  const itemOf = (key: StorageKey, write: SessionStore.SessionWrite, version: number) => {
    const item: Record<string, AttributeValue> = {
      pk: { S: key },
      data: { B: write.data },
      version: { N: String(version) },
      expiresAt: { N: String(write.expiresAt) },
      ttl: { N: String(ttlSeconds(write.expiresAt)) }
    }
    if (Option.isSome(write.principal)) item.principal = { S: write.principal.value }
    return item
  }
  const getItem = (operation: StoreOperation, key: StorageKey) =>
    send(operation, (signal) =>
      client.send(
        new GetItemCommand({ TableName: tableName, Key: keyOf(key), ConsistentRead: true }),
        { abortSignal: signal }
      ))
  const loadLive = (operation: StoreOperation, key: StorageKey, t: number) =>
    Effect.flatMap(getItem(operation, key), ({ Item }) =>
      Item === undefined
        ? Effect.succeedNone
        : Effect.map(readRecord(operation, Item), (record) =>
          record.expiresAt > t ? Option.some(record) : Option.none()))

  const store = SessionStore.make(name, {
    load: (key) => Effect.flatMap(now, (t) => loadLive("load", key, t)),

    insert: (key, write) =>
      Effect.flatMap(now, (t) =>
        sendConditional("insert", (signal) =>
          client.send(
            new PutItemCommand({
              TableName: tableName,
              Item: itemOf(key, write, 1),
              ConditionExpression: "attribute_not_exists(#pk) OR #expiresAt <= :now",
              ExpressionAttributeNames: { "#pk": "pk", "#expiresAt": "expiresAt" },
              ExpressionAttributeValues: { ":now": { N: String(t) } }
            }),
            { abortSignal: signal }
          ))).pipe(
          Effect.asVoid,
          Effect.catchTag("ConditionFailed", () => Effect.fail(new SessionConflict({ reason: "Exists" })))
        ),

    update: (key, write, expectedVersion) =>
      Effect.flatMap(now, (t) =>
        sendConditional("update", (signal) =>
          client.send(
            new PutItemCommand({
              TableName: tableName,
              Item: itemOf(key, write, expectedVersion + 1),
              ConditionExpression: "#version = :expected AND #expiresAt > :now",
              ExpressionAttributeNames: { "#version": "version", "#expiresAt": "expiresAt" },
              ExpressionAttributeValues: { ":expected": { N: String(expectedVersion) }, ":now": { N: String(t) } },
              ReturnValuesOnConditionCheckFailure: "ALL_OLD"
            }),
            { abortSignal: signal }
          )).pipe(
            Effect.as(expectedVersion + 1),
            Effect.catchTag("ConditionFailed", ({ item }) =>
              // DynamoDB returns the stored item with the failure; servers
              // that do not (dynalite) leave it out, and a consistent read
              // tells the two conflicts apart instead
              Effect.flatMap(
                item === undefined
                  ? loadLive("update", key, t)
                  : Effect.map(readRecord("update", item), (record) =>
                    record.expiresAt > t ? Option.some(record) : Option.none()),
                (live) =>
                  Effect.fail(new SessionConflict({ reason: Option.isSome(live) ? "VersionMismatch" : "Missing" }))
              ))
          )),

    touch: (key, expiresAt) =>
      Effect.flatMap(now, (t) =>
        sendConditional("touch", (signal) =>
          client.send(
            new UpdateItemCommand({
              TableName: tableName,
              Key: keyOf(key),
              UpdateExpression: "SET #expiresAt = :expiresAt, #ttl = :ttl",
              ConditionExpression: "attribute_exists(#pk) AND #expiresAt > :now",
              ExpressionAttributeNames: { "#pk": "pk", "#expiresAt": "expiresAt", "#ttl": "ttl" },
              ExpressionAttributeValues: {
                ":expiresAt": { N: String(expiresAt) },
                ":ttl": { N: String(ttlSeconds(expiresAt)) },
                ":now": { N: String(t) }
              }
            }),
            { abortSignal: signal }
          ))).pipe(
          Effect.as(true),
          Effect.catchTag("ConditionFailed", () => Effect.succeed(false))
        ),

    remove: (key) =>
      send("remove", (signal) =>
        client.send(new DeleteItemCommand({ TableName: tableName, Key: keyOf(key) }), { abortSignal: signal })).pipe(
          Effect.asVoid
        )
  })

  // Every session of a principal, expired ones included, page by page.
  const sessionsOf = (operation: StoreOperation, principal: string) =>
    Effect.gen(function*() {
      const sessions: Array<{ readonly key: StorageKey; readonly expiresAt: number }> = []
      let start: Record<string, AttributeValue> | undefined = undefined
      do {
        const exclusiveStartKey: Record<string, AttributeValue> | undefined = start
        const page: QueryCommandOutput = yield* send(operation, (signal) =>
          client.send(
            new QueryCommand({
              TableName: tableName,
              IndexName: indexName,
              KeyConditionExpression: "#principal = :principal",
              ProjectionExpression: "#pk, #expiresAt",
              ExpressionAttributeNames: { "#principal": "principal", "#pk": "pk", "#expiresAt": "expiresAt" },
              ExpressionAttributeValues: { ":principal": { S: principal } },
              ExclusiveStartKey: exclusiveStartKey
            }),
            { abortSignal: signal }
          ))
        for (const item of page.Items ?? []) {
          const key = item.pk?.S
          const expiresAt = Number(item.expiresAt?.N)
          if (key === undefined || !Number.isFinite(expiresAt)) {
            return yield* storeError(operation, new Error(`index "${indexName}" returned an item without pk or expiresAt`))
          }
          sessions.push({ key: unsafeStorageKey(key), expiresAt })
        }
        start = page.LastEvaluatedKey
      } while (start !== undefined)
      return sessions
    })

  const deleteBatch = (keys: ReadonlyArray<StorageKey>) =>
    Effect.suspend(() => {
      let pending: ReadonlyArray<WriteRequest> = keys.map((key) => ({ DeleteRequest: { Key: keyOf(key) } }))
      return Effect.suspend(() =>
        send("removeAll", (signal) =>
          client.send(
            new BatchWriteItemCommand({ RequestItems: { [tableName]: [...pending] } }),
            { abortSignal: signal }
          ))
      ).pipe(
        Effect.flatMap((output) => {
          pending = output.UnprocessedItems?.[tableName] ?? []
          return pending.length === 0 ? Effect.void : Effect.fail(new Unprocessed({ requests: pending }))
        }),
        // unprocessed items are throttling: back off before sending them again
        Effect.retry({ schedule: backoff, while: (error) => error._tag === "Unprocessed" }),
        Effect.catchTag("Unprocessed", ({ requests }) =>
          Effect.fail(storeError(
            "removeAll",
            new Error(`${requests.length} deletes were still unprocessed (throttled) after 9 attempts`)
          )))
      )
    })

  const index = SessionStore.makeIndex(name, {
    keys: (principal) =>
      Effect.flatMap(now, (t) =>
        Effect.map(
          sessionsOf("keys", principal),
          (sessions) => sessions.filter((session) => session.expiresAt > t).map((session) => session.key)
        )),
    removeAll: (principal) =>
      Effect.gen(function*() {
        const t = yield* now
        const sessions = yield* sessionsOf("removeAll", principal)
        const keys = sessions.map((session) => session.key)
        for (let i = 0; i < keys.length; i += 25) {
          yield* deleteBatch(keys.slice(i, i + 25))
        }
        return sessions.filter((session) => session.expiresAt > t).length
      })
  })

  return { store, index }
})

/**
 * The store and its index, alive for the layer's scope. Fails with a
 * `SessionStoreError` (operation `setup`) when the table is missing and
 * `createTable` is not set, or when its layout does not fit.
 *
 * @since 1.0.0
 * @category layers
 */
export const layer = (
  options?: Options
): Layer.Layer<SessionStore.SessionStore | SessionStore.SessionIndex, SessionStoreError> => storeAndIndex(make(options))

/**
 * The layer from `Config`, e.g.
 *
 * ```ts
 * DynamoDbStore.layerConfig({
 *   tableName: Config.string("SESSION_TABLE"),
 *   endpoint: Config.option(Config.string("DYNAMODB_ENDPOINT")).pipe(Config.map(Option.getOrUndefined))
 * })
 * ```
 *
 * @since 1.0.0
 * @category layers
 */
export const layerConfig = (
  options: Config.Config.Wrap<ConfigOptions>
): Layer.Layer<SessionStore.SessionStore | SessionStore.SessionIndex, SessionStoreError | ConfigError.ConfigError> =>
  Layer.unwrapEffect(Effect.map(Config.unwrap(options), layer))
