/**
 * Scale benchmark of the server stores: RedisStore, and SqlStore on
 * PostgreSQL and MariaDB, called directly (no HTTP) with 1k, 10k and 100k
 * live sessions, 10% of them bound to principals that hold 10 sessions
 * each, plus one principal holding 1,000. Prints a Markdown table; figures
 * are microseconds per operation, sequential (one fiber, one round trip at a
 * time), against local servers shared with whatever else the machine runs.
 *
 *   npx tsx bench/scale-servers.ts
 *
 * Settings, by environment variable:
 *   STORES=redis,pg,mariadb   which stores (default all three)
 *   SIZES=1000,10000,100000   live sessions per run (default)
 *   REDIS_URL                 default redis://127.0.0.1:6379 (keys under a random prefix, deleted after)
 *   PG / MYSQL                the servers of the test suite (127.0.0.1:5432 db test user postgres,
 *                             127.0.0.1:3306 db test user root); a table of its own per run, dropped after
 *
 * Method: one unreported run of 1,000 per store (warm-up), then per size:
 * populate — Redis through the store's own `insert` (64 in flight,
 * so the principal index is built as in production; its rate is printed),
 * SQL with multi-row INSERTs into the store's table, never analysed (the
 * state a fresh deployment is in). Then: `load` of 2,000 random live keys,
 * `update` of 1,000 random anonymous sessions, `insert` of 1,000 new
 * sessions bound to existing principals and of 320 bound to the principal
 * with 1,000, `touch` of 500 sessions with a
 * principal, `keys` of 200 principals (10 sessions each), `keys` and
 * `removeAll` of the principal with 1,000 (then 1,320) sessions, and `removeAll` of 50
 * principals (10 sessions each; at 1k, the 10 there are).
 */
import { MysqlClient } from "@effect/sql-mysql2"
import { PgClient } from "@effect/sql-pg"
import * as SqlClient from "@effect/sql/SqlClient"
import type { Layer } from "effect"
import { Context, Effect, Option } from "effect"
import { Redis } from "ioredis"
import { randomBytes } from "node:crypto"
import { TextWrite } from "../src/internal/text.js"
import * as RedisStore from "../src/RedisStore.js"
import type { StorageKey } from "../src/SessionId.js"
import * as SessionId from "../src/SessionId.js"
import { SessionIndex, SessionStore } from "../src/SessionStore.js"
import * as SqlStore from "../src/SqlStore.js"

const storesWanted = (process.env.STORES ?? "redis,pg,mariadb").split(",")
const sizes = (process.env.SIZES ?? "1000,10000,100000").split(",").map(Number)
const redisUrl = process.env.REDIS_URL ?? "redis://127.0.0.1:6379"

const hour = 3_600_000
const perPrincipal = 10
const heavySessions = 1000

interface Row {
  readonly store: string
  readonly live: number
  readonly populate: string
  readonly load: number
  readonly update: number
  readonly insert: number
  readonly insertHeavy: number
  readonly touch: number
  readonly keys: number
  readonly keysHeavy: number
  readonly removeAllHeavy: number
  readonly removeAll: number
}

const newKey = (): StorageKey => SessionId.storageKey(SessionId.unsafeGenerate())

// about 200 bytes of JSON, different for every session
const sessionText = (i: number) =>
  JSON.stringify({ cart: [i % 97, i % 89, i % 83], theme: i % 2 === 0 ? "dark" : "light", seen: i }).padEnd(200, " ")

const microsPer = <A, E, R>(count: number, run: (i: number) => Effect.Effect<A, E, R>) =>
  Effect.gen(function*() {
    const start = performance.now()
    for (let i = 0; i < count; i++) yield* run(i)
    return ((performance.now() - start) * 1000) / count
  })

/** The sessions of one run: which are anonymous, which belong to whom. */
const plan = (live: number) => {
  const keys = Array.from({ length: live }, newKey)
  const bound = Math.floor(live / 10)
  const principals = Math.max(1, Math.floor(bound / perPrincipal))
  // session i < bound belongs to principal i % principals
  const principalOf = (i: number) => i < bound ? Option.some(`user-${i % principals}`) : Option.none<string>()
  return { keys, bound, principals, principalOf }
}

type Plan = ReturnType<typeof plan>

const measure = (name: string, live: number, p: Plan, populate: string) =>
  Effect.gen(function*() {
    const store = yield* SessionStore
    const index = yield* SessionIndex
    const t = Date.now()
    const random = (n: number) => Math.floor(Math.random() * n)
    const anonymous = (i: number) => p.keys[p.bound + ((i * 7919) % (live - p.bound))]!

    const load = yield* microsPer(2000, () => store.load(p.keys[random(live)]!))
    // distinct anonymous sessions, each at version 1
    const update = yield* microsPer(Math.min(1000, live - p.bound), (i) =>
      store.update(anonymous(i), new TextWrite(sessionText(i), t + hour, Option.none()), 1))
    const insert = yield* microsPer(1000, (i) =>
      store.insert(newKey(), new TextWrite(sessionText(i), t + hour, Option.some(`user-${i % p.principals}`))))
    // into the index of a principal holding 1,000 sessions: 320 inserts, ten
    // times the 32 after which the earlier set layout read every member
    const insertHeavy = yield* microsPer(320, (i) =>
      store.insert(newKey(), new TextWrite(sessionText(i), t + hour, Option.some("heavy"))))
    const touch = yield* microsPer(500, (i) => store.touch(p.keys[i % p.bound]!, t + 2 * hour))
    const keys = yield* microsPer(200, (i) => index.keys(`user-${(i * 37) % p.principals}`))
    const keysHeavy = yield* microsPer(5, () => index.keys("heavy"))
    const removeAllHeavy = yield* microsPer(1, () => index.removeAll("heavy"))
    // distinct principals, none listed above by keys first (i * 37 covers them all)
    const removeAll = yield* microsPer(Math.min(50, p.principals), (i) => index.removeAll(`user-${p.principals - 1 - i}`))
    return {
      store: name,
      live,
      populate,
      load,
      update,
      insert,
      insertHeavy,
      touch,
      keys,
      keysHeavy,
      removeAllHeavy,
      removeAll
    } satisfies Row
  })

// ------------------------------------------------------------------- Redis

const redisRun = (live: number) =>
  Effect.gen(function*() {
    const prefix = `bench:scale:${randomBytes(4).toString("hex")}:`
    const admin = new Redis(redisUrl)
    yield* Effect.addFinalizer(() =>
      Effect.promise(async () => {
        let cursor = "0"
        do {
          const [next, keys] = await admin.scan(cursor, "MATCH", `${prefix}*`, "COUNT", 5000)
          if (keys.length > 0) await admin.unlink(...keys)
          cursor = next
        } while (cursor !== "0")
        await admin.quit()
      })
    )
    const context = yield* RedisStore.make({ url: redisUrl, prefix }).pipe(
      Effect.map(({ index, store }) => Context.make(SessionStore, store).pipe(Context.add(SessionIndex, index)))
    )
    const p = plan(live)
    const t = Date.now()
    const store = Context.get(context, SessionStore)
    const start = performance.now()
    yield* Effect.forEach(
      p.keys,
      (key, i) => store.insert(key, new TextWrite(sessionText(i), t + hour, p.principalOf(i))),
      { concurrency: 64, discard: true }
    )
    const rate = live / ((performance.now() - start) / 1000)
    yield* Effect.forEach(
      Array.from({ length: heavySessions }, newKey),
      (key, i) => store.insert(key, new TextWrite(sessionText(i), t + hour, Option.some("heavy"))),
      { concurrency: 64, discard: true }
    )
    return yield* Effect.provide(measure("redis", live, p, `${Math.round(rate)} inserts/s`), context)
  }).pipe(Effect.scoped)

// --------------------------------------------------------------------- SQL

const sqlRun = (name: string, client: Layer.Layer<SqlClient.SqlClient, unknown>, live: number) =>
  Effect.gen(function*() {
    const table = `bench_scale_${randomBytes(4).toString("hex")}`
    const sql = yield* SqlClient.SqlClient
    yield* Effect.addFinalizer(() => Effect.orDie(sql`DROP TABLE IF EXISTS ${sql(table)}`))
    const { index, store } = yield* SqlStore.make({ table, cleanupInterval: "1 day" })
    const p = plan(live)
    const t = Date.now()
    if (name === "postgresql") yield* sql`ALTER TABLE ${sql(table)} SET (autovacuum_enabled = false)`
    const row = (key: string, i: number, principal: Option.Option<string>) => ({
      storage_key: key,
      data: Buffer.from(sessionText(i)),
      version: 1,
      expires_at: t + hour,
      principal: Option.getOrNull(principal)
    })
    const start = performance.now()
    const rows = [
      ...p.keys.map((key, i) => row(key, i, p.principalOf(i))),
      ...Array.from({ length: heavySessions }, (_, i) => row(newKey(), i, Option.some("heavy")))
    ]
    for (let i = 0; i < rows.length; i += 1000) {
      yield* sql`INSERT INTO ${sql(table)} ${sql.insert(rows.slice(i, i + 1000))}`
    }
    const populate = `${((performance.now() - start) / 1000).toFixed(1)} s bulk`
    const context = Context.make(SessionStore, store).pipe(Context.add(SessionIndex, index))
    return yield* Effect.provide(measure(name, live, p, populate), context)
  }).pipe(Effect.scoped, Effect.provide(client))

const pg = PgClient.layer({ host: "127.0.0.1", port: 5432, database: "test", username: "postgres" })
const mariadb = MysqlClient.layer({ host: "127.0.0.1", port: 3306, database: "test", username: "root" })

// --------------------------------------------------------------------- run

const format = (micros: number) => micros >= 10_000 ? `${(micros / 1000).toFixed(1)} ms` : `${Math.round(micros)} µs`

const main = Effect.gen(function*() {
  const rows: Array<Row> = []
  const runsOf = (live: number): Array<[string, Effect.Effect<Row, unknown>]> =>
    [
      ["redis", redisRun(live)],
      ["pg", sqlRun("postgresql", pg, live)],
      ["mariadb", sqlRun("mariadb", mariadb, live)]
    ]
  // one unreported run of 1,000 per store first: the code paths are compiled
  // by then, and the first reported row is not the JIT's warm-up
  for (const [name, run] of runsOf(1000)) if (storesWanted.includes(name)) yield* run
  for (const live of sizes) {
    for (const [name, run] of runsOf(live)) {
      if (!storesWanted.includes(name)) continue
      const row = yield* run
      console.error(`${row.store} ${row.live}: ${JSON.stringify(row)}`)
      rows.push(row)
    }
  }
  const header = [
    "store",
    "live sessions",
    "populate",
    "load",
    "update",
    "insert (principal of 10)",
    "insert (principal of 1,000)",
    "touch (principal)",
    "keys (10)",
    "keys (1,320)",
    "removeAll (1,320)",
    "removeAll (10)"
  ]
  console.log(`| ${header.join(" | ")} |`)
  console.log(`|${header.map(() => "---").join("|")}|`)
  for (const row of [...rows].sort((a, b) => a.store.localeCompare(b.store) || a.live - b.live)) {
    console.log(
      `| ${
        [
          row.store,
          row.live.toLocaleString("en"),
          row.populate,
          format(row.load),
          format(row.update),
          format(row.insert),
          format(row.insertHeavy),
          format(row.touch),
          format(row.keys),
          format(row.keysHeavy),
          format(row.removeAllHeavy),
          format(row.removeAll)
        ].join(" | ")
      } |`
    )
  }
})

Effect.runPromise(main).catch((error: unknown) => {
  console.error(error)
  process.exitCode = 1
})
