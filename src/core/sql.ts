/**
 * The SQL store's protocol, shared by the Effect 3 and Effect 4 lines: the
 * table and its indexes per dialect, the text of every statement with the
 * order of its parameters, the checks a principal passes before any
 * statement, how a row becomes a record and how a driver's result tells how
 * many rows a statement matched. Plain data and pure functions: the shells
 * run the text on their SQL client and map the outcomes to their errors.
 *
 * @internal
 */
import { Buffer } from "node:buffer"

/**
 * The databases the store speaks to; the names are `@effect/sql`'s
 * `Statement.Dialect` values, so a shell passes its client's dialect as is.
 *
 * @internal
 */
export type SqlDialect = "pg" | "mysql" | "sqlite"

/** @internal */
export const defaultTable = "effect_sessions"

/** @internal */
export const defaultCleanupBatchSize = 1000

/**
 * The option that names the table, as both lines' `SqlStore` take it (for
 * the layer, `ensureTable` and `migrations`).
 *
 * @internal
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
 * The options of a SQL store, as both lines' `SqlStore` take them, `D`
 * being the line's duration input: each line's `Options` extends them.
 *
 * @internal
 */
export interface StoreOptions<D> extends TableOptions {
  /**
   * Create the table and its indexes when the layer starts, if they do not
   * exist (idempotent). Set it to `false` when the schema is managed by
   * migrations (see `migrations`). Default `true`.
   */
  readonly createTable?: boolean | undefined
  /** How often expired rows are deleted. Default 5 minutes (jittered). */
  readonly cleanupInterval?: D | undefined
  /**
   * The most rows one cleanup statement deletes; a sweep runs batch after
   * batch until one comes back short. Default 1000.
   */
  readonly cleanupBatchSize?: number | undefined
}

/**
 * The cases of a SQL client's `onDialectOrElse` that name its dialect as
 * `storeSetup` takes it (an unsupported one as `""`).
 *
 * @internal
 */
export const dialectName = {
  orElse: () => "",
  pg: () => "pg",
  mysql: () => "mysql",
  sqlite: () => "sqlite"
}

/**
 * A safe table name. At most 48 characters: the index names append up to
 * 15 to it (`_expires_at_idx`) and stay within every dialect's identifier
 * limit (PostgreSQL's 63 is the smallest). Nothing but letters, digits and `_`: the name is spliced
 * into statement text, so quoting it must never need escaping.
 *
 * @internal
 */
const identifierPattern = /^[A-Za-z_][A-Za-z0-9_]{0,47}$/

/**
 * The principal column's size on MySQL/MariaDB: `VARCHAR(255)`, in
 * characters (PostgreSQL and SQLite use `TEXT`, without a limit).
 *
 * @internal
 */
const mysqlPrincipalLength = 255

/**
 * Why a table name is refused, or `undefined` when it is safe to splice
 * into statement text.
 *
 * @internal
 */
export const tableNameProblem = (table: string): string | undefined =>
  identifierPattern.test(table)
    ? undefined
    : `table name ${JSON.stringify(table)} is not a safe identifier (letters, digits and _, at most 48 characters)`

/**
 * Why a cleanup batch size is refused, or `undefined`. The size is spliced
 * into the cleanup statement's text (`LIMIT n`), so it must be a plain
 * positive integer.
 *
 * @internal
 */
export const cleanupBatchSizeProblem = (batchSize: number): string | undefined =>
  Number.isSafeInteger(batchSize) && batchSize >= 1
    ? undefined
    : `cleanupBatchSize must be a positive integer, got ${batchSize}`

/**
 * A store's settings, checked before any statement: the table name, the
 * client's dialect (`@effect/sql`'s name for it) and the cleanup batch size,
 * with their defaults; or the first problem found, for the setup error.
 *
 * The table name is used as configured, whatever name transform the SQL
 * client applies to its own queries: the statements are this text, sent
 * as it is.
 *
 * @internal
 */
export const storeSetup = (
  dialect: string,
  options: TableOptions & Pick<StoreOptions<unknown>, "cleanupBatchSize"> | undefined
):
  | { readonly dialect: SqlDialect; readonly table: string; readonly batchSize: number }
  | { readonly problem: Error } =>
{
  const table = options?.table ?? defaultTable
  const batchSize = options?.cleanupBatchSize ?? defaultCleanupBatchSize
  const tableProblem = tableNameProblem(table)
  if (tableProblem !== undefined) return { problem: new Error(tableProblem) }
  if (dialect !== "pg" && dialect !== "mysql" && dialect !== "sqlite") {
    return { problem: new Error("the SqlClient's dialect is not supported: use PostgreSQL, MySQL/MariaDB or SQLite") }
  }
  const batchProblem = cleanupBatchSizeProblem(batchSize)
  return batchProblem === undefined ? { dialect, table, batchSize } : { problem: new Error(batchProblem) }
}

/**
 * A name as the dialect quotes identifiers (the quoting `@effect/sql`'s
 * compilers use). Quoted, a name keeps its case on PostgreSQL and never
 * collides with a keyword. Only for names `tableNameProblem` accepted.
 *
 * @internal
 */
export const quoteIdentifier = (dialect: SqlDialect, name: string): string =>
  dialect === "mysql" ? `\`${name}\`` : `"${name}"`

/**
 * A statement ready for a client's "unsafe" call: its text with the
 * dialect's placeholders (`$1`… on PostgreSQL, `?` elsewhere) and the
 * function putting the named values in placeholder order.
 *
 * @internal
 */
export interface SqlStatement<Input> {
  readonly text: string
  /** The value names, in placeholder order. */
  readonly order: ReadonlyArray<string>
  readonly params: (input: Input) => ReadonlyArray<unknown>
}

/**
 * `:name` marks a parameter in the statement sources below (no statement
 * uses `::` casts or other colons).
 *
 * @internal
 */
const parameterMark = /:([A-Za-z][A-Za-z0-9]*)/g

/**
 * Compiles a statement written with named parameters to the dialect's
 * placeholders; the order comes from the text itself, so the two cannot
 * drift apart. A value missing from the input is a bug in the caller: it
 * throws rather than binding `undefined`.
 *
 * @internal
 */
export const compileStatement = <Input extends object>(dialect: SqlDialect, source: string): SqlStatement<Input> => {
  const order: Array<string> = []
  const text = source.replace(parameterMark, (_, name: string) => {
    order.push(name)
    return dialect === "pg" ? `$${order.length}` : "?"
  })
  return {
    text,
    order,
    params: (input) =>
      order.map((name) => {
        if (!(name in input)) throw new Error(`SQL statement parameter ${name} was not given`)
        return (input as Record<string, unknown>)[name]
      })
  }
}

/**
 * The DDL of the session table, one statement per element (SQLite prepares
 * one statement at a time). On PostgreSQL the shell runs them in one
 * transaction after `schemaLock`, so instances starting together do not
 * race on `CREATE TABLE IF NOT EXISTS`.
 *
 * @internal
 */
export const schemaStatements = (dialect: SqlDialect, table: string): ReadonlyArray<string> => {
  const t = quoteIdentifier(dialect, table)
  const expiresIndex = quoteIdentifier(dialect, `${table}_expires_at_idx`)
  const principalIndex = quoteIdentifier(dialect, `${table}_principal_idx`)
  switch (dialect) {
    // the key and the principal compare byte for byte: base64url keys that
    // differ only in case are different sessions, so no *_ci collation
    case "mysql":
      return [`CREATE TABLE IF NOT EXISTS ${t} (
  storage_key VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  data LONGBLOB NOT NULL,
  version INTEGER NOT NULL,
  expires_at BIGINT NOT NULL,
  principal VARCHAR(${mysqlPrincipalLength}) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NULL,
  PRIMARY KEY (storage_key),
  INDEX ${expiresIndex} (expires_at),
  INDEX ${principalIndex} (principal)
) ENGINE=InnoDB`]
    case "pg":
      return [
        `CREATE TABLE IF NOT EXISTS ${t} (
  storage_key VARCHAR(64) PRIMARY KEY,
  data BYTEA NOT NULL,
  version INTEGER NOT NULL,
  expires_at BIGINT NOT NULL,
  principal TEXT
)`,
        `CREATE INDEX IF NOT EXISTS ${expiresIndex} ON ${t} (expires_at)`,
        `CREATE INDEX IF NOT EXISTS ${principalIndex} ON ${t} (principal) WHERE principal IS NOT NULL`
      ]
    case "sqlite":
      return [
        `CREATE TABLE IF NOT EXISTS ${t} (
  storage_key TEXT PRIMARY KEY NOT NULL,
  data BLOB NOT NULL,
  version INTEGER NOT NULL,
  expires_at INTEGER NOT NULL,
  principal TEXT
) WITHOUT ROWID`,
        `CREATE INDEX IF NOT EXISTS ${expiresIndex} ON ${t} (expires_at)`,
        `CREATE INDEX IF NOT EXISTS ${principalIndex} ON ${t} (principal) WHERE principal IS NOT NULL`
      ]
  }
}

/**
 * The PostgreSQL advisory lock taken before the DDL, one per table name.
 *
 * @internal
 */
export const schemaLock = (table: string): { readonly text: string; readonly params: ReadonlyArray<unknown> } => ({
  text: "SELECT pg_advisory_xact_lock(hashtext($1))",
  params: [`effect-session:${table}`]
})

/**
 * How the table is created on `dialect`: the DDL, and the lock to take first
 * in the same transaction (PostgreSQL only: there `CREATE TABLE IF NOT
 * EXISTS` races between instances starting together), or none: the DDL then
 * runs on its own.
 *
 * @internal
 */
export const schemaSetup = (dialect: SqlDialect, table: string): {
  readonly statements: ReadonlyArray<string>
  readonly lock: { readonly text: string; readonly params: ReadonlyArray<unknown> } | undefined
} => ({ statements: schemaStatements(dialect, table), lock: dialect === "pg" ? schemaLock(table) : undefined })

/**
 * The id of the table's migration for `Migrator.fromRecord` (`<id>_<name>`,
 * numbered from 1; later versions append entries, never change them).
 *
 * @internal
 */
export const migrationName = (table: string): string => `1_create_${table}`

/** @internal */
export interface RowInput {
  readonly key: string
  readonly data: Uint8Array
  readonly expiresAt: number
  readonly principal: string | null
  readonly now: number
}

/** @internal */
export interface KeyInput {
  readonly key: string
  readonly now: number
}

/** @internal */
export interface PrincipalInput {
  readonly principal: string
  readonly now: number
}

/**
 * Every statement of the store on one table. The inputs are the store's own
 * values; the conversions a driver needs (bytes as a Node `Buffer`, the
 * principal's byte length on MySQL) happen in `params`.
 *
 * @internal
 */
export interface SessionStatements {
  /** Columns `data, version, expires_at, principal` of the live row (see `decodeRow`). */
  readonly load: SqlStatement<KeyInput>
  /**
   * PostgreSQL and SQLite: one upsert that overwrites only an expired row;
   * a live row makes it touch nothing and match 0 rows (`Exists`). MySQL: a
   * plain insert, the primary key being the arbiter (see `mysqlInsert`).
   */
  readonly insert: SqlStatement<RowInput>
  /** MySQL only: deletes the key's row if it has expired, before the insert is retried. */
  readonly deleteExpiredKey: SqlStatement<KeyInput>
  /** The compare-and-set: matches 1 row when the version is still `expectedVersion`. */
  readonly update: SqlStatement<RowInput & { readonly expectedVersion: number }>
  /** After a failed update only: a row means `VersionMismatch`, none `Missing`. */
  readonly liveVersion: SqlStatement<KeyInput>
  readonly touch: SqlStatement<KeyInput & { readonly expiresAt: number }>
  readonly remove: SqlStatement<{ readonly key: string }>
  /** Column `storage_key` of the principal's live rows. */
  readonly keys: SqlStatement<PrincipalInput>
  /**
   * PostgreSQL and SQLite: deletes the principal's rows returning
   * `expires_at` (count the live ones with `liveRows`). MySQL has no
   * `RETURNING`: this deletes the live rows (count them by matched rows),
   * then `removeAllExpired` the rest.
   */
  readonly removeAll: SqlStatement<PrincipalInput>
  /** MySQL only: the second statement of `removeAll`. */
  readonly removeAllExpired: SqlStatement<PrincipalInput>
  /** Deletes at most `batchSize` expired rows; its matched rows say how many went. */
  readonly cleanupBatch: SqlStatement<{ readonly now: number }>
}

/**
 * The bytes go to the drivers as a Node Buffer, the binary type each of
 * them documents; no copy: the Buffer shares the view's memory.
 *
 * @internal
 */
const asBuffer = (bytes: Uint8Array): Buffer => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)

/**
 * Every statement of the store on `table` for `dialect`, its cleanup
 * deleting `batchSize` rows at most. `table` and `batchSize` must have
 * passed `tableNameProblem` and `cleanupBatchSizeProblem`.
 *
 * @internal
 */
export const statements = (dialect: SqlDialect, table: string, batchSize: number): SessionStatements => {
  const t = quoteIdentifier(dialect, table)
  const mysql = dialect === "mysql"
  const compile = <Input extends object>(source: string) => compileStatement<Input>(dialect, source)
  const withBuffer = <Input extends RowInput>(statement: SqlStatement<Input>): SqlStatement<Input> => ({
    ...statement,
    params: (input) => statement.params({ ...input, data: asBuffer(input.data) })
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
  const ofPrincipal = mysql
    ? "principal = :principal AND LENGTH(principal) = :principalBytes"
    : "principal = :principal"
  const byPrincipal = (source: string): SqlStatement<PrincipalInput> => {
    const statement = compile<PrincipalInput & { readonly principalBytes: number }>(source)
    return {
      ...statement,
      params: (input) => statement.params({ ...input, principalBytes: Buffer.byteLength(input.principal, "utf8") })
    }
  }
  const insertRow = `INSERT INTO ${t} (storage_key, data, version, expires_at, principal)
VALUES (:key, :data, 1, :expiresAt, :principal)`
  const limit = String(batchSize)
  // PostgreSQL: two instances sweeping at once skip each other's rows
  // instead of waiting on them
  const skipLocked = dialect === "pg" ? " FOR UPDATE SKIP LOCKED" : ""
  return {
    load: compile(`SELECT data, version, expires_at, principal FROM ${t}
WHERE storage_key = :key AND expires_at > :now`),
    insert: withBuffer(compile(
      mysql ? insertRow : `${insertRow}
ON CONFLICT (storage_key) DO UPDATE SET
  data = excluded.data, version = 1, expires_at = excluded.expires_at, principal = excluded.principal
WHERE ${t}.expires_at <= :now`
    )),
    deleteExpiredKey: compile(`DELETE FROM ${t} WHERE storage_key = :key AND expires_at <= :now`),
    update: withBuffer(compile(`UPDATE ${t} SET data = :data, version = version + 1,
  expires_at = :expiresAt, principal = :principal
WHERE storage_key = :key AND version = :expectedVersion AND expires_at > :now`)),
    liveVersion: compile(`SELECT version FROM ${t} WHERE storage_key = :key AND expires_at > :now`),
    touch: compile(`UPDATE ${t} SET expires_at = :expiresAt WHERE storage_key = :key AND expires_at > :now`),
    remove: compile(`DELETE FROM ${t} WHERE storage_key = :key`),
    keys: byPrincipal(`SELECT storage_key FROM ${t} WHERE ${ofPrincipal} AND expires_at + 0 > :now`),
    removeAll: byPrincipal(
      mysql
        ? `DELETE FROM ${t} WHERE ${ofPrincipal} AND expires_at + 0 > :now`
        // `now` is not needed in the text: the returned expiries are
        // compared with it (`liveRows`); it is accepted for one input shape
        : `DELETE FROM ${t} WHERE ${ofPrincipal} RETURNING expires_at`
    ),
    removeAllExpired: byPrincipal(`DELETE FROM ${t} WHERE ${ofPrincipal} AND expires_at + 0 <= :now`),
    cleanupBatch: compile(
      mysql
        ? `DELETE FROM ${t} WHERE expires_at <= :now LIMIT ${limit}`
        : `DELETE FROM ${t} WHERE storage_key IN (
  SELECT storage_key FROM ${t} WHERE expires_at <= :now LIMIT ${limit}${skipLocked})`
    )
  }
}

/**
 * How many times a MySQL insert is retried after a deadlock, and why the
 * MySQL insert runs as it does. MySQL has no conditional
 * upsert whose outcome is unambiguous: with CLIENT_FOUND_ROWS (mysql2's
 * default) `ON DUPLICATE KEY UPDATE` reports 1 both for a new row and for a
 * live row left unchanged. A plain INSERT is the arbiter instead — the
 * primary key admits one row — and only when it meets a row is an expired
 * one deleted (`deleteExpiredKey`) and the INSERT run once more; a second
 * duplicate means a live row: `Exists`. InnoDB may pick one of several
 * sessions racing on one key as a deadlock victim; it rolled that statement
 * back, so the whole insert is retried, `deadlockRetries` times at most.
 *
 * @internal
 */
export const mysqlDeadlockRetries = 3

/** @internal */
const hasMysqlError = (cause: unknown, errno: number, code: string): boolean =>
  typeof cause === "object" && cause !== null &&
  (("errno" in cause && cause.errno === errno) || ("code" in cause && cause.code === code))

/**
 * Whether a driver error (the `cause` of `@effect/sql`'s `SqlError`) is
 * MySQL's duplicate-key error.
 *
 * @internal
 */
export const isDuplicateKey = (cause: unknown): boolean => hasMysqlError(cause, 1062, "ER_DUP_ENTRY")

/**
 * Whether a driver error is MySQL's deadlock error (the statement was
 * rolled back and may be retried).
 *
 * @internal
 */
export const isDeadlock = (cause: unknown): boolean => hasMysqlError(cause, 1213, "ER_LOCK_DEADLOCK")

/**
 * What an update that matched no row means, from `liveVersion`'s rows.
 *
 * @internal
 */
export const updateConflict = (liveRows: number): "VersionMismatch" | "Missing" =>
  liveRows > 0 ? "VersionMismatch" : "Missing"

/**
 * The error a principal is refused with before any statement, or
 * `undefined`. It must be a string: the types say so, but an application
 * may forward unvalidated JSON (the drivers used with `@effect/sql` bind an
 * object as one value today, but mysql's text protocol, for one, expands an
 * object into `key = value` SQL, and nothing should depend on that). On
 * MySQL/MariaDB it must fit the column, which would otherwise cut it or
 * refuse it depending on the SQL mode.
 *
 * @internal
 */
export const principalProblem = (dialect: SqlDialect, table: string, principal: unknown): Error | undefined => {
  if (typeof principal !== "string") {
    return new TypeError(`the principal must be a string, got ${principal === null ? "null" : typeof principal}`)
  }
  if (dialect !== "mysql") return undefined
  // the column counts characters (code points), not UTF-16 units
  let length = 0
  for (const _ of principal) if (++length > mysqlPrincipalLength) break
  return length > mysqlPrincipalLength
    ? new RangeError(
      `the principal is longer than the ${mysqlPrincipalLength} characters the principal column of ${table} holds`
    )
    : undefined
}

/**
 * A safe integer from a driver's value: BIGINT columns come back as a
 * number, a bigint or a string depending on the driver and its options.
 *
 * @internal
 */
const asSafeInteger = (value: unknown): number | undefined => {
  const n = typeof value === "number"
    ? value
    : typeof value === "bigint" || typeof value === "string"
    ? Number(value)
    : NaN
  return Number.isSafeInteger(n) ? n : undefined
}

/** @internal */
const hasField = <K extends string>(value: unknown, field: K): value is { readonly [P in K]: unknown } =>
  typeof value === "object" && value !== null && field in value

/**
 * The error of a statement whose result says nothing of the rows it
 * matched: the store cannot tell success from conflict, so it fails.
 *
 * @internal
 */
export const noRowCount = (): Error => new Error("the driver did not report an affected-row count")

/**
 * The number of rows a statement matched, from each driver's result:
 * node-postgres `rowCount`, better-sqlite3 `changes`, mysql2 `affectedRows`
 * — or, for a MySQL `UPDATE`, the "Rows matched" of its info line, because
 * `affectedRows` counts only changed rows when the connection is opened
 * without `CLIENT_FOUND_ROWS`. `undefined` when the result says neither.
 *
 * @internal
 */
export const matchedRows = (dialect: SqlDialect, result: unknown): number | undefined => {
  switch (dialect) {
    case "pg":
      return hasField(result, "rowCount") ? asSafeInteger(result.rowCount) : undefined
    case "sqlite":
      return hasField(result, "changes") ? asSafeInteger(result.changes) : undefined
    case "mysql": {
      if (hasField(result, "info") && typeof result.info === "string") {
        const matched = /Rows matched:\s*(\d+)/i.exec(result.info)
        if (matched !== null) return Number(matched[1])
      }
      return hasField(result, "affectedRows") ? asSafeInteger(result.affectedRows) : undefined
    }
  }
}

/**
 * A loaded row's fields, checked.
 *
 * @internal
 */
export interface SessionRow {
  readonly data: Uint8Array
  readonly version: number
  readonly expiresAt: number
  readonly principal: string | null
}

/** @internal */
export const unexpectedRow = (table: string): Error => new Error(`the row of ${table} has unexpected column types`)

/**
 * The record of a `load` row (`data, version, expires_at, principal`), or
 * `undefined` when a column is not what the table holds: bytes, safe
 * integers (drivers give BIGINT as a string or a bigint), a string or NULL.
 *
 * @internal
 */
export const decodeRow = (row: ReadonlyArray<unknown>): SessionRow | undefined => {
  const [data, version, expiresAt, principal] = row
  const v = asSafeInteger(version)
  const e = asSafeInteger(expiresAt)
  if (!(data instanceof Uint8Array) || v === undefined || e === undefined) return undefined
  if (principal !== null && typeof principal !== "string") return undefined
  return { data, version: v, expiresAt: e, principal }
}

/**
 * How many of the rows `removeAll` returned (`expires_at`) were live at
 * `now`: the count a revocation reports.
 *
 * @internal
 */
export const liveRows = (rows: ReadonlyArray<ReadonlyArray<unknown>>, now: number): number =>
  rows.filter((row) => (asSafeInteger(row[0]) ?? 0) > now).length

/**
 * Whether a sweep runs another batch: until one comes back short. "Now" is
 * read once per sweep, so rows that expire during it wait for the next.
 *
 * @internal
 */
export const sweepContinues = (removed: number, batchSize: number): boolean => removed >= batchSize

/**
 * One statement an operation sends, and how the shell reads its answer:
 * `values` (the rows, as arrays) or `raw` (the driver's result, from which
 * the core reads the matched rows).
 *
 * @internal
 */
export interface SqlCall {
  readonly text: string
  readonly params: ReadonlyArray<unknown>
  readonly read: "values" | "raw"
}

/**
 * What a statement answered: its result, or the shell's error for it along
 * with the driver's own error inside (which the core reads: duplicate key,
 * deadlock) — the shell's error is what a failure carries.
 *
 * @internal
 */
export type SqlAnswer =
  | { readonly _tag: "Answered"; readonly result: unknown }
  | { readonly _tag: "Failed"; readonly error: unknown; readonly driverError: unknown }

/** @internal */
export type SqlConflictReason = "Exists" | "VersionMismatch" | "Missing"

/**
 * What `insert` and `update` are given: the row, with the principal as the
 * application passed it — `undefined` for an anonymous session, anything
 * else checked by `principalProblem` before any statement.
 *
 * @internal
 */
export interface WriteInput extends Omit<RowInput, "principal"> {
  readonly principal: unknown
}

/**
 * Where a store operation is: a statement to run, with what to do with its
 * answer, or the outcome; `C` the conflicts the operation can end in. A shell runs the steps on its
 * client until an outcome; every rule of the operation (which statement,
 * what its answer means, what to try next) is here, once for both lines.
 *
 * @internal
 */
export type SqlStep<A, C extends SqlConflictReason = never> =
  | { readonly _tag: "Run"; readonly call: SqlCall; readonly next: (answer: SqlAnswer) => SqlStep<A, C> }
  | { readonly _tag: "Done"; readonly value: A }
  | { readonly _tag: "Conflict"; readonly reason: C }
  /** The shell's error of a statement, or the core's (a refused principal, an unreadable answer). */
  | { readonly _tag: "Fail"; readonly cause: unknown }

/**
 * Every operation of the store as steps, on one table: the statements of
 * `statements`, the principal checks before them, the MySQL insert with its
 * duplicate-key and deadlock rules, and how each answer is read.
 *
 * @internal
 */
export interface SessionOperations {
  /** The live row of the key, or `undefined`. */
  readonly load: (input: KeyInput) => SqlStep<SessionRow | undefined>
  readonly insert: (input: WriteInput) => SqlStep<void, "Exists">
  /** The new version. */
  readonly update: (
    input: WriteInput & { readonly expectedVersion: number }
  ) => SqlStep<number, "VersionMismatch" | "Missing">
  /** Whether a live row was there. */
  readonly touch: (input: KeyInput & { readonly expiresAt: number }) => SqlStep<boolean>
  readonly remove: (input: { readonly key: string }) => SqlStep<void>
  /** The storage keys of the principal's live rows. */
  readonly keys: (input: PrincipalInput) => SqlStep<ReadonlyArray<string>>
  /** How many of the principal's rows were live. */
  readonly removeAll: (input: PrincipalInput) => SqlStep<number>
  /** One cleanup batch: how many expired rows went (see `sweepContinues`). */
  readonly cleanupBatch: (input: { readonly now: number }) => SqlStep<number>
}

/**
 * The operations of the store on `table` for `dialect`; `table` and
 * `batchSize` must have passed `storeSetup`.
 *
 * @internal
 */
export const sessionOperations = (dialect: SqlDialect, table: string, batchSize: number): SessionOperations => {
  const s = statements(dialect, table, batchSize)
  const done = <A>(value: A): SqlStep<A> => ({ _tag: "Done", value })
  const fail = (cause: unknown): SqlStep<never> => ({ _tag: "Fail", cause })
  const run = <I, A, C extends SqlConflictReason>(
    statement: SqlStatement<I>,
    input: I,
    read: SqlCall["read"],
    onResult: (result: unknown) => SqlStep<A, C>,
    onError: (error: unknown, driverError: unknown) => SqlStep<A, C> = fail
  ): SqlStep<A, C> => ({
    _tag: "Run",
    call: { text: statement.text, params: statement.params(input), read },
    next: (answer) => answer._tag === "Answered" ? onResult(answer.result) : onError(answer.error, answer.driverError)
  })
  const rows = <I, A, C extends SqlConflictReason>(
    statement: SqlStatement<I>,
    input: I,
    then: (rows: ReadonlyArray<ReadonlyArray<unknown>>) => SqlStep<A, C>
  ) => run(statement, input, "values", (result) => then(result as ReadonlyArray<ReadonlyArray<unknown>>))
  const count = <I, A, C extends SqlConflictReason>(
    statement: SqlStatement<I>,
    input: I,
    then: (count: number) => SqlStep<A, C>
  ) =>
    run(statement, input, "raw", (result) => {
      const n = matchedRows(dialect, result)
      return n === undefined ? fail(noRowCount()) : then(n)
    })
  const checked = <A, C extends SqlConflictReason>(principal: unknown, then: () => SqlStep<A, C>) => {
    const problem = principalProblem(dialect, table, principal)
    return problem === undefined ? then() : fail(problem)
  }
  // anonymous writes, the most, pay nothing for it
  const checkedWrite = <I extends WriteInput, A, C extends SqlConflictReason>(
    input: I,
    then: (row: I & RowInput) => SqlStep<A, C>
  ) =>
    input.principal === undefined
      ? then({ ...input, principal: null })
      : checked(input.principal, () => then(input as I & RowInput))
  const exists: SqlStep<never, "Exists"> = { _tag: "Conflict", reason: "Exists" }
  // see mysqlDeadlockRetries: a plain INSERT decides; a duplicate deletes an
  // expired row and inserts once more; a deadlock anywhere starts again
  const mysqlInsert = (input: RowInput, attempt: number): SqlStep<void, "Exists"> => {
    const again = (error: unknown, driverError: unknown) =>
      isDeadlock(driverError) && attempt < mysqlDeadlockRetries ? mysqlInsert(input, attempt + 1) : fail(error)
    const inserted = () => done(undefined)
    return run(s.insert, input, "raw", inserted, (error, driverError) =>
      isDuplicateKey(driverError)
        ? run(s.deleteExpiredKey, input, "raw", () =>
          run(s.insert, input, "raw", inserted, (e, d) => isDuplicateKey(d) ? exists : again(e, d)), again)
        : again(error, driverError))
  }
  return {
    load: (input) =>
      rows(s.load, input, ([found]) => {
        if (found === undefined) return done(undefined)
        const row = decodeRow(found)
        return row === undefined ? fail(unexpectedRow(table)) : done(row)
      }),
    insert: (input) =>
      checkedWrite(input, (row) =>
        dialect === "mysql"
          ? mysqlInsert(row, 0)
          // one upsert that overwrites only an expired row; 0 rows: a live one is there
          : count(s.insert, row, (n) => n === 0 ? exists : done(undefined))),
    update: (input) =>
      checkedWrite(input, (row) =>
        count(s.update, row, (n) =>
          n > 0
            ? done(row.expectedVersion + 1)
            // only on conflict: tell a newer version from a missing record
            : rows(s.liveVersion, row, (live) => ({ _tag: "Conflict", reason: updateConflict(live.length) })))),
    touch: (input) => count(s.touch, input, (n) => done(n > 0)),
    remove: (input) => run(s.remove, input, "raw", () => done(undefined)),
    keys: (input) =>
      checked(input.principal, () => rows(s.keys, input, (found) => done(found.map((row) => String(row[0]))))),
    removeAll: (input) =>
      checked(input.principal, () =>
        dialect === "mysql"
          // the live rows (counted), then the expired ones: the two sets are
          // disjoint, so a session created in between is either counted and
          // removed or left alone
          ? count(s.removeAll, input, (live) => count(s.removeAllExpired, input, () => done(live)))
          : rows(s.removeAll, input, (gone) => done(liveRows(gone, input.now)))),
    cleanupBatch: (input) => count(s.cleanupBatch, input, done)
  }
}

// -- what both shells do with the operations

/**
 * What a SQL store's `make` builds, as both lines declare it: `Store` and
 * `Index` are the line's services, `Sweep` its effect answering a count
 * (parameters, so that the core does not import Effect).
 *
 * @internal
 */
export interface StoreParts<Store, Index, Sweep> {
  readonly store: Store
  readonly index: Index
  /**
   * One sweep, as the cleanup fiber runs it: deletes the rows expired by
   * `Clock`'s now in batches and returns how many went. For a maintenance
   * command or an external scheduler.
   */
  readonly sweep: Sweep
}

/** `cleanupInterval`'s default, in milliseconds (5 minutes). @internal */
export const defaultCleanupInterval = 5 * 60_000

/**
 * Whether the layer creates the table when it starts: unless `createTable`
 * is `false`.
 *
 * @internal
 */
export const createsTable = (options: Pick<StoreOptions<unknown>, "createTable"> | undefined): boolean =>
  options?.createTable ?? true

/**
 * A session as the store's `insert` and `update` are given it: its bytes,
 * its expiry and its principal as the application passed it (`undefined`
 * for an anonymous session).
 *
 * @internal
 */
export interface SessionWrite {
  readonly data: Uint8Array
  readonly expiresAt: number
  readonly principal: unknown
}

/**
 * The operations with the arguments of the store's and the index's methods,
 * `now` being the clock's when the method is called: a shell maps each
 * method to one of these and runs the steps it gives.
 *
 * @internal
 */
export interface StoreSteps {
  readonly load: (key: string, now: number) => SqlStep<SessionRow | undefined>
  readonly insert: (key: string, write: SessionWrite, now: number) => SqlStep<void, "Exists">
  readonly update: (
    key: string,
    write: SessionWrite,
    expectedVersion: number,
    now: number
  ) => SqlStep<number, "VersionMismatch" | "Missing">
  readonly touch: (key: string, expiresAt: number, now: number) => SqlStep<boolean>
  readonly remove: (key: string) => SqlStep<void>
  readonly keys: (principal: string, now: number) => SqlStep<ReadonlyArray<string>>
  readonly removeAll: (principal: string, now: number) => SqlStep<number>
  readonly cleanupBatch: (now: number) => SqlStep<number>
}

/**
 * `sessionOperations` for the store's methods; `table` and `batchSize` must
 * have passed `storeSetup`.
 *
 * @internal
 */
export const storeSteps = (dialect: SqlDialect, table: string, batchSize: number): StoreSteps => {
  const operations = sessionOperations(dialect, table, batchSize)
  const row = (key: string, write: SessionWrite, now: number): WriteInput => ({
    key,
    now,
    data: write.data,
    expiresAt: write.expiresAt,
    principal: write.principal
  })
  return {
    load: (key, now) => operations.load({ key, now }),
    insert: (key, write, now) => operations.insert(row(key, write, now)),
    update: (key, write, expectedVersion, now) => operations.update({ ...row(key, write, now), expectedVersion }),
    touch: (key, expiresAt, now) => operations.touch({ key, expiresAt, now }),
    remove: (key) => operations.remove({ key }),
    keys: (principal, now) => operations.keys({ principal, now }),
    removeAll: (principal, now) => operations.removeAll({ principal, now }),
    cleanupBatch: (now) => operations.cleanupBatch({ now })
  }
}

/**
 * What a shell does at each kind of step, `R` being its effect of the
 * operation's outcome: give the value, fail with the conflict or with the
 * cause, or run the statement and go on with `answered` (its result) or
 * `failed` (the shell's error, and the driver's inside it).
 *
 * @internal
 */
export interface StepRunner<A, C extends SqlConflictReason, R> {
  readonly done: (value: A) => R
  readonly conflict: (reason: C) => R
  readonly fail: (cause: unknown) => R
  readonly run: (call: SqlCall, answered: (result: unknown) => R, failed: (error: unknown, driverError: unknown) => R) => R
}

/**
 * Runs an operation's steps to the runner's effect of its outcome; the
 * runner only says how a statement is run and how an outcome is told.
 *
 * @internal
 */
export const runSteps = <A, C extends SqlConflictReason, R>(step: SqlStep<A, C>, runner: StepRunner<A, C, R>): R => {
  switch (step._tag) {
    case "Done":
      return runner.done(step.value)
    case "Conflict":
      return runner.conflict(step.reason)
    case "Fail":
      return runner.fail(step.cause)
    case "Run": {
      const { call, next } = step
      return runner.run(
        call,
        (result) => runSteps(next({ _tag: "Answered", result }), runner),
        (error, driverError) => runSteps(next({ _tag: "Failed", error, driverError }), runner)
      )
    }
  }
}
