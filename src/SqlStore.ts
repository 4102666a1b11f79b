/**
 * A store on `@effect/sql`: PostgreSQL, MySQL / MariaDB and SQLite, through
 * whichever `SqlClient` the application provides (`PgClient.layer`,
 * `MysqlClient.layer`, `SqliteClient.layer`). One row per session; every
 * write is a single conditional statement whose affected-row count decides,
 * so concurrent requests never lose an update. Expired rows are deleted by a
 * cleanup fiber in bounded batches. See `docs/stores/sql.md`.
 *
 * @since 1.0.0
 */
import * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import type { ConfigError, Scope } from "effect"
import { Config, Effect, Layer, Option, Predicate } from "effect"
import type * as Duration from "effect/Duration"
import { Buffer } from "node:buffer"
import { forkSweeper } from "./internal/cleanup.js"
import { storeAndIndex } from "./internal/layer.js"
import { notAString } from "./internal/principal.js"
import type { StoreOperation } from "./SessionError.js"
import { SessionConflict, SessionStoreError } from "./SessionError.js"
import type { StorageKey } from "./SessionId.js"
import { unsafeStorageKey } from "./SessionId.js"
import * as SessionStore from "./SessionStore.js"

/**
 * @since 1.0.0
 * @category models
 */
export interface TableOptions {
  /**
   * The table holding the sessions. Letters, digits and `_`, starting with a
   * letter or `_`, at most 48 characters (index names are derived from it).
   * Default `effect_sessions`.
   */
  readonly table?: string | undefined
}

/**
 * @since 1.0.0
 * @category models
 */
export interface Options extends TableOptions {
  /**
   * Create the table and its indexes when the layer starts, if they do not
   * exist (idempotent). Set it to `false` when the schema is managed by
   * migrations (see `migrations`). Default `true`.
   */
  readonly createTable?: boolean | undefined
  /** How often expired rows are deleted. Default 5 minutes (jittered). */
  readonly cleanupInterval?: Duration.DurationInput | undefined
  /**
   * The most rows one cleanup statement deletes; a sweep runs batch after
   * batch until one comes back short. Default 1000.
   */
  readonly cleanupBatchSize?: number | undefined
}

type Dialect = "pg" | "mysql" | "sqlite"

const name = "sql"

const defaultTable = "effect_sessions"

const identifierPattern = /^[A-Za-z_][A-Za-z0-9_]{0,47}$/

/** The principal column's size on MySQL/MariaDB: `VARCHAR(255)`, in characters. */
const mysqlPrincipalLength = 255

const setupError = (message: string) =>
  new SessionStoreError({ store: name, operation: "setup", cause: new Error(message) })

const validTable = (options: TableOptions | undefined): Effect.Effect<string, SessionStoreError> => {
  const table = options?.table ?? defaultTable
  return identifierPattern.test(table)
    ? Effect.succeed(table)
    : Effect.fail(setupError(
      `table name ${JSON.stringify(table)} is not a safe identifier (letters, digits and _, at most 48 characters)`
    ))
}

const dialectOf = (sql: SqlClient.SqlClient): Effect.Effect<Dialect, SessionStoreError> =>
  sql.onDialectOrElse({
    pg: () => Effect.succeed<Dialect>("pg"),
    mysql: () => Effect.succeed<Dialect>("mysql"),
    sqlite: () => Effect.succeed<Dialect>("sqlite"),
    orElse: () => Effect.fail(setupError("the SqlClient's dialect is not supported: use PostgreSQL, MySQL/MariaDB or SQLite"))
  })

const storeError = (operation: StoreOperation) => (cause: unknown) =>
  new SessionStoreError({ store: name, operation, cause })

/**
 * The DDL of the session table, one statement per element (SQLite prepares
 * one statement at a time).
 */
const schemaStatements = (sql: SqlClient.SqlClient, table: string) => {
  const t = sql(table)
  const expiresIndex = sql(`${table}_expires_at_idx`)
  const principalIndex = sql(`${table}_principal_idx`)
  return sql.onDialectOrElse({
    // the key and the principal compare byte for byte: base64url keys that
    // differ only in case are different sessions, so no *_ci collation
    mysql: () => [
      sql`CREATE TABLE IF NOT EXISTS ${t} (
  storage_key VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  data LONGBLOB NOT NULL,
  version INTEGER NOT NULL,
  expires_at BIGINT NOT NULL,
  principal VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NULL,
  PRIMARY KEY (storage_key),
  INDEX ${expiresIndex} (expires_at),
  INDEX ${principalIndex} (principal)
) ENGINE=InnoDB`
    ],
    pg: () => [
      sql`CREATE TABLE IF NOT EXISTS ${t} (
  storage_key VARCHAR(64) PRIMARY KEY,
  data BYTEA NOT NULL,
  version INTEGER NOT NULL,
  expires_at BIGINT NOT NULL,
  principal TEXT
)`,
      sql`CREATE INDEX IF NOT EXISTS ${expiresIndex} ON ${t} (expires_at)`,
      sql`CREATE INDEX IF NOT EXISTS ${principalIndex} ON ${t} (principal) WHERE principal IS NOT NULL`
    ],
    orElse: () => [
      sql`CREATE TABLE IF NOT EXISTS ${t} (
  storage_key TEXT PRIMARY KEY NOT NULL,
  data BLOB NOT NULL,
  version INTEGER NOT NULL,
  expires_at INTEGER NOT NULL,
  principal TEXT
) WITHOUT ROWID`,
      sql`CREATE INDEX IF NOT EXISTS ${expiresIndex} ON ${t} (expires_at)`,
      sql`CREATE INDEX IF NOT EXISTS ${principalIndex} ON ${t} (principal) WHERE principal IS NOT NULL`
    ]
  })
}

/**
 * Creates the session table and its indexes if they do not exist. This is
 * what the layer runs when `createTable` is on; run it yourself (in a
 * migration, or use `migrations`) when it is off.
 *
 * On PostgreSQL it runs in a transaction under an advisory lock, so several
 * instances starting at once do not race on `CREATE TABLE IF NOT EXISTS`.
 *
 * @since 1.0.0
 * @category migrations
 */
export const ensureTable = (
  options?: TableOptions
): Effect.Effect<void, SqlError | SessionStoreError, SqlClient.SqlClient> =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const table = yield* validTable(options)
    const dialect = yield* dialectOf(sql)
    const statements = Effect.forEach(schemaStatements(sql, table), (statement) => statement, { discard: true })
    if (dialect === "pg") {
      const lockName = `effect-session:${table}`
      yield* sql.withTransaction(
        Effect.zipRight(sql`SELECT pg_advisory_xact_lock(hashtext(${lockName}))`, statements)
      )
      return
    }
    yield* statements
  })

/**
 * The session table as migrations for `@effect/sql`'s `Migrator`, for
 * applications that manage their schema and set `createTable: false`. The
 * keys follow `Migrator.fromRecord`'s `<id>_<name>` convention, numbered from
 * 1; later versions of this store append entries, never change them.
 *
 * Run them with their own migrations table, so their ids never meet yours:
 *
 * ```ts
 * import { Migrator } from "@effect/sql"
 * import { Layer } from "effect"
 * import * as SqlStore from "effect-session/SqlStore"
 *
 * // needs only the SqlClient; PgMigrator / MysqlMigrator / SqliteMigrator
 * // .layer do the same (and ask for the platform services)
 * const MigrationsLive = Layer.effectDiscard(Migrator.make({})({
 *   loader: Migrator.fromRecord(SqlStore.migrations()),
 *   table: "effect_session_migrations"
 * }))
 * const StoreLive = SqlStore.layer({ createTable: false }).pipe(Layer.provide(MigrationsLive))
 * ```
 *
 * @since 1.0.0
 * @category migrations
 */
export const migrations = (
  options?: TableOptions
): Record<string, Effect.Effect<void, SqlError | SessionStoreError, SqlClient.SqlClient>> => ({
  [`1_create_${options?.table ?? defaultTable}`]: ensureTable(options)
})

const hasMysqlError = (error: SqlError, errno: number, code: string): boolean => {
  const cause = error.cause
  return Predicate.hasProperty(cause, "errno") && cause.errno === errno ||
    Predicate.hasProperty(cause, "code") && cause.code === code
}

const isDuplicateKey = (error: SqlError): boolean => hasMysqlError(error, 1062, "ER_DUP_ENTRY")

const isDeadlock = (error: SqlError): boolean => hasMysqlError(error, 1213, "ER_LOCK_DEADLOCK")

const asBuffer = (bytes: Uint8Array): Buffer => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)

const asNumber = (value: unknown): number | undefined => {
  const n = typeof value === "number" ? value : typeof value === "bigint" || typeof value === "string" ? Number(value) : NaN
  return Number.isSafeInteger(n) ? n : undefined
}

/**
 * The number of rows a statement matched, from each driver's result:
 * node-postgres `rowCount`, better-sqlite3 `changes`, mysql2 `affectedRows`
 * — or, for a MySQL `UPDATE`, the "Rows matched" of its info line, because
 * `affectedRows` counts only changed rows when the connection is opened
 * without `CLIENT_FOUND_ROWS`.
 */
const matchedRows = (dialect: Dialect, result: unknown): number | undefined => {
  switch (dialect) {
    case "pg":
      return Predicate.hasProperty(result, "rowCount") ? asNumber(result.rowCount) : undefined
    case "sqlite":
      return Predicate.hasProperty(result, "changes") ? asNumber(result.changes) : undefined
    case "mysql": {
      if (Predicate.hasProperty(result, "info") && typeof result.info === "string") {
        const matched = /Rows matched:\s*(\d+)/i.exec(result.info)
        if (matched !== null) return Number(matched[1])
      }
      return Predicate.hasProperty(result, "affectedRows") ? asNumber(result.affectedRows) : undefined
    }
  }
}

const decodeRecord = (row: ReadonlyArray<unknown>): SessionStore.SessionRecord | undefined => {
  const [data, version, expiresAt, principal] = row
  const v = asNumber(version)
  const e = asNumber(expiresAt)
  if (!(data instanceof Uint8Array) || v === undefined || e === undefined) return undefined
  if (principal !== null && typeof principal !== "string") return undefined
  return { data, version: v, expiresAt: e, principal: Option.fromNullable(principal) }
}

/**
 * The store, its index and the sweep, on the `SqlClient` in context; the
 * cleanup fiber runs in the current scope. Fails with `SessionStoreError`
 * (operation `setup`) on an unsafe table name, an unsupported dialect or
 * when the table cannot be created.
 *
 * @since 1.0.0
 * @category constructors
 */
export const make = Effect.fnUntraced(function*(options?: Options): Effect.fn.Return<
  {
    readonly store: SessionStore.SessionStore["Type"]
    readonly index: SessionStore.SessionIndex["Type"]
    /**
     * One sweep, as the cleanup fiber runs it: deletes the rows expired by
     * `Clock`'s now in batches and returns how many went. For a maintenance
     * command or an external scheduler.
     */
    readonly sweep: Effect.Effect<number, SessionStoreError>
  },
  SessionStoreError,
  SqlClient.SqlClient | Scope.Scope
> {
  const sql = yield* SqlClient.SqlClient
  const table = yield* validTable(options)
  const dialect = yield* dialectOf(sql)
  const batchSize = options?.cleanupBatchSize ?? 1000
  if (!Number.isSafeInteger(batchSize) || batchSize < 1) {
    return yield* setupError(`cleanupBatchSize must be a positive integer, got ${batchSize}`)
  }
  if (options?.createTable ?? true) {
    yield* Effect.mapError(ensureTable({ table }), (e) => e instanceof SessionStoreError ? e : storeError("setup")(e))
  }

  const t = sql(table)
  const now = Effect.clockWith((clock) => clock.currentTimeMillis)

  /** Runs a statement for its result header and reads the matched-row count. */
  const countRows = (operation: StoreOperation, statement: Effect.Effect<unknown, SqlError>) =>
    statement.pipe(
      Effect.mapError(storeError(operation)),
      Effect.flatMap((result) => {
        const count = matchedRows(dialect, result)
        return count === undefined
          ? Effect.fail(storeError(operation)(new Error("the driver did not report an affected-row count")))
          : Effect.succeed(count)
      })
    )

  // The principal is checked before any statement: it must be a string (the
  // types say so, but an application may forward unvalidated JSON: the
  // drivers used with @effect/sql bind an object as one value today, but
  // mysql's text protocol, for one, expands an object into `key = value`
  // SQL, and nothing should depend on that), and on MySQL/MariaDB
  // fit the column, which would otherwise cut it or refuse it depending on
  // the SQL mode.
  const checkPrincipal = (operation: StoreOperation, principal: unknown): Effect.Effect<void, SessionStoreError> => {
    if (typeof principal !== "string") return Effect.fail(notAString(name, operation, principal))
    if (dialect === "mysql") {
      // the column counts characters (code points), not UTF-16 units
      let length = 0
      for (const _ of principal) if (++length > mysqlPrincipalLength) break
      if (length > mysqlPrincipalLength) {
        return Effect.fail(storeError(operation)(
          new RangeError(
            `the principal is longer than the ${mysqlPrincipalLength} characters the principal column of ${table} holds`
          )
        ))
      }
    }
    return Effect.void
  }
  // anonymous writes, the most, pay nothing for it
  const checkWrite = <A, E>(
    operation: StoreOperation,
    write: SessionStore.SessionWrite,
    run: Effect.Effect<A, E>
  ): Effect.Effect<A, E | SessionStoreError> =>
    Option.isSome(write.principal) ? Effect.zipRight(checkPrincipal(operation, write.principal.value), run) : run

  const load = (key: StorageKey) =>
    Effect.flatMap(now, (t0) =>
      sql`SELECT data, version, expires_at, principal FROM ${t}
WHERE storage_key = ${key} AND expires_at > ${t0}`.values.pipe(
        Effect.mapError(storeError("load")),
        Effect.flatMap((rows) => {
          if (rows.length === 0) return Effect.succeed(Option.none())
          const record = decodeRecord(rows[0])
          return record === undefined
            ? Effect.fail(storeError("load")(new Error(`the row of ${table} has unexpected column types`)))
            : Effect.succeed(Option.some(record))
        })
      ))

  const insertRow = (key: StorageKey, write: SessionStore.SessionWrite) =>
    sql`INSERT INTO ${t} (storage_key, data, version, expires_at, principal)
VALUES (${key}, ${asBuffer(write.data)}, 1, ${write.expiresAt}, ${Option.getOrNull(write.principal)})`.raw

  const exists = Effect.fail(new SessionConflict({ reason: "Exists" }))

  const insert: SessionStore.SessionStoreOperations["insert"] = sql.onDialectOrElse({
    // MySQL has no conditional upsert whose outcome is unambiguous: with
    // CLIENT_FOUND_ROWS (mysql2's default) `ON DUPLICATE KEY UPDATE` reports
    // 1 both for a new row and for a live row left unchanged. A plain INSERT
    // is the arbiter instead — the primary key admits one row — and only
    // when it meets a row is an expired one deleted and the INSERT retried.
    // InnoDB may pick one of several sessions racing on one key as a
    // deadlock victim; InnoDB rolled that statement back, so it is retried.
    mysql: () => (key: StorageKey, write: SessionStore.SessionWrite) =>
      Effect.flatMap(now, (t0) =>
        insertRow(key, write).pipe(
          Effect.catchIf(isDuplicateKey, () =>
            sql`DELETE FROM ${t} WHERE storage_key = ${key} AND expires_at <= ${t0}`.raw.pipe(
              Effect.zipRight(insertRow(key, write)),
              Effect.catchIf(isDuplicateKey, () => exists)
            )),
          Effect.retry({ times: 3, while: (e) => e._tag === "SqlError" && isDeadlock(e) }),
          Effect.catchTag("SqlError", (e) => Effect.fail(storeError("insert")(e))),
          Effect.asVoid
        )),
    // PostgreSQL and SQLite: one upsert that overwrites only an expired row;
    // a live row makes it touch nothing, and the count says so.
    orElse: () => (key: StorageKey, write: SessionStore.SessionWrite) =>
      Effect.flatMap(now, (t0) =>
        countRows(
          "insert",
          sql`INSERT INTO ${t} (storage_key, data, version, expires_at, principal)
VALUES (${key}, ${asBuffer(write.data)}, 1, ${write.expiresAt}, ${Option.getOrNull(write.principal)})
ON CONFLICT (storage_key) DO UPDATE SET
  data = excluded.data, version = 1, expires_at = excluded.expires_at, principal = excluded.principal
WHERE ${t}.expires_at <= ${t0}`.raw
        ).pipe(Effect.flatMap((count) => count === 0 ? exists : Effect.void)))
  })

  const update: SessionStore.SessionStoreOperations["update"] = (key, write, expectedVersion) =>
    Effect.flatMap(now, (t0) =>
      countRows(
        "update",
        sql`UPDATE ${t} SET data = ${asBuffer(write.data)}, version = version + 1,
  expires_at = ${write.expiresAt}, principal = ${Option.getOrNull(write.principal)}
WHERE storage_key = ${key} AND version = ${expectedVersion} AND expires_at > ${t0}`.raw
      ).pipe(
        Effect.flatMap((count) => {
          if (count > 0) return Effect.succeed(expectedVersion + 1)
          // only on conflict: tell a newer version from a missing record
          return sql`SELECT version FROM ${t} WHERE storage_key = ${key} AND expires_at > ${t0}`.values.pipe(
            Effect.mapError(storeError("update")),
            Effect.flatMap((rows) =>
              Effect.fail(new SessionConflict({ reason: rows.length > 0 ? "VersionMismatch" : "Missing" }))
            )
          )
        })
      ))

  const touch: SessionStore.SessionStoreOperations["touch"] = (key, expiresAt) =>
    Effect.flatMap(now, (t0) =>
      countRows(
        "touch",
        sql`UPDATE ${t} SET expires_at = ${expiresAt} WHERE storage_key = ${key} AND expires_at > ${t0}`.raw
      ).pipe(Effect.map((count) => count > 0)))

  const remove: SessionStore.SessionStoreOperations["remove"] = (key) =>
    sql`DELETE FROM ${t} WHERE storage_key = ${key}`.raw.pipe(
      Effect.mapError(storeError("remove")),
      Effect.asVoid
    )

  const store = SessionStore.make(name, {
    load,
    insert: (key, write) => checkWrite("insert", write, insert(key, write)),
    update: (key, write, expectedVersion) => checkWrite("update", write, update(key, write, expectedVersion)),
    touch,
    remove
  })

  // Rows of exactly this principal. On MySQL/MariaDB the column's collation
  // (utf8mb4_bin, PAD SPACE) compares 'alice' equal to 'alice  ': the byte
  // length, compared too, makes it exact, and the equality keeps the
  // principal index usable on tables created by any version.
  //
  // The expiry is compared as `expires_at + 0`, an expression no index
  // holds: the principal index is then the only index these statements can
  // use, whatever the statistics say. On a table that has not been analysed
  // the planner otherwise intersects the expires_at index, where every live
  // row matches, and the lookup grows with the table (issue 15).
  const ofPrincipal = (principal: string) =>
    dialect === "mysql"
      ? sql`principal = ${principal} AND LENGTH(principal) = ${Buffer.byteLength(principal, "utf8")}`
      : sql`principal = ${principal}`

  const keys: SessionStore.SessionIndexOperations["keys"] = (principal) =>
    Effect.zipRight(
      checkPrincipal("keys", principal),
      Effect.flatMap(now, (t0) =>
        sql`SELECT storage_key FROM ${t} WHERE ${ofPrincipal(principal)} AND expires_at + 0 > ${t0}`.values.pipe(
          Effect.mapError(storeError("keys")),
          Effect.map((rows) => rows.map((row) => unsafeStorageKey(String(row[0]))))
        ))
    )

  const removeAllRows: SessionStore.SessionIndexOperations["removeAll"] = sql.onDialectOrElse({
    // MySQL has no DELETE … RETURNING: delete the live rows (counted), then
    // the expired ones; the two sets are disjoint, so a session created in
    // between is either counted and removed or left alone.
    mysql: () => (principal: string) =>
      Effect.flatMap(now, (t0) =>
        countRows(
          "removeAll",
          sql`DELETE FROM ${t} WHERE ${ofPrincipal(principal)} AND expires_at + 0 > ${t0}`.raw
        ).pipe(
          Effect.tap(() =>
            countRows(
              "removeAll",
              sql`DELETE FROM ${t} WHERE ${ofPrincipal(principal)} AND expires_at + 0 <= ${t0}`.raw
            )
          )
        )),
    orElse: () => (principal: string) =>
      Effect.flatMap(now, (t0) =>
        sql`DELETE FROM ${t} WHERE ${ofPrincipal(principal)} RETURNING expires_at`.values.pipe(
          Effect.mapError(storeError("removeAll")),
          Effect.map((rows) => rows.filter((row) => (asNumber(row[0]) ?? 0) > t0).length)
        ))
  })
  const removeAll: SessionStore.SessionIndexOperations["removeAll"] = (principal) =>
    Effect.zipRight(checkPrincipal("removeAll", principal), removeAllRows(principal))

  const index = SessionStore.makeIndex(name, { keys, removeAll })

  const limit = sql.literal(String(batchSize))
  const deleteExpiredBatch = (t0: number) =>
    countRows(
      "cleanup",
      sql.onDialectOrElse({
        mysql: () => sql`DELETE FROM ${t} WHERE expires_at <= ${t0} LIMIT ${limit}`.raw,
        // two instances sweeping at once skip each other's rows instead of
        // waiting on them
        pg: () =>
          sql`DELETE FROM ${t} WHERE storage_key IN (
  SELECT storage_key FROM ${t} WHERE expires_at <= ${t0} LIMIT ${limit} FOR UPDATE SKIP LOCKED)`.raw,
        orElse: () =>
          sql`DELETE FROM ${t} WHERE storage_key IN (
  SELECT storage_key FROM ${t} WHERE expires_at <= ${t0} LIMIT ${limit})`.raw
      })
    )

  // Bounded statements keep each transaction and its locks short; "now" is
  // read once, so rows that expire during a sweep wait for the next one.
  const sweep = Effect.flatMap(now, (t0) => {
    const loop = (removedSoFar: number): Effect.Effect<number, SessionStoreError> =>
      deleteExpiredBatch(t0).pipe(
        Effect.tap((removed) =>
          Effect.logDebug(`${name} store: a cleanup batch removed ${removed} expired sessions`).pipe(
            Effect.annotateLogs({ "effect-session.store": name, "effect-session.removed": removed })
          )
        ),
        Effect.flatMap((removed) =>
          removed < batchSize ? Effect.succeed(removedSoFar + removed) : loop(removedSoFar + removed)
        )
      )
    return loop(0)
  }).pipe(Effect.withSpan("effect-session.cleanup", { attributes: { "effect-session.store": name } }))

  yield* forkSweeper(name, options?.cleanupInterval ?? "5 minutes", sweep)

  return { store, index, sweep }
})

/**
 * The store and its index on the `SqlClient` in context, with the cleanup
 * fiber alive for the layer's scope. The client is the application's: the
 * layer never closes it.
 *
 * @example
 * ```ts
 * import { PgClient } from "@effect/sql-pg"
 * import { Layer, Redacted } from "effect"
 * import * as SqlStore from "effect-session/SqlStore"
 *
 * const SessionsLive = SqlStore.layer().pipe(
 *   Layer.provide(PgClient.layer({ url: Redacted.make("postgres://postgres@127.0.0.1:5432/app") }))
 * )
 * ```
 *
 * @since 1.0.0
 * @category layers
 */
export const layer = (
  options?: Options
): Layer.Layer<SessionStore.SessionStore | SessionStore.SessionIndex, SessionStoreError, SqlClient.SqlClient> =>
  storeAndIndex(make(options))

/**
 * `layer`, with its options read from `Config`.
 *
 * @example
 * ```ts
 * import { Config } from "effect"
 * import * as SqlStore from "effect-session/SqlStore"
 *
 * const StoreLive = SqlStore.layerConfig({
 *   table: Config.string("SESSION_TABLE").pipe(Config.withDefault("effect_sessions")),
 *   cleanupInterval: Config.duration("SESSION_CLEANUP_INTERVAL").pipe(Config.withDefault("5 minutes"))
 * })
 * ```
 *
 * @since 1.0.0
 * @category layers
 */
export const layerConfig = (
  options: Config.Config.Wrap<Options>
): Layer.Layer<
  SessionStore.SessionStore | SessionStore.SessionIndex,
  ConfigError.ConfigError | SessionStoreError,
  SqlClient.SqlClient
> => Layer.unwrapEffect(Effect.map(Config.unwrap(options), layer))
