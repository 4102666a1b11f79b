/**
 * The DynamoDB store's protocol as data and pure functions: the table and
 * index layout, the request of every operation (conditions, attribute names
 * and values, the TTL attribute), the reading of items and index entries, and
 * the batching of deletes. The request objects are the SDK's command inputs
 * (`new PutItemCommand(putRequest)`); the store shell sends them.
 *
 * @internal
 */

import { logPrefix } from "./ids.js"

/**
 * An attribute value as the store writes it: a string, a number (as its
 * decimal text) or bytes.
 *
 * @internal
 */
export type Attribute = { readonly S: string } | { readonly N: string } | { readonly B: Uint8Array }

/**
 * An item as the server returns it: only the members of its attributes the
 * store reads.
 *
 * @internal
 */
export type ReadItem = {
  readonly [name: string]:
    | { readonly S?: string | undefined; readonly N?: string | undefined; readonly B?: Uint8Array | undefined }
    | undefined
}

/**
 * A session record as an item carries it; `principal` is `undefined` for an
 * anonymous session (the shells turn it into their own optional type).
 *
 * @internal
 */
export interface DynamoRecord {
  readonly data: Uint8Array
  readonly version: number
  readonly expiresAt: number
  readonly principal: string | undefined
}

/**
 * What a write stores: the record without its version.
 *
 * @internal
 */
export interface DynamoWrite {
  readonly data: Uint8Array
  readonly expiresAt: number
  readonly principal: string | undefined
}

/**
 * The store's name, as its errors give it (`SessionStoreError.store`).
 *
 * @internal
 */
export const storeName = "dynamodb"

/**
 * The options of an SDK request that interruption aborts.
 *
 * @internal
 */
export interface Abortable {
  readonly abortSignal: AbortSignal
}

/**
 * The table name a store uses unless told otherwise.
 *
 * @internal
 */
export const defaultTableName = "effect_sessions"

/**
 * The name of the global secondary index on `principal` unless told otherwise.
 *
 * @internal
 */
export const defaultIndexName = "principal-index"

/**
 * The options of a DynamoDB store that both lines take alike (those that
 * hold no secret and no client): each line's `ConfigOptions` extends them.
 *
 * @internal
 */
export interface TableOptions {
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
}

/**
 * Static credentials for a client the layer creates, `Secret` being the
 * line's `Redacted<string>`.
 *
 * @internal
 */
export interface DynamoCredentials<Secret> {
  readonly accessKeyId: string
  readonly secretAccessKey: Secret
  readonly sessionToken?: Secret | undefined
}

/**
 * The options of a DynamoDB store that can come from `Config`: the table's
 * and those of a client the layer creates, `Credentials` being the line's
 * `Credentials`. Each line's `ConfigOptions` extends them.
 *
 * @internal
 */
export interface DynamoConfigOptions<Credentials> extends TableOptions {
  /** Credentials of a client the layer creates. Default: the SDK's provider chain. */
  readonly credentials?: Credentials | undefined
}

/**
 * The options of a DynamoDB store that cannot come from `Config`: a client,
 * or the configuration of one the layer creates. `Client` and `ClientConfig`
 * are the SDK's `DynamoDBClient` and `DynamoDBClientConfig` (parameters, so
 * that the core does not import the SDK).
 *
 * @internal
 */
export interface DynamoClientOptions<Client, ClientConfig> {
  /**
   * A client to use. The layer never destroys a client passed in; when it is
   * given, `endpoint`, `region`, `credentials` and `clientConfig` are ignored.
   * Without it the layer creates a client and destroys it with its scope.
   */
  readonly client?: Client | undefined
  /**
   * Further configuration of a client the layer creates (`maxAttempts`,
   * `requestHandler`, …); `endpoint`, `region` and `credentials` win over it.
   * By default a created client gives up on a connection after 2 s and on a
   * request after 5 s.
   */
  readonly clientConfig?: ClientConfig | undefined
}

/**
 * The attribute the table's native TTL reads (epoch seconds).
 *
 * @internal
 */
export const ttlAttribute = "ttl"

/**
 * BatchWriteItem takes at most 25 requests.
 *
 * @internal
 */
export const maxBatchWrite = 25

/**
 * Epoch seconds for the `ttl` attribute: the first whole second at or after
 * the expiry, so the garbage collector never runs ahead of `load`. Epoch
 * arithmetic has no time zone.
 *
 * @internal
 */
export const ttlSeconds = (expiresAt: number): number => Math.ceil(expiresAt / 1000)

/**
 * The CreateTable input of a table that serves the store: partition key `pk`,
 * on-demand billing, and the principal index.
 *
 * @internal
 */
export const tableDefinition = (tableName: string, indexName: string) => ({
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

/**
 * The parts of a DescribeTable answer the layout check reads.
 *
 * @internal
 */
export interface TableLayout {
  readonly KeySchema?:
    | ReadonlyArray<{ readonly AttributeName?: string | undefined; readonly KeyType?: string | undefined }>
    | undefined
  readonly GlobalSecondaryIndexes?:
    | ReadonlyArray<{
      readonly IndexName?: string | undefined
      readonly KeySchema?: ReadonlyArray<{ readonly AttributeName?: string | undefined }> | undefined
      readonly Projection?: {
        readonly ProjectionType?: string | undefined
        readonly NonKeyAttributes?: ReadonlyArray<string> | undefined
      } | undefined
    }>
    | undefined
}

/**
 * Why an existing table cannot serve the store, or `undefined` when it can:
 * its key must be `pk` alone, and the principal index must exist and project
 * `expiresAt` (the index is queried for keys and expiries only).
 *
 * @internal
 */
export const layoutProblem = (table: TableLayout, tableName: string, indexName: string): string | undefined => {
  const key = table.KeySchema ?? []
  if (key.length !== 1 || key[0]?.AttributeName !== "pk" || key[0]?.KeyType !== "HASH") {
    return `table "${tableName}" must have the partition key "pk" (S) and no sort key`
  }
  const index = table.GlobalSecondaryIndexes?.find((gsi) => gsi.IndexName === indexName)
  const indexKey = index?.KeySchema ?? []
  if (index === undefined || indexKey.length !== 1 || indexKey[0]?.AttributeName !== "principal") {
    return `table "${tableName}" has no global secondary index "${indexName}" with partition key "principal" (S); ` +
      "see docs/stores/dynamodb.md"
  }
  const projection = index.Projection
  const projectsExpiry = projection?.ProjectionType === "ALL" ||
    (projection?.ProjectionType === "INCLUDE" && (projection.NonKeyAttributes ?? []).includes("expiresAt"))
  return projectsExpiry
    ? undefined
    : `index "${indexName}" of table "${tableName}" must project "expiresAt" (ProjectionType INCLUDE or ALL)`
}

/**
 * The message of a missing table the layer may not create.
 *
 * @internal
 */
export const missingTable = (tableName: string): string =>
  `table "${tableName}" does not exist; create it as described in docs/stores/dynamodb.md ` +
  "or build the layer with createTable: true"

/**
 * The attribute TTL is already enabled (or being enabled) on, from a
 * DescribeTimeToLive answer, or `undefined` when it is off: then the layer
 * enables it on `ttlAttribute`.
 *
 * @internal
 */
export const enabledTimeToLive = (
  description:
    | { readonly TimeToLiveStatus?: string | undefined; readonly AttributeName?: string | undefined }
    | undefined
): string | undefined =>
  description?.TimeToLiveStatus === "ENABLED" || description?.TimeToLiveStatus === "ENABLING"
    ? description.AttributeName ?? ""
    : undefined

/**
 * The warning when TTL is enabled on another attribute than `ttlAttribute`.
 *
 * @internal
 */
export const timeToLiveElsewhere = (tableName: string, attribute: string | undefined): string =>
  `TTL of table "${tableName}" is enabled on attribute "${attribute}", not "${ttlAttribute}": ` +
  "expired sessions are not garbage collected (they are never returned)"

/**
 * The warning when the server refused to enable TTL (dynalite does not
 * implement it): sessions stay correct, only the garbage is not collected.
 *
 * @internal
 */
export const timeToLiveRefused = (tableName: string, cause: unknown): string =>
  `TTL garbage collection is NOT enabled on table "${tableName}": the server refused ` +
  `UpdateTimeToLive (${describeAwsError(cause)}). ` +
  "Expired sessions are never returned, but they stay in the table until deleted. " +
  `This is expected with dynalite; on DynamoDB enable TTL on the attribute "${ttlAttribute}".`

/**
 * The UpdateTimeToLive input that enables TTL on `ttlAttribute`.
 *
 * @internal
 */
export const enableTimeToLiveRequest = (tableName: string) => ({
  TableName: tableName,
  TimeToLiveSpecification: { AttributeName: ttlAttribute, Enabled: true }
})

/**
 * Whether a rejection is the AWS error `errorName` (read from its `name`, so
 * that an error of another copy of the SDK is understood too).
 *
 * @internal
 */
export const isAwsError = (cause: unknown, errorName: string): boolean =>
  typeof cause === "object" && cause !== null && "name" in cause && cause.name === errorName

/**
 * An AWS error in a log line: its name and message.
 *
 * @internal
 */
export const describeAwsError = (cause: unknown): string => {
  const object = typeof cause === "object" && cause !== null ? cause as { name?: unknown; message?: unknown } : {}
  const errorName = object.name === undefined ? "error" : String(object.name)
  const message = object.message === undefined ? "" : String(object.message)
  // dynalite answers unknown operations without a message; the SDK then says "UnknownError"
  return message === "" || message === "UnknownError" ? errorName : `${errorName}: ${message}`
}

/**
 * The stored item a failed conditional write carries when the request asked
 * for it (ReturnValuesOnConditionCheckFailure); servers that do not return it
 * (dynalite) leave it `undefined`.
 *
 * @internal
 */
export const itemOfConditionFailure = (cause: unknown): ReadItem | undefined =>
  typeof cause === "object" && cause !== null && "Item" in cause ? cause.Item as ReadItem | undefined : undefined

/**
 * The configuration of a client the layer creates, over the application's
 * own `clientConfig`: the client's own timeouts (the SDK's default is to wait
 * forever, and a request must fail instead of holding the HTTP request that
 * needs the session), then `endpoint`, `region` and `credentials`, which win.
 *
 * @internal
 */
export const clientConfig = <C extends object>(
  clientConfig: C | undefined,
  options: {
    readonly endpoint: string | undefined
    readonly region: string | undefined
    readonly credentials:
      | { readonly accessKeyId: string; readonly secretAccessKey: string; readonly sessionToken: string | undefined }
      | undefined
  }
) => {
  const config: Record<string, unknown> = {
    requestHandler: {
      connectionTimeout: defaultConnectionTimeoutMillis,
      requestTimeout: defaultRequestTimeoutMillis,
      // without it the handler only logs a warning and keeps waiting
      throwOnRequestTimeout: true
    },
    ...clientConfig
  }
  if (options.endpoint !== undefined) config.endpoint = options.endpoint
  if (options.region !== undefined) config.region = options.region
  const { credentials } = options
  if (credentials !== undefined) {
    config.credentials = {
      accessKeyId: credentials.accessKeyId,
      secretAccessKey: credentials.secretAccessKey,
      ...(credentials.sessionToken === undefined ? {} : { sessionToken: credentials.sessionToken })
    }
  }
  return config as C
}

/**
 * `clientConfig` from a store's options, `reveal` reading the line's
 * `Redacted` secrets of `credentials`.
 *
 * @internal
 */
export const createdClientConfig = <Secret, C extends object>(
  options: DynamoConfigOptions<DynamoCredentials<Secret>> & { readonly clientConfig?: C | undefined },
  reveal: (secret: Secret) => string
): C => {
  const { credentials } = options
  return clientConfig(options.clientConfig, {
    endpoint: options.endpoint,
    region: options.region,
    credentials: credentials === undefined ? undefined : {
      accessKeyId: credentials.accessKeyId,
      secretAccessKey: reveal(credentials.secretAccessKey),
      sessionToken: credentials.sessionToken === undefined ? undefined : reveal(credentials.sessionToken)
    }
  })
}

/**
 * How long a client the layer creates waits for a connection.
 *
 * @internal
 */
export const defaultConnectionTimeoutMillis = 2_000

/**
 * How long a client the layer creates waits for an answer.
 *
 * @internal
 */
export const defaultRequestTimeoutMillis = 5_000

/**
 * The primary key of a session's item.
 *
 * @internal
 */
export const keyOf = (key: string): Record<string, Attribute> => ({ pk: { S: key } })

/**
 * The item of a session: `principal` only when there is one (the index is
 * sparse), `ttl` for the garbage collector.
 *
 * @internal
 */
export const itemOf = (key: string, write: DynamoWrite, version: number): Record<string, Attribute> => {
  const item: Record<string, Attribute> = {
    pk: { S: key },
    data: { B: write.data },
    version: { N: String(version) },
    expiresAt: { N: String(write.expiresAt) },
    [ttlAttribute]: { N: String(ttlSeconds(write.expiresAt)) }
  }
  if (write.principal !== undefined) item.principal = { S: write.principal }
  return item
}

/**
 * GetItem of a session, strongly consistent: a read right after a write must
 * see it.
 *
 * @internal
 */
export const getRequest = (tableName: string, key: string) => ({
  TableName: tableName,
  Key: keyOf(key),
  ConsistentRead: true
})

/**
 * PutItem of a new session: it may replace only an item that is missing or
 * expired at `now`; a live one fails the condition ("Exists").
 *
 * @internal
 */
export const insertRequest = (tableName: string, key: string, write: DynamoWrite, now: number) => ({
  TableName: tableName,
  Item: itemOf(key, write, 1),
  ConditionExpression: "attribute_not_exists(#pk) OR #expiresAt <= :now",
  ExpressionAttributeNames: { "#pk": "pk", "#expiresAt": "expiresAt" },
  ExpressionAttributeValues: { ":now": { N: String(now) } }
})

/**
 * PutItem of the next version: the compare-and-set on `version`, on a live
 * item only. On failure the server returns the stored item, which tells a
 * version mismatch from a missing session without another read.
 *
 * @internal
 */
export const updateRequest = (
  tableName: string,
  key: string,
  write: DynamoWrite,
  expectedVersion: number,
  now: number
) => ({
  TableName: tableName,
  Item: itemOf(key, write, expectedVersion + 1),
  ConditionExpression: "#version = :expected AND #expiresAt > :now",
  ExpressionAttributeNames: { "#version": "version", "#expiresAt": "expiresAt" },
  ExpressionAttributeValues: { ":expected": { N: String(expectedVersion) }, ":now": { N: String(now) } },
  ReturnValuesOnConditionCheckFailure: "ALL_OLD" as const
})

/**
 * UpdateItem moving a live session's expiry (and its TTL); the version stays.
 *
 * @internal
 */
export const touchRequest = (tableName: string, key: string, expiresAt: number, now: number) => ({
  TableName: tableName,
  Key: keyOf(key),
  UpdateExpression: "SET #expiresAt = :expiresAt, #ttl = :ttl",
  ConditionExpression: "attribute_exists(#pk) AND #expiresAt > :now",
  ExpressionAttributeNames: { "#pk": "pk", "#expiresAt": "expiresAt", "#ttl": ttlAttribute },
  ExpressionAttributeValues: {
    ":expiresAt": { N: String(expiresAt) },
    ":ttl": { N: String(ttlSeconds(expiresAt)) },
    ":now": { N: String(now) }
  }
})

/**
 * DeleteItem of a session, unconditional.
 *
 * @internal
 */
export const deleteRequest = (tableName: string, key: string) => ({ TableName: tableName, Key: keyOf(key) })

/**
 * One page of the Query on the principal index: keys and expiries only,
 * from `start` (the previous page's LastEvaluatedKey).
 *
 * @internal
 */
export const principalQuery = <Key>(
  tableName: string,
  indexName: string,
  principal: string,
  start: Key | undefined
) => ({
  TableName: tableName,
  IndexName: indexName,
  KeyConditionExpression: "#principal = :principal",
  ProjectionExpression: "#pk, #expiresAt",
  ExpressionAttributeNames: { "#principal": "principal", "#pk": "pk", "#expiresAt": "expiresAt" },
  ExpressionAttributeValues: { ":principal": { S: principal } },
  ExclusiveStartKey: start
})

/**
 * A session as the principal index lists it.
 *
 * @internal
 */
export interface IndexEntry {
  readonly key: string
  readonly expiresAt: number
}

/**
 * The entries of a page of the principal index, or `undefined` when an item
 * lacks `pk` or `expiresAt` (an index that does not project them).
 *
 * @internal
 */
export const indexEntries = (items: ReadonlyArray<ReadItem>): Array<IndexEntry> | undefined => {
  const entries: Array<IndexEntry> = []
  for (const item of items) {
    const key = item.pk?.S
    const expiresAt = Number(item.expiresAt?.N)
    if (key === undefined || !Number.isFinite(expiresAt)) return undefined
    entries.push({ key, expiresAt })
  }
  return entries
}

/**
 * The message of an index entry `indexEntries` refused.
 *
 * @internal
 */
export const malformedIndexEntry = (indexName: string): string =>
  `index "${indexName}" returned an item without pk or expiresAt`

/**
 * The keys of the entries live at `now`.
 *
 * @internal
 */
export const liveKeys = (entries: ReadonlyArray<IndexEntry>, now: number): Array<string> =>
  entries.filter((entry) => entry.expiresAt > now).map((entry) => entry.key)

/**
 * One request of a BatchWriteItem.
 *
 * @internal
 */
export interface DeleteRequest {
  readonly DeleteRequest: { readonly Key: Record<string, Attribute> }
}

/**
 * The BatchWriteItem request lists deleting `keys`, at most `maxBatchWrite`
 * a batch.
 *
 * @internal
 */
export const deleteBatches = (keys: ReadonlyArray<string>): Array<Array<DeleteRequest>> => {
  const batches: Array<Array<DeleteRequest>> = []
  for (let i = 0; i < keys.length; i += maxBatchWrite) {
    batches.push(keys.slice(i, i + maxBatchWrite).map((key) => ({ DeleteRequest: { Key: keyOf(key) } })))
  }
  return batches
}

/**
 * What `removeAll` does with a principal's sessions as the index listed
 * them: deletes every one, expired ones included (the native TTL may not
 * have collected them yet), in `deleteBatches`, and answers how many of them
 * were live at `now`.
 *
 * @internal
 */
export const removal = (
  sessions: ReadonlyArray<IndexEntry>,
  now: number
): { readonly batches: Array<Array<DeleteRequest>>; readonly live: number } => ({
  batches: deleteBatches(sessions.map((session) => session.key)),
  live: liveKeys(sessions, now).length
})

/**
 * The record an item holds, or `undefined` when the item is malformed (not
 * written by this store): `data` must be bytes, `version` a safe integer,
 * `expiresAt` a finite number.
 *
 * @internal
 */
export const recordOfItem = (item: ReadItem): DynamoRecord | undefined => {
  const data = item.data?.B
  const version = Number(item.version?.N)
  const expiresAt = Number(item.expiresAt?.N)
  if (data === undefined || !Number.isSafeInteger(version) || !Number.isFinite(expiresAt)) return undefined
  return { data, version, expiresAt, principal: item.principal?.S }
}

/**
 * The message of a malformed item; `keyPrefix` is the first characters of its
 * key, when it has one (never the whole key: it is as good as the session id).
 *
 * @internal
 */
export const malformedItem = (keyPrefix: string | undefined): string =>
  `the item ${keyPrefix === undefined ? "" : `${keyPrefix}… `}is malformed: ` +
  "expected attributes data (B), version (N) and expiresAt (N)"

/**
 * What reading an item at `now` found: no item or an expired record
 * (`Absent`), a live record, or an item this store did not write (with the
 * message of the failure; it names a prefix of the key, never the key).
 *
 * @internal
 */
export type ItemReading =
  | { readonly _tag: "Absent" }
  | { readonly _tag: "Live"; readonly record: DynamoRecord }
  | { readonly _tag: "Malformed"; readonly message: string }

/**
 * Reads an item as the store's `load` answers: a record is live while its
 * `expiresAt` is after `now` (the native TTL deletes late, so an expired item
 * may still be stored).
 *
 * @internal
 */
export const readItem = (item: ReadItem | undefined, now: number): ItemReading => {
  if (item === undefined) return { _tag: "Absent" }
  const record = recordOfItem(item)
  if (record === undefined) {
    const key = item.pk?.S
    return { _tag: "Malformed", message: malformedItem(key === undefined ? undefined : logPrefix(key)) }
  }
  return record.expiresAt > now ? { _tag: "Live", record } : { _tag: "Absent" }
}

/**
 * What DescribeTable says of a table: its layout and its status.
 *
 * @internal
 */
export interface DescribedTable extends TableLayout {
  readonly TableStatus?: string | undefined
}

/**
 * The next step of a layer's table setup, from the table as last described
 * (`undefined`: there is none) and whether the layer has already waited for
 * it to become ACTIVE.
 *
 * - `Create`: missing and the layer may create it: create, wait, describe again;
 * - `Wait`: being created (by this layer or another instance): wait, describe again;
 * - `Ready`: it serves the store; a layer that manages the table then enables TTL;
 * - `Refuse`: the layer fails with `message`.
 *
 * @internal
 */
export type TableStep =
  | { readonly _tag: "Create" }
  | { readonly _tag: "Wait" }
  | { readonly _tag: "Ready"; readonly enableTimeToLive: boolean }
  | { readonly _tag: "Refuse"; readonly message: string }

/** @internal */
export const tableStep = (
  table: DescribedTable | undefined,
  setup: { readonly tableName: string; readonly indexName: string; readonly createTable: boolean; readonly waited: boolean }
): TableStep => {
  if (table === undefined) {
    if (setup.waited) return { _tag: "Refuse", message: `table "${setup.tableName}" vanished while it was being created` }
    return setup.createTable ? { _tag: "Create" } : { _tag: "Refuse", message: missingTable(setup.tableName) }
  }
  if (table.TableStatus === "CREATING" && !setup.waited) return { _tag: "Wait" }
  const problem = layoutProblem(table, setup.tableName, setup.indexName)
  return problem === undefined ? { _tag: "Ready", enableTimeToLive: setup.createTable } : { _tag: "Refuse", message: problem }
}

/**
 * How the SDK's `waitUntilTableExists` polls a table being created
 * (seconds): up to five minutes.
 *
 * @internal
 */
export const tableWaiter = { maxWaitTime: 300, minDelay: 1, maxDelay: 10 } as const

/**
 * The log line of a layer creating its table.
 *
 * @internal
 */
export const creatingTable = (tableName: string): string => `creating table "${tableName}"`

/**
 * The warning after TTL was enabled, or found enabled, on `attribute`;
 * `undefined` when it is `ttlAttribute`, as it should be.
 *
 * @internal
 */
export const timeToLiveWarning = (tableName: string, attribute: string): string | undefined =>
  attribute === ttlAttribute ? undefined : timeToLiveElsewhere(tableName, attribute)

/**
 * TTL on `ttlAttribute` for a table the layer manages: `describe` reads it,
 * `update` sends the request that enables it when it is off. Answers the
 * warning to log, if any: TTL on another attribute, or the server refusing
 * it (`isTimeToLiveRefusal`); any other failure rejects.
 *
 * @internal
 */
export const enableTimeToLive = async (
  tableName: string,
  requests: {
    readonly describe: () => Promise<{ readonly TimeToLiveDescription?: Parameters<typeof enabledTimeToLive>[0] }>
    readonly update: (request: ReturnType<typeof enableTimeToLiveRequest>) => Promise<unknown>
  }
): Promise<string | undefined> => {
  try {
    let attribute = enabledTimeToLive((await requests.describe()).TimeToLiveDescription)
    if (attribute === undefined) {
      await requests.update(enableTimeToLiveRequest(tableName))
      attribute = ttlAttribute
    }
    return timeToLiveWarning(tableName, attribute)
  } catch (cause) {
    if (isTimeToLiveRefusal(cause)) return timeToLiveRefused(tableName, cause)
    throw cause
  }
}

/**
 * Whether a failure to enable TTL is the server refusing it (dynalite does
 * not implement it; a table whose TTL is being changed refuses): a warning,
 * not a failure of the layer.
 *
 * @internal
 */
export const isTimeToLiveRefusal = (cause: unknown): boolean =>
  isAwsError(cause, "UnknownOperationException") || isAwsError(cause, "ValidationException")

/**
 * How often a BatchWriteItem of deletes is sent in all while the server
 * leaves some unprocessed (throttling), and the first backoff between two
 * sends (it doubles, jittered).
 *
 * @internal
 */
export const deleteAttempts = 9

/** @internal */
export const deleteBackoffMillis = 50

/**
 * The message when deletes were still unprocessed after `deleteAttempts`.
 *
 * @internal
 */
export const stillUnprocessed = (count: number): string =>
  `${count} deletes were still unprocessed (throttled) after ${deleteAttempts} attempts`
