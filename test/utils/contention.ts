/**
 * Stores described by plain data, for the contention tests and
 * `bench/contention.ts`: every `storeLayer(spec)` is a layer with its own
 * client (its own instance, for memory), so that several of them on one
 * backend behave like the stores of separate processes. A benchmark's child
 * process builds its store from the same spec, passed as JSON.
 *
 * No vitest import here: the benchmark loads this module outside vitest.
 */
import { HttpRouter, HttpServerResponse } from "@effect/platform"
import { NodeContext } from "@effect/platform-node"
import * as SqlClient from "@effect/sql/SqlClient"
import { MysqlClient } from "@effect/sql-mysql2"
import { PgClient } from "@effect/sql-pg"
import { SqliteClient } from "@effect/sql-sqlite-node"
import { Effect, Layer, Schema } from "effect"
import { Redis } from "ioredis"
import { MongoClient } from "mongodb"
import { randomBytes } from "node:crypto"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import * as DynamoDbStore from "../../src/DynamoDbStore.js"
import * as FileSystemStore from "../../src/FileSystemStore.js"
import * as MemcachedStore from "../../src/MemcachedStore.js"
import * as MemoryStore from "../../src/MemoryStore.js"
import * as MongoStore from "../../src/MongoStore.js"
import * as RedisStore from "../../src/RedisStore.js"
import * as Session from "../../src/Session.js"
import type { SessionIndex, SessionStore } from "../../src/SessionStore.js"
import * as SqlStore from "../../src/SqlStore.js"
import { clientOptions, startDynalite } from "./dynalite.js"

/** Where a store keeps its sessions: enough to build another instance of it. */
export type StoreSpec =
  | { readonly kind: "memory" }
  | { readonly kind: "files"; readonly directory: string }
  | { readonly kind: "redis"; readonly host: string; readonly port: number; readonly prefix: string }
  | { readonly kind: "pg" | "mysql"; readonly table: string }
  | { readonly kind: "sqlite"; readonly filename: string; readonly table: string }
  | { readonly kind: "memcached"; readonly servers: string; readonly prefix: string }
  | { readonly kind: "dynamodb"; readonly endpoint: string; readonly tableName: string }
  | { readonly kind: "mongo"; readonly url: string; readonly database: string; readonly collection: string }

/** A spec of a store that provides `SessionIndex`. */
export type IndexedStoreSpec = Exclude<StoreSpec, { readonly kind: "memcached" }>

// the servers of the development machines (DESIGN §7)
const pg = { host: "127.0.0.1", port: 5432, database: "test", username: "postgres" } as const
const mysql = { host: "127.0.0.1", port: 3306, database: "test", username: "root" } as const
const redis = { host: "127.0.0.1", port: 6379 } as const
const memcached = process.env.MEMCACHED_URL?.replace(/^memcached?:\/\//, "") ?? "127.0.0.1:11211"

// Several instances share one database server: a small pool each keeps
// 4 instances (and the other suites of a run) within its connection limit.
const sqlClient = (spec: Extract<StoreSpec, { readonly kind: "pg" | "mysql" | "sqlite" }>) => {
  switch (spec.kind) {
    case "pg":
      return PgClient.layer({ ...pg, maxConnections: 8 })
    case "mysql":
      return MysqlClient.layer({ ...mysql, maxConnections: 8 })
    case "sqlite":
      return SqliteClient.layer({ filename: spec.filename })
  }
}

/** A new instance of the store and its index, with its own client. */
export const indexedStoreLayer = (
  spec: IndexedStoreSpec
): Layer.Layer<SessionStore | SessionIndex, unknown> => {
  switch (spec.kind) {
    case "memory":
      return MemoryStore.layer()
    case "files":
      return FileSystemStore.layer({ directory: spec.directory }).pipe(Layer.provide(NodeContext.layer))
    case "redis":
      return RedisStore.layer({ host: spec.host, port: spec.port, prefix: spec.prefix })
    case "pg":
    case "mysql":
    case "sqlite":
      return SqlStore.layer({ table: spec.table }).pipe(Layer.provide(sqlClient(spec)))
    case "dynamodb":
      return DynamoDbStore.layer({ ...clientOptions(spec.endpoint), tableName: spec.tableName })
    case "mongo":
      return MongoStore.layer({ url: spec.url, database: spec.database, collection: spec.collection })
  }
}

/** A new instance of the store, with its own client. */
export const storeLayer = (spec: StoreSpec): Layer.Layer<SessionStore, unknown> =>
  spec.kind === "memcached"
    ? MemcachedStore.layer({ servers: spec.servers, prefix: spec.prefix })
    : indexedStoreLayer(spec)

/** A backend ready for instances: its spec, and how to remove what the run left there. */
export interface Prepared<S extends StoreSpec = StoreSpec> {
  readonly spec: S
  readonly close: () => Promise<void>
}

export interface Backend<S extends StoreSpec = StoreSpec> {
  readonly name: string
  /** Whether separate processes can share it (every store but memory). */
  readonly shared: boolean
  /** Whether it provides `SessionIndex` (`revokeAll`, `list`). Default true. */
  readonly indexed?: boolean | undefined
  /** The server to probe before running its suite; none for embedded stores. */
  readonly server?: { readonly host: string; readonly port: number } | undefined
  /** Gated on an environment variable (MongoDB: no server runs on these machines). */
  readonly gate?: { readonly variable: string } | undefined
  /** Sets the backend up for a run (a unique prefix, table or directory). */
  readonly prepare: () => Promise<Prepared<S>>
}

const unique = (label: string) => `${label}_${randomBytes(4).toString("hex")}`

const run = <A, E>(effect: Effect.Effect<A, E>): Promise<A> => Effect.runPromise(effect)

/** Builds one instance and closes it: creates what the store creates on start (a table). */
const initialize = (spec: StoreSpec) => run(Effect.scoped(Layer.build(storeLayer(spec))))

const dropTable = (spec: Extract<StoreSpec, { readonly kind: "pg" | "mysql" | "sqlite" }>) =>
  run(
    Effect.flatMap(SqlClient.SqlClient, (sql) => sql`DROP TABLE IF EXISTS ${sql(spec.table)}`).pipe(
      Effect.provide(sqlClient(spec)),
      Effect.scoped
    )
  )

const temporaryDirectory = (label: string) => mkdtempSync(join(tmpdir(), `effect-session-${label}-`))

const sqlBackend = (
  name: string,
  kind: "pg" | "mysql",
  server: { readonly host: string; readonly port: number }
): Backend<IndexedStoreSpec> => ({
  name,
  shared: true,
  server,
  prepare: async () => {
    const spec = { kind, table: unique("effect_sessions_contention") } as const
    await initialize(spec)
    return { spec, close: async () => void (await dropTable(spec)) }
  }
})

/** Every store of the project, each with its real server. */
export const backends: ReadonlyArray<Backend> = [
  {
    name: "MemoryStore",
    shared: false,
    prepare: async () => ({ spec: { kind: "memory" }, close: async () => {} })
  },
  {
    name: "FileSystemStore",
    shared: true,
    prepare: async () => {
      const directory = temporaryDirectory("contention")
      return {
        spec: { kind: "files", directory },
        close: async () => rmSync(directory, { recursive: true, force: true })
      }
    }
  },
  {
    name: "RedisStore",
    shared: true,
    server: redis,
    prepare: async () => {
      const prefix = `test:${unique("contention")}:`
      return {
        spec: { kind: "redis", ...redis, prefix },
        close: async () => {
          const admin = new Redis({ ...redis, lazyConnect: true })
          try {
            let cursor = "0"
            do {
              const [next, keys] = await admin.scan(cursor, "MATCH", `${prefix}*`, "COUNT", 1000)
              if (keys.length > 0) await admin.del(...keys)
              cursor = next
            } while (cursor !== "0")
          } finally {
            await admin.quit()
          }
        }
      }
    }
  },
  sqlBackend("SqlStore (PostgreSQL)", "pg", pg),
  sqlBackend("SqlStore (MariaDB/MySQL)", "mysql", mysql),
  {
    name: "SqlStore (SQLite file)",
    shared: true,
    prepare: async () => {
      const directory = temporaryDirectory("contention-sqlite")
      const spec = { kind: "sqlite", filename: join(directory, "sessions.db"), table: "effect_sessions" } as const
      await initialize(spec)
      return { spec, close: async () => rmSync(directory, { recursive: true, force: true }) }
    }
  },
  {
    name: "MemcachedStore",
    shared: true,
    indexed: false,
    server: {
      host: memcached.slice(0, memcached.lastIndexOf(":")),
      port: Number(memcached.slice(memcached.lastIndexOf(":") + 1))
    },
    // items expire with the sessions' short idle timeout (see `counterOptions`)
    prepare: async () => ({
      spec: { kind: "memcached", servers: memcached, prefix: `effect-session-test:${unique("contention")}:` },
      close: async () => {}
    })
  },
  {
    name: "DynamoDbStore (dynalite)",
    shared: true,
    prepare: async () => {
      const server = await startDynalite()
      const tableName = unique("effect_sessions_contention")
      try {
        await run(
          Effect.scoped(Layer.build(DynamoDbStore.layer({ ...clientOptions(server.endpoint), tableName, createTable: true })))
        )
      } catch (error) {
        await server.close()
        throw error
      }
      return { spec: { kind: "dynamodb", endpoint: server.endpoint, tableName }, close: server.close }
    }
  },
  {
    name: "MongoStore",
    shared: true,
    gate: { variable: "MONGODB_URL" },
    prepare: async () => {
      const url = process.env.MONGODB_URL
      if (url === undefined) throw new Error("MONGODB_URL is not set")
      const spec = {
        kind: "mongo",
        url,
        database: process.env.MONGODB_DATABASE ?? "effect_session_test",
        collection: unique("sessions_contention")
      } as const
      return {
        spec,
        close: async () => {
          const client = await new MongoClient(url).connect()
          try {
            await client.db(spec.database).collection(spec.collection).drop().catch(() => undefined)
          } finally {
            await client.close()
          }
        }
      }
    }
  }
]

/** The session the contention tests and benchmark increment. */
export class CounterSession extends Session.Tag<CounterSession>()("test/CounterSession", {
  // no default: a session holding 0 is not the empty session, and is stored
  counter: Schema.optional(Schema.Number)
}) {}

/** Short-lived sessions: what a run leaves on a server expires soon. */
export const counterOptions: Session.Options = { cookie: { secure: false }, idleTimeout: "10 minutes" }

/**
 * `/start` stores a session (counter 0), `/incr` increments it and answers
 * the value it saw, `/counter` reads it. `beforeIncrement` runs in `/incr`
 * before the session is touched (a test's barrier).
 */
export const counterApp = <E, R>(beforeIncrement: Effect.Effect<void, E, R>, options: Session.Options = counterOptions) =>
  HttpRouter.empty.pipe(
    HttpRouter.get("/start", Effect.as(CounterSession.set("counter", 0), HttpServerResponse.text("0"))),
    HttpRouter.get(
      "/incr",
      Effect.gen(function*() {
        yield* beforeIncrement
        yield* CounterSession.update("counter", (n) => (n ?? 0) + 1)
        return HttpServerResponse.text(String((yield* CounterSession.get("counter")) ?? 0))
      })
    ),
    HttpRouter.get("/counter", Effect.map(CounterSession.get("counter"), (n) => HttpServerResponse.text(String(n ?? 0)))),
    CounterSession.middleware(options)
  )
