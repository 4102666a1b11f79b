/**
 * The session app of the in-process benchmarks: its routes (`sessionApp`, used
 * by `bench/micro.ts`) and, for `bench/interleave.ts`, the app on a
 * synchronous in-memory store with its requests through `HttpApp.toHandled`
 * (no web `Response`, as micro.ts's DIRECT=1), bundled over one revision's
 * `src/` per build; with `REDIS_URL` set, on the revision's `RedisStore`.
 */
import { HttpApp, HttpRouter, HttpServerRequest, HttpServerResponse } from "@effect/platform"
import { Context, Effect, Layer, Option, Schema, Scope } from "effect"
import { randomBytes } from "node:crypto"
import * as RedisStore from "../src/RedisStore.js"
import * as Session from "../src/Session.js"
import * as SessionStore from "../src/SessionStore.js"

export class AppSession extends Session.Tag<AppSession>()("micro/AppSession", {
  value: Schema.optional(Schema.String),
  counter: Schema.optional(Schema.Number)
}) {}

/** `/setup` (a new session), `/get` (a read), `/incr` (a write), `/plain` (untouched), in the middleware. */
export const sessionApp = HttpRouter.empty.pipe(
  HttpRouter.get("/setup", Effect.as(Effect.zipRight(AppSession.set("value", "hello"), AppSession.set("counter", 0)), HttpServerResponse.text("ok"))),
  HttpRouter.get("/get", Effect.map(AppSession.get("value"), (v) => HttpServerResponse.text(v ?? ""))),
  HttpRouter.get("/incr", Effect.gen(function*() {
    yield* AppSession.update("counter", (n) => (n ?? 0) + 1)
    const counter = yield* AppSession.get("counter")
    return HttpServerResponse.text(String(counter ?? 0))
  })),
  HttpRouter.get("/plain", HttpServerResponse.text("plain")),
  AppSession.middleware({ cookie: { secure: false } })
)

interface Rec { data: Uint8Array; version: number; expiresAt: number; principal: Option.Option<string> }

/** A store's operations on a new synchronous in-memory map (the benchmarks' store without I/O). */
export const memoryOperations = (): SessionStore.SessionStoreOperations => {
  const records = new Map<string, Rec>()
  return {
    load: (key) => Effect.sync(() => Option.fromNullable(records.get(key))),
    insert: (key, w) => Effect.sync(() => { records.set(key, { ...w, version: 1 }) }),
    update: (key, w, v) => Effect.sync(() => { records.set(key, { ...w, version: v + 1 }); return v + 1 }),
    touch: () => Effect.succeed(true),
    remove: (key) => Effect.sync(() => { records.delete(key) })
  }
}

/** The app's handler: a request for `path` with `cookie`, resolved once answered. */
export type Send = (path: string, cookie: string | undefined) => Promise<unknown>

/**
 * The store of `setup`: with `REDIS_URL` set, the revision's own `RedisStore`
 * on that server (its records under a prefix of their own, the layer kept
 * open for the process's life); otherwise the synchronous in-memory map.
 */
const storeOf = async (): Promise<SessionStore.SessionStore["Type"]> => {
  const url = process.env.REDIS_URL
  if (url === undefined || url === "") return SessionStore.make("interleave", memoryOperations())
  const prefix = `interleave-${randomBytes(6).toString("hex")}:`
  const context = await Effect.runPromise(Layer.buildWithScope(RedisStore.layer({ url, prefix }), Effect.runSync(Scope.make())))
  return Context.get(context, SessionStore.SessionStore)
}

/** Builds the app on its own store and opens one session; `send` and its cookie. */
export const setup = async (): Promise<{ readonly send: Send; readonly cookie: string }> => {
  const store = await storeOf()
  let response: HttpServerResponse.HttpServerResponse | undefined
  const handled = HttpApp.toHandled(
    Effect.provideService(sessionApp, SessionStore.SessionStore, store) as HttpApp.Default<unknown, never>,
    (_request, res) => Effect.sync(() => { response = res })
  )
  const send: Send = (path, cookie) =>
    new Promise((resolve) => {
      const request = new Request(`http://localhost${path}`, { headers: cookie === undefined ? {} : { cookie } })
      const fiber = Effect.runFork(Effect.provideService(handled, HttpServerRequest.HttpServerRequest, HttpServerRequest.fromWeb(request)))
      fiber.addObserver(() => resolve(response))
    })
  await send("/setup", undefined)
  const setCookie = response === undefined ? undefined : Object.values(response.cookies.cookies)[0]
  if (setCookie === undefined) throw new Error("the setup request set no cookie")
  return { send, cookie: `${setCookie.name}=${setCookie.value}` }
}
