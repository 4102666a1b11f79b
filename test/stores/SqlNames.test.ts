/**
 * The table name on a client with a query-name transform: the store uses
 * the name as configured, for its table, its indexes and every statement.
 * (Before, the DDL and the `.values` reads went through the client's
 * transform while the `.raw` writes did not, so a table named in camelCase
 * on a client with `transformQueryNames: String.camelToSnake` was created
 * as `app_sessions` and every insert failed with "no such table:
 * appSessions".)
 */
import * as SqlClient from "@effect/sql/SqlClient"
import { SqliteClient } from "@effect/sql-sqlite-node"
import { expect, it } from "@effect/vitest"
import { Effect, Option, String } from "effect"
import * as SessionId from "../../src/SessionId.js"
import { SessionIndex, SessionStore } from "../../src/SessionStore.js"
import * as SqlStore from "../../src/SqlStore.js"

const key = SessionId.unsafeStorageKey("B".repeat(43))
const write = { data: new Uint8Array([123, 125]), expiresAt: 60_000, principal: Option.some("ann") }

it.effect("with transformQueryNames, the store's table and statements use the table name as configured", () =>
  Effect.gen(function*() {
    const { index, store } = yield* Effect.all({ store: SessionStore, index: SessionIndex }).pipe(
      Effect.provide(SqlStore.layer({ table: "appSessions" }))
    )
    yield* store.insert(key, write)
    expect(yield* store.update(key, write, 1)).toBe(2)
    expect(Option.map(yield* store.load(key), (record) => record.version)).toEqual(Option.some(2))
    expect(yield* index.keys("ann")).toEqual([key])
    const sql = yield* SqlClient.SqlClient
    const names = yield* sql.unsafe("SELECT type, name FROM sqlite_master ORDER BY name").values
    expect(names).toEqual([["table", "appSessions"], ["index", "appSessions_expires_at_idx"], [
      "index",
      "appSessions_principal_idx"
    ]])
    expect(yield* index.removeAll("ann")).toBe(1)
    expect(yield* sql.unsafe("SELECT COUNT(*) FROM \"appSessions\"").values).toEqual([[0]])
  }).pipe(
    Effect.provide(SqliteClient.layer({
      filename: ":memory:",
      transformQueryNames: String.camelToSnake,
      transformResultNames: String.snakeToCamel
    }))
  ))
