/**
 * DynamoDB for the examples without AWS: `layerStore` uses the server at
 * `DYNAMODB_ENDPOINT` when it is set, and otherwise starts dynalite (a
 * DynamoDB-compatible server) in this process on a free loopback port, for
 * as long as the layer lives, with its data in `SESSION_DIR/dynamodb` so
 * that sessions survive a restart as on every other store of the quickstart.
 *
 * ```ts
 * HttpServer.serve(app).pipe(
 *   Layer.provide(NodeHttpServer.layer(createServer, { port: 5000 })),
 *   Layer.provide(Dynalite.layerStore), // provided last: built before the server listens
 *   Layer.launch,
 *   NodeRuntime.runMain
 * )
 * ```
 */
import type { ConfigError, Scope } from "effect"
import { Config, Data, Effect, Layer, Option, Redacted } from "effect"
import { mkdir } from "node:fs/promises"
import type { Server } from "node:http"
import { createRequire } from "node:module"
import type { AddressInfo } from "node:net"
import { join } from "node:path"
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
  /** A directory for its LevelDB data; in memory without it. */
  readonly path?: string
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
 * Starts dynalite on a free loopback port and yields its endpoint; the
 * server is closed when the scope closes. Its data lives in `directory`
 * (created if missing), or in memory without one.
 */
export const start = (directory?: string): Effect.Effect<string, DynaliteError, Scope.Scope> =>
  Effect.gen(function*() {
    const dynalite = yield* loadDynalite
    if (directory !== undefined) {
      yield* Effect.tryPromise({
        try: () => mkdir(directory, { recursive: true, mode: 0o700 }),
        catch: (cause) => new DynaliteError({ cause })
      })
    }
    const options = { createTableMs: 0, deleteTableMs: 0, updateTableMs: 0 }
    const server = yield* Effect.acquireRelease(
      Effect.flatMap(
        Effect.try({
          // LevelDB opens (and locks) the directory here
          try: () => dynalite(directory === undefined ? options : { ...options, path: directory }),
          catch: (cause) => new DynaliteError({ cause })
        }),
        listen
      ),
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
 * in an in-process dynalite that keeps its data in `SESSION_DIR/dynamodb`
 * (`SESSION_DIR` defaults to `./.sessions`, as for the filesystem store). The table (`DYNAMODB_TABLE`, default
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
  const directory = join(
    yield* Config.nonEmptyString("SESSION_DIR").pipe(Config.withDefault("./.sessions")),
    "dynamodb"
  )
  const endpoint = yield* start(directory)
  yield* Effect.logInfo(
    `sessions: DYNAMODB_ENDPOINT is not set, started an in-process dynalite at ${endpoint} with its data in ${directory}`
  )
  return DynamoDbStore.layer({ endpoint, region, tableName, createTable: true, credentials: localCredentials })
}))
