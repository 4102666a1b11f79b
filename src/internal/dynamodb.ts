/**
 * The DynamoDB store's client handling (`DynamoDbStore.ts` is the store):
 * sending a request, the client a layer creates, and the table's setup.
 * The requests and the decisions are the core's (`core/dynamodb.ts`).
 */
import type { WriteRequest } from "@aws-sdk/client-dynamodb"
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
import { Effect, Option, Redacted, Schedule } from "effect"
import * as Core from "../core/dynamodb.js"
import type { Options } from "../DynamoDbStore.js"
import type { StoreOperation } from "../SessionError.js"
import { SessionStoreError } from "../SessionError.js"

/** @internal */
export const name = Core.storeName

/** @internal */
export const storeError = (operation: StoreOperation, cause: unknown) =>
  new SessionStoreError({ store: name, operation, cause })

/** @internal */
export const setupError = (message: string) => storeError("setup", new Error(message))

/** @internal */
export type Abortable = Core.Abortable

/**
 * Sends a request, the one place where the SDK's rejection is caught:
 * `expected` turns the AWS errors the caller handles into a value of its
 * own (`undefined`: not one of them), any other is a store error.
 *
 * @internal
 */
export const send = <A, B = never>(
  operation: StoreOperation,
  request: (abortable: Abortable) => Promise<A>,
  expected: (cause: unknown) => B | undefined = () => undefined
): Effect.Effect<A | B, SessionStoreError> =>
  Effect.tryPromise({ try: (abortSignal) => request({ abortSignal }), catch: (cause) => cause }).pipe(
    Effect.catchAll((cause) => {
      const value = expected(cause)
      return value === undefined ? Effect.fail(storeError(operation, cause)) : Effect.succeed(value)
    })
  )

/**
 * `None` for the AWS error `errorName`, for `send`.
 *
 * @internal
 */
export const unless = (errorName: string) => (cause: unknown) =>
  Core.isAwsError(cause, errorName) ? Option.none<never>() : undefined

/**
 * The client passed in, or one created for the layer's scope.
 *
 * @internal
 */
export const makeClient = (options: Options): Effect.Effect<DynamoDBClient, never, Scope.Scope> => {
  if (options.client !== undefined) return Effect.succeed(options.client)
  const config = Core.createdClientConfig(options, Redacted.value)
  return Effect.acquireRelease(
    Effect.sync(() => new DynamoDBClient(config)),
    (client) => Effect.sync(() => client.destroy())
  )
}

/**
 * Makes sure the table can serve the store: it exists (or is created), its
 * key is `pk`, it has the principal index, and — when this layer manages the
 * table — TTL is enabled on `ttl`.
 *
 * @internal
 */
export const prepareTable = (client: DynamoDBClient, tableName: string, indexName: string, createTable: boolean) =>
  Effect.gen(function*() {
    const describe = Effect.map(
      send(
        "setup",
        (abortable) => client.send(new DescribeTableCommand({ TableName: tableName }), abortable),
        unless("ResourceNotFoundException")
      ),
      (output) => Option.isOption(output) ? undefined : output.Table
    )
    let waited = false
    for (;;) {
      const step = Core.tableStep(yield* describe, { tableName, indexName, createTable, waited })
      switch (step._tag) {
        case "Refuse":
          return yield* setupError(step.message)
        case "Ready":
          return step.enableTimeToLive ? yield* enableTimeToLive(client, tableName) : undefined
        case "Create":
          yield* Effect.logInfo(`${name} store: ${Core.creatingTable(tableName)}`)
          // ResourceInUseException: another instance is creating it: wait for theirs
          yield* send(
            "setup",
            (abortable) => client.send(new CreateTableCommand(Core.tableDefinition(tableName, indexName)), abortable),
            unless("ResourceInUseException")
          )
      }
      // created here or by another instance: wait until it is ACTIVE
      yield* send("setup", ({ abortSignal }) =>
        waitUntilTableExists({ client, ...Core.tableWaiter, abortSignal }, { TableName: tableName }))
      waited = true
    }
  })

// TTL enabled on `ttl`; the core's warning (TTL on another attribute, or
// the server does not implement it, as dynalite, or refused it) is logged.
const enableTimeToLive = (client: DynamoDBClient, tableName: string) =>
  Effect.flatMap(
    send("setup", (abortable) =>
      Core.enableTimeToLive(tableName, {
        describe: () => client.send(new DescribeTimeToLiveCommand({ TableName: tableName }), abortable),
        update: (request) => client.send(new UpdateTimeToLiveCommand(request), abortable)
      })),
    (warning) => warning === undefined ? Effect.void : Effect.logWarning(`${name} store: ${warning}`)
  )

// Unprocessed deletes are throttling: back off before sending them again
// (`Core.deleteAttempts` in all).
const backoff = Schedule.exponential(Core.deleteBackoffMillis).pipe(
  Schedule.jittered,
  Schedule.intersect(Schedule.recurs(Core.deleteAttempts - 1))
)

/**
 * One BatchWriteItem of deletes, sending what the server left unprocessed
 * again until nothing is left.
 *
 * @internal
 */
export const deleteBatch = (client: DynamoDBClient, tableName: string, batch: ReadonlyArray<WriteRequest>) =>
  Effect.suspend(() => {
    let pending = batch
    return Effect.suspend(() =>
      send("removeAll", (abortable) =>
        client.send(new BatchWriteItemCommand({ RequestItems: { [tableName]: [...pending] } }), abortable))
    ).pipe(
      Effect.tap((output) => {
        pending = output.UnprocessedItems?.[tableName] ?? []
      }),
      Effect.repeat({ schedule: backoff, while: () => pending.length > 0 }),
      Effect.flatMap(() =>
        pending.length === 0
          ? Effect.void
          : Effect.fail(storeError("removeAll", new Error(Core.stillUnprocessed(pending.length))))
      )
    )
  })
