/**
 * The principal statements of SqlStore (`keys`, `removeAll`) read the
 * principal index alone on a table of 100,000 live sessions, whatever the
 * planner's statistics say: never analysed, or analysed once while the
 * table was small. The statements the store really sends are captured
 * through `Statement.CurrentTransformer` and EXPLAINed on PostgreSQL and
 * MariaDB (SQLite's planner does not weigh statistics it was never given).
 */
import { expect, it } from "@effect/vitest"
import { Effect, Option } from "effect"
import { SqlClient, Statement } from "effect/sql"
import { TestClock } from "effect/testing"
import * as Ids from "../../src/core/ids.js"
import type { StorageKey } from "../src/SessionId.js"
import { SessionIndex, SessionStore } from "../src/SessionStore.js"
import * as SqlStore from "../src/SqlStore.js"
import { describeBackend, sharedClient, sqlBackends, uniqueTable } from "./utils/sql.js"

const live = 100_000
const principals = 1_000
const storageKey = Ids.storageKeyFunction()

/** `effect` and the SQL with the parameters of every statement it sent. */
const sentBy = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.gen(function*() {
    const sent: Array<readonly [string, ReadonlyArray<unknown>]> = []
    yield* Effect.provideService(effect, Statement.CurrentTransformer, (statement) =>
      Effect.sync(() => {
        sent.push(statement.compile())
        return statement
      }))
    return sent
  })

interface PgNode {
  readonly "Node Type": string
  readonly "Index Name"?: string
  readonly Plans?: ReadonlyArray<PgNode>
}
const nodesOf = (node: PgNode): ReadonlyArray<PgNode> => [node, ...(node.Plans ?? []).flatMap(nodesOf)]

/** What a plan reads: its indexes, and whether it scans the whole table. */
interface Plan {
  readonly indexes: ReadonlyArray<string>
  readonly fullScan: boolean
  readonly summary: string
}

for (const backend of (await sqlBackends()).filter((b) => b.name.endsWith("@effect/sql-pg)") || b.name.endsWith("SqlMysql)"))) {
  const pg = backend.dialect === "pg"
  describeBackend(`${backend.name}: query plans`, backend, () => {
    const fresh = uniqueTable("plan")
    const stale = uniqueTable("planstale")
    const provideClient = sharedClient(backend, [fresh, stale])

    /**
     * Rows `first`..`first + count - 1` (keys `r<i>`), expiring at
     * `expiresAt + i`; every tenth bound to one of `owners` principals
     * (`user-<n>`), the rest anonymous.
     */
    const addRows = (table: string, first: number, count: number, expiresAt: number, owners: number) =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const last = first + count - 1
        if (pg) {
          return yield* sql`INSERT INTO ${sql(table)} (storage_key, data, version, expires_at, principal)
SELECT 'r' || i, '\\x7b7d'::bytea, 1, ${expiresAt}::bigint + i,
  CASE WHEN i % 10 = 0 THEN 'user-' || ((i / 10) % ${owners}::int) END
FROM generate_series(${first}::int, ${last}::int) AS i`
        }
        // MariaDB's sequence engine numbers the rows
        return yield* sql`INSERT INTO ${sql(table)} (storage_key, data, version, expires_at, principal)
SELECT CONCAT('r', seq), '{}', 1, ${expiresAt} + seq,
  IF(seq % 10 = 0, CONCAT('user-', (seq DIV 10) % ${owners}), NULL)
FROM ${sql.literal(`seq_${first}_to_${last}`)}`
      })

    const explain = (statement: readonly [string, ReadonlyArray<unknown>]) =>
      Effect.gen(function*(): Effect.fn.Return<Plan, unknown, SqlClient.SqlClient> {
        const sql = yield* SqlClient.SqlClient
        const [text, params] = statement
        if (pg) {
          const [row] = yield* sql.unsafe<{ readonly "QUERY PLAN": unknown }>(`EXPLAIN (FORMAT JSON) ${text}`, params)
          const json = row!["QUERY PLAN"]
          const [top] = (typeof json === "string" ? JSON.parse(json) : json) as ReadonlyArray<{ readonly Plan: PgNode }>
          const nodes = nodesOf(top!.Plan)
          return {
            indexes: [...new Set(nodes.flatMap((node) => node["Index Name"] ?? []))],
            fullScan: nodes.some((node) => node["Node Type"] === "Seq Scan"),
            summary: nodes.map((node) => `${node["Node Type"]} ${node["Index Name"] ?? ""}`).join(" / ")
          }
        }
        const rows = yield* sql.unsafe<{ readonly key: string | null; readonly type: string }>(`EXPLAIN ${text}`, params)
        return {
          indexes: [...new Set(rows.flatMap((row) => row.key === null ? [] : row.key.split(",")))],
          fullScan: rows.some((row) => row.type === "ALL" || row.type === "index_merge"),
          summary: rows.map((row) => `${row.type} ${row.key}`).join(" / ")
        }
      })

    for (const [table, analysed] of [[fresh, false], [stale, true]] as const) {
      it.effect(
        `keys and removeAll read the principal index alone on ${live.toLocaleString("en")} live rows, ${
          analysed ? "analysed when the table held 1,000 rows" : "never analysed"
        }`,
        () =>
          Effect.gen(function*() {
            const t0 = Date.now()
            yield* TestClock.setTime(t0)
            yield* Effect.gen(function*() {
              const sql = yield* SqlClient.SqlClient
              const store = yield* SessionStore
              const index = yield* SessionIndex
              if (pg) yield* sql`ALTER TABLE ${sql(table)} SET (autovacuum_enabled = false)`
              if (analysed) {
                // ten principals' sessions, all expired since the statistics were taken
                yield* addRows(table, live + 1, 1000, t0 - 3_600_000, 10)
                yield* pg ? sql`ANALYZE ${sql(table)}` : sql`ANALYZE TABLE ${sql(table)}`
              }
              yield* addRows(table, 1, live, t0 + 3_600_000, principals)
              const [[count]] = yield* sql`SELECT COUNT(*) FROM ${sql(table)}`.values
              expect(Number(count)).toBe(live + (analysed ? 1000 : 0))

              const lone = `lone-${table}`
              const key = storageKey(Ids.generateId()) as StorageKey
              yield* store.insert(key, { text: "{}", expiresAt: t0 + 60_000, principal: Option.some(lone) })
              const sent = [
                ...yield* sentBy(index.keys(lone)),
                // a principal the old statistics know, with live sessions now
                ...yield* sentBy(index.keys("user-1")),
                ...yield* sentBy(index.removeAll("user-2"))
              ]
              // MySQL's removeAll is two DELETEs (no RETURNING)
              expect(sent.length).toBe(pg ? 3 : 4)
              for (const statement of sent) {
                const plan = yield* explain(statement)
                expect(plan.indexes, `${statement[0]}: ${plan.summary}`).toEqual([`${table}_principal_idx`])
                expect(plan.fullScan, `${statement[0]}: ${plan.summary}`).toBe(false)
              }
              // and the answers are right
              expect(yield* index.keys(lone)).toEqual([key])
              expect((yield* index.keys("user-1")).length).toBe(live / 10 / principals)
              expect(yield* index.keys("user-2")).toEqual([])
            }).pipe(Effect.provide(SqlStore.layer({ table })))
          }).pipe(provideClient),
        180_000
      )
    }
  })
}
