/**
 * Stores described by plain data, for the Effect 4 line's contention,
 * revocation, group-commit, security and options tests: every
 * `storeLayer(spec)` is a layer with its own client (its own instance, for
 * memory), so that several of them on one backend behave like the stores of
 * separate processes. Also the counter app those tests burst, store wrappers
 * that count or lose every compare-and-set, and a Set-Cookie reader.
 *
 * No vitest import here (see `contentionSuites.ts` for the vitest side).
 */
import type { Scope } from "effect"
import { Context, Deferred, Effect, Exit, Layer, Schema } from "effect"
import { HttpRouter, HttpServerResponse } from "effect/http"
import { Redis } from "ioredis"
import { randomBytes } from "node:crypto"
import * as MemoryStore from "../../src/MemoryStore.js"
import * as RedisStore from "../../src/RedisStore.js"
import * as Session from "../../src/Session.js"
import { SessionConflict } from "../../src/SessionError.js"
import { SessionIndex, SessionStore } from "../../src/SessionStore.js"
import { serve } from "./server.js"

/** Where a store keeps its sessions: enough to build another instance of it. */
export type StoreSpec =
  | { readonly kind: "memory" }
  | { readonly kind: "redis"; readonly url: string; readonly prefix: string }

/** A new instance of the store and its index, with its own client. */
export const storeLayer = (spec: StoreSpec): Layer.Layer<SessionStore | SessionIndex, unknown> =>
  spec.kind === "memory" ? MemoryStore.layer() : RedisStore.layer({ url: spec.url, prefix: spec.prefix })

/** A backend ready for instances: its spec, and how to remove what the run left there. */
export interface Prepared {
  readonly spec: StoreSpec
  readonly close: () => Promise<void>
}

export interface Backend {
  readonly name: string
  /** Whether separate processes can share it (every store but memory). */
  readonly shared: boolean
  /** The server to probe before running its suite; none for embedded stores. */
  readonly server?: { readonly host: string; readonly port: number } | undefined
  /** Sets the backend up for a run (a prefix of its own). */
  readonly prepare: (label: string) => Promise<Prepared>
}

const redisUrl = process.env.REDIS_URL ?? "redis://127.0.0.1:6379"

/** Removes every key under `prefix` (a test's own keys: few). */
const removeKeys = async (url: string, prefix: string) => {
  const admin = new Redis(url)
  await admin.keys(`${prefix}*`).then((keys) => keys.length > 0 ? admin.del(...keys) : 0).finally(() => admin.quit())
}

/** The stores these tests run on, each with its real server. */
export const backends: ReadonlyArray<Backend> = [
  {
    name: "MemoryStore",
    shared: false,
    prepare: async () => ({ spec: { kind: "memory" }, close: async () => {} })
  },
  {
    name: "RedisStore",
    shared: true,
    server: { host: new URL(redisUrl).hostname, port: Number(new URL(redisUrl).port || 6379) },
    prepare: async (label) => {
      // the Effect 4 line's own keys: parallel runs of other suites never meet them
      const prefix = `e4par:${label}_${randomBytes(4).toString("hex")}:`
      return { spec: { kind: "redis", url: redisUrl, prefix }, close: () => removeKeys(redisUrl, prefix) }
    }
  }
]

/**
 * The routes `routes` served over real HTTP for the scope, on `context` (a
 * built store): its base URL.
 */
export const serveOn = <A, E, R, S>(
  routes: Layer.Layer<A, E, R>,
  context: Context.Context<S>
): Effect.Effect<string, unknown, Scope.Scope> =>
  serve(routes.pipe(Layer.provide(Layer.succeedContext(context))))

/** A new instance of the store, built in the scope, with its store service. */
export const buildStore = (spec: StoreSpec) =>
  Effect.map(Layer.build(storeLayer(spec)), (context) => ({ context, store: Context.get(context, SessionStore) }))

/**
 * Holds every request that reaches it until `parties` have: a burst is then
 * in flight at once, and what follows the barrier starts together.
 */
export const makeBarrier = (parties: number): Effect.Effect<Effect.Effect<void>> =>
  Effect.map(Deferred.make<void>(), (open) => {
    let arrived = 0
    return Effect.suspend(() => {
      arrived += 1
      if (arrived === parties) Deferred.doneUnsafe(open, Exit.void)
      return Deferred.await(open)
    })
  })

/** The session the contention tests increment. */
export class CounterSession extends Session.Tag<CounterSession>()("test/CounterSession", {
  // no default: a session holding 0 is not the empty session, and is stored
  counter: Schema.optional(Schema.Number)
}) {}

/** Short-lived sessions: what a run leaves on a server expires soon. */
export const counterOptions: Session.Options = { cookie: { secure: false }, idleTimeout: "10 minutes" }

/**
 * `/start` stores a session (counter 0), `/incr` increments it and answers
 * the value it saw, `/counter` reads it. `beforeIncrement` runs in `/incr`
 * before the session is touched (a test's barrier).
 */
export const counterRoutes = (beforeIncrement: Effect.Effect<void>, options: Session.Options = counterOptions) =>
  Layer.mergeAll(
    HttpRouter.add("GET", "/start", Effect.as(CounterSession.set("counter", 0), HttpServerResponse.text("0"))),
    HttpRouter.add(
      "GET",
      "/incr",
      Effect.gen(function*() {
        yield* beforeIncrement
        yield* CounterSession.update("counter", (n) => (n ?? 0) + 1)
        return HttpServerResponse.text(String((yield* CounterSession.get("counter")) ?? 0))
      })
    ),
    HttpRouter.add("GET", "/counter", Effect.map(CounterSession.get("counter"), (n) => HttpServerResponse.text(String(n ?? 0))))
  ).pipe(Layer.provide(CounterSession.middleware(options).layer))

type Store = SessionStore["Service"]

/** How many times each store operation was called, by name. */
export type Calls = Record<string, number>

/**
 * A store that counts its calls (and, with `latency`, answers each after that
 * many milliseconds, as a network store does: requests then overlap).
 */
export const counting = (store: Store, latency = 0): { readonly store: Store; readonly calls: Calls } => {
  const calls: Calls = {}
  const counted = <A, E>(operation: string, effect: Effect.Effect<A, E>) =>
    Effect.suspend(() => {
      calls[operation] = (calls[operation] ?? 0) + 1
      return latency > 0 ? Effect.andThen(Effect.sleep(latency), effect) : effect
    })
  return {
    calls,
    store: {
      name: store.name,
      load: (key) => counted("load", store.load(key)),
      insert: (key, write) => counted("insert", store.insert(key, write)),
      update: (key, write, version) => counted("update", store.update(key, write, version)),
      touch: (key, expiresAt) => counted("touch", store.touch(key, expiresAt)),
      remove: (key) => counted("remove", store.remove(key))
    }
  }
}

/** Empties a call count (between the steps of a test). */
export const resetCalls = (calls: Calls): Calls => {
  for (const key of Object.keys(calls)) delete calls[key]
  return calls
}

/**
 * A store whose compare-and-set always loses, as if a writer in another
 * process always saved first; counts the attempts.
 */
export const alwaysConflicting = (store: Store): { readonly store: Store; readonly attempts: { update: number } } => {
  const attempts = { update: 0 }
  return {
    attempts,
    store: {
      ...store,
      update: () =>
        Effect.suspend(() => {
          attempts.update += 1
          return Effect.fail(new SessionConflict({ reason: "VersionMismatch" }))
        })
    }
  }
}

/** A Set-Cookie line: the cookie's name, value and attributes (lower-case names; a flag is `true`). */
export const parseSetCookie = (line: string) => {
  const [pair, ...rest] = line.split(";")
  const at = pair.indexOf("=")
  const attributes: Record<string, string | true> = {}
  for (const part of rest) {
    const eq = part.indexOf("=")
    if (eq === -1) attributes[part.trim().toLowerCase()] = true
    else attributes[part.slice(0, eq).trim().toLowerCase()] = part.slice(eq + 1).trim()
  }
  return { name: pair.slice(0, at).trim(), value: pair.slice(at + 1).trim(), attributes }
}

/** Whether a Set-Cookie line expires its cookie. */
export const isExpired = (line: string): boolean => {
  const { attributes } = parseSetCookie(line)
  const expires = attributes["expires"]
  return attributes["max-age"] === "0" || (typeof expires === "string" && new Date(expires).getTime() <= Date.now())
}
