/**
 * DynamoDB for the quickstart without AWS, on Effect 4: the server at
 * `DYNAMODB_ENDPOINT` when it is set, otherwise dynalite (a
 * DynamoDB-compatible server) in this process on a free loopback port for as
 * long as the layer lives, keeping its data in `SESSION_DIR/dynamodb` so that
 * sessions survive a restart as on the other stores. Same variables and
 * defaults as the Effect 3 line's `examples/dynalite.ts`.
 */
import { Config, Data, Effect, Layer, Option, Redacted } from "effect"
import { mkdir } from "node:fs/promises"
import type { Server } from "node:http"
import { createRequire } from "node:module"
import type { AddressInfo } from "node:net"
import { join } from "node:path"
import * as DynamoDbStore from "../src/DynamoDbStore.js"

/** dynalite could not be loaded or could not listen. */
export class DynaliteError extends Data.TaggedError("DynaliteError")<{ readonly cause: unknown }> {
  override get message(): string {
    return `in-process dynalite did not start (is the dynalite package installed?): ${String(this.cause)}`
  }
}

type Dynalite = (options: Record<string, unknown>) => Server

// CommonJS without type declarations, loaded only when a local server is wanted
const loadDynalite = Effect.try({
  try: () => createRequire(import.meta.url)("dynalite") as Dynalite,
  catch: (cause) => new DynaliteError({ cause })
})

/** Starts dynalite with its data in `directory`; the endpoint, until the scope closes. */
const start = (directory: string) =>
  Effect.gen(function*() {
    const dynalite = yield* loadDynalite
    yield* Effect.tryPromise({
      try: () => mkdir(directory, { recursive: true, mode: 0o700 }),
      catch: (cause) => new DynaliteError({ cause })
    })
    const server = yield* Effect.acquireRelease(
      Effect.callback<Server, DynaliteError>((resume) => {
        // LevelDB opens (and locks) the directory here
        const server = dynalite({ path: directory, createTableMs: 0, deleteTableMs: 0, updateTableMs: 0 })
        server.once("error", (cause) => resume(Effect.fail(new DynaliteError({ cause }))))
        server.listen(0, "127.0.0.1", () => resume(Effect.succeed(server)))
      }),
      (server) =>
        Effect.callback<void>((resume) => {
          // idle keep-alive sockets of SDK clients would hold close() open
          server.closeAllConnections()
          server.close(() => resume(Effect.void))
        })
    )
    return `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  })

// local servers accept any credentials, but the SDK insists on some
const localCredentials: DynamoDbStore.Credentials = { accessKeyId: "local", secretAccessKey: Redacted.make("local") }

const isLoopback = (endpoint: string) => /^https?:\/\/(localhost|127\.0\.0\.1|\[::1\])(:\d+)?\/?$/.test(endpoint)

/** The quickstart's DynamoDB store; its table (`DYNAMODB_TABLE`) is created when missing. */
export const layerStore = Layer.unwrap(Effect.gen(function*() {
  const configured = yield* Config.option(Config.NonEmptyString("DYNAMODB_ENDPOINT"))
  const tableName = yield* Config.NonEmptyString("DYNAMODB_TABLE").pipe(Config.withDefault(DynamoDbStore.defaultTableName))
  const region = yield* Config.NonEmptyString("AWS_REGION").pipe(Config.withDefault("us-east-1"))
  if (Option.isSome(configured)) {
    const endpoint = configured.value
    const hasKeys = Option.isSome(yield* Config.option(Config.NonEmptyString("AWS_ACCESS_KEY_ID")))
    yield* Effect.logInfo(`sessions: DynamoDB at ${endpoint}, table "${tableName}"`)
    return DynamoDbStore.layer({
      endpoint,
      region,
      tableName,
      createTable: true,
      ...(isLoopback(endpoint) && !hasKeys ? { credentials: localCredentials } : {})
    })
  }
  const directory = join(yield* Config.NonEmptyString("SESSION_DIR").pipe(Config.withDefault("./.sessions")), "dynamodb")
  const endpoint = yield* start(directory)
  yield* Effect.logInfo(`sessions: DYNAMODB_ENDPOINT is not set, started an in-process dynalite at ${endpoint}`)
  return DynamoDbStore.layer({ endpoint, region, tableName, createTable: true, credentials: localCredentials })
}))
