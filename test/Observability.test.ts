/**
 * What an operator sees: the metrics of `SessionMetrics` (store operations
 * by outcome and latency, conflict replays, moves, revocations, undecodable
 * and oversized sessions) and the outcome attributes on spans.
 */
import { HttpRouter, HttpServerResponse } from "@effect/platform"
import { assert, describe, expect, it } from "@effect/vitest"
import { Effect, Layer, Metric, MetricState, Option, Schema } from "effect"
import * as MemoryStore from "../src/MemoryStore.js"
import * as Session from "../src/Session.js"
import { SessionConflict } from "../src/SessionError.js"
import * as SessionId from "../src/SessionId.js"
import * as SessionMetrics from "../src/SessionMetrics.js"
import { SessionStore } from "../src/SessionStore.js"
import * as SessionStoreModule from "../src/SessionStore.js"
import { makeBrowser, serve } from "./utils/http.js"
import { recordingTracer } from "./utils/tracer.js"
import type { RecordedSpan } from "./utils/tracer.js"

class ObservedSession extends Session.Tag<ObservedSession>()("test/ObservedSession", {
  name: Schema.optional(Schema.String),
  visits: Schema.optionalWith(Schema.Number, { default: () => 0 })
}) {}

const ok = HttpServerResponse.text("ok")
const routes = HttpRouter.empty.pipe(
  HttpRouter.get("/incr", Effect.as(ObservedSession.update("visits", (n) => n + 1), ok)),
  HttpRouter.get("/login", Effect.as(ObservedSession.login("alice"), ok)),
  HttpRouter.get("/regenerate", Effect.as(ObservedSession.regenerate, ok)),
  HttpRouter.get("/logout", Effect.as(ObservedSession.invalidate, ok)),
  HttpRouter.get("/big", Effect.as(ObservedSession.set("name", "x".repeat(500)), ok)),
  HttpRouter.get("/show", Effect.as(ObservedSession.getAll, ok))
)
const app = routes.pipe(
  ObservedSession.middleware({ cookie: { secure: false }, maxSize: 300 }),
  Effect.catchTag("SessionTooLarge", () => HttpServerResponse.text("too large", { status: 413 }))
)

/** The current value of a counter, with the given tags. */
const counterValue = (metric: Metric.Metric.Counter<number>, tags: Record<string, string> = {}) =>
  Effect.map(Metric.value(Object.entries(tags).reduce((m, [k, v]) => Metric.tagged(m, k, v), metric)), (state) => state.count)

describe("metrics", () => {
  it.effect("store operations are counted by store, operation and outcome, and timed", () =>
    Effect.gen(function*() {
      const browser = yield* makeBrowser
      const tags = { store: "memory", operation: "insert", outcome: "success" }
      const before = yield* counterValue(SessionMetrics.storeOperations, tags)
      yield* browser.get("/incr")
      yield* browser.get("/incr")
      expect((yield* counterValue(SessionMetrics.storeOperations, tags)) - before).toBe(1)
      expect(
        yield* counterValue(SessionMetrics.storeOperations, { store: "memory", operation: "update", outcome: "success" })
      ).toBeGreaterThanOrEqual(1)
      const snapshot = yield* Metric.snapshot
      const timer = snapshot.find((pair) =>
        pair.metricKey.name === "effect_session_store_operation_duration" &&
        pair.metricKey.tags.some((t) => t.key === "store" && t.value === "memory") &&
        pair.metricKey.tags.some((t) => t.key === "operation" && t.value === "load")
      )
      assert(timer !== undefined)
      assert(MetricState.isHistogramState(timer.metricState))
      expect(timer.metricState.count).toBeGreaterThanOrEqual(1)
    }).pipe(Effect.provide(Layer.provideMerge(serve(app), MemoryStore.layer()))))

  // live: the read that touches comes a few real milliseconds after the write
  it.live("each store operation of a request is counted once, by its outcome, and an interrupted one as a failure", () =>
    Effect.gen(function*() {
      const count = (store: string, operation: string, outcome: string) =>
        counterValue(SessionMetrics.storeOperations, { store, operation, outcome })
      const counts = (store: string) =>
        Effect.all({
          load: count(store, "load", "success"),
          insert: count(store, "insert", "success"),
          update: count(store, "update", "success"),
          touch: count(store, "touch", "success"),
          failed: Effect.map(
            Effect.all(["load", "insert", "update", "touch"].map((operation) => count(store, operation, "failure"))),
            (failures) => failures.reduce((a, b) => a + b, 0)
          )
        })
      const inner = yield* SessionStore
      const counted = SessionStoreModule.make("counted", inner)
      const touching = routes.pipe(ObservedSession.middleware({ cookie: { secure: false }, touchAfter: "0 millis" }))
      const before = yield* counts("counted")
      yield* Effect.gen(function*() {
        const browser = yield* makeBrowser
        yield* browser.get("/incr") // insert
        yield* browser.get("/incr") // load, update
        yield* Effect.sleep("5 millis")
        yield* browser.get("/show") // load, touch
      }).pipe(Effect.provide(serve(touching)), Effect.provideService(SessionStore, counted))
      const after = yield* counts("counted")
      expect({
        load: after.load - before.load,
        insert: after.insert - before.insert,
        update: after.update - before.update,
        touch: after.touch - before.touch,
        failed: after.failed - before.failed
      }).toEqual({ load: 2, insert: 1, update: 1, touch: 1, failed: 0 })

      // a load that never answers, given up by a timeout: one failure, no success
      const id = yield* ObservedSession.withSession("", ObservedSession.id.pipe(Effect.zipLeft(ObservedSession.set("name", "a"))))
      const stuck = SessionStoreModule.make("stuck", { ...inner, load: () => Effect.never })
      const stuckBefore = yield* counts("stuck")
      const exit = yield* ObservedSession.withSession(id, ObservedSession.get("name")).pipe(
        Effect.provideService(SessionStore, stuck),
        Effect.timeout("20 millis"),
        Effect.exit
      )
      expect(exit._tag).toBe("Failure")
      const stuckAfter = yield* counts("stuck")
      expect([stuckAfter.load - stuckBefore.load, stuckAfter.failed - stuckBefore.failed]).toEqual([0, 1])
    }).pipe(Effect.provide(MemoryStore.layer())))

  it.effect("moves, logouts, revokeAll, undecodable and oversized sessions are counted", () =>
    Effect.gen(function*() {
      const moved = yield* counterValue(SessionMetrics.regenerations)
      const logouts = yield* counterValue(SessionMetrics.revocations, { kind: "logout" })
      const revoked = yield* counterValue(SessionMetrics.revocations, { kind: "revokeAll" })
      const undecodable = yield* counterValue(SessionMetrics.undecodable)
      const tooLarge = yield* counterValue(SessionMetrics.tooLarge)
      const browser = yield* makeBrowser
      yield* browser.get("/incr")
      yield* browser.get("/regenerate")
      yield* browser.get("/login")
      yield* browser.get("/logout")
      expect((yield* counterValue(SessionMetrics.regenerations)) - moved).toBe(2)
      expect((yield* counterValue(SessionMetrics.revocations, { kind: "logout" })) - logouts).toBe(1)
      const other = yield* makeBrowser
      yield* other.get("/login")
      const third = yield* makeBrowser
      yield* third.get("/login")
      expect(yield* Session.revokeAll("alice")).toBe(2)
      expect((yield* counterValue(SessionMetrics.revocations, { kind: "revokeAll" })) - revoked).toBe(2)
      expect((yield* browser.get("/big")).status).toBe(413)
      expect((yield* counterValue(SessionMetrics.tooLarge)) - tooLarge).toBe(1)
      const store = yield* SessionStore
      const id = SessionId.unsafeGenerate()
      yield* store.insert(SessionId.storageKey(id), {
        data: new TextEncoder().encode("not json"),
        expiresAt: Date.now() + 60_000,
        principal: Option.none()
      })
      yield* browser.get("/show", { cookie: `session=${id}` })
      expect((yield* counterValue(SessionMetrics.undecodable)) - undecodable).toBe(1)
    }).pipe(Effect.provide(Layer.provideMerge(serve(app), MemoryStore.layer()))))

  // live: the replay waits a real, jittered pause
  it.live("a compare-and-set lost to another process is counted as a conflict and a replay, and annotates the span", () =>
    Effect.gen(function*() {
      const replays = yield* counterValue(SessionMetrics.conflictReplays)
      const conflicts = yield* counterValue(SessionMetrics.storeOperations, {
        store: "flaky",
        operation: "update",
        outcome: "conflict"
      })
      const spans: Array<RecordedSpan> = []
      const tracer = recordingTracer(spans)
      const inner = yield* SessionStore
      // the first update of every key loses, as if another process had saved first
      const lost = new Set<string>()
      const flaky = SessionStoreModule.make("flaky", {
        ...inner,
        update: (key, write, version) => {
          if (lost.has(key)) return inner.update(key, write, version)
          lost.add(key)
          return Effect.fail(new SessionConflict({ reason: "VersionMismatch" }))
        }
      })
      const id = yield* ObservedSession.withSession("", ObservedSession.id.pipe(Effect.zipLeft(ObservedSession.set("name", "a"))))
      yield* ObservedSession.withSession(id, ObservedSession.update("visits", (n) => n + 1)).pipe(
        Effect.provideService(SessionStore, flaky),
        Effect.withSpan("request"),
        Effect.withTracer(tracer)
      )
      expect(yield* ObservedSession.withSession(id, ObservedSession.get("visits"))).toBe(1)
      expect((yield* counterValue(SessionMetrics.conflictReplays)) - replays).toBe(1)
      expect(
        (yield* counterValue(SessionMetrics.storeOperations, { store: "flaky", operation: "update", outcome: "conflict" })) -
          conflicts
      ).toBe(1)
      const request = spans.find((span) => span.name === "request")
      assert(request !== undefined)
      expect(request.attributes.get("effect-session.conflictReplays")).toBe(1)
      // the lost compare-and-set and the replay, each in its own span (the memory store inside has its own)
      expect(
        spans.filter((span) => span.name === "effect-session.update" && span.attributes.get("effect-session.store") === "flaky")
          .length
      ).toBe(2)
    }).pipe(Effect.provide(MemoryStore.layer())))
})
