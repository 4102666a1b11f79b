/**
 * DynamoDB for the examples without AWS: `layerStore` uses the server at
 * `DYNAMODB_ENDPOINT` when it is set, and otherwise starts dynalite (an
 * in-memory DynamoDB-compatible server) in this process on a free loopback
 * port, for as long as the layer lives.
 *
 * ```ts
 * HttpServer.serve(app).pipe(
 *   Layer.provide(Dynalite.layerStore),
 *   Layer.provide(NodeHttpServer.layer(createServer, { port: 5000 })),
 *   Layer.launch,
 *   NodeRuntime.runMain
 * )
 * ```
 */
import type { ConfigError, Scope } from "effect"
import { Config, Data, Effect, Layer, Option, Redacted } from "effect"
import type { Server } from "node:http"
import { createRequire } from "node:module"
import type { AddressInfo } from "node:net"
import * as DynamoDbStore from "effect-session/DynamoDbStore"
import type { SessionStoreError } from "effect-session/SessionError"
import type { SessionIndex, SessionStore } from "effect-session/SessionStore"

/** dynalite could not be loaded or could not listen. */
export class DynaliteError extends Data.TaggedError("DynaliteError")<{ readonly cause: unknown }> {
  override get message(): string {
    return `in-process dynalite did not start (is the dynalite package installed?): ${String(this.cause)}`
  }
}

interface DynaliteOptions {
  readonly createTableMs?: number
  readonly deleteTableMs?: number
  readonly updateTableMs?: number
}

// dynalite is CommonJS without type declarations; it is loaded only when an
// in-process server is wanted, so programs that never start one do not need it.
const loadDynalite = Effect.try({
  try: () => createRequire(import.meta.url)("dynalite") as (options?: DynaliteOptions) => Server,
  catch: (cause) => new DynaliteError({ cause })
})

const listen = (server: Server) =>
  Effect.async<Server, DynaliteError>((resume) => {
    server.once("error", (cause) => resume(Effect.fail(new DynaliteError({ cause }))))
    server.listen(0, "127.0.0.1", () => resume(Effect.succeed(server)))
  })

const close = (server: Server) =>
  Effect.async<void>((resume) => {
    // idle keep-alive sockets of SDK clients would hold close() open
    server.closeAllConnections()
    server.close(() => resume(Effect.void))
  })

/**
 * Starts dynalite on a free loopback port, in memory, and yields its
 * endpoint; the server is closed when the scope closes.
 */
export const start: Effect.Effect<string, DynaliteError, Scope.Scope> = Effect.gen(function*() {
  const dynalite = yield* loadDynalite
  const server = yield* Effect.acquireRelease(
    Effect.flatMap(Effect.sync(() => dynalite({ createTableMs: 0, deleteTableMs: 0, updateTableMs: 0 })), listen),
    close
  )
  const { port } = server.address() as AddressInfo
  return `http://127.0.0.1:${port}`
})

// Local servers accept any credentials but the SDK insists on some.
const localCredentials: DynamoDbStore.Credentials = {
  accessKeyId: "local",
  secretAccessKey: Redacted.make("local")
}

const isLoopback = (endpoint: string) => /^https?:\/\/(localhost|127\.0\.0\.1|\[::1\])(:\d+)?\/?$/.test(endpoint)

/**
 * The DynamoDB session store of the examples: at `DYNAMODB_ENDPOINT` when it
 * is set (region `AWS_REGION`, default us-east-1; the SDK's credentials, or
 * dummy ones for a loopback endpoint without `AWS_ACCESS_KEY_ID`), otherwise
 * in an in-process dynalite. The table (`DYNAMODB_TABLE`, default
 * `effect_sessions`) is created when missing.
 */
export const layerStore: Layer.Layer<
  SessionStore | SessionIndex,
  SessionStoreError | DynaliteError | ConfigError.ConfigError
> = Layer.unwrapScoped(Effect.gen(function*() {
  const configured = yield* Config.option(Config.nonEmptyString("DYNAMODB_ENDPOINT"))
  const tableName = yield* Config.nonEmptyString("DYNAMODB_TABLE").pipe(
    Config.withDefault(DynamoDbStore.defaultTableName)
  )
  const region = yield* Config.nonEmptyString("AWS_REGION").pipe(Config.withDefault("us-east-1"))
  if (Option.isSome(configured)) {
    const endpoint = configured.value
    const hasKeys = Option.isSome(yield* Config.option(Config.nonEmptyString("AWS_ACCESS_KEY_ID")))
    yield* Effect.logInfo(`sessions: DynamoDB at ${endpoint}, table "${tableName}"`)
    return DynamoDbStore.layer({
      endpoint,
      region,
      tableName,
      createTable: true,
      ...(isLoopback(endpoint) && !hasKeys ? { credentials: localCredentials } : {})
    })
  }
  const endpoint = yield* start
  yield* Effect.logInfo(
    `sessions: DYNAMODB_ENDPOINT is not set, started an in-process dynalite at ${endpoint} ` +
      "(in memory: sessions are lost when the process exits)"
  )
  return DynamoDbStore.layer({ endpoint, region, tableName, createTable: true, credentials: localCredentials })
}))
