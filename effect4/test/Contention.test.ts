/**
 * Many requests of one session at once, over real HTTP, on the Effect 4 line
 * (memory and Redis, each with its real server): requests of one process
 * never fail on each other, instances that share a backend (separate
 * processes) replay within `conflictTimeout`, and nothing is kept per key
 * once a burst is over.
 */
import { describe, expect, it } from "@effect/vitest"
import { Cause, Context, Deferred, Effect, Exit, Fiber, Option, Schedule, Schema, SchemaTransformation } from "effect"
import { TestClock } from "effect/testing"
import { coordinatedKeys } from "../src/internal/session.js"
import * as MemoryStore from "../src/MemoryStore.js"
import * as Session from "../src/Session.js"
import { SessionStore } from "../src/SessionStore.js"
import type { StoreSpec } from "./utils/contention.js"
import {
  alwaysConflicting,
  backends,
  buildStore,
  counterOptions,
  counterRoutes,
  CounterSession,
  makeBarrier,
  serveOn
} from "./utils/contention.js"
import { availabilityOf, describeBackend, preparedFor } from "./utils/contentionSuites.js"
import * as PausingStore from "./utils/pausingStore.js"
import { get, sessionCookie } from "./utils/server.js"

/** An HTTP server of the counter app over a new instance of the store, for the test's scope. */
const startServer = (spec: StoreSpec, barrier: Effect.Effect<void>) =>
  Effect.gen(function*() {
    const { context, store } = yield* buildStore(spec)
    return { base: yield* serveOn(counterRoutes(barrier), context), store }
  })

interface Server {
  readonly base: string
  readonly store: SessionStore["Service"]
}

/** A stored session (counter 0) on `server`; its cookie header. */
const startSession = (server: Server) =>
  Effect.gen(function*() {
    const res = yield* get(`${server.base}/start`)
    expect(res.status).toBe(200)
    const cookie = sessionCookie(res)
    expect(cookie).toMatch(/^session=[A-Za-z0-9_-]{43}$/)
    return cookie!
  })

/** `count` increments in flight at once on `server`; how many were not answered 200, and the first of them. */
const burst = (server: Server, cookie: string, count: number) =>
  Effect.gen(function*() {
    const responses = yield* Effect.forEach(
      Array.from({ length: count }),
      () => get(`${server.base}/incr`, cookie),
      { concurrency: "unbounded" }
    )
    const failed = responses.filter((res) => res.status !== 200)
    return { failed: failed.length, first: failed.slice(0, 3).map((res) => `${res.status} ${res.body.slice(0, 200)}`) }
  })

const counterOn = (server: Server, cookie: string) => get(`${server.base}/counter`, cookie)

/**
 * The keys the server's store still coordinates once the requests are done:
 * polled for up to 2 s, since a request lets go of its key when its fiber
 * ends, which can be a moment after the client has its answer. A key kept
 * for good stays counted.
 */
const keysLeftIn = (store: SessionStore["Service"]) =>
  Effect.sync(() => coordinatedKeys(store)).pipe(
    Effect.repeat({ until: (keys) => keys === 0, schedule: Schedule.spaced("10 millis") }),
    Effect.timeoutOrElse({ duration: "2 seconds", orElse: () => Effect.sync(() => coordinatedKeys(store)) })
  )

const keysLeft = (server: Server) => keysLeftIn(server.store)

const burstTimeout = 120_000

for (const backend of backends) {
  describeBackend(`contention on ${backend.name}`, await availabilityOf(backend), () => {
    const spec = preparedFor(backend, "contention")

    it.live("200 concurrent increments on one session in one process: 200, every request answered 200", () =>
      Effect.gen(function*() {
        const server = yield* startServer(spec(), yield* makeBarrier(200))
        const cookie = yield* startSession(server)
        const failures = yield* burst(server, cookie, 200)
        expect(failures).toEqual({ failed: 0, first: [] })
        const counter = yield* counterOn(server, cookie)
        expect(counter.status).toBe(200)
        expect(counter.body).toBe("200")
        // nothing is kept for a key once its last request is done
        expect(yield* keysLeft(server)).toBe(0)
      }).pipe(Effect.scoped), burstTimeout)

    if (backend.shared) {
      it.live("4 instances (own clients) × 50 concurrent increments on one session: 200, every request answered 200", () =>
        Effect.gen(function*() {
          const barrier = yield* makeBarrier(200)
          const servers = yield* Effect.forEach(Array.from({ length: 4 }), () => startServer(spec(), barrier))
          // four store objects: four sets of lanes, as in four processes
          expect(new Set(servers.map((server) => server.store)).size).toBe(4)
          const cookie = yield* startSession(servers[0])
          const failures = yield* Effect.forEach(servers, (server) => burst(server, cookie, 50), {
            concurrency: "unbounded"
          })
          expect(failures).toEqual(Array.from({ length: 4 }, () => ({ failed: 0, first: [] })))
          for (const server of servers) {
            const counter = yield* counterOn(server, cookie)
            expect(counter.body).toBe("200")
            expect(yield* keysLeft(server)).toBe(0)
          }
        }).pipe(Effect.scoped), burstTimeout)
    }
  })
}

const conflictTimeout = { ...counterOptions, conflictTimeout: "300 millis" } as const

describe("conflictTimeout", () => {
  it.live("a save that always conflicts is replayed until conflictTimeout, then the request fails (500)", () =>
    Effect.gen(function*() {
      const memory = MemoryStore.make()
      const conflicting = alwaysConflicting(memory.store)
      const context = Context.make(SessionStore, conflicting.store)
      const server = { base: yield* serveOn(counterRoutes(Effect.void, conflictTimeout), context), store: conflicting.store }
      const cookie = yield* startSession(server)
      const started = Date.now()
      const res = yield* get(`${server.base}/incr`, cookie)
      const elapsed = Date.now() - started
      expect(res.status).toBe(500)
      // replayed with backoff for the whole budget, not given up after one try
      expect(conflicting.attempts.update).toBeGreaterThan(1)
      expect(elapsed).toBeGreaterThanOrEqual(300)
      // it does give up: before the 5 s default budget
      expect(elapsed).toBeLessThan(5_000)
      // the failed save left the stored counter as it was
      expect((yield* counterOn(server, cookie)).body).toBe("0")
      expect(yield* keysLeft(server)).toBe(0)
    }).pipe(Effect.scoped), 30_000)

  it.effect("the budget is time on the Clock: still replaying before it, SessionConflict once it has passed", () =>
    Effect.gen(function*() {
      const conflicting = alwaysConflicting(MemoryStore.make().store)
      const run = <A, E>(effect: Effect.Effect<A, E, SessionStore>) =>
        Effect.provideService(effect, SessionStore, conflicting.store)
      const id = yield* run(CounterSession.withSession(
        "",
        Effect.andThen(CounterSession.set("counter", 0), CounterSession.id),
        conflictTimeout
      ))
      const save = yield* Effect.forkChild(
        run(CounterSession.withSession(id, CounterSession.update("counter", (n) => (n ?? 0) + 1), conflictTimeout))
      )
      yield* TestClock.adjust("250 millis")
      expect(save.pollUnsafe()).toBeUndefined()
      expect(conflicting.attempts.update).toBeGreaterThan(1)
      yield* TestClock.adjust("1 second")
      const exit = yield* Fiber.await(save)
      expect(Exit.isFailure(exit)).toBe(true)
      if (Exit.isFailure(exit)) {
        const failure = Cause.findErrorOption(exit.cause)
        expect(Option.map(failure, (error) => error._tag)).toEqual(Option.some("SessionConflict"))
      }
    }))
})

describe("a request that goes away", () => {
  it.live("a request interrupted while its update is being written does not stop the writes queued behind it, and leaves no lane", () =>
    Effect.gen(function*() {
      const memory = MemoryStore.make()
      const pausing = PausingStore.make(Context.make(SessionStore, memory.store))
      const store = Context.get(pausing.context, SessionStore)
      const run = <A, E>(effect: Effect.Effect<A, E, SessionStore>) => Effect.provideService(effect, SessionStore, store)
      const increment = (id: string) =>
        run(CounterSession.withSession(id, CounterSession.update("counter", (n) => (n ?? 0) + 1), counterOptions))
      const id = yield* run(CounterSession.withSession("", Effect.andThen(CounterSession.set("counter", 0), CounterSession.id)))
      // the first increment's load, then its write: held there
      const gate = yield* pausing.arm(2)
      const first = yield* Effect.forkChild(increment(id))
      expect((yield* gate.reached).operation).toBe("update")
      // two more load and queue behind the write in flight
      const behind = yield* Effect.forEach([1, 2], () => Effect.forkChild(increment(id)))
      while (pausing.calls.length < 4) yield* Effect.sleep("1 millis")
      yield* Effect.sleep("20 millis")
      expect(pausing.calls.map((call) => call.operation)).toEqual(["load", "update", "load", "load"])
      // the client of the first request goes away while its write is in flight
      // (the write is on the request's own fiber, uninterruptibly: the
      // interruption completes once the write, which no store can take back, is done)
      const interrupting = yield* Effect.forkChild(Fiber.interrupt(first))
      yield* Effect.sleep("20 millis")
      expect(interrupting.pollUnsafe()).toBeUndefined()
      yield* gate.release
      yield* Fiber.join(interrupting)
      expect(Exit.hasInterrupts(yield* Fiber.await(first))).toBe(true)
      for (const fiber of behind) expect(Exit.isSuccess(yield* Fiber.await(fiber))).toBe(true)
      // the write in flight was made (a store cannot take it back), and the two behind it
      expect(yield* run(CounterSession.withSession(id, CounterSession.get("counter")))).toBe(3)
      // (the writer of the two behind it lets go of the key just after answering them)
      expect(yield* keysLeftIn(store)).toBe(0)
    }))

  it.live("a logout waiting for its key's turn behind a move, interrupted, leaves the queue: the move ends, the turn is not lost, no lane is left", () =>
    Effect.gen(function*() {
      const memory = MemoryStore.make()
      const pausing = PausingStore.make(Context.make(SessionStore, memory.store))
      const store = Context.get(pausing.context, SessionStore)
      const run = <A, E>(effect: Effect.Effect<A, E, SessionStore>) => Effect.provideService(effect, SessionStore, store)
      const id = yield* run(CounterSession.withSession("", Effect.andThen(CounterSession.set("counter", 0), CounterSession.id)))
      // a regenerate loads, then inserts the new record in the old key's turn: held there
      const gate = yield* pausing.arm(2)
      const move = yield* Effect.forkChild(run(CounterSession.withSession(id, CounterSession.regenerate, counterOptions)))
      expect((yield* gate.reached).operation).toBe("insert")
      // two logouts of the same session load, then wait for the turn in that order
      const logout = yield* Effect.forkChild(run(CounterSession.withSession(id, CounterSession.invalidate, counterOptions)))
      while (pausing.calls.length < 3) yield* Effect.sleep("1 millis")
      const second = yield* Effect.forkChild(run(CounterSession.withSession(id, CounterSession.invalidate, counterOptions)))
      while (pausing.calls.length < 4) yield* Effect.sleep("1 millis")
      yield* Effect.sleep("20 millis")
      expect(pausing.calls.map((call) => call.operation)).toEqual(["load", "insert", "load", "load"])
      expect(logout.pollUnsafe()).toBeUndefined()
      // the first one's client goes away while it waits
      yield* Fiber.interrupt(logout)
      yield* gate.release
      expect(Exit.isSuccess(yield* Fiber.await(move))).toBe(true)
      // the turn passed over it to the second, which follows the move and ends the session (a turn
      // handed to the interrupted one would hold the lane, which the second keeps alive, for good)
      const ended = yield* Fiber.await(second).pipe(Effect.timeout("2 seconds"), Effect.option)
      expect(Option.map(ended, Exit.isSuccess)).toEqual(Option.some(true))
      // the session ended: its id reads an empty session
      expect(yield* run(CounterSession.withSession(id, CounterSession.get("counter"), counterOptions))).toBeUndefined()
      expect(yield* keysLeftIn(store)).toBe(0)
    }))
})

describe("an interruption as a save begins", () => {
  // a field whose encoding interrupts the fiber of the request that armed it:
  // the interruption arrives while the save is being planned (the data is
  // encoded to compare it with what was loaded), before its first step runs,
  // as a client that goes away exactly then would
  let armed: Fiber.Fiber<unknown, unknown> | undefined
  const Trap = Schema.String.pipe(Schema.decodeTo(
    Schema.String,
    SchemaTransformation.transform({
      decode: (s: string) => s,
      encode: (s: string) => {
        armed?.interruptUnsafe()
        armed = undefined
        return s
      }
    })
  ))
  class TrapSession extends Session.Tag<TrapSession>()("test/TrapSession", {
    counter: Schema.optional(Schema.Number),
    trap: Schema.optional(Trap)
  }) {}

  it.live("a request interrupted as its update is queued does not leave the session's later updates waiting for a writer that never runs", () =>
    Effect.gen(function*() {
      const memory = MemoryStore.make()
      const store = memory.store
      const run = <A, E>(effect: Effect.Effect<A, E, SessionStore>) => Effect.provideService(effect, SessionStore, store)
      const increment = TrapSession.update("counter", (n) => (n ?? 0) + 1)
      const id = yield* run(TrapSession.withSession("", Effect.andThen(TrapSession.set("trap", "x"), TrapSession.id), counterOptions))
      const request = yield* Effect.forkChild(run(TrapSession.withSession(
        id,
        Effect.andThen(Effect.withFiber((fiber) => Effect.sync(() => armed = fiber)), increment),
        counterOptions
      )))
      expect(Exit.hasInterrupts(yield* Fiber.await(request))).toBe(true)
      // the next update of the session is written: nothing waits for the interrupted one
      const next = yield* run(TrapSession.withSession(id, increment, counterOptions)).pipe(Effect.timeout("2 seconds"), Effect.option)
      expect(Option.isSome(next)).toBe(true)
      const counter = yield* run(TrapSession.withSession(id, TrapSession.get("counter"), counterOptions))
      // the interrupted request had decided to save: its update is written too, or not at all
      expect([1, 2]).toContain(counter)
      expect(yield* keysLeftIn(store)).toBe(0)
    }))
})

describe("a store that breaks during a group's write", () => {
  it.live("a compare-and-set that dies with updates queued behind it fails each of them (500), none hangs, and the next update is written", () =>
    Effect.gen(function*() {
      const memory = MemoryStore.make()
      // while `breaking`, every compare-and-set waits for the gate, then dies
      const gate = yield* Deferred.make<void>()
      let breaking = false
      let held = 0
      const store: SessionStore["Service"] = {
        ...memory.store,
        update: (key, write, version) =>
          Effect.suspend(() => {
            if (!breaking) return memory.store.update(key, write, version)
            held += 1
            return Effect.andThen(Deferred.await(gate), Effect.die(new Error("the store's client broke")))
          })
      }
      const server = { base: yield* serveOn(counterRoutes(Effect.void), Context.make(SessionStore, store)), store }
      const cookie = yield* startSession(server)
      breaking = true
      // the first update's compare-and-set is held; two more queue behind it as one group
      const first = yield* Effect.forkChild(get(`${server.base}/incr`, cookie))
      while (held < 1) yield* Effect.sleep("5 millis")
      const queued = yield* Effect.forEach([1, 2], () => Effect.forkChild(get(`${server.base}/incr`, cookie)))
      yield* Effect.sleep("100 millis")
      expect(held).toBe(1)
      yield* Deferred.succeed(gate, undefined)
      const answers = yield* Effect.forEach([first, ...queued], Fiber.join).pipe(Effect.timeout("5 seconds"))
      expect(answers.map((res) => res.status)).toEqual([500, 500, 500])
      // one compare-and-set for the first, one for the group of the two queued
      expect(held).toBe(2)
      breaking = false
      const next = yield* get(`${server.base}/incr`, cookie).pipe(Effect.timeout("2 seconds"))
      expect(next.status).toBe(200)
      expect(next.body).toBe("1")
      expect(yield* keysLeft(server)).toBe(0)
    }).pipe(Effect.scoped))
})
