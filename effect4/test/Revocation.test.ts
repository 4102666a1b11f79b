/**
 * Revocation is final on the Effect 4 line, shown by deterministic
 * interleavings: a store wrapper (`utils/pausingStore.ts`) holds one request
 * at each of its store calls in turn while a racing operation runs
 * completely, on the memory store and on Redis. Two wrappers over one store
 * stand for two processes sharing it, so the race is the one coordination
 * inside a process cannot prevent.
 *
 * Also: a logout takes effect even when the request fails afterwards.
 */
import { expect, it } from "@effect/vitest"
import type { Scope } from "effect"
import { Context, Effect, Fiber, Layer, Option, Schema } from "effect"
import { HttpRouter, HttpServerResponse } from "effect/http"
import * as MemoryStore from "../src/MemoryStore.js"
import * as Session from "../src/Session.js"
import * as SessionId from "../src/SessionId.js"
import { SessionStore } from "../src/SessionStore.js"
import type { StoreSpec } from "./utils/contention.js"
import { backends, buildStore, isExpired, parseSetCookie, serveOn } from "./utils/contention.js"
import { availabilityOf, describeBackend, preparedFor } from "./utils/contentionSuites.js"
import * as PausingStore from "./utils/pausingStore.js"
import type { Answer } from "./utils/server.js"
import { get } from "./utils/server.js"

class AuthSession extends Session.Tag<AuthSession>()("test/RevocationSession", {
  username: Schema.optional(Schema.String),
  cart: Schema.optional(Schema.String)
}) {}

const ok = HttpServerResponse.text("ok")

const options: Session.Options = { cookie: { secure: false }, idleTimeout: "10 minutes" }

const routes = Layer.mergeAll(
  HttpRouter.add(
    "GET",
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
  HttpRouter.add(
    "GET",
    "/relogin",
    Effect.gen(function*() {
      const principal = yield* AuthSession.principal
      if (Option.isSome(principal)) yield* AuthSession.login(principal.value)
      return ok
    })
  ),
  HttpRouter.add("GET", "/regenerate", Effect.as(AuthSession.regenerate, ok)),
  HttpRouter.add("GET", "/logout", Effect.as(AuthSession.invalidate, ok)),
  HttpRouter.add("GET", "/write", Effect.as(AuthSession.set("cart", "x"), ok)),
  HttpRouter.add("GET", "/anonymous", Effect.as(AuthSession.set("username", "anonymous-data"), ok)),
  HttpRouter.add("GET", "/clear", Effect.as(AuthSession.clear, ok)),
  HttpRouter.add("GET", "/get", Effect.map(AuthSession.getAll, (data) => HttpServerResponse.jsonUnsafe(data))),
  HttpRouter.add("GET", "/logout-then-fail", Effect.andThen(AuthSession.invalidate, Effect.fail("handler failed"))),
  HttpRouter.add("GET", "/logout-then-die", Effect.andThen(AuthSession.invalidate, Effect.die(new Error("handler died")))),
  HttpRouter.add("GET", "/logout-then-500", Effect.as(AuthSession.invalidate, HttpServerResponse.text("oops", { status: 500 }))),
  HttpRouter.add(
    "GET",
    "/logout-write-then-fail",
    Effect.andThen(Effect.andThen(AuthSession.invalidate, AuthSession.set("cart", "x")), Effect.fail("handler failed"))
  ),
  HttpRouter.add("GET", "/write-then-fail", Effect.andThen(AuthSession.set("cart", "x"), Effect.fail("handler failed")))
).pipe(Layer.provide(AuthSession.middleware(options).layer))

/** One "process": an app server over its own wrapper of the shared store. */
interface Node {
  readonly store: PausingStore.PausingStore
  readonly base: string
}

/** Three nodes over one store instance: `setup` prepares and inspects, `a` and `b` race. */
interface Nodes {
  readonly setup: Node
  readonly a: Node
  readonly b: Node
}

const startNodes = (spec: StoreSpec): Effect.Effect<Nodes, unknown, Scope.Scope> =>
  Effect.gen(function*() {
    const { context } = yield* buildStore(spec)
    const node = Effect.gen(function*() {
      const store = PausingStore.make(context)
      return { store, base: yield* serveOn(routes, store.context) }
    })
    return { setup: yield* node, a: yield* node, b: yield* node }
  })

/** The racing requests share one node: one process, one store instance. */
const oneProcess = (nodes: Nodes): Nodes => ({ ...nodes, b: nodes.a })

const request = (node: Node, path: string, id?: string) =>
  get(`${node.base}${path}`, id === undefined ? undefined : `session=${id}`)

/** The session ids a response hands the browser (cookies set, not expired). */
const handedOut = (res: Answer): ReadonlyArray<string> =>
  res.setCookie.filter((line) => parseSetCookie(line).name === "session" && !isExpired(line)).map((line) =>
    parseSetCookie(line).value
  )

/** What a browser holding `id` finds in its session. */
const dataOf = (nodes: Nodes, id: string) =>
  Effect.map(request(nodes.setup, "/get", id), (res) => {
    expect(res.status).toBe(200)
    return JSON.parse(res.body) as { readonly username?: string; readonly cart?: string }
  })

const list = (nodes: Nodes, principal: string) => Effect.provide(Session.list(principal), nodes.setup.store.context)

/** A logged-in session: bound to a principal of its own, holding its username. */
interface Fixture {
  readonly principal: string
  readonly id: string
  /** The session a login to `principal` starts from (`undefined`: a request without a cookie). */
  readonly from?: string | undefined
}

const login = (nodes: Nodes) =>
  Effect.gen(function*() {
    const principal = `user-${SessionId.generateUnsafe().slice(0, 12)}`
    const res = yield* request(nodes.setup, `/login/${principal}`)
    expect(res.status).toBe(200)
    const [id] = handedOut(res)
    expect(id).toBeDefined()
    return { principal, id }
  })

/** An anonymous session holding data (no principal: a clear empties it, and it ends). */
const anonymous = (nodes: Nodes) =>
  Effect.gen(function*() {
    const res = yield* request(nodes.setup, "/anonymous")
    expect(res.status).toBe(200)
    const [id] = handedOut(res)
    expect(id).toBeDefined()
    return { principal: "nobody", id }
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
  start: (nodes: Nodes) => Effect.Effect<Fixture, unknown> = login
) =>
  Effect.gen(function*() {
    for (let k = 1; k <= 40; k++) {
      const fixture = yield* start(nodes)
      const gate = yield* nodes.a.store.arm(k)
      const first = yield* Effect.forkChild(paused.run(nodes.a, fixture))
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
    return yield* Effect.die(new Error(`${paused.name} made more than 40 store calls`))
  })

/** Both orders: each side held at each of its store calls while the other runs. */
const race = (
  nodes: Nodes,
  x: Step,
  y: Step,
  check: (outcome: Outcome) => Effect.Effect<void, unknown>,
  start: (nodes: Nodes) => Effect.Effect<Fixture, unknown> = login
) =>
  Effect.gen(function*() {
    const xCalls = yield* interleave(nodes, x, y, check, start)
    const yCalls = yield* interleave(nodes, y, x, check, start)
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
  ["an anonymous session", (nodes) => Effect.map(anonymous(nodes), (session) => session.id)],
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

it.live("a login reads the principal's revocation marker once, and only on a store with an index", () =>
  Effect.scoped(Effect.gen(function*() {
    const inner = yield* Layer.build(MemoryStore.layer())
    for (const indexed of [true, false]) {
      const store = PausingStore.make(indexed ? inner : Context.make(SessionStore, Context.get(inner, SessionStore)))
      const node = { store, base: yield* serveOn(routes, store.context) }
      // counts the calls from here; holds none
      yield* store.arm(1_000)
      const res = yield* request(node, `/login/user-${indexed}`)
      expect(handedOut(res)).toHaveLength(1)
      expect(store.calls.map((call) => call.operation)).toEqual(indexed ? ["insert", "load"] : ["insert"])
    }
  })))

it.live("withSession: a login in an effect that revokes its principal before it ends is ended too", () =>
  Effect.scoped(Effect.gen(function*() {
    const context = yield* Layer.build(MemoryStore.layer())
    const principal = `user-${SessionId.generateUnsafe().slice(0, 12)}`
    const revokedInside = Effect.andThen(AuthSession.login(principal), Session.revokeAll(principal))
    yield* AuthSession.withSession("", revokedInside, options).pipe(Effect.provide(context))
    expect(yield* Effect.provide(Session.list(principal), context)).toEqual([])
    // a login in a later effect is kept
    yield* Effect.sleep("2 millis")
    yield* AuthSession.withSession("", AuthSession.login(principal), options).pipe(Effect.provide(context))
    expect(yield* Effect.provide(Session.list(principal), context)).toHaveLength(1)
  })))

for (const backend of backends) {
  describeBackend(`revocation on ${backend.name}`, await availabilityOf(backend), () => {
    const spec = preparedFor(backend, "revocation")
    const withNodes = <A>(body: (nodes: Nodes) => Effect.Effect<A, unknown, Scope.Scope>) =>
      Effect.scoped(Effect.suspend(() => Effect.flatMap(startNodes(spec()), body)))
    const noneListed = (nodes: Nodes, principal: string, describe?: string) =>
      Effect.map(list(nodes, principal), (keys) => expect(keys, describe).toEqual([]))

    it.live("a write that races nothing is kept", () =>
      withNodes((nodes) =>
        Effect.gen(function*() {
          const fixture = yield* login(nodes)
          const res = yield* request(nodes.a, "/write", fixture.id)
          expect(res.status).toBe(200)
          expect(yield* dataOf(nodes, fixture.id)).toEqual({ username: fixture.principal, cart: "x" })
          expect(yield* list(nodes, fixture.principal)).toHaveLength(1)
        })
      ))

    // in one process too: revokeAll does not wait for the commits of the
    // requests in flight, so the same interleavings happen on one instance
    for (const [label, topology] of [["", (nodes: Nodes) => nodes], [" in one process", oneProcess]] as const) {
      it.live(`revokeAll vs regenerate${label}, at every store call of each: nothing of the principal lives on`, () =>
        withNodes((nodes) => race(topology(nodes), http("/regenerate"), revokeAll, nothingOfThePrincipal(nodes))), raceTimeout)

      it.live(`revokeAll vs login again as the same principal${label}, at every store call of each: nothing lives on`, () =>
        withNodes((nodes) => race(topology(nodes), http("/relogin"), revokeAll, nothingOfThePrincipal(nodes))), raceTimeout)

      // the login moves a record that revokeAll never touches: revokeAll's marker ends it
      for (const [start, from] of loginStarts) {
        it.live(
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

    it.live("invalidate vs a slow write, at every store call of each: the old id carries no data", () =>
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

    it.live("invalidate vs regenerate, at every store call of each: no id derived from the old one carries data", () =>
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

    // with a principal the clear leaves it, and writes the emptied data; an
    // anonymous session it empties, and ends (a tombstone, then a remove):
    // a write that comes later must drop its data, not recreate the session
    for (const [label, start] of [["", login], [" of an anonymous session", anonymous]] as const) {
      it.live(`clear${label} vs a concurrent write, at every store call of each: the cleared data never comes back`, () =>
        withNodes((nodes) =>
          race(nodes, http("/write"), http("/clear"), (outcome) =>
            Effect.gen(function*() {
              const ids = [outcome.fixture.id, ...outcome.handed]
              const data = yield* Effect.forEach(ids, (id) => dataOf(nodes, id))
              for (const each of data) expect(each.username, outcome.describe).toBeUndefined()
              // a write made whole after the clear is kept
              if (outcome.wholeFirst === "/clear") expect(data, outcome.describe).toContainEqual(wrote)
            }), start)
        ), raceTimeout)
    }

    /** The stored session is gone: its id finds nothing, its principal has no session. */
    const loggedOut = (nodes: Nodes, fixture: Fixture) =>
      Effect.gen(function*() {
        expect(yield* dataOf(nodes, fixture.id)).toEqual({})
        yield* noneListed(nodes, fixture.principal)
      })

    /** A logged-in session's request to `path`, which answers 500; then `check`. */
    const failing = (
      path: string,
      check: (nodes: Nodes, fixture: Fixture, res: Answer) => Effect.Effect<void, unknown>
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
      it.live(
        `a logout holds when the handler then fails (${path})`,
        failing(path, (nodes, fixture, res) => {
          expect(handedOut(res)).toEqual([])
          return loggedOut(nodes, fixture)
        })
      )
    }

    it.live(
      "a logout holds when the handler answers 500, and the 500 expires the cookie",
      failing("/logout-then-500", (nodes, fixture, res) => {
        const cookies = res.setCookie.filter((line) => parseSetCookie(line).name === "session")
        expect(cookies).toHaveLength(1)
        expect(isExpired(cookies[0])).toBe(true)
        return loggedOut(nodes, fixture)
      })
    )

    it.live(
      "a failed request saves nothing: a write then a failure leaves the session as it was",
      failing("/write-then-fail", (nodes, fixture) =>
        Effect.map(dataOf(nodes, fixture.id), (data) => expect(data).toEqual({ username: fixture.principal })))
    )

    it.live("withSession: a logout holds when the effect then fails", () =>
      withNodes((nodes) =>
        Effect.gen(function*() {
          const fixture = yield* login(nodes)
          const failed = yield* AuthSession.withSession(
            fixture.id,
            Effect.andThen(AuthSession.invalidate, Effect.fail("effect failed")),
            options
          ).pipe(Effect.flip, Effect.provide(nodes.a.store.context))
          expect(failed).toBe("effect failed")
          yield* loggedOut(nodes, fixture)
        })
      ))
  })
}
