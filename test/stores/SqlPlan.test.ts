import * as SqlClient from "@effect/sql/SqlClient"
import * as Statement from "@effect/sql/Statement"
import { expect, it } from "@effect/vitest"
import { Effect, Option, TestClock } from "effect"
import * as SessionId from "../../src/SessionId.js"
import { SessionIndex, SessionStore } from "../../src/SessionStore.js"
import * as SqlStore from "../../src/SqlStore.js"
import { describeBackend } from "../utils/backend.js"
import { sharedClient, sqlBackends, uniqueTable } from "../utils/sql.js"

// Issue 15, item 3: `keys(principal)` must use the principal index alone on
// a large table that has never been analysed. The statements the store
// really sends are captured (a statement transformer) and EXPLAINed.

const rows = 100_000
const backends = (await sqlBackends()).filter((backend) =>
  backend.name === "SqlStore (PostgreSQL)" || backend.name === "SqlStore (MariaDB/MySQL)"
)

/** Runs `effect`, returning the SQL and parameters of every statement it sent. */
const captured = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.gen(function*() {
    const statements: Array<readonly [string, ReadonlyArray<unknown>]> = []
    yield* Statement.withTransformer(effect, (self) =>
      Effect.sync(() => {
        statements.push(self.compile())
        return self
      }))
    return statements
  })

interface PgPlan {
  readonly "Node Type": string
  readonly "Index Name"?: string
  readonly Plans?: ReadonlyArray<PgPlan>
}
const pgNodes = (plan: PgPlan): Array<PgPlan> => [plan, ...(plan.Plans ?? []).flatMap(pgNodes)]

const digits = "(SELECT 0 AS d UNION ALL SELECT 1 UNION ALL SELECT 2 UNION ALL SELECT 3 UNION ALL SELECT 4 " +
  "UNION ALL SELECT 5 UNION ALL SELECT 6 UNION ALL SELECT 7 UNION ALL SELECT 8 UNION ALL SELECT 9)"

for (const backend of backends) {
  const pg = backend.name.includes("PostgreSQL")
  describeBackend(`${backend.name}: query plans`, backend.availability, () => {
    const tables = [uniqueTable("plan"), uniqueTable("planstale")]
    const provideClient = sharedClient(backend, tables)

    // n rows numbered from `from`; every tenth bound to one of `principals`
    // principals ("user-<m>")
    const insertRows = (table: string, from: number, n: number, expiresAt: number, principals: number) =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const t = sql(table)
        const ten = sql.literal(digits)
        if (pg) {
          yield* sql`INSERT INTO ${t} (storage_key, data, version, expires_at, principal)
SELECT 'k' || i, '\\x7b7d'::bytea, 1, ${expiresAt}::bigint + i,
  CASE WHEN i % 10 = 0 THEN 'user-' || ((i / 10) % ${principals}::int) END
FROM generate_series(${from}::int, ${from + n - 1}::int) AS i`
          return
        }
        yield* sql`INSERT INTO ${t} (storage_key, data, version, expires_at, principal)
SELECT CONCAT('k', n), '{}', 1, ${expiresAt} + n, CASE WHEN n % 10 = 0 THEN CONCAT('user-', (n DIV 10) % ${principals}) END
FROM (SELECT ${from} + a.d + 10 * b.d + 100 * c.d + 1000 * d.d + 10000 * e.d AS n
  FROM ${ten} a, ${ten} b, ${ten} c, ${ten} d, ${ten} e) AS numbers
WHERE n < ${from + n}`
      })

    // The table as a deployment has it: created by the store, never analysed
    // (autovacuum off for it on PostgreSQL), or analysed once while it held
    // 1,000 sessions (the sessions of ten principals, all expired since) and
    // not since. Then 100,000 live sessions, 10% of them bound to 1,000
    // principals, and one principal with a single session.
    const fill = (table: string, t0: number, analysedSmall: boolean) =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        if (pg) yield* sql`ALTER TABLE ${sql(table)} SET (autovacuum_enabled = false)`
        if (analysedSmall) {
          yield* insertRows(table, rows + 1, 1000, t0 - 3_600_000, 10)
          yield* pg ? sql`ANALYZE ${sql(table)}` : sql`ANALYZE TABLE ${sql(table)}`
        }
        yield* insertRows(table, 1, rows, t0 + 3_600_000, 1000)
        const [[count]] = yield* sql`SELECT COUNT(*) FROM ${sql(table)}`.values
        expect(Number(count)).toBe(rows + (analysedSmall ? 1000 : 0))
      })

    /** The indexes a statement's plan reads, and whether it scans the table. */
    const planOf = (statement: readonly [string, ReadonlyArray<unknown>]) =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const [text, params] = statement
        if (pg) {
          const result = yield* sql.unsafe<{ readonly "QUERY PLAN": ReadonlyArray<{ readonly Plan: PgPlan }> }>(
            `EXPLAIN (FORMAT JSON) ${text}`,
            params
          )
          const nodes = pgNodes(result[0]!["QUERY PLAN"][0]!.Plan)
          return {
            indexes: [...new Set(nodes.flatMap((node) => node["Index Name"] === undefined ? [] : [node["Index Name"]]))],
            scansTable: nodes.some((node) => node["Node Type"] === "Seq Scan"),
            plan: nodes.map((node) => `${node["Node Type"]}${node["Index Name"] ? ` on ${node["Index Name"]}` : ""}`)
          }
        }
        const result = yield* sql.unsafe<{ readonly key: string | null; readonly type: string }>(`EXPLAIN ${text}`, params)
        return {
          indexes: [...new Set(result.flatMap((row) => row.key === null ? [] : row.key.split(",")))],
          scansTable: result.some((row) => row.type === "ALL" || row.type === "index_merge"),
          plan: result.map((row) => `${row.type} ${row.key}`)
        }
      })

    for (const [table, analysedSmall] of [[tables[0]!, false], [tables[1]!, true]] as const) {
      const state = analysedSmall ? "analysed when it held 1,000 rows" : "never analysed"
      it.effect(`keys and removeAll read the principal index alone on ${rows.toLocaleString("en")} rows, ${state}`, () =>
        Effect.gen(function*() {
          const t0 = Date.now()
          yield* TestClock.setTime(t0)
          yield* Effect.gen(function*() {
            const store = yield* SessionStore
            const index = yield* SessionIndex
            yield* fill(table, t0, analysedSmall)
            const single = `single-${table}`
            const key = SessionId.storageKey(SessionId.unsafeGenerate())
            yield* store.insert(key, {
              data: new TextEncoder().encode("{}"),
              expiresAt: t0 + 60_000,
              principal: Option.some(single)
            })

            const statements = [
              ...yield* captured(index.keys(single)),
              // a principal the old statistics know, with live sessions now
              ...yield* captured(index.keys("user-1")),
              ...yield* captured(index.removeAll("user-2"))
            ]
            expect(statements.length).toBe(pg ? 3 : 4)
            for (const statement of statements) {
              const plan = yield* planOf(statement)
              expect(plan.indexes, `${statement[0]}: ${plan.plan.join(" / ")}`).toEqual([`${table}_principal_idx`])
              expect(plan.scansTable, `${statement[0]}: ${plan.plan.join(" / ")}`).toBe(false)
            }
            // and the answers are right
            expect(yield* index.keys(single)).toEqual([key])
            expect((yield* index.keys("user-1")).length).toBe(rows / 10 / 1000)
          }).pipe(Effect.provide(SqlStore.layer({ table })))
        }).pipe(provideClient), 120_000)
    }
  })
}
