/**
 * A store on `effect/sql`: PostgreSQL, MySQL / MariaDB and SQLite, through
 * whichever `SqlClient` the application provides (`PgClient.layer` of
 * `@effect/sql-pg`, or this package's `SqlMysql.layer` / `SqlSqlite.layer`).
 * One row per session; every write is a single conditional statement whose
 * matched-row count decides, so concurrent requests never lose an update.
 * Expired rows are deleted by a cleanup fiber in bounded batches.
 *
 * The table, the statements per dialect and how a row is read are the
 * core's (`src/core/sql.ts`), the same as the Effect 3 line's: both lines
 * share one table. See `docs/stores/sql.md`.
 *
 * @since 2.0.0
 */
import type { Scope } from "effect"
import { Clock, Config, Duration, Effect, Layer, Option, Schedule } from "effect"
import { SqlClient } from "effect/sql"
import type { SqlError } from "effect/sql/SqlError"
import * as Sql from "../../src/core/sql.js"
import { bytesWrite, textRecord } from "./internal/bytes.js"
import { storeAndIndex } from "./internal/layer.js"
import type { StoreOperation } from "./SessionError.js"
import { SessionConflict, SessionStoreError } from "./SessionError.js"
import * as SessionId from "./SessionId.js"
import * as SessionStore from "./SessionStore.js"

/**
 * @since 2.0.0
 * @category models
 */
export interface TableOptions extends Sql.TableOptions {}

/**
 * @since 2.0.0
 * @category models
 */
export interface Options extends Sql.StoreOptions<Duration.Input> {}

/**
 * What `make` builds: the store, its index, and the sweep the cleanup fiber
 * runs.
 *
 * @since 2.0.0
 * @category models
 */
export interface SqlStore extends
  Sql.StoreParts<
    SessionStore.SessionStore["Service"],
    SessionStore.SessionIndex["Service"],
    Effect.Effect<number, SessionStoreError>
  >
{}

const name = "sql"

const failure = (operation: StoreOperation) => (cause: unknown) => new SessionStoreError({ store: name, operation, cause })

/** The conflict an operation can end in: none when it has no conflict reasons. */
type ConflictOf<C extends Sql.SqlConflictReason> = [C] extends [never] ? never : SessionConflict

/** The client and the core's checked settings, or the setup error naming what is wrong. */
const setup = (options: TableOptions & { readonly cleanupBatchSize?: number | undefined } | undefined) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const settings = Sql.storeSetup(
      sql.onDialectOrElse(Sql.dialectName),
      options
    )
    if ("problem" in settings) return yield* Effect.fail(failure("setup")(settings.problem))
    return { sql, ...settings }
  })

/**
 * Creates the session table and its indexes if they do not exist. This is
 * what the layer runs when `createTable` is on; run it yourself (in a
 * migration, or use `migrations`) when it is off.
 *
 * On PostgreSQL it runs in a transaction under an advisory lock, so several
 * instances starting at once do not race on `CREATE TABLE IF NOT EXISTS`.
 *
 * @since 2.0.0
 * @category migrations
 */
export const ensureTable = (
  options?: TableOptions
): Effect.Effect<void, SqlError | SessionStoreError, SqlClient.SqlClient> =>
  Effect.gen(function*() {
    const { dialect, sql, table } = yield* setup(options)
    const { lock, statements } = Sql.schemaSetup(dialect, table)
    const ddl = Effect.forEach(statements, (text) => sql.unsafe(text), { discard: true })
    yield* lock === undefined ? ddl : sql.withTransaction(Effect.andThen(sql.unsafe(lock.text, lock.params), ddl))
  })

/**
 * The session table as migrations for `effect/sql`'s `Migrator`, for
 * applications that manage their schema and set `createTable: false`. The
 * keys follow `Migrator.fromRecord`'s `<id>_<name>` convention, numbered from
 * 1; later versions of this store append entries, never change them.
 *
 * ```ts
 * import { Layer } from "effect"
 * import { Migrator } from "effect/sql"
 * import * as SqlStore from "effect-session/SqlStore"
 *
 * // its own migrations table, so its ids never meet the application's
 * const MigrationsLive = Layer.effectDiscard(Migrator.make({})({
 *   loader: Migrator.fromRecord(SqlStore.migrations()),
 *   table: "effect_session_migrations"
 * }))
 * const StoreLive = SqlStore.layer({ createTable: false }).pipe(Layer.provide(MigrationsLive))
 * ```
 *
 * @since 2.0.0
 * @category migrations
 */
export const migrations = (
  options?: TableOptions
): Record<string, Effect.Effect<void, SqlError | SessionStoreError, SqlClient.SqlClient>> => ({
  [Sql.migrationName(options?.table ?? Sql.defaultTable)]: ensureTable(options)
})

/**
 * The store, its index and the sweep, on the `SqlClient` in context; the
 * cleanup fiber runs in the current scope. Fails with `SessionStoreError`
 * (operation `setup`) on an unsafe table name, an unsupported dialect, a
 * cleanup batch size that is not a positive integer, or when the table
 * cannot be created.
 *
 * @since 2.0.0
 * @category constructors
 */
export const make = Effect.fnUntraced(function*(
  options?: Options
): Effect.fn.Return<SqlStore, SessionStoreError, SqlClient.SqlClient | Scope.Scope> {
  const { batchSize, dialect, sql, table } = yield* setup(options)
  if (Sql.createsTable(options)) {
    yield* Effect.catchTag(ensureTable({ table }), "SqlError", (e) => Effect.fail(failure("setup")(e)))
  }

  const steps = Sql.storeSteps(dialect, table, batchSize)
  /** Runs an operation's steps on the client, to its outcome. */
  const perform = <A, C extends Sql.SqlConflictReason>(operation: StoreOperation, step: Sql.SqlStep<A, C>) =>
    Sql.runSteps<A, C, Effect.Effect<A, SessionStoreError | ConflictOf<C>>>(step, {
      done: Effect.succeed,
      // a step of an operation without conflicts (C = never) is never one
      conflict: (reason) => Effect.fail(new SessionConflict({ reason })) as Effect.Effect<never, ConflictOf<C>>,
      fail: (cause) => Effect.fail(failure(operation)(cause)),
      run: (call, answered, failed) => {
        const statement = sql.unsafe(call.text, call.params)
        return Effect.matchEffect(call.read === "values" ? statement.values : statement.raw, {
          onFailure: (error: SqlError) => failed(error, error.reason.cause),
          onSuccess: answered
        })
      }
    })
  const at = <A, E>(f: (now: number) => Effect.Effect<A, E>) => Effect.flatMap(Clock.currentTimeMillis, f)
  const store = SessionStore.make(name, {
    load: (key) =>
      at((t) => Effect.map(perform("load", steps.load(key, t)), (row) => Option.map(Option.fromUndefinedOr(row), textRecord))),
    insert: (key, write) => at((t) => perform("insert", steps.insert(key, bytesWrite(write), t))),
    update: (key, write, expectedVersion) => at((t) => perform("update", steps.update(key, bytesWrite(write), expectedVersion, t))),
    touch: (key, expiresAt) => at((t) => perform("touch", steps.touch(key, expiresAt, t))),
    remove: (key) => perform("remove", steps.remove(key))
  })
  const index = SessionStore.makeIndex(name, {
    keys: (principal) => at((t) => Effect.map(perform("keys", steps.keys(principal, t)), (keys) => keys.map(SessionId.storageKeyUnsafe))),
    removeAll: (principal) => at((t) => perform("removeAll", steps.removeAll(principal, t)))
  })
  // bounded statements keep each transaction and its locks short
  const sweep = at((t) => {
    const loop = (soFar: number): Effect.Effect<number, SessionStoreError> =>
      Effect.flatMap(perform("cleanup", steps.cleanupBatch(t)), (removed) =>
        Effect.logDebug(`${name} store: a cleanup batch removed ${removed} expired sessions`).pipe(
          Effect.annotateLogs({ "effect-session.store": name, "effect-session.removed": removed }),
          Effect.andThen(Sql.sweepContinues(removed, batchSize) ? loop(soFar + removed) : Effect.succeed(soFar + removed))
        ))
    return loop(0)
  }).pipe(Effect.withSpan("effect-session.cleanup", { attributes: { "effect-session.store": name } }))
  yield* forkSweeper(options?.cleanupInterval ?? Sql.defaultCleanupInterval, sweep)
  return { store, index, sweep }
})

/**
 * Runs `sweep` every `interval`, jittered so instances sharing a table do not
 * sweep in lockstep, in the current scope. A failed sweep is logged and the
 * next one runs as planned.
 */
const forkSweeper = (interval: Duration.Input, sweep: Effect.Effect<number, SessionStoreError>) =>
  sweep.pipe(
    Effect.catchCause((cause) => Effect.as(Effect.logWarning(`${name} store: expiry sweep failed`, cause), 0)),
    Effect.repeat(Schedule.jittered(Schedule.spaced(interval))),
    Effect.delay(interval),
    Effect.forkScoped,
    Effect.asVoid
  )

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
 * @since 2.0.0
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
 *   table: Config.String("SESSION_TABLE").pipe(Config.withDefault("effect_sessions")),
 *   cleanupInterval: Config.Duration("SESSION_CLEANUP_INTERVAL").pipe(Config.withDefault("5 minutes"))
 * })
 * ```
 *
 * @since 2.0.0
 * @category layers
 */
export const layerConfig = (
  options: Config.Wrap<Options>
): Layer.Layer<
  SessionStore.SessionStore | SessionStore.SessionIndex,
  Config.ConfigError | SessionStoreError,
  SqlClient.SqlClient
> => Layer.unwrap(Effect.map(Config.unwrap(options), layer))
