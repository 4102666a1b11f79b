/**
 * What a request answers when its session fails: SessionError.respond maps
 * a store failure to 503 and a session over maxSize to 413 (the core's
 * answers), for errors of the handler and of the save after it.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer, Schema } from "effect"
import { HttpRouter, HttpServerResponse } from "effect/http"
import * as MemoryStore from "../src/MemoryStore.js"
import * as Session from "../src/Session.js"
import { SessionStoreError } from "../src/SessionError.js"
import * as SessionError from "../src/SessionError.js"
import { SessionStore } from "../src/SessionStore.js"
import { get, serve } from "./utils/server.js"

class Notes extends Session.Tag<Notes>()("test/Notes", {
  note: Schema.optional(Schema.String)
}) {}

/** The memory store, except that the operations named fail as a backend that is down. */
const failing = (operations: ReadonlyArray<"load" | "insert" | "update">): SessionStore["Service"] => {
  const { store } = MemoryStore.make()
  const down = (operation: "load" | "insert" | "update") =>
    Effect.fail(new SessionStoreError({ store: "memory", operation, cause: new Error("connection refused") }))
  return {
    ...store,
    load: (key) => operations.includes("load") ? down("load") : store.load(key),
    insert: (key, write) => operations.includes("insert") ? down("insert") : store.insert(key, write),
    update: (key, write, version) => operations.includes("update") ? down("update") : store.update(key, write, version)
  }
}

const app = (store: SessionStore["Service"], options?: Session.Options) =>
  Layer.mergeAll(
    HttpRouter.add("GET", "/read", Effect.map(Notes.get("note"), (note) => HttpServerResponse.text(note ?? "none"))),
    HttpRouter.add(
      "GET",
      "/write",
      Effect.as(Notes.set("note", "x".repeat(2_000)), HttpServerResponse.text("written"))
    )
  ).pipe(
    Layer.provide(Notes.middleware({ cookie: { secure: false }, ...options }).combine(SessionError.respond).layer),
    Layer.provide(Layer.succeed(SessionStore)(store))
  )

describe("SessionError.respond", () => {
  it.live("a store that fails on load answers 503, and the body does not name the backend", () =>
    Effect.gen(function*() {
      const base = yield* serve(app(failing(["load"])))
      const answer = yield* get(`${base}/read`, `session=${"A".repeat(43)}`)
      expect(answer.status).toBe(503)
      expect(answer.body).toBe("Session store unavailable")
    }).pipe(Effect.scoped))

  it.live("a store that fails on the save after the handler answers 503 rather than the handler's response", () =>
    Effect.gen(function*() {
      const base = yield* serve(app(failing(["insert"])))
      const answer = yield* get(`${base}/write`)
      expect(answer.status).toBe(503)
      expect(answer.setCookie).toEqual([])
    }).pipe(Effect.scoped))

  it.live("a session over maxSize answers 413 and stores nothing", () =>
    Effect.gen(function*() {
      const memory = MemoryStore.make()
      const base = yield* serve(app(memory.store, { maxSize: 1_000 }))
      const answer = yield* get(`${base}/write`)
      expect(answer.status).toBe(413)
      expect(answer.body).toBe("Session too large")
      expect((yield* memory.size).entries).toBe(0)
    }).pipe(Effect.scoped))
})

describe("SessionError messages (the core's words)", () => {
  it("a store error names the store, the operation and every cause", () => {
    const error = new SessionStoreError({
      store: "redis",
      operation: "load",
      cause: new Error("Failed to run command", { cause: Object.assign(new Error("connect ECONNREFUSED"), { code: "ECONNREFUSED" }) })
    })
    expect(error.message).toBe("redis store: load failed: Failed to run command: connect ECONNREFUSED")
  })
})
