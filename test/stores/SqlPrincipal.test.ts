import * as SqlClient from "@effect/sql/SqlClient"
import { expect, it } from "@effect/vitest"
import { Clock, Effect, Option, TestClock } from "effect"
import { SessionStoreError } from "../../src/SessionError.js"
import * as SessionId from "../../src/SessionId.js"
import { SessionIndex, SessionStore } from "../../src/SessionStore.js"
import * as SqlStore from "../../src/SqlStore.js"
import { describeBackend } from "../utils/backend.js"
import { sharedClient, sqlBackends, uniqueTable } from "../utils/sql.js"

// Issue 12, finding 3: on MySQL/MariaDB the principal column's collation
// pads spaces, so "alice" matched "alice  "; a principal longer than the
// column was cut or refused depending on the SQL mode.

const backends = await sqlBackends()

const minute = 60_000
const freshKey = () => SessionId.storageKey(SessionId.unsafeGenerate())
const write = (principal: string | undefined, expiresAt: number) => ({
  data: new TextEncoder().encode("{}"),
  expiresAt,
  principal: Option.fromNullable(principal)
})

for (const backend of backends) {
  describeBackend(`${backend.name}: principals`, backend.availability, () => {
    const table = uniqueTable("principal")
    const provideClient = sharedClient(backend, [table])
    const withStore = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
      Effect.zipRight(TestClock.setTime(Date.now()), Effect.provide(effect, SqlStore.layer({ table })))
    const mysql = backend.name.includes("MariaDB")

    it.effect("a principal matches itself only: trailing spaces, case and a prefix make another principal", () =>
      Effect.gen(function*() {
        const store = yield* SessionStore
        const index = yield* SessionIndex
        const t = yield* Clock.currentTimeMillis
        const base = `alice-${freshKey().slice(0, 6)}`
        const principals = [base, `${base} `, `${base}  `, `${base}\t`, base.toUpperCase(), ` ${base}`, base.slice(0, -1)]
        const keysOf = new Map<string, string>()
        for (const principal of principals) {
          const key = freshKey()
          keysOf.set(principal, key)
          yield* store.insert(key, write(principal, t + minute))
        }
        for (const principal of principals) {
          expect(yield* index.keys(principal), JSON.stringify(principal)).toEqual([keysOf.get(principal)])
        }
        // revoking one principal leaves every look-alike's session
        expect(yield* index.removeAll(base)).toBe(1)
        expect(Option.isNone(yield* store.load(SessionId.unsafeStorageKey(keysOf.get(base)!)))).toBe(true)
        for (const principal of principals.slice(1)) {
          expect(yield* index.keys(principal), JSON.stringify(principal)).toEqual([keysOf.get(principal)])
        }
        expect(yield* index.removeAll(`${base}  `)).toBe(1)
        expect(yield* index.keys(`${base} `)).toEqual([keysOf.get(`${base} `)])
        // an expired session of a look-alike is not removed with the principal either
        const expired = freshKey()
        yield* store.insert(expired, write(`${base} `, t + 1000))
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
        yield* store.insert(kept, write(victim, t + minute))
        // what an application forwarding unvalidated JSON might pass
        for (const principal of [{ principal: 1 }, { $ne: null }, 1, null, [victim]] as ReadonlyArray<unknown>) {
          const wrong = principal as string
          const removed = yield* Effect.flip(index.removeAll(wrong))
          expect(removed).toBeInstanceOf(SessionStoreError)
          expect(removed.operation).toBe("removeAll")
          expect(removed.message).toMatch(/principal must be a string/)
          expect((yield* Effect.flip(index.keys(wrong))).operation).toBe("keys")
          const key = freshKey()
          const wrongWrite = { ...write(undefined, t + minute), principal: Option.some(wrong) }
          const inserted = yield* Effect.flip(store.insert(key, wrongWrite))
          expect((inserted as SessionStoreError).operation).toBe("insert")
          expect(Option.isNone(yield* store.load(key))).toBe(true)
          const updated = yield* Effect.flip(store.update(kept, wrongWrite, 1))
          expect((updated as SessionStoreError).operation).toBe("update")
        }
        const record = Option.getOrThrow(yield* store.load(kept))
        expect([record.version, Option.getOrUndefined(record.principal)]).toEqual([1, victim])
      }).pipe(withStore, provideClient))

    if (mysql) {
      it.effect("a principal longer than the column's 255 characters is refused with a clear error, never cut", () =>
        Effect.gen(function*() {
          const store = yield* SessionStore
          const index = yield* SessionIndex
          const t = yield* Clock.currentTimeMillis
          const tag = freshKey().slice(0, 6)
          // 255 characters fit, four bytes each included
          const longest = `${tag}${"🎉".repeat(249)}`
          const fits = freshKey()
          yield* store.insert(fits, write(longest, t + minute))
          expect(yield* index.keys(longest)).toEqual([fits])
          const tooLong = `${longest}x`
          const key = freshKey()
          const error = yield* Effect.flip(store.insert(key, write(tooLong, t + minute)))
          expect(error).toBeInstanceOf(SessionStoreError)
          expect((error as SessionStoreError).operation).toBe("insert")
          expect((error as SessionStoreError).message).toMatch(/longer than the 255 characters/)
          expect(Option.isNone(yield* store.load(key))).toBe(true)
          const moved = yield* Effect.flip(store.update(fits, write(tooLong, t + minute), 1))
          expect((moved as SessionStoreError).operation).toBe("update")
          expect((yield* Effect.flip(index.keys(tooLong))).operation).toBe("keys")
          expect((yield* Effect.flip(index.removeAll(tooLong))).operation).toBe("removeAll")
          // the cut-off principal's session is untouched
          expect(yield* index.keys(longest)).toEqual([fits])
        }).pipe(withStore, provideClient))
    } else {
      it.effect("a long principal (1,000 characters) is stored and matched whole", () =>
        Effect.gen(function*() {
          const store = yield* SessionStore
          const index = yield* SessionIndex
          const t = yield* Clock.currentTimeMillis
          const long = `${freshKey().slice(0, 6)}${"x".repeat(994)}`
          const key = freshKey()
          yield* store.insert(key, write(long, t + minute))
          expect(yield* index.keys(long)).toEqual([key])
          expect(yield* index.keys(long.slice(0, 255))).toEqual([])
        }).pipe(withStore, provideClient))
    }
  })
}
