/**
 * The principal index of SqlStore on every backend: a principal matches
 * itself only (on MySQL/MariaDB the column's PAD SPACE collation would
 * otherwise match "alice" with "alice  "), a principal that is not a string
 * is refused before any statement, and on MySQL/MariaDB one longer than the
 * column is refused with a clear error instead of being cut.
 */
import { expect, it } from "@effect/vitest"
import { Clock, Effect, Option } from "effect"
import { SqlClient } from "effect/sql"
import { TestClock } from "effect/testing"
import * as Ids from "../../src/core/ids.js"
import { SessionStoreError } from "../src/SessionError.js"
import type { StorageKey } from "../src/SessionId.js"
import { SessionIndex, SessionStore } from "../src/SessionStore.js"
import * as SqlStore from "../src/SqlStore.js"
import { describeBackend, sharedClient, sqlBackends, uniqueTable } from "./utils/sql.js"

const minute = 60_000
const storageKey = Ids.storageKeyFunction()
const freshKey = () => storageKey(Ids.generateId()) as StorageKey
const sessionOf = (principal: string | undefined, expiresAt: number) => ({
  text: "{}",
  expiresAt,
  principal: Option.fromUndefinedOr(principal)
})

for (const backend of await sqlBackends()) {
  describeBackend(`${backend.name}: principals`, backend, () => {
    const table = uniqueTable("principal")
    const provideClient = sharedClient(backend, [table])
    const withStore = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
      Effect.andThen(TestClock.setTime(Date.now()), Effect.provide(effect, SqlStore.layer({ table })))

    it.effect("a principal matches itself only: trailing spaces, a tab, case, a leading space and a prefix are others", () =>
      Effect.gen(function*() {
        const store = yield* SessionStore
        const index = yield* SessionIndex
        const t = yield* Clock.currentTimeMillis
        const base = `alice-${freshKey().slice(0, 6)}`
        const lookAlikes = [`${base} `, `${base}  `, `${base}\t`, base.toUpperCase(), ` ${base}`, base.slice(0, -1)]
        const keyOf = new Map<string, StorageKey>()
        for (const principal of [base, ...lookAlikes]) {
          const key = freshKey()
          keyOf.set(principal, key)
          yield* store.insert(key, sessionOf(principal, t + minute))
        }
        for (const principal of [base, ...lookAlikes]) {
          expect(yield* index.keys(principal), JSON.stringify(principal)).toEqual([keyOf.get(principal)])
        }
        // revoking one principal leaves every look-alike's session
        expect(yield* index.removeAll(base)).toBe(1)
        expect(Option.isNone(yield* store.load(keyOf.get(base)!))).toBe(true)
        for (const principal of lookAlikes) {
          expect(yield* index.keys(principal), JSON.stringify(principal)).toEqual([keyOf.get(principal)])
          expect(Option.isSome(yield* store.load(keyOf.get(principal)!))).toBe(true)
        }
        expect(yield* index.removeAll(`${base}  `)).toBe(1)
        expect(yield* index.keys(`${base} `)).toEqual([keyOf.get(`${base} `)])
        // an expired session of a look-alike is not removed with the principal either
        const expired = freshKey()
        yield* store.insert(expired, sessionOf(`${base} `, t + 1000))
        yield* TestClock.adjust(2000)
        expect(yield* index.removeAll(base)).toBe(0)
        const sql = yield* SqlClient.SqlClient
        const rows = yield* sql`SELECT storage_key FROM ${sql(table)} WHERE storage_key = ${expired}`.values
        expect(rows.length).toBe(1)
      }).pipe(withStore, provideClient))

    it.effect("a principal that is not a string fails every operation with SessionStoreError before any SQL", () =>
      Effect.gen(function*() {
        const store = yield* SessionStore
        const index = yield* SessionIndex
        const t = yield* Clock.currentTimeMillis
        const victim = `victim-${freshKey().slice(0, 6)}`
        const kept = freshKey()
        yield* store.insert(kept, sessionOf(victim, t + minute))
        // what an application forwarding unvalidated JSON might pass
        for (const principal of [{ principal: 1 }, { $ne: null }, 1, null, [victim]] as ReadonlyArray<unknown>) {
          const wrong = principal as string
          const removed = yield* Effect.flip(index.removeAll(wrong))
          expect(removed).toBeInstanceOf(SessionStoreError)
          expect([removed.operation, removed.message]).toEqual(["removeAll", expect.stringMatching(/principal must be a string/)])
          expect((yield* Effect.flip(index.keys(wrong))).operation).toBe("keys")
          const key = freshKey()
          const wrongWrite = { ...sessionOf(undefined, t + minute), principal: Option.some(wrong) }
          expect((yield* Effect.flip(store.insert(key, wrongWrite)))).toMatchObject({ _tag: "SessionStoreError", operation: "insert" })
          expect(Option.isNone(yield* store.load(key))).toBe(true)
          expect((yield* Effect.flip(store.update(kept, wrongWrite, 1)))).toMatchObject({ _tag: "SessionStoreError", operation: "update" })
        }
        const record = Option.getOrThrow(yield* store.load(kept))
        expect([record.version, Option.getOrNull(record.principal)]).toEqual([1, victim])
        expect(yield* index.keys(victim)).toEqual([kept])
      }).pipe(withStore, provideClient))

    if (backend.dialect === "mysql") {
      it.effect("a principal longer than the column's 255 characters is refused with a clear error, never cut", () =>
        Effect.gen(function*() {
          const store = yield* SessionStore
          const index = yield* SessionIndex
          const t = yield* Clock.currentTimeMillis
          // 255 characters fit, four-byte ones included
          const longest = `${freshKey().slice(0, 6)}${"🎉".repeat(249)}`
          const fits = freshKey()
          yield* store.insert(fits, sessionOf(longest, t + minute))
          expect(yield* index.keys(longest)).toEqual([fits])
          const tooLong = `${longest}x`
          const key = freshKey()
          const refused = yield* Effect.flip(store.insert(key, sessionOf(tooLong, t + minute)))
          expect(refused).toMatchObject({ _tag: "SessionStoreError", operation: "insert" })
          expect(refused.message).toMatch(/longer than the 255 characters the principal column of e4_sessions_principal_\w+ holds/)
          expect(Option.isNone(yield* store.load(key))).toBe(true)
          expect(yield* Effect.flip(store.update(fits, sessionOf(tooLong, t + minute), 1))).toMatchObject({ operation: "update" })
          expect((yield* Effect.flip(index.keys(tooLong))).operation).toBe("keys")
          expect((yield* Effect.flip(index.removeAll(tooLong))).operation).toBe("removeAll")
          // the session of the principal it would have been cut to is untouched
          expect(yield* index.keys(longest)).toEqual([fits])
          expect(Option.map(yield* store.load(fits), (r) => r.version)).toEqual(Option.some(1))
        }).pipe(withStore, provideClient))
    } else {
      it.effect("a long principal (1,000 characters) is stored and matched whole", () =>
        Effect.gen(function*() {
          const store = yield* SessionStore
          const index = yield* SessionIndex
          const t = yield* Clock.currentTimeMillis
          const long = `${freshKey().slice(0, 6)}${"x".repeat(994)}`
          const key = freshKey()
          yield* store.insert(key, sessionOf(long, t + minute))
          expect(yield* index.keys(long)).toEqual([key])
          expect(yield* index.keys(long.slice(0, 255))).toEqual([])
        }).pipe(withStore, provideClient))
    }
  })
}
