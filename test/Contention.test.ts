/**
 * Many requests of one session at once, over real HTTP, on every store with
 * its real server (issue 11): requests of one process never fail on each
 * other, instances that share a backend (separate processes) replay within
 * `conflictTimeout`, and nothing is kept per key once a burst is over.
 */
import { describe, expect, it } from "@effect/vitest"
import { Cause, Context, Deferred, Effect, Exit, Fiber, FiberId, Layer, Option, Schedule, Schema, TestClock } from "effect"
import { coordinatedKeys } from "../src/internal/session.js"
import * as MemoryStore from "../src/MemoryStore.js"
import { SessionConflict } from "../src/SessionError.js"
import * as Session from "../src/Session.js"
import { SessionStore } from "../src/SessionStore.js"
import { describeBackend } from "./utils/backend.js"
import type { StoreSpec } from "./utils/contention.js"
import { backends, counterApp, counterOptions, CounterSession, storeLayer } from "./utils/contention.js"
import { availabilityOf, preparedFor } from "./utils/contentionSuites.js"
import { makeBrowser, serve } from "./utils/http.js"
import * as PausingStore from "./utils/pausingStore.js"

/**
 * Holds every request that arrives until `parties` have: the whole burst is
 * in flight at once, and its loads and saves all start together.
 */
const makeBarrier = (parties: number) =>
  Effect.map(Deferred.make<void>(), (open) => {
    let arrived = 0
    return Effect.suspend(() => {
      arrived += 1
      if (arrived === parties) Deferred.unsafeDone(open, Exit.void)
      return Deferred.await(open)
    })
  })

/** An HTTP server of the counter app over a new instance of the store, built in the test's scope. */
const startServer = (spec: StoreSpec, barrier: Effect.Effect<void>) =>
  Layer.build(serve(counterApp(barrier)).pipe(Layer.provideMerge(storeLayer(spec))))

type Server = Effect.Effect.Success<ReturnType<typeof startServer>>

const browserOf = (server: Server) => Effect.provide(makeBrowser, server)

/** A stored session (counter 0) on `server`; its cookie header. */
const startSession = (server: Server) =>
  Effect.gen(function*() {
    const browser = yield* browserOf(server)
    const res = yield* browser.get("/start")
    expect(res.status).toBe(200)
    const id = browser.jar.get("session")
    expect(id).toBeDefined()
    return `session=${id}`
  })

/** `count` increments in flight at once on `server`; how many were not answered 200, and the first of them. */
const burst = (server: Server, cookie: string, count: number) =>
  Effect.gen(function*() {
    const browser = yield* browserOf(server)
    const responses = yield* Effect.forEach(
      Array.from({ length: count }),
      () => browser.get("/incr", { cookie }),
      { concurrency: "unbounded" }
    )
    const failed = responses.filter((res) => res.status !== 200)
    return { failed: failed.length, first: failed.slice(0, 3).map((res) => `${res.status} ${res.body.slice(0, 200)}`) }
  })

const counterOn = (server: Server, cookie: string) =>
  Effect.flatMap(browserOf(server), (browser) => browser.get("/counter", { cookie }))

/**
 * The keys the server's store still coordinates once the requests are done:
 * polled for up to 2 s, since a request lets go of its key when its fiber
 * ends, which can be a moment after the client has its answer. A key kept
 * for good stays counted.
 */
const keysLeft = (server: Server) =>
  Effect.flatMap(Effect.provide(SessionStore, server), (store) =>
    Effect.sync(() => coordinatedKeys(store)).pipe(
      Effect.repeat({ until: (keys) => keys === 0, schedule: Schedule.spaced("10 millis") }),
      Effect.timeoutTo({ duration: "2 seconds", onSuccess: (keys) => keys, onTimeout: () => coordinatedKeys(store) })
    ))

// The burst's requests take turns on some stores (files fsync each write): a
// generous bound, which only a hang reaches.
const burstTimeout = 180_000

for (const backend of backends) {
  describeBackend(`contention on ${backend.name}`, await availabilityOf(backend), () => {
    const spec = preparedFor(backend)

    it.scopedLive("200 concurrent increments on one session in one process: 200, every request answered 200", () =>
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
      }), burstTimeout)

    if (backend.shared) {
      it.scopedLive("4 instances (own clients) × 50 concurrent increments on one session: 200, every request answered 200", () =>
        Effect.gen(function*() {
          const barrier = yield* makeBarrier(200)
          const servers = yield* Effect.forEach(Array.from({ length: 4 }), () => startServer(spec(), barrier))
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
        }), burstTimeout)
    }
  })
}

/**
 * A memory store whose compare-and-set always loses, as if a writer in
 * another process always saved first; counts the attempts.
 */
const alwaysConflicting = Layer.effect(
  SessionStore,
  Effect.map(SessionStore, (inner) => {
    const attempts = { update: 0 }
    const store: SessionStore["Type"] = {
      ...inner,
      update: () =>
        Effect.suspend(() => {
          attempts.update += 1
          return Effect.fail(new SessionConflict({ reason: "VersionMismatch" }))
        })
    }
    return Object.assign(store, { attempts })
  })
).pipe(Layer.provide(MemoryStore.layer()))

const attemptsOf = Effect.map(SessionStore, (store) => (store as unknown as { attempts: { update: number } }).attempts)

const conflictTimeout = { ...counterOptions, conflictTimeout: "300 millis" } as const

describe("conflictTimeout", () => {
  it.scopedLive("a save that always conflicts is replayed until conflictTimeout, then the request fails (500)", () =>
    Effect.gen(function*() {
      const server = yield* Layer.build(
        serve(counterApp(Effect.void, conflictTimeout)).pipe(Layer.provideMerge(alwaysConflicting))
      )
      const cookie = yield* startSession(server)
      const browser = yield* browserOf(server)
      const started = Date.now()
      const res = yield* browser.get("/incr", { cookie })
      const elapsed = Date.now() - started
      expect(res.status).toBe(500)
      // replayed with backoff for the whole budget, not given up after one try
      expect((yield* Effect.provide(attemptsOf, server)).update).toBeGreaterThan(1)
      expect(elapsed).toBeGreaterThanOrEqual(290)
      // it does give up: far below the 5 s default and any count-based schedule
      expect(elapsed).toBeLessThan(4_000)
      // the failed save left the stored counter as it was
      const counter = yield* counterOn(server, cookie)
      expect(counter.body).toBe("0")
    }), 30_000)

  it.effect("the budget is time on the Clock: still replaying before it, SessionConflict once it has passed", () =>
    Effect.gen(function*() {
      const id = yield* CounterSession.withSession(
        "",
        Effect.zipLeft(CounterSession.id, CounterSession.set("counter", 0)),
        conflictTimeout
      )
      const attempts = yield* attemptsOf
      const save = yield* Effect.fork(
        CounterSession.withSession(id, CounterSession.update("counter", (n) => (n ?? 0) + 1), conflictTimeout)
      )
      yield* TestClock.adjust("250 millis")
      expect(save.unsafePoll()).toBeNull()
      expect(attempts.update).toBeGreaterThan(1)
      yield* TestClock.adjust("1 second")
      const exit = yield* Fiber.await(save)
      expect(Exit.isFailure(exit)).toBe(true)
      if (Exit.isFailure(exit)) {
        const failure = Cause.failureOption(exit.cause)
        expect(Option.map(failure, (error) => error._tag)).toEqual(Option.some("SessionConflict"))
      }
    }).pipe(Effect.provide(alwaysConflicting)))
})

describe("a save that waits for its key's turn", () => {
  it.scopedLive("a logout waiting for its key's turn behind a move, interrupted, leaves the queue: the move ends, the turn is not lost, no lane is left", () =>
    Effect.gen(function*() {
      const pausing = PausingStore.make(yield* Layer.build(MemoryStore.layer()))
      const store = Context.get(pausing.context, SessionStore)
      const run = <A, E>(effect: Effect.Effect<A, E, SessionStore>) => Effect.provideService(effect, SessionStore, store)
      const id = yield* run(CounterSession.withSession("", Effect.zipLeft(CounterSession.id, CounterSession.set("counter", 0))))
      // a regenerate loads, then inserts the new record in the old key's turn: held there
      const gate = yield* pausing.arm(2)
      const move = yield* Effect.fork(run(CounterSession.withSession(id, CounterSession.regenerate, counterOptions)))
      expect((yield* gate.reached).operation).toBe("insert")
      // two logouts of the same session load, then wait for the turn in that order
      const logout = yield* Effect.fork(run(CounterSession.withSession(id, CounterSession.invalidate, counterOptions)))
      while (pausing.calls.length < 3) yield* Effect.sleep("1 millis")
      const second = yield* Effect.fork(run(CounterSession.withSession(id, CounterSession.invalidate, counterOptions)))
      while (pausing.calls.length < 4) yield* Effect.sleep("1 millis")
      yield* Effect.sleep("20 millis")
      expect(pausing.calls.map((call) => call.operation)).toEqual(["load", "insert", "load", "load"])
      expect(logout.unsafePoll()).toBeNull()
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
      const keys = yield* Effect.sync(() => coordinatedKeys(store)).pipe(
        Effect.repeat({ until: (n) => n === 0, schedule: Schedule.spaced("10 millis") }),
        Effect.timeoutTo({ duration: "2 seconds", onTimeout: () => coordinatedKeys(store), onSuccess: (n) => n })
      )
      expect(keys).toBe(0)
    }))
})

describe("an interruption as a save begins", () => {
  // a field whose encoding interrupts the fiber of the request that armed it:
  // the interruption arrives while the save is being planned (the data is
  // encoded to compare it with what was loaded), before its first step runs,
  // as a client that goes away exactly then would
  let armed: Fiber.RuntimeFiber<unknown, unknown> | undefined
  const Trap = Schema.transform(Schema.String, Schema.String, {
    strict: true,
    decode: (s) => s,
    encode: (s) => {
      armed?.unsafeInterruptAsFork(FiberId.none)
      armed = undefined
      return s
    }
  })
  class TrapSession extends Session.Tag<TrapSession>()("test/TrapSession", {
    counter: Schema.optional(Schema.Number),
    trap: Schema.optional(Trap)
  }) {}

  it.scopedLive("a request interrupted as its update is queued does not leave the session's later updates waiting for a writer that never runs", () =>
    Effect.gen(function*() {
      const store = Context.get(yield* Layer.build(MemoryStore.layer()), SessionStore)
      const run = <A, E>(effect: Effect.Effect<A, E, SessionStore>) => Effect.provideService(effect, SessionStore, store)
      const increment = TrapSession.update("counter", (n) => (n ?? 0) + 1)
      const id = yield* run(TrapSession.withSession("", Effect.zipLeft(TrapSession.id, TrapSession.set("trap", "x")), counterOptions))
      const request = yield* Effect.fork(run(TrapSession.withSession(
        id,
        Effect.zipRight(Effect.withFiberRuntime<void>((fiber) => Effect.sync(() => armed = fiber)), increment),
        counterOptions
      )))
      expect(Exit.isInterrupted(yield* Fiber.await(request))).toBe(true)
      // the next update of the session is written: nothing waits for the interrupted one
      const next = yield* run(TrapSession.withSession(id, increment, counterOptions)).pipe(Effect.timeout("2 seconds"), Effect.option)
      expect(Option.isSome(next)).toBe(true)
      const counter = yield* run(TrapSession.withSession(id, TrapSession.get("counter"), counterOptions))
      // the interrupted request had decided to save: its update is written too, or not at all
      expect([1, 2]).toContain(counter)
      const keys = yield* Effect.sync(() => coordinatedKeys(store)).pipe(
        Effect.repeat({ until: (n) => n === 0, schedule: Schedule.spaced("10 millis") }),
        Effect.timeoutTo({ duration: "2 seconds", onTimeout: () => coordinatedKeys(store), onSuccess: (n) => n })
      )
      expect(keys).toBe(0)
    }))
})

describe("a store that breaks during a group's write", () => {
  it.scopedLive("a compare-and-set that dies with updates queued behind it fails each of them (500), none hangs, and the next update is written", () =>
    Effect.gen(function*() {
      const inner = Context.get(yield* Layer.build(MemoryStore.layer()), SessionStore)
      // while `breaking`, every compare-and-set waits for the gate, then dies
      const gate = yield* Deferred.make<void>()
      let breaking = false
      let held = 0
      const store: SessionStore["Type"] = {
        ...inner,
        update: (key, write, version) =>
          Effect.suspend(() => {
            if (!breaking) return inner.update(key, write, version)
            held += 1
            return Effect.zipRight(Deferred.await(gate), Effect.dieMessage("the store's client broke"))
          })
      }
      const server = yield* Layer.build(serve(counterApp(Effect.void)).pipe(Layer.provideMerge(Layer.succeed(SessionStore, store))))
      const browser = yield* Effect.provide(makeBrowser, server)
      expect((yield* browser.get("/start")).status).toBe(200)
      const cookie = `session=${browser.jar.get("session")}`
      breaking = true
      // the first update's compare-and-set is held; two more queue behind it as one group
      const first = yield* Effect.fork(browser.get("/incr", { cookie }))
      yield* Effect.sync(() => held).pipe(Effect.repeat({ until: (n) => n === 1, schedule: Schedule.spaced("5 millis") }))
      const queued = yield* Effect.fork(Effect.all([browser.get("/incr", { cookie }), browser.get("/incr", { cookie })], { concurrency: 2 }))
      yield* Effect.sleep("100 millis")
      expect(held).toBe(1)
      yield* Deferred.succeed(gate, undefined)
      const answers = yield* Effect.all([Fiber.join(first), Fiber.join(queued)]).pipe(Effect.timeout("5 seconds"))
      expect([answers[0].status, ...answers[1].map((res) => res.status)]).toEqual([500, 500, 500])
      // one compare-and-set for the first, one for the group of the two queued
      expect(held).toBe(2)
      breaking = false
      const next = yield* browser.get("/incr", { cookie }).pipe(Effect.timeout("2 seconds"))
      expect(next.status).toBe(200)
      expect(next.body).toBe("1")
      const keys = yield* Effect.sync(() => coordinatedKeys(store)).pipe(
        Effect.repeat({ until: (n) => n === 0, schedule: Schedule.spaced("10 millis") }),
        Effect.timeoutTo({ duration: "2 seconds", onTimeout: () => coordinatedKeys(store), onSuccess: (n) => n })
      )
      expect(keys).toBe(0)
    }))
})
