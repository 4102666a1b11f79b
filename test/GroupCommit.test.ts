/**
 * Group commit: the updates of one process to one session that wait for each
 * other are written together. What a user sees: every request's writes count,
 * and a write that cannot be stored fails its own request only.
 */
import { HttpRouter, HttpServerResponse } from "@effect/platform"
import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer, Schema } from "effect"
import * as MemoryStore from "../src/MemoryStore.js"
import * as Session from "../src/Session.js"
import { counting, makeBrowser, serve, StoreCalls } from "./utils/http.js"

class GroupSession extends Session.Tag<GroupSession>()("test/GroupSession", {
  counter: Schema.optionalWith(Schema.Number, { default: () => 0 }),
  note: Schema.optional(Schema.String),
  even: Schema.optional(Schema.Int)
}) {}

const text = (body: string) => HttpServerResponse.text(body)
const app = HttpRouter.empty.pipe(
  HttpRouter.get("/incr", Effect.as(GroupSession.update("counter", (n) => n + 1), text("ok"))),
  HttpRouter.get("/big", Effect.as(GroupSession.set("note", "x".repeat(2000)), text("ok"))),
  HttpRouter.get("/not-an-int", Effect.as(GroupSession.set("even", 1.5), text("ok"))),
  HttpRouter.get("/show", Effect.map(GroupSession.getAll, (all) => text(JSON.stringify(all)))),
  GroupSession.middleware({ cookie: { secure: false }, maxSize: 1000 }),
  Effect.catchTags({
    SessionTooLarge: () => HttpServerResponse.text("too large", { status: 413 }),
    SessionEncodeError: () => HttpServerResponse.text("invalid", { status: 422 })
  })
)

// a store round trip of a few ms, so that requests queue behind a write
const env = Layer.provideMerge(serve(app), counting(MemoryStore.layer(), { latency: "3 millis" }))

describe("group commit", () => {
  it.live("updates queued behind a write are written together; an oversized or invalid one fails alone", () =>
    Effect.gen(function*() {
      const browser = yield* makeBrowser
      yield* browser.get("/incr")
      const cookie = `session=${browser.jar.get("session")}`
      const calls = yield* StoreCalls
      for (const key of Object.keys(calls)) delete calls[key]
      const paths = Array.from({ length: 40 }, (_, i) => i === 13 ? "/big" : i === 27 ? "/not-an-int" : "/incr")
      const results = yield* Effect.all(paths.map((path) => browser.get(path, { cookie })), { concurrency: "unbounded" })
      expect(results.map((r) => r.status)).toEqual(paths.map((path) => path === "/big" ? 413 : path === "/not-an-int" ? 422 : 200))
      expect(JSON.parse((yield* browser.get("/show", { cookie })).body)).toEqual({ counter: 39 })
      // grouped: fewer writes than requests, and no write was lost (no reload: one load per request)
      expect(calls.load).toBe(41)
      expect(calls.update).toBeLessThan(38)
    }).pipe(Effect.provide(env)))
})
