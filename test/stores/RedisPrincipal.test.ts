import { afterAll, expect, it } from "@effect/vitest"
import { Effect, Option, TestClock } from "effect"
import { Redis } from "ioredis"
import { randomBytes } from "node:crypto"
import * as RedisStore from "../../src/RedisStore.js"
import { SessionStoreError } from "../../src/SessionError.js"
import * as SessionId from "../../src/SessionId.js"
import { SessionIndex, SessionStore } from "../../src/SessionStore.js"
import { describeBackend, reachable } from "../utils/backend.js"

// The types say a principal is a string; an application forwarding
// unvalidated JSON may pass anything. ioredis spreads an array argument into
// several: `["alice", "<someone's storage key>"]` would shift a script's
// arguments. The store refuses such a principal before sending anything.

const host = "127.0.0.1"
const prefix = `test:principal:${randomBytes(6).toString("hex")}:`
const available = await reachable(host, 6379)

describeBackend("RedisStore principals", { available, reason: `no Redis server on ${host}:6379` }, () => {
  const admin = new Redis({ host, port: 6379, lazyConnect: true })
  afterAll(async () => {
    const keys = await admin.keys(`${prefix}*`)
    if (keys.length > 0) await admin.del(...keys)
    await admin.quit()
  })

  it.effect("a principal that is not a string fails insert, update, keys and removeAll before any command", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(Date.now())
      const store = yield* SessionStore
      const index = yield* SessionIndex
      const t = Date.now()
      const victim = SessionId.storageKey(SessionId.unsafeGenerate())
      yield* store.insert(victim, { data: new Uint8Array([1]), expiresAt: t + 60_000, principal: Option.some("alice") })
      for (const principal of [["alice", victim], { $ne: null }, 7, null] as ReadonlyArray<unknown>) {
        const wrong = { data: new Uint8Array([2]), expiresAt: t + 60_000, principal: Option.some(principal as string) }
        const key = SessionId.storageKey(SessionId.unsafeGenerate())
        const inserted = yield* Effect.flip(store.insert(key, wrong))
        expect(inserted).toBeInstanceOf(SessionStoreError)
        expect(inserted.message).toMatch(/principal must be a string/)
        expect(yield* Effect.promise(() => admin.exists(`${prefix}${key}`))).toBe(0)
        const updated = yield* Effect.flip(store.update(victim, wrong, 1))
        expect((updated as SessionStoreError).operation).toBe("update")
        expect((yield* Effect.flip(index.keys(principal as string))).operation).toBe("keys")
        expect((yield* Effect.flip(index.removeAll(principal as string))).operation).toBe("removeAll")
      }
      const record = Option.getOrThrow(yield* store.load(victim))
      expect([record.version, Option.getOrUndefined(record.principal)]).toEqual([1, "alice"])
      expect(yield* index.keys("alice")).toEqual([victim])
    }).pipe(Effect.provide(RedisStore.layer({ host, port: 6379, prefix }))))
})
