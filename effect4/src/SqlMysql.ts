/**
 * An `effect/sql` `SqlClient` on MySQL or MariaDB, over a `mysql2` pool:
 * statements with parameters (prepared, or unprepared through the text
 * protocol), transactions with savepoints on a reserved connection, streams,
 * the MySQL compiler (`?` placeholders, backquoted identifiers) on
 * `Statement`'s public compiler API, and optional name transforms. It exists
 * because `@effect/sql-mysql2`'s 4.x releases are pre-releases that do not
 * load with `effect` 4.1 (they import `effect/unstable/...` paths 4.1 no
 * longer has); any `SqlClient` serves `SqlStore`, so switching to that
 * package later is a change of layer.
 *
 * The pool is the layer's: it is checked with `SELECT 1` when the layer
 * starts and ended when the layer's scope closes.
 *
 * ```ts
 * import * as SqlMysql from "effect-session/SqlMysql"
 * import * as SqlStore from "effect-session/SqlStore"
 * import { Layer, Redacted } from "effect"
 *
 * const StoreLive = SqlStore.layer().pipe(
 *   Layer.provide(SqlMysql.layer({ url: Redacted.make("mysql://root@127.0.0.1:3306/app") }))
 * )
 * ```
 *
 * @since 2.0.0
 */
import type { Config, Layer, Scope } from "effect"
import { Duration, Effect, Redacted, Stream } from "effect"
import type * as Reactivity from "effect/reactivity/Reactivity"
import * as SqlClient from "effect/sql/SqlClient"
import type { Connection } from "effect/sql/SqlConnection"
import {
  AuthenticationError,
  AuthorizationError,
  ConnectionError,
  ConstraintError,
  DeadlockError,
  LockTimeoutError,
  SqlError,
  type SqlErrorReason,
  SqlSyntaxError,
  StatementTimeoutError,
  UniqueViolation,
  UnknownError
} from "effect/sql/SqlError"
import * as Statement from "effect/sql/Statement"
import * as Client from "./internal/sqlClient.js"
import * as Mysql from "mysql2"

/**
 * @since 2.0.0
 * @category models
 */
export interface MysqlClientConfig extends Client.CommonConfig {
  /** A `mysql://` URL; what it gives replaces `host`, `port`, `database`, `username` and `password`. */
  readonly url?: Redacted.Redacted | undefined
  readonly host?: string | undefined
  readonly port?: number | undefined
  readonly database?: string | undefined
  readonly username?: string | undefined
  readonly password?: Redacted.Redacted | undefined
  /** The most connections the pool opens. Default 10 (mysql2's). */
  readonly maxConnections?: number | undefined
  /** How long an idle connection stays open. Default mysql2's (60 seconds). */
  readonly connectionTTL?: Duration.Input | undefined
  /** How long the layer waits for its first `SELECT 1`. Default 10 seconds. */
  readonly connectTimeout?: Duration.Input | undefined
  /** Further `mysql2` pool options (flags, TLS, time zone…); the settings above win. */
  readonly poolConfig?: Mysql.PoolOptions | undefined
}

/**
 * The MySQL compiler: `?` placeholders and backquoted identifiers, through
 * `transform` when given. `updateValues` (a multi-row `UPDATE … FROM
 * VALUES`) has no MySQL form and compiles to nothing.
 *
 * @since 2.0.0
 * @category constructors
 */
export const makeCompiler = (transform?: ((_: string) => string) | undefined): Statement.Compiler =>
  Statement.makeCompiler({
    dialect: "mysql",
    placeholder: () => "?",
    onIdentifier: transform === undefined
      ? escape
      : (value, withoutTransform) => escape(withoutTransform ? value : transform(value)),
    onRecordUpdate: () => ["", []],
    onCustom: () => ["", []]
  })

const escape = Statement.defaultEscape("`")

/**
 * The `SqlClient` over a `mysql2` pool, ended with the scope.
 *
 * @since 2.0.0
 * @category constructors
 */
export const make = Effect.fnUntraced(function*(
  config: MysqlClientConfig
): Effect.fn.Return<SqlClient.SqlClient, SqlError, Scope.Scope | Reactivity.Reactivity> {
  const ttl = config.connectionTTL === undefined ? undefined : Duration.toMillis(Duration.fromInputUnsafe(config.connectionTTL))
  const options: Mysql.PoolOptions = { ...config.poolConfig }
  if (config.url !== undefined) options.uri = Redacted.value(config.url)
  if (config.host !== undefined) options.host = config.host
  if (config.port !== undefined) options.port = config.port
  if (config.database !== undefined) options.database = config.database
  if (config.username !== undefined) options.user = config.username
  if (config.password !== undefined) options.password = Redacted.value(config.password)
  if (config.maxConnections !== undefined) options.connectionLimit = config.maxConnections
  if (ttl !== undefined) options.idleTimeout = ttl
  // BIGINT and DECIMAL beyond 2^53 come back as strings, never rounded
  options.supportBigNumbers = true
  const pool = yield* Effect.acquireRelease(
    Effect.sync(() => Mysql.createPool(options)),
    (pool) => Effect.callback<void>((resume) => pool.end(() => resume(Effect.void)))
  )
  const connectTimeout = config.connectTimeout ?? "10 seconds"
  yield* run(pool, "SELECT 1", [], "query", false, "Failed to connect", "connect").pipe(
    Effect.timeoutOrElse({
      duration: connectTimeout,
      orElse: () =>
        Effect.fail(
          new SqlError({
            reason: new ConnectionError({
              cause: new Error(`no answer within ${Duration.format(Duration.fromInputUnsafe(connectTimeout))}`),
              message: "Failed to connect",
              operation: "connect"
            })
          })
        )
    })
  )
  // a reserved connection, released to the pool with the scope
  const reserve = Effect.acquireRelease(
    Effect.callback<Mysql.PoolConnection, SqlError>((resume) =>
      pool.getConnection((cause, connection) =>
        resume(
          cause === null
            ? Effect.succeed(connection)
            : Effect.fail(new SqlError({ reason: classify(cause, "Failed to acquire a connection", "acquireConnection") }))
        )
      )
    ),
    (connection) => Effect.sync(() => connection.release())
  )
  return yield* SqlClient.make({
    // a statement outside a transaction takes any free connection of the pool
    acquirer: Effect.succeed(makeConnection(pool, reserve)),
    transactionAcquirer: Effect.map(reserve, (connection) => makeConnection(connection, undefined)),
    driver: "mysql2",
    compiler: makeCompiler(config.transformQueryNames),
    ...Client.commonOptions(config, [
      ["db.system.name", "mysql"],
      ["server.address", config.host ?? "localhost"],
      ["server.port", config.port ?? 3306],
      ...(config.database === undefined ? [] : [["db.namespace", config.database] as const])
    ])
  })
})

/**
 * The client as a layer, with the `Reactivity` it needs.
 *
 * @since 2.0.0
 * @category layers
 */
export const layer: (config: MysqlClientConfig) => Layer.Layer<SqlClient.SqlClient, SqlError> = Client.layer(make)

/**
 * `layer`, with its settings read from `Config`.
 *
 * @since 2.0.0
 * @category layers
 */
export const layerConfig: (
  config: Config.Wrap<MysqlClientConfig>
) => Layer.Layer<SqlClient.SqlClient, Config.ConfigError | SqlError> = Client.layerConfig(make)

type Rows = <A extends object>(rows: ReadonlyArray<A>) => ReadonlyArray<A>

/** What a pool and one of its connections both answer. */
type Queryable = Pick<Mysql.Pool, "query" | "execute">

/**
 * One statement: `execute` prepares it (mysql2 keeps it prepared per
 * connection), `query` sends it as text. mysql2 throws, rather than
 * answers, on some bad parameters: that is a failure too.
 */
const run = (
  target: Queryable,
  sql: string,
  params: ReadonlyArray<unknown>,
  method: "execute" | "query",
  rowsAsArray: boolean,
  message = "Failed to execute statement",
  operation: string = method === "query" ? "executeUnprepared" : "execute"
): Effect.Effect<unknown, SqlError> =>
  Effect.callback<unknown, SqlError>((resume) => {
    const fail = (cause: unknown) => resume(Effect.fail(new SqlError({ reason: classify(cause, message, operation) })))
    try {
      // mysql2 refuses `undefined` as a value: it is SQL's NULL here
      const values = params.map((value) => value === undefined ? null : value)
      ;(target[method] as (options: Mysql.QueryOptions, callback: (cause: unknown, result: unknown) => void) => void)(
        { sql, values, rowsAsArray },
        (cause, result) => (cause === null || cause === undefined) ? resume(Effect.succeed(result)) : fail(cause)
      )
    } catch (cause) {
      fail(cause)
    }
  })

/**
 * A `Connection` over the pool (`stream` then reserves a connection of its
 * own) or over one reserved connection.
 */
const makeConnection = (
  target: Queryable,
  reserve: Effect.Effect<Mysql.PoolConnection, SqlError, Scope.Scope> | undefined
): Connection => {
  const rows = (sql: string, params: ReadonlyArray<unknown>, method: "execute" | "query", arrays: boolean) =>
    Effect.map(run(target, sql, params, method, arrays), (result) => Array.isArray(result) ? result : [])
  const withRows = (effect: Effect.Effect<ReadonlyArray<any>, SqlError>, transformRows: Rows | undefined) =>
    transformRows === undefined ? effect : Effect.map(effect, transformRows)
  const stream = (connection: Pick<Mysql.PoolConnection, "query">, sql: string, params: ReadonlyArray<unknown>) =>
    Stream.fromAsyncIterable(
      (connection.query as unknown as (sql: string, values: ReadonlyArray<unknown>) => Mysql.Query)(sql, params).stream(),
      (cause) => new SqlError({ reason: classify(cause, "Failed to stream statement", "stream") })
    )
  return {
    execute: (sql, params, transformRows) => withRows(rows(sql, params, "execute", false), transformRows),
    executeRaw: (sql, params) => run(target, sql, params, "execute", false),
    executeValues: (sql, params) => rows(sql, params, "execute", true),
    executeValuesUnprepared: (sql, params) => rows(sql, params, "query", true),
    executeUnprepared: (sql, params, transformRows) => withRows(rows(sql, params, "query", false), transformRows),
    executeStream: (sql, params, transformRows) => {
      const streamed = reserve === undefined
        ? stream(target as Mysql.PoolConnection, sql, params)
        : Stream.unwrap(Effect.map(reserve, (connection) => stream(connection, sql, params)))
      return transformRows === undefined ? streamed : Stream.mapArray(streamed, (chunk) => transformRows(chunk) as any)
    }
  }
}

/** MySQL's error numbers, by the `SqlError` reason they are. */
const reasons: ReadonlyArray<readonly [ReadonlySet<number>, (props: ReasonProps) => SqlErrorReason]> = [
  [new Set([1040, 1042, 1043, 1053, 1129, 1130, 1203, 2002, 2003, 2006, 2013]), (p) => new ConnectionError(p)],
  [new Set([1045, 1698]), (p) => new AuthenticationError(p)],
  [new Set([1044, 1142, 1143, 1227]), (p) => new AuthorizationError(p)],
  [new Set([1054, 1064, 1146, 1149]), (p) => new SqlSyntaxError(p)],
  [new Set([1022, 1048, 1169, 1216, 1217, 1451, 1452, 1557, 3819, 4025]), (p) => new ConstraintError(p)],
  [new Set([1213]), (p) => new DeadlockError(p)],
  [new Set([1205]), (p) => new LockTimeoutError(p)],
  [new Set([1969, 3024]), (p) => new StatementTimeoutError(p)]
]

interface ReasonProps {
  readonly cause: unknown
  readonly message: string
  readonly operation: string
}

const classify = (cause: unknown, message: string, operation: string): SqlErrorReason => {
  const props = { cause, message, operation }
  const field = (name: string): unknown =>
    typeof cause === "object" && cause !== null && name in cause ? (cause as Record<string, unknown>)[name] : undefined
  const errno = field("errno")
  if (errno === 1062) {
    const key = /for key '([^']*)'/.exec(String(field("sqlMessage") ?? ""))
    return new UniqueViolation({ ...props, constraint: key?.[1] ?? "unknown" })
  }
  if (typeof errno === "number") {
    for (const [numbers, reason] of reasons) if (numbers.has(errno)) return reason(props)
  }
  // the socket's own errors (ECONNREFUSED, ETIMEDOUT…) and a connection mysql2 gave up on
  const code = field("code")
  if (field("fatal") === true || (typeof code === "string" && /^E[A-Z]+$/.test(code))) return new ConnectionError(props)
  return new UnknownError(props)
}
