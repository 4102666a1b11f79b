/**
 * Revocation is final (issue 11), shown by deterministic interleavings: a
 * store wrapper (`utils/pausingStore.ts`) holds one request at each of its
 * store calls in turn while a racing operation runs completely, on the
 * real stores. Two wrappers over one store stand for two processes sharing
 * it, so the race is the one coordination inside a process cannot prevent.
 *
 * Also: a logout takes effect even when the request fails afterwards.
 */
import { HttpRouter, HttpServerResponse } from "@effect/platform"
import { expect, it } from "@effect/vitest"
import type { Scope } from "effect"
import { Context, Effect, Fiber, Layer, Option, Schema } from "effect"
import * as MemoryStore from "../src/MemoryStore.js"
import * as Session from "../src/Session.js"
import * as SessionId from "../src/SessionId.js"
import { SessionStore } from "../src/SessionStore.js"
import { describeBackend } from "./utils/backend.js"
import type { StoreSpec } from "./utils/contention.js"
import { backends, storeLayer } from "./utils/contention.js"
import { availabilityOf, preparedFor } from "./utils/contentionSuites.js"
import type { Response } from "./utils/http.js"
import { makeBrowser, parseSetCookie, serve } from "./utils/http.js"
import * as PausingStore from "./utils/pausingStore.js"

class AuthSession extends Session.Tag<AuthSession>()("test/RevocationSession", {
  username: Schema.optional(Schema.String),
  cart: Schema.optional(Schema.String)
}) {}

const ok = HttpServerResponse.text("ok")

const routes = HttpRouter.empty.pipe(
  HttpRouter.get(
    "/login/:user",
    Effect.gen(function*() {
      const { user } = yield* HttpRouter.params
      yield* AuthSession.login(user!)
      yield* AuthSession.set("username", user)
      return ok
    })
  ),
  // a login again as the principal the session is bound to (a password
  // re-check before a sensitive page): only a logged-in session gets it
  HttpRouter.get(
    "/relogin",
    Effect.gen(function*() {
      const principal = yield* AuthSession.principal
      if (Option.isSome(principal)) yield* AuthSession.login(principal.value)
      return ok
    })
  ),
  HttpRouter.get("/regenerate", Effect.as(AuthSession.regenerate, ok)),
  HttpRouter.get("/logout", Effect.as(AuthSession.invalidate, ok)),
  HttpRouter.get("/write", Effect.as(AuthSession.set("cart", "x"), ok)),
  HttpRouter.get("/clear", Effect.as(AuthSession.clear, ok)),
  HttpRouter.get("/get", Effect.map(AuthSession.getAll, (data) => HttpServerResponse.unsafeJson(data))),
  HttpRouter.get("/logout-then-fail", Effect.zipRight(AuthSession.invalidate, Effect.fail("handler failed"))),
  HttpRouter.get("/logout-then-die", Effect.zipRight(AuthSession.invalidate, Effect.dieMessage("handler died"))),
  HttpRouter.get(
    "/logout-then-500",
    Effect.as(AuthSession.invalidate, HttpServerResponse.text("oops", { status: 500 }))
  ),
  HttpRouter.get(
    "/logout-write-then-fail",
    Effect.zipRight(Effect.zipRight(AuthSession.invalidate, AuthSession.set("cart", "x")), Effect.fail("handler failed"))
  ),
  HttpRouter.get("/write-then-fail", Effect.zipRight(AuthSession.set("cart", "x"), Effect.fail("handler failed")))
)

const options: Session.Options = { cookie: { secure: false }, idleTimeout: "10 minutes" }
const app = routes.pipe(AuthSession.middleware(options))

/** One "process": an app server over its own wrapper of the shared store. */
interface Node {
  readonly store: PausingStore.PausingStore
  readonly server: Context.Context<Layer.Layer.Success<ReturnType<typeof serve>>>
}

/** Three nodes over one store instance: `setup` prepares and inspects, `a` and `b` race. */
interface Nodes {
  readonly setup: Node
  readonly a: Node
  readonly b: Node
}

const startNodes = (spec: StoreSpec): Effect.Effect<Nodes, unknown, Scope.Scope> =>
  Effect.gen(function*() {
    const inner = yield* Layer.build(storeLayer(spec))
    const node = Effect.gen(function*() {
      const store = PausingStore.make(inner)
      const server = yield* Layer.build(serve(app).pipe(Layer.provide(Layer.succeedContext(store.context))))
      return { store, server }
    })
    return { setup: yield* node, a: yield* node, b: yield* node }
  })

/** The racing requests share one node: one process, one store instance. */
const oneProcess = (nodes: Nodes): Nodes => ({ ...nodes, b: nodes.a })

const request = (node: Node, path: string, id?: string) =>
  Effect.flatMap(
    Effect.provide(makeBrowser, node.server),
    (browser) => browser.get(path, id === undefined ? undefined : { cookie: `session=${id}` })
  )

const isExpired = (line: string) => {
  const { attributes } = parseSetCookie(line)
  const expires = attributes["expires"]
  return attributes["max-age"] === "0" || (typeof expires === "string" && new Date(expires).getTime() <= Date.now())
}

/** The session ids a response hands the browser (cookies set, not expired). */
const handedOut = (res: Response): ReadonlyArray<string> =>
  res.setCookies.filter((line) => parseSetCookie(line).name === "session" && !isExpired(line)).map((line) =>
    parseSetCookie(line).value
  )

/** What a browser holding `id` finds in its session. */
const dataOf = (nodes: Nodes, id: string) =>
  Effect.map(request(nodes.setup, "/get", id), (res) => {
    expect(res.status).toBe(200)
    return JSON.parse(res.body) as { readonly username?: string; readonly cart?: string }
  })

const list = (nodes: Nodes, principal: string) =>
  Effect.provide(Session.list(principal), nodes.setup.store.context)

/** A logged-in session: bound to a principal of its own, holding its username. */
interface Fixture {
  readonly principal: string
  readonly id: string
  /** The session a login to `principal` starts from (`undefined`: a request without a cookie). */
  readonly from?: string | undefined
}

const login = (nodes: Nodes) =>
  Effect.gen(function*() {
    const principal = `user-${SessionId.unsafeGenerate().slice(0, 12)}`
    const res = yield* request(nodes.setup, `/login/${principal}`)
    expect(res.status).toBe(200)
    const [id] = handedOut(res)
    expect(id).toBeDefined()
    return { principal, id }
  })

/** One side of a race: what it hands out. */
interface Step {
  readonly name: string
  readonly run: (node: Node, fixture: Fixture) => Effect.Effect<ReadonlyArray<string>, unknown>
}

const http = (path: string): Step => ({
  name: path,
  run: (node, fixture) => Effect.map(request(node, path, fixture.id), handedOut)
})

const revokeAll: Step = {
  name: "revokeAll",
  run: (node, fixture) => Effect.as(Effect.provide(Session.revokeAll(fixture.principal), node.store.context), [])
}

interface Outcome {
  readonly fixture: Fixture
  /** Ids handed out by either side. */
  readonly handed: ReadonlyArray<string>
  /** The step whose store calls all came before the other's first one, if one did. */
  readonly wholeFirst: string | undefined
  /** The step that ran whole before the other's request started, if one did. */
  readonly ranBefore?: string | undefined
  readonly describe: string
}

/**
 * For k = 1, 2, …: runs `paused` on node a until its k-th store call, runs
 * `other` on node b completely, then lets `paused` finish; checks the
 * outcome. Stops at the first k that `paused` does not reach (it then ran
 * whole before `other`, the last interleaving). Returns how many store calls
 * `paused` makes.
 */
const interleave = (
  nodes: Nodes,
  paused: Step,
  other: Step,
  check: (outcome: Outcome) => Effect.Effect<void, unknown>,
  prepare: (nodes: Nodes) => Effect.Effect<Fixture, unknown> = login
) =>
  Effect.gen(function*() {
    for (let k = 1; k <= 40; k++) {
      const fixture = yield* prepare(nodes)
      const gate = yield* nodes.a.store.arm(k)
      const first = yield* Effect.fork(paused.run(nodes.a, fixture))
      const held = yield* Effect.raceFirst(Effect.map(gate.reached, Option.some), Effect.as(Fiber.await(first), Option.none()))
      if (Option.isNone(held)) {
        // nothing held: the other side's calls must not be either
        yield* gate.release
        const handedFirst = yield* Fiber.join(first)
        // the other request starts in a later millisecond than the first one ended
        yield* Effect.sleep("2 millis")
        const handed = [...handedFirst, ...yield* other.run(nodes.b, fixture)]
        yield* check({
          fixture,
          handed,
          wholeFirst: paused.name,
          ranBefore: paused.name,
          describe: `${paused.name} whole, then ${other.name}`
        })
        return k - 1
      }
      const handedByOther = yield* other.run(nodes.b, fixture)
      yield* gate.release
      const handed = [...yield* Fiber.join(first), ...handedByOther]
      yield* check({
        fixture,
        handed,
        wholeFirst: k === 1 ? other.name : undefined,
        describe: `${paused.name} held before its call ${k} (${held.value.operation}) while ${other.name} ran`
      })
    }
    return yield* Effect.dieMessage(`${paused.name} made more than 40 store calls`)
  })

/** Both orders: each side held at each of its store calls while the other runs. */
const race = (
  nodes: Nodes,
  x: Step,
  y: Step,
  check: (outcome: Outcome) => Effect.Effect<void, unknown>,
  prepare: (nodes: Nodes) => Effect.Effect<Fixture, unknown> = login
) =>
  Effect.gen(function*() {
    const xCalls = yield* interleave(nodes, x, y, check, prepare)
    const yCalls = yield* interleave(nodes, y, x, check, prepare)
    // the interleavings really happened: each side was held at least once mid-way
    expect(xCalls).toBeGreaterThan(0)
    expect(yCalls).toBeGreaterThan(0)
  })

/** After `revokeAll` has returned: no session of the principal, and no id leads to data. */
const nothingOfThePrincipal = (nodes: Nodes) => (outcome: Outcome) =>
  Effect.gen(function*() {
    expect(yield* list(nodes, outcome.fixture.principal), outcome.describe).toEqual([])
    for (const id of [outcome.fixture.id, ...outcome.handed]) {
      expect(yield* dataOf(nodes, id), outcome.describe).toEqual({})
    }
  })

const wrote = { cart: "x" }

/** A login to the fixture's principal from the session `from` (or from no session). */
const loginFrom: Step = {
  name: "login",
  run: (node, fixture) => Effect.map(request(node, `/login/${fixture.principal}`, fixture.from), handedOut)
}

/** The sessions a login to a logged-in principal may start from: anonymous, another principal's, none. */
const loginStarts: ReadonlyArray<readonly [string, (nodes: Nodes) => Effect.Effect<string | undefined, unknown>]> = [
  ["an anonymous session", (nodes) =>
    Effect.map(request(nodes.setup, "/write"), (res) => {
      const [id] = handedOut(res)
      expect(id).toBeDefined()
      return id
    })],
  ["a session of another principal", (nodes) => Effect.map(login(nodes), (other) => other.id)],
  ["no session", () => Effect.succeed(undefined)]
]

/**
 * After `revokeAll` has returned and the login's request has finished: no
 * session of the principal lives on, unless the login's request started
 * after `revokeAll` returned (then it is kept, with the principal bound).
 */
const revokedUnlessLaterLogin = (nodes: Nodes) => (outcome: Outcome) =>
  Effect.gen(function*() {
    const { fixture } = outcome
    if (fixture.from !== undefined) {
      expect((yield* dataOf(nodes, fixture.from)).username, outcome.describe).not.toBe(fixture.principal)
    }
    if (outcome.ranBefore !== "revokeAll") return yield* nothingOfThePrincipal(nodes)(outcome)
    expect(outcome.handed, outcome.describe).toHaveLength(1)
    expect((yield* dataOf(nodes, outcome.handed[0])).username, outcome.describe).toBe(fixture.principal)
    expect(yield* list(nodes, fixture.principal), outcome.describe).toHaveLength(1)
    expect(yield* dataOf(nodes, fixture.id), outcome.describe).toEqual({})
  })

const raceTimeout = 180_000

it.scopedLive("a login reads the principal's revocation marker once, and only on a store with an index", () =>
  Effect.gen(function*() {
    const inner = yield* Layer.build(MemoryStore.layer())
    for (const indexed of [true, false]) {
      const store = PausingStore.make(indexed ? inner : Context.make(SessionStore, Context.get(inner, SessionStore)))
      const server = yield* Layer.build(serve(app).pipe(Layer.provide(Layer.succeedContext(store.context))))
      // counts the calls from here; holds none
      yield* store.arm(1_000)
      const res = yield* request({ store, server }, `/login/user-${indexed}`)
      expect(handedOut(res)).toHaveLength(1)
      expect(store.calls.map((call) => call.operation)).toEqual(indexed ? ["insert", "load"] : ["insert"])
    }
  }))

it.scopedLive("withSession: a login in an effect that revokes its principal before it ends is ended too", () =>
  Effect.gen(function*() {
    const context = yield* Layer.build(MemoryStore.layer())
    const principal = `user-${SessionId.unsafeGenerate().slice(0, 12)}`
    const revokedInside = Effect.zipRight(AuthSession.login(principal), Session.revokeAll(principal))
    yield* AuthSession.withSession("", revokedInside, options).pipe(Effect.provide(context))
    expect(yield* Effect.provide(Session.list(principal), context)).toEqual([])
    // a login in a later effect is kept
    yield* Effect.sleep("2 millis")
    yield* AuthSession.withSession("", AuthSession.login(principal), options).pipe(Effect.provide(context))
    expect(yield* Effect.provide(Session.list(principal), context)).toHaveLength(1)
  }))

for (const backend of backends) {
  const indexed = backend.indexed ?? true
  describeBackend(`revocation on ${backend.name}`, await availabilityOf(backend), () => {
    const spec = preparedFor(backend)
    const withNodes = <A>(body: (nodes: Nodes) => Effect.Effect<A, unknown, Scope.Scope>) =>
      Effect.suspend(() => Effect.flatMap(startNodes(spec()), body))
    /** No session of the principal is listed (a store without an index cannot tell). */
    const noneListed = (nodes: Nodes, principal: string, describe?: string) =>
      indexed ? Effect.map(list(nodes, principal), (keys) => expect(keys, describe).toEqual([])) : Effect.void

    it.scopedLive("a write that races nothing is kept", () =>
      withNodes((nodes) =>
        Effect.gen(function*() {
          const fixture = yield* login(nodes)
          const res = yield* request(nodes.a, "/write", fixture.id)
          expect(res.status).toBe(200)
          expect(yield* dataOf(nodes, fixture.id)).toEqual({ username: fixture.principal, cart: "x" })
          if (indexed) expect(yield* list(nodes, fixture.principal)).toHaveLength(1)
        })
      ))

    // revokeAll needs the index; in one process too: it does not wait for
    // the commits of the requests in flight, so the same interleavings
    // happen on one instance
    for (const [label, topology] of [["", (nodes: Nodes) => nodes], [" in one process", oneProcess]] as const) {
      if (!indexed) break
      it.scopedLive(`revokeAll vs regenerate${label}, at every store call of each: nothing of the principal lives on`, () =>
        withNodes((nodes) =>
          race(topology(nodes), http("/regenerate"), revokeAll, nothingOfThePrincipal(nodes))
        ), raceTimeout)

      it.scopedLive(`revokeAll vs login again as the same principal${label}, at every store call of each: nothing lives on`, () =>
        withNodes((nodes) => race(topology(nodes), http("/relogin"), revokeAll, nothingOfThePrincipal(nodes))), raceTimeout)

      // the login moves a record that revokeAll never touches: revokeAll's
      // marker ends it (the memory store and Redis: the marker's records and
      // the login's store calls are the same on every store)
      if (backend.name !== "MemoryStore" && backend.name !== "RedisStore") continue
      for (const [start, from] of loginStarts) {
        it.scopedLive(
          `revokeAll vs a login from ${start}${label}, at every store call of each: nothing lives on but a login begun after`,
          () =>
            withNodes((nodes) =>
              race(
                topology(nodes),
                loginFrom,
                revokeAll,
                revokedUnlessLaterLogin(nodes),
                (nodes) => Effect.zipWith(login(nodes), from(nodes), (fixture, from) => ({ ...fixture, from }))
              )
            ),
          raceTimeout
        )
      }
    }

    it.scopedLive("invalidate vs a slow write, at every store call of each: the old id carries no data", () =>
      withNodes((nodes) =>
        race(nodes, http("/write"), http("/logout"), (outcome) =>
          Effect.gen(function*() {
            expect(yield* dataOf(nodes, outcome.fixture.id), outcome.describe).toEqual({})
            for (const id of outcome.handed) {
              const data = yield* dataOf(nodes, id)
              expect(data.username, outcome.describe).toBeUndefined()
              // a write made whole after the logout starts a new session, and is kept
              if (outcome.wholeFirst === "/logout") expect(data, outcome.describe).toEqual(wrote)
            }
            if (outcome.wholeFirst === "/logout") expect(outcome.handed, outcome.describe).toHaveLength(1)
            yield* noneListed(nodes, outcome.fixture.principal, outcome.describe)
          }))
      ), raceTimeout)

    it.scopedLive("invalidate vs regenerate, at every store call of each: no id derived from the old one carries data", () =>
      withNodes((nodes) =>
        race(nodes, http("/regenerate"), http("/logout"), (outcome) =>
          Effect.gen(function*() {
            expect(yield* dataOf(nodes, outcome.fixture.id), outcome.describe).toEqual({})
            // a regenerate made whole before the logout's first store call is
            // not concurrent with it: the logout came with the id it replaced
            if (outcome.wholeFirst === "/regenerate") return
            for (const id of outcome.handed) {
              expect(yield* dataOf(nodes, id), outcome.describe).toEqual({})
            }
            yield* noneListed(nodes, outcome.fixture.principal, outcome.describe)
          }))
      ), raceTimeout)

    it.scopedLive("clear vs a concurrent write, at every store call of each: the cleared data never comes back", () =>
      withNodes((nodes) =>
        race(nodes, http("/write"), http("/clear"), (outcome) =>
          Effect.gen(function*() {
            for (const id of [outcome.fixture.id, ...outcome.handed]) {
              const data = yield* dataOf(nodes, id)
              expect(data.username, outcome.describe).toBeUndefined()
            }
            // a write made whole after the clear is kept
            if (outcome.wholeFirst === "/clear") {
              const kept = yield* Effect.forEach([outcome.fixture.id, ...outcome.handed], (id) => dataOf(nodes, id))
              expect(kept, outcome.describe).toContainEqual(wrote)
            }
          }))
      ), raceTimeout)

    /** The stored session is gone: its id finds nothing, its principal has no session. */
    const loggedOut = (nodes: Nodes, fixture: Fixture) =>
      Effect.gen(function*() {
        expect(yield* dataOf(nodes, fixture.id)).toEqual({})
        yield* noneListed(nodes, fixture.principal)
      })

    /** A logged-in session's request to `path`, which answers 500; then `check`. */
    const failing = (
      path: string,
      check: (nodes: Nodes, fixture: Fixture, res: Response) => Effect.Effect<void, unknown>
    ) =>
    () =>
      withNodes((nodes) =>
        Effect.gen(function*() {
          const fixture = yield* login(nodes)
          const res = yield* request(nodes.a, path, fixture.id)
          expect(res.status).toBe(500)
          yield* check(nodes, fixture, res)
        })
      )

    // a failed request saves nothing but the logout: the write after it in
    // /logout-write-then-fail is not stored under any id either
    for (const path of ["/logout-then-fail", "/logout-then-die", "/logout-write-then-fail"]) {
      it.scopedLive(
        `a logout holds when the handler then fails (${path})`,
        failing(path, (nodes, fixture, res) => {
          expect(handedOut(res)).toEqual([])
          return loggedOut(nodes, fixture)
        })
      )
    }

    it.scopedLive(
      "a logout holds when the handler answers 500, and the 500 expires the cookie",
      failing("/logout-then-500", (nodes, fixture, res) => {
        const cookies = res.setCookies.filter((line) => parseSetCookie(line).name === "session")
        expect(cookies).toHaveLength(1)
        expect(isExpired(cookies[0])).toBe(true)
        return loggedOut(nodes, fixture)
      })
    )

    it.scopedLive(
      "a failed request saves nothing: a write then a failure leaves the session as it was",
      failing("/write-then-fail", (nodes, fixture) =>
        Effect.map(dataOf(nodes, fixture.id), (data) => expect(data).toEqual({ username: fixture.principal })))
    )

    it.scopedLive("withSession: a logout holds when the effect then fails", () =>
      withNodes((nodes) =>
        Effect.gen(function*() {
          const fixture = yield* login(nodes)
          const failed = yield* AuthSession.withSession(
            fixture.id,
            Effect.zipRight(AuthSession.invalidate, Effect.fail("effect failed")),
            options
          ).pipe(Effect.flip, Effect.provide(nodes.a.store.context))
          expect(failed).toBe("effect failed")
          yield* loggedOut(nodes, fixture)
        })
      ))
  })
}
