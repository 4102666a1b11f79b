/**
 * Idle and absolute deadlines on the Effect 4 line, with logical time
 * (TestClock): the core's rules as a session outside a request sees them.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Schema } from "effect"
import { TestClock } from "effect/testing"
import * as MemoryStore from "../src/MemoryStore.js"
import * as Session from "../src/Session.js"
import { SessionStore } from "../src/SessionStore.js"

class Visits extends Session.Tag<Visits>()("test/Visits", {
  visits: Schema.Int.pipe(Schema.withDecodingDefault(Effect.succeed(0)))
}) {}

const minute = 60_000
const options: Session.Options = { idleTimeout: "10 minutes", absoluteTimeout: "30 minutes", touchAfter: "1 minute" }

const visit = (store: SessionStore["Service"], id: string) =>
  Effect.provideService(
    Visits.withSession(id, Effect.andThen(Visits.update("visits", (n) => n + 1), Effect.all([Visits.get("visits"), Visits.id])), options),
    SessionStore,
    store
  )

describe("deadlines", () => {
  it.effect("a session unused for the idle timeout is gone; each use moves the deadline", () =>
    Effect.gen(function*() {
      const { store } = MemoryStore.make()
      const [, id] = yield* visit(store, "")
      yield* TestClock.adjust(9 * minute)
      expect(yield* visit(store, id)).toEqual([2, id])
      yield* TestClock.adjust(9 * minute)
      expect((yield* visit(store, id))[0]).toBe(3)
      yield* TestClock.adjust(10 * minute)
      const [visits, newId] = yield* visit(store, id)
      expect(visits).toBe(1)
      expect(newId).not.toBe(id)
    }))

  it.effect("a session older than the absolute timeout is gone however active", () =>
    Effect.gen(function*() {
      const { store } = MemoryStore.make()
      let [, id] = yield* visit(store, "")
      for (let i = 0; i < 5; i++) {
        yield* TestClock.adjust(5 * minute)
        ;[, id] = yield* visit(store, id)
      }
      // 25 minutes of activity: still the same session
      expect((yield* visit(store, id))[0]).toBe(7)
      yield* TestClock.adjust(5 * minute)
      expect((yield* visit(store, id))[0]).toBe(1)
    }))

  it.effect("shortening absoluteTimeout ends older sessions at once", () =>
    Effect.gen(function*() {
      const { store } = MemoryStore.make()
      const [, id] = yield* visit(store, "")
      yield* TestClock.adjust(6 * minute)
      const shorter = Effect.provideService(
        Visits.withSession(id, Visits.get("visits"), { ...options, absoluteTimeout: "5 minutes" }),
        SessionStore,
        store
      )
      expect(yield* shorter).toBe(0)
    }))
})
