/**
 * An `effect/sql` `SqlClient` on SQLite, over Node's built-in `node:sqlite`
 * (`DatabaseSync`): statements with parameters, transactions with
 * savepoints, the SQLite compiler of `Statement`, and optional name
 * transforms. It exists because `@effect/sql-sqlite-node`'s 4.x releases are
 * pre-releases that do not load with `effect` 4.1 (they import
 * `effect/unstable/...` paths 4.1 no longer has); any `SqlClient` serves
 * `SqlStore`, so switching to that package later is a change of layer.
 *
 * One connection, shared through a semaphore: a statement, a transaction or
 * a `reserve` holds it while it runs. `node:sqlite` is synchronous, so a
 * statement blocks the event loop while it runs, as with better-sqlite3.
 * `node:sqlite` is marked experimental in Node 22: importing it prints an
 * `ExperimentalWarning` once.
 *
 * ```ts
 * import * as SqlSqlite from "effect-session/SqlSqlite"
 * import * as SqlStore from "effect-session/SqlStore"
 * import { Layer } from "effect"
 *
 * const StoreLive = SqlStore.layer().pipe(Layer.provide(SqlSqlite.layer({ filename: "./sessions.db" })))
 * ```
 *
 * @since 2.0.0
 */
import type { Config, Layer, Scope } from "effect"
import { Duration, Effect, Semaphore, Stream } from "effect"
import type * as Reactivity from "effect/reactivity/Reactivity"
import * as SqlClient from "effect/sql/SqlClient"
import type { Connection } from "effect/sql/SqlConnection"
import {
  AuthorizationError,
  ConnectionError,
  ConstraintError,
  LockTimeoutError,
  SqlError,
  type SqlErrorReason,
  SqlSyntaxError,
  UniqueViolation,
  UnknownError
} from "effect/sql/SqlError"
import * as Statement from "effect/sql/Statement"
import * as Client from "./internal/sqlClient.js"
import { DatabaseSync, type StatementSync } from "node:sqlite"

/**
 * @since 2.0.0
 * @category models
 */
export interface SqliteClientConfig extends Client.CommonConfig {
  /** The database file, or `":memory:"` for a database that lives as long as the client. */
  readonly filename: string
  /** Open the file read-only. Default `false`. */
  readonly readonly?: boolean | undefined
  /**
   * How long a statement waits for another process's write lock before it
   * fails with `SQLITE_BUSY`. Default 5 seconds.
   */
  readonly busyTimeout?: Duration.Input | undefined
  /** Keep the rollback journal instead of turning on WAL mode for a file. Default `false`. */
  readonly disableWAL?: boolean | undefined
  /** How many prepared statements the connection keeps. Default 200. */
  readonly preparedStatementCacheSize?: number | undefined
}

/**
 * The `SqlClient` over one `node:sqlite` connection, closed with the scope.
 *
 * @since 2.0.0
 * @category constructors
 */
export const make = Effect.fnUntraced(function*(
  config: SqliteClientConfig
): Effect.fn.Return<SqlClient.SqlClient, SqlError, Scope.Scope | Reactivity.Reactivity> {
  const db = yield* Effect.acquireRelease(
    Effect.try({
      try: () => {
        const opened = new DatabaseSync(config.filename, {
          readOnly: config.readonly ?? false,
          timeout: Duration.toMillis(Duration.fromInputUnsafe(config.busyTimeout ?? "5 seconds"))
        })
        if (config.filename !== ":memory:" && !(config.disableWAL ?? false) && !(config.readonly ?? false)) {
          try {
            opened.exec("PRAGMA journal_mode = WAL")
          } catch (cause) {
            // not acquired: nothing else closes it
            opened.close()
            throw cause
          }
        }
        return opened
      },
      catch: (cause) => failure(cause, "Failed to open the database", "connect", true)
    }),
    (opened) => Effect.sync(() => opened.close())
  )
  const connection = makeConnection(db, config.preparedStatementCacheSize ?? 200)
  const acquirers = SqlClient.makeSqliteAcquirers({
    connection: Effect.succeed(connection),
    semaphore: yield* Semaphore.make(1),
    isTransaction: () => db.isTransaction
  })
  return yield* SqlClient.make({
    ...acquirers,
    driver: "node:sqlite",
    compiler: Statement.makeCompilerSqlite(config.transformQueryNames),
    ...Client.commonOptions(config, [["db.system.name", "sqlite"]])
  })
})

/**
 * The client as a layer, with the `Reactivity` it needs.
 *
 * @since 2.0.0
 * @category layers
 */
export const layer: (config: SqliteClientConfig) => Layer.Layer<SqlClient.SqlClient, SqlError> = Client.layer(make)

/**
 * `layer`, with its settings read from `Config`.
 *
 * @since 2.0.0
 * @category layers
 */
export const layerConfig: (
  config: Config.Wrap<SqliteClientConfig>
) => Layer.Layer<SqlClient.SqlClient, Config.ConfigError | SqlError> = Client.layerConfig(make)

type Rows = <A extends object>(rows: ReadonlyArray<A>) => ReadonlyArray<A>

const makeConnection = (db: DatabaseSync, cacheSize: number): Connection => {
  // insertion order is use order: a hit moves the statement to the end
  const cache = new Map<string, StatementSync>()
  const prepared = (sql: string): StatementSync => {
    // closing finalized them: `prepare` then says the database is not open
    if (!db.isOpen) cache.clear()
    const hit = cache.get(sql)
    if (hit !== undefined) {
      cache.delete(sql)
      cache.set(sql, hit)
      return hit
    }
    const statement = db.prepare(sql)
    if (cacheSize > 0) {
      cache.set(sql, statement)
      if (cache.size > cacheSize) cache.delete(cache.keys().next().value!)
    }
    return statement
  }
  const prepare = (sql: string, cached: boolean) =>
    Effect.try({
      try: () => cached ? prepared(sql) : db.prepare(sql),
      catch: (cause) => failure(cause, "Failed to prepare statement", "prepare")
    })
  const all = (sql: string, params: ReadonlyArray<unknown>, arrays: boolean, cached = true) =>
    Effect.flatMap(prepare(sql, cached), (statement) =>
      Effect.try({
        try: () => {
          statement.setReturnArrays(arrays)
          return statement.all(...bindable(params)) as ReadonlyArray<any>
        },
        catch: (cause) => failure(cause, "Failed to execute statement", "execute")
      }))
  const withRows = (rows: Effect.Effect<ReadonlyArray<any>, SqlError>, transformRows: Rows | undefined) =>
    transformRows === undefined ? rows : Effect.map(rows, transformRows)
  return {
    execute: (sql, params, transformRows) => withRows(all(sql, params, false), transformRows),
    // a statement without result columns answers its changes, as better-sqlite3's `run`
    executeRaw: (sql, params) =>
      Effect.flatMap(prepare(sql, true), (statement) =>
        Effect.try({
          try: () => {
            statement.setReturnArrays(false)
            return statement.columns().length > 0 ? statement.all(...bindable(params)) : statement.run(...bindable(params))
          },
          catch: (cause) => failure(cause, "Failed to execute statement", "execute")
        })),
    executeValues: (sql, params) => all(sql, params, true),
    executeValuesUnprepared: (sql, params) => all(sql, params, true, false),
    executeUnprepared: (sql, params, transformRows) => withRows(all(sql, params, false, false), transformRows),
    // the connection is synchronous: the rows are read at once, then streamed
    executeStream: (sql, params, transformRows) =>
      Stream.unwrap(Effect.map(withRows(all(sql, params, false), transformRows), Stream.fromIterable))
  }
}

type Bindable = null | number | bigint | string | NodeJS.ArrayBufferView

// node:sqlite binds null, numbers, bigints, strings and bytes; it refuses
// `undefined` and booleans, which statements built from records carry
const bindable = (params: ReadonlyArray<unknown>): Array<Bindable> =>
  params.map((value) =>
    value === undefined ? null : typeof value === "boolean" ? (value ? 1 : 0) : value as Bindable
  )

/** node:sqlite's errors carry SQLite's result code as `errcode`. */
const failure = (cause: unknown, message: string, operation: string, opening = false): SqlError =>
  new SqlError({ reason: opening ? new ConnectionError({ cause, message, operation }) : classify(cause, message, operation) })

const classify = (cause: unknown, message: string, operation: string): SqlErrorReason => {
  const props = { cause, message, operation }
  const code = typeof cause === "object" && cause !== null && "errcode" in cause && typeof cause.errcode === "number"
    ? cause.errcode
    : undefined
  const text = cause instanceof Error ? cause.message : ""
  switch (code === undefined ? undefined : code & 0xff) {
    case 1:
      return /syntax error|no such (table|column)/.test(text) ? new SqlSyntaxError(props) : new UnknownError(props)
    case 3:
    case 23:
      return new AuthorizationError(props)
    case 5:
    case 6:
      return new LockTimeoutError(props)
    case 14:
      return new ConnectionError(props)
    case 19: {
      // SQLITE_CONSTRAINT: the primary-key and unique variants, or their message
      const unique = /^(?:UNIQUE|PRIMARY KEY) constraint failed: (.*)$/.exec(text)
      return code === 1555 || code === 2067 || unique !== null
        ? new UniqueViolation({ ...props, constraint: unique?.[1]?.trim() || "unknown" })
        : new ConstraintError(props)
    }
    default:
      return new UnknownError(props)
  }
}

