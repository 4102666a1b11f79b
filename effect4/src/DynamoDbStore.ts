/**
 * A store on Amazon DynamoDB, or a DynamoDB-compatible server (DynamoDB
 * Local, dynalite), through `@aws-sdk/client-dynamodb`: the Effect 4 glue
 * over the core's DynamoDB protocol (`src/core/dynamodb.ts`: the table and
 * index layout, every request, the reading of items), so both lines store
 * the same items and read each other's.
 *
 * One item per session, keyed by the storage key; the record's text is
 * stored as its UTF-8 bytes. `update` is a compare-and-set by
 * `ConditionExpression` on `version`; expiry is checked against the
 * application's `Clock` on every read and conditional write, and the
 * table's native TTL (attribute `ttl`, epoch seconds) only garbage-collects
 * expired items — DynamoDB may delete them days late. A global secondary
 * index on `principal` provides `SessionIndex`; in DynamoDB it is eventually
 * consistent (see `docs/stores/dynamodb.md`).
 *
 * ```ts
 * import * as DynamoDbStore from "effect-session/DynamoDbStore"
 *
 * const StoreLive = DynamoDbStore.layer({ region: "eu-west-1", tableName: "app_sessions" })
 * ```
 *
 * @since 2.0.0
 */
import type { DynamoDBClient, DynamoDBClientConfig, QueryCommandOutput } from "@aws-sdk/client-dynamodb"
import { DeleteItemCommand, GetItemCommand, PutItemCommand, QueryCommand, UpdateItemCommand } from "@aws-sdk/client-dynamodb"
import type { Redacted, Scope } from "effect"
import { Clock, Config, Effect, Layer, Option, Result } from "effect"
import * as Core from "../../src/core/dynamodb.js"
import type { Abortable } from "./internal/dynamodb.js"
import { deleteBatch, makeClient, name, prepareTable, send, sendExpecting, storeError } from "./internal/dynamodb.js"
import { bytesWrite, textRecord } from "./internal/bytes.js"
import { storeAndIndex } from "./internal/layer.js"
import type { StoreOperation } from "./SessionError.js"
import { SessionConflict, SessionStoreError } from "./SessionError.js"
import type { StorageKey } from "./SessionId.js"
import * as SessionId from "./SessionId.js"
import * as SessionStore from "./SessionStore.js"

/**
 * Static credentials for a client the layer creates. Without them the SDK's
 * default provider chain is used (environment, shared config, instance or
 * task role).
 *
 * @since 2.0.0
 * @category models
 */
export interface Credentials extends Core.DynamoCredentials<Redacted.Redacted<string>> {}

/**
 * The options that can also come from `Config` (see `layerConfig`):
 * `tableName` (default `effect_sessions`), `indexName` (default
 * `principal-index`), `createTable` (default false: the table must exist),
 * and the `endpoint`, `region` and `credentials` of a client the layer
 * creates (default: the SDK's).
 *
 * @since 2.0.0
 * @category models
 */
export interface ConfigOptions extends Core.DynamoConfigOptions<Credentials> {}

/**
 * @since 2.0.0
 * @category models
 */
export interface Options extends ConfigOptions, Core.DynamoClientOptions<DynamoDBClient, DynamoDBClientConfig> {}

/**
 * The default table name.
 *
 * @since 2.0.0
 * @category constants
 */
export const defaultTableName: string = Core.defaultTableName

/**
 * The default name of the global secondary index on `principal`.
 *
 * @since 2.0.0
 * @category constants
 */
export const defaultIndexName: string = Core.defaultIndexName

// the live record an item holds, if any; an item this store did not write fails
const liveRecord = (
  operation: StoreOperation,
  item: Core.ReadItem | undefined,
  now: number
): Effect.Effect<Option.Option<SessionStore.SessionRecord>, SessionStoreError> => {
  const read = Core.readItem(item, now)
  switch (read._tag) {
    case "Absent":
      return Effect.succeedNone
    case "Malformed":
      return Effect.fail(storeError(operation, new Error(read.message)))
    case "Live":
      return Effect.succeedSome(textRecord(read.record))
  }
}

/**
 * The store and its index over one client, for the scope. Fails with a
 * `SessionStoreError` (operation `setup`) when the table is missing and
 * `createTable` is not set, when its layout does not fit, or when the
 * server cannot be reached.
 *
 * @since 2.0.0
 * @category constructors
 */
export const make = Effect.fnUntraced(function*(options?: Options): Effect.fn.Return<
  { readonly store: SessionStore.SessionStore["Service"]; readonly index: SessionStore.SessionIndex["Service"] },
  SessionStoreError,
  Scope.Scope
> {
  const tableName = options?.tableName ?? Core.defaultTableName
  const indexName = options?.indexName ?? Core.defaultIndexName
  const client = yield* makeClient(options ?? {})
  yield* prepareTable(client, tableName, indexName, options?.createTable ?? false)

  // a conditional write: its condition not holding is the Result's failure
  const conditional = <A>(operation: StoreOperation, request: (abortable: Abortable) => Promise<A>) =>
    sendExpecting(operation, "ConditionalCheckFailedException", request)
  const loadAt = (operation: StoreOperation, key: StorageKey, now: number) =>
    Effect.flatMap(
      send(operation, (abortable) => client.send(new GetItemCommand(Core.getRequest(tableName, key)), abortable)),
      ({ Item }) => liveRecord(operation, Item, now)
    )

  const store = SessionStore.make(name, {
    load: (key) => Effect.flatMap(Clock.currentTimeMillis, (now) => loadAt("load", key, now)),
    insert: Effect.fnUntraced(function*(key, write) {
      const request = Core.insertRequest(tableName, key, bytesWrite(write), yield* Clock.currentTimeMillis)
      const written = yield* conditional("insert", (abortable) => client.send(new PutItemCommand(request), abortable))
      if (Result.isFailure(written)) return yield* new SessionConflict({ reason: "Exists" })
    }),
    update: Effect.fnUntraced(function*(key, write, expectedVersion) {
      const now = yield* Clock.currentTimeMillis
      const request = Core.updateRequest(tableName, key, bytesWrite(write), expectedVersion, now)
      const written = yield* conditional("update", (abortable) => client.send(new PutItemCommand(request), abortable))
      if (Result.isSuccess(written)) return expectedVersion + 1
      // the stored item comes with the failure; where it does not (dynalite),
      // a consistent read tells the two conflicts apart
      const stored = Core.itemOfConditionFailure(written.failure)
      const live = yield* (stored === undefined ? loadAt("update", key, now) : liveRecord("update", stored, now))
      return yield* new SessionConflict({ reason: Option.isSome(live) ? "VersionMismatch" : "Missing" })
    }),
    touch: (key, expiresAt) =>
      Effect.flatMap(Clock.currentTimeMillis, (now) =>
        Effect.map(
          conditional("touch", (abortable) => client.send(new UpdateItemCommand(Core.touchRequest(tableName, key, expiresAt, now)), abortable)),
          Result.isSuccess
        )),
    remove: (key) => Effect.asVoid(send("remove", (abortable) => client.send(new DeleteItemCommand(Core.deleteRequest(tableName, key)), abortable)))
  })

  // every session of a principal, expired ones included: the pages of the
  // query on the index, from `start` on
  const sessionsOf = (
    operation: StoreOperation,
    principal: string,
    start?: QueryCommandOutput["LastEvaluatedKey"]
  ): Effect.Effect<ReadonlyArray<Core.IndexEntry>, SessionStoreError> =>
    send(operation, (abortable) => client.send(new QueryCommand(Core.principalQuery(tableName, indexName, principal, start)), abortable)).pipe(
      Effect.flatMap(({ Items, LastEvaluatedKey }) => {
        const entries = Core.indexEntries(Items ?? [])
        if (entries === undefined) return Effect.fail(storeError(operation, new Error(Core.malformedIndexEntry(indexName))))
        return LastEvaluatedKey === undefined
          ? Effect.succeed(entries)
          : Effect.map(sessionsOf(operation, principal, LastEvaluatedKey), (rest) => [...entries, ...rest])
      })
    )

  const index = SessionStore.makeIndex(name, {
    keys: (principal) =>
      Effect.flatMap(Clock.currentTimeMillis, (now) =>
        Effect.map(sessionsOf("keys", principal), (sessions) => Core.liveKeys(sessions, now).map(SessionId.storageKeyUnsafe))),
    // expired sessions are deleted too; the live ones are counted
    removeAll: Effect.fnUntraced(function*(principal) {
      const now = yield* Clock.currentTimeMillis
      const removal = Core.removal(yield* sessionsOf("removeAll", principal), now)
      for (const batch of removal.batches) yield* deleteBatch(client, tableName, batch)
      return removal.live
    })
  })

  return { store, index }
})

/**
 * The store and its index, alive for the layer's scope.
 *
 * @since 2.0.0
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
 *   tableName: Config.String("SESSION_TABLE"),
 *   region: Config.String("AWS_REGION")
 * })
 * ```
 *
 * @since 2.0.0
 * @category layers
 */
export const layerConfig = (
  options: Config.Wrap<ConfigOptions>
): Layer.Layer<SessionStore.SessionStore | SessionStore.SessionIndex, SessionStoreError | Config.ConfigError> =>
  Layer.unwrap(Effect.gen(function*() {
    return layer(yield* Config.unwrap(options))
  }))
