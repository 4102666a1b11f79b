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
import type { DynamoDBClient, DynamoDBClientConfig, QueryCommandOutput } from "@aws-sdk/client-dynamodb"
import {
  DeleteItemCommand,
  GetItemCommand,
  PutItemCommand,
  QueryCommand,
  UpdateItemCommand
} from "@aws-sdk/client-dynamodb"
import type { ConfigError, Redacted, Scope } from "effect"
import { Config, Effect, Layer, Option } from "effect"
import * as Core from "./core/dynamodb.js"
import type { Abortable } from "./internal/dynamodb.js"
import { deleteBatch, makeClient, name, prepareTable, send, storeError } from "./internal/dynamodb.js"
import { storeAndIndex } from "./internal/layer.js"
import type { StoreOperation } from "./SessionError.js"
import { SessionConflict, SessionStoreError } from "./SessionError.js"
import type { StorageKey } from "./SessionId.js"
import { unsafeStorageKey } from "./SessionId.js"
import * as SessionStore from "./SessionStore.js"

/**
 * Static credentials for a client the layer creates. Without them the SDK's
 * default provider chain is used (environment, shared config, instance or
 * task role).
 *
 * @since 1.0.0
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
 * @since 1.0.0
 * @category models
 */
export interface ConfigOptions extends Core.DynamoConfigOptions<Credentials> {}

/**
 * @since 1.0.0
 * @category models
 */
export interface Options extends ConfigOptions, Core.DynamoClientOptions<DynamoDBClient, DynamoDBClientConfig> {}

/**
 * The default table name.
 *
 * @since 1.0.0
 * @category constants
 */
export const defaultTableName = Core.defaultTableName

/**
 * The default name of the global secondary index on `principal`.
 *
 * @since 1.0.0
 * @category constants
 */
export const defaultIndexName = Core.defaultIndexName

// A conditional write; its condition not holding is a value, with the stored
// item when the server returned it.
const conditional = <A>(operation: StoreOperation, request: (abortable: Abortable) => Promise<A>) =>
  send(operation, request, (cause) =>
    Core.isAwsError(cause, "ConditionalCheckFailedException")
      ? { conditionFailed: true as const, item: Core.itemOfConditionFailure(cause) }
      : undefined)

const now = Effect.clockWith((clock) => clock.currentTimeMillis)

// Some(record) when the item holds a record live at `t`; an item this store
// did not write fails
const liveRecord = (
  operation: StoreOperation,
  item: Core.ReadItem | undefined,
  t: number
): Effect.Effect<Option.Option<SessionStore.SessionRecord>, SessionStoreError> => {
  const read = Core.readItem(item, t)
  switch (read._tag) {
    case "Absent":
      return Effect.succeedNone
    case "Malformed":
      return Effect.fail(storeError(operation, new Error(read.message)))
    case "Live":
      return Effect.succeedSome({ ...read.record, principal: Option.fromNullable(read.record.principal) })
  }
}

const writeOf = (write: SessionStore.SessionWrite): Core.DynamoWrite => ({
  data: write.data,
  expiresAt: write.expiresAt,
  principal: Option.getOrUndefined(write.principal)
})

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

  const loadLive = (operation: StoreOperation, key: StorageKey, t: number) =>
    Effect.flatMap(
      send(operation, (abortable) => client.send(new GetItemCommand(Core.getRequest(tableName, key)), abortable)),
      ({ Item }) => liveRecord(operation, Item, t)
    )

  const store = SessionStore.make(name, {
    load: (key) => Effect.flatMap(now, (t) => loadLive("load", key, t)),

    insert: (key, write) =>
      Effect.gen(function*() {
        const request = Core.insertRequest(tableName, key, writeOf(write), yield* now)
        const output = yield* conditional("insert", (abortable) => client.send(new PutItemCommand(request), abortable))
        if ("conditionFailed" in output) return yield* new SessionConflict({ reason: "Exists" })
      }),

    update: (key, write, expectedVersion) =>
      Effect.gen(function*() {
        const t = yield* now
        const request = Core.updateRequest(tableName, key, writeOf(write), expectedVersion, t)
        const output = yield* conditional("update", (abortable) => client.send(new PutItemCommand(request), abortable))
        if (!("conditionFailed" in output)) return expectedVersion + 1
        // without the stored item (dynalite) a consistent read tells the two
        // conflicts apart instead
        const live = yield* (output.item === undefined
          ? loadLive("update", key, t)
          : liveRecord("update", output.item, t))
        return yield* new SessionConflict({ reason: Option.isSome(live) ? "VersionMismatch" : "Missing" })
      }),

    touch: (key, expiresAt) =>
      Effect.gen(function*() {
        const request = Core.touchRequest(tableName, key, expiresAt, yield* now)
        const output = yield* conditional("touch", (abortable) =>
          client.send(new UpdateItemCommand(request), abortable))
        return !("conditionFailed" in output)
      }),

    remove: (key) =>
      Effect.asVoid(
        send("remove", (abortable) => client.send(new DeleteItemCommand(Core.deleteRequest(tableName, key)), abortable))
      )
  })

  // Every session of a principal, expired ones included, page by page.
  const sessionsOf = (operation: StoreOperation, principal: string) =>
    Effect.gen(function*() {
      const sessions: Array<Core.IndexEntry> = []
      let start: QueryCommandOutput["LastEvaluatedKey"] = undefined
      do {
        const query = Core.principalQuery(tableName, indexName, principal, start)
        const page: QueryCommandOutput = yield* send(
          operation,
          (abortable) => client.send(new QueryCommand(query), abortable)
        )
        const entries = Core.indexEntries(page.Items ?? [])
        if (entries === undefined) {
          return yield* storeError(operation, new Error(Core.malformedIndexEntry(indexName)))
        }
        sessions.push(...entries)
        start = page.LastEvaluatedKey
      } while (start !== undefined)
      return sessions
    })

  const index = SessionStore.makeIndex(name, {
    keys: (principal) =>
      Effect.flatMap(now, (t) =>
        Effect.map(sessionsOf("keys", principal), (sessions) => Core.liveKeys(sessions, t).map(unsafeStorageKey))),
    // expired sessions are deleted too; the live ones are counted (the core's removal)
    removeAll: (principal) =>
      Effect.gen(function*() {
        const t = yield* now
        const { batches, live } = Core.removal(yield* sessionsOf("removeAll", principal), t)
        for (const batch of batches) yield* deleteBatch(client, tableName, batch)
        return live
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
