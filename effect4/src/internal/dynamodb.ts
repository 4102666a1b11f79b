/**
 * The DynamoDB store's client handling on Effect 4 (`DynamoDbStore.ts` is
 * the store): sending a request, the client a layer creates, the table's
 * setup and batched deletes. The requests, the setup's decisions and the
 * messages are the core's (`src/core/dynamodb.ts`).
 *
 * @internal
 */
import type { DynamoDBClient as Client, WriteRequest } from "@aws-sdk/client-dynamodb"
import {
  BatchWriteItemCommand,
  CreateTableCommand,
  DescribeTableCommand,
  DescribeTimeToLiveCommand,
  DynamoDBClient,
  UpdateTimeToLiveCommand,
  waitUntilTableExists
} from "@aws-sdk/client-dynamodb"
import type { Scope } from "effect"
import { Effect, Redacted, Result, Schedule } from "effect"
import * as Core from "../../../src/core/dynamodb.js"
import type { Options } from "../DynamoDbStore.js"
import type { StoreOperation } from "../SessionError.js"
import { SessionStoreError } from "../SessionError.js"

/** @internal */
export const name = Core.storeName

/** @internal */
export const storeError = (operation: StoreOperation, cause: unknown): SessionStoreError =>
  new SessionStoreError({ store: name, operation, cause })

/** @internal */
export type Abortable = Core.Abortable

/**
 * Sends a request: the one place where the SDK's rejection becomes a store
 * error. Interrupting the effect aborts the request.
 *
 * @internal
 */
export const send = <A>(operation: StoreOperation, request: (abortable: Abortable) => Promise<A>): Effect.Effect<A, SessionStoreError> =>
  Effect.tryPromise({ try: (abortSignal) => request({ abortSignal }), catch: (cause) => storeError(operation, cause) })

/**
 * Sends a request whose AWS error `errorName` is an answer, not a failure:
 * it comes back as the failure of the `Result` (a conditional write whose
 * condition did not hold, a table that does not exist).
 *
 * @internal
 */
export const sendExpecting = <A>(
  operation: StoreOperation,
  errorName: string,
  request: (abortable: Abortable) => Promise<A>
): Effect.Effect<Result.Result<A, unknown>, SessionStoreError> =>
  send(operation, request).pipe(
    Effect.map(Result.succeed),
    Effect.catchIf((error) => Core.isAwsError(error.cause, errorName), (error) => Effect.succeed(Result.fail(error.cause)))
  )

/**
 * The client passed in, or one created for the layer's scope and destroyed
 * with it.
 *
 * @internal
 */
export const makeClient = (options: Options): Effect.Effect<Client, never, Scope.Scope> => {
  if (options.client !== undefined) return Effect.succeed(options.client)
  const config = Core.createdClientConfig(options, Redacted.value)
  return Effect.acquireRelease(Effect.sync(() => new DynamoDBClient(config)), (client) => Effect.sync(() => client.destroy()))
}

/**
 * Makes sure the table can serve the store, one step of the core's
 * `tableStep` at a time: it exists (or is created and waited for), its key
 * and principal index fit, and — when this layer manages it — TTL is on.
 *
 * @internal
 */
export const prepareTable = Effect.fnUntraced(function*(client: Client, tableName: string, indexName: string, createTable: boolean) {
  const describe = Effect.map(
    sendExpecting("setup", "ResourceNotFoundException", (abortable) =>
      client.send(new DescribeTableCommand({ TableName: tableName }), abortable)),
    (described) => Result.isSuccess(described) ? described.success.Table : undefined
  )
  let waited = false
  for (;;) {
    const step = Core.tableStep(yield* describe, { tableName, indexName, createTable, waited })
    if (step._tag === "Refuse") return yield* storeError("setup", new Error(step.message))
    if (step._tag === "Ready") {
      if (step.enableTimeToLive) yield* enableTimeToLive(client, tableName)
      return
    }
    if (step._tag === "Create") {
      yield* Effect.logInfo(`${name} store: ${Core.creatingTable(tableName)}`)
      // ResourceInUseException: another instance is creating it; its table is waited for
      yield* sendExpecting("setup", "ResourceInUseException", (abortable) =>
        client.send(new CreateTableCommand(Core.tableDefinition(tableName, indexName)), abortable))
    }
    yield* send("setup", ({ abortSignal }) => waitUntilTableExists({ client, ...Core.tableWaiter, abortSignal }, { TableName: tableName }))
    waited = true
  }
})

// TTL on `ttl`; the core's warning, not a failure, when it is on another
// attribute or the server refuses it (dynalite does not implement it)
const enableTimeToLive = (client: Client, tableName: string) =>
  Effect.flatMap(
    send("setup", (abortable) =>
      Core.enableTimeToLive(tableName, {
        describe: () => client.send(new DescribeTimeToLiveCommand({ TableName: tableName }), abortable),
        update: (request) => client.send(new UpdateTimeToLiveCommand(request), abortable)
      })),
    (warning) => warning === undefined ? Effect.void : Effect.logWarning(`${name} store: ${warning}`)
  )

// unprocessed deletes are throttling: sent again after a jittered, doubling pause
const backoff = Schedule.exponential(Core.deleteBackoffMillis).pipe(Schedule.jittered)

/**
 * One BatchWriteItem of deletes, sending again what the server left
 * unprocessed, `Core.deleteAttempts` times at most.
 *
 * @internal
 */
export const deleteBatch = (client: Client, tableName: string, batch: ReadonlyArray<WriteRequest>) =>
  Effect.suspend(() => {
    let pending = batch
    const sendPending = Effect.suspend(() =>
      send("removeAll", (abortable) => client.send(new BatchWriteItemCommand({ RequestItems: { [tableName]: [...pending] } }), abortable))
    ).pipe(Effect.map((output) => (pending = output.UnprocessedItems?.[tableName] ?? [])))
    return Effect.repeat(sendPending, { schedule: backoff, while: (left) => left.length > 0, times: Core.deleteAttempts - 1 }).pipe(
      Effect.flatMap((left) => left.length === 0 ? Effect.void : Effect.fail(storeError("removeAll", new Error(Core.stillUnprocessed(left.length)))))
    )
  })
