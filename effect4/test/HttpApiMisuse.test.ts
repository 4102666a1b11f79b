/**
 * A session used where no session middleware provides it, on the Effect 4
 * line. The Effect 3 line (test/HttpApiMisuse.test.ts) detects at run time a
 * session middleware given where it wraps the sending of the response, which
 * its types allow; here that place does not accept it: a session middleware
 * is an `HttpRouter.Middleware`, whose layer is provided to the routes, not
 * a function over the app that `HttpRouter.serve`'s `middleware` option takes,
 * and a route or endpoint using the session without it does not compile
 * (checked below with `@ts-expect-error`, by the typecheck, next to the same
 * programs written right). What remains at run time is a handler
 * whose requirement was cast away: it fails its request with a 500, sets no
 * cookie, and the server's log names the session and where its middleware
 * belongs, each time.
 */
import { NodeHttpServer } from "@effect/platform-node"
import { describe, expect, it } from "@effect/vitest"
import { Cause, Context, Effect, Layer, Logger, References, Schema } from "effect"
import { HttpRouter, HttpServer, HttpServerResponse } from "effect/http"
import { HttpApi, HttpApiBuilder, HttpApiEndpoint, HttpApiGroup } from "effect/http-api"
import { createServer } from "node:http"
import * as MemoryStore from "../src/MemoryStore.js"
import * as Session from "../src/Session.js"
import { get } from "./utils/server.js"

class MisusedSession extends Session.Tag<MisusedSession>()("test/e4misuse/MisusedSession", {
  username: Schema.optional(Schema.String)
}) {}

const notProvided =
  "effect-session: test/e4misuse/MisusedSession is not provided: provide test/e4misuse/MisusedSession.middleware().layer to the routes, or use withSession"

/** A logger that keeps each entry's message and cause, as text. */
const capture = () => {
  const entries: Array<string> = []
  const logger = Logger.make(({ cause, message }) => {
    entries.push([...(Array.isArray(message) ? message : [message]).map(String), Cause.pretty(cause)].join(" "))
  })
  return { entries, loggers: new Set([logger]) }
}

/** Serves `routes` with the server's own request log, into `loggers`; gives the base URL. */
const serveLogged = <A, E, R>(routes: Layer.Layer<A, E, R>, loggers: ReadonlySet<Logger.Logger<unknown, unknown>>) =>
  Effect.gen(function*() {
    const served = HttpRouter.serve(routes, { disableListenLog: true }).pipe(
      Layer.provideMerge(NodeHttpServer.layer(createServer, { port: 0, host: "127.0.0.1" }))
    ) as Layer.Layer<HttpServer.HttpServer, unknown>
    // the server's fibers log with the loggers they were started with
    const context = yield* Layer.build(served).pipe(Effect.provideService(References.CurrentLoggers, loggers))
    const address = Context.get(context, HttpServer.HttpServer).address
    if (address._tag === "UnixPathAddress") throw new Error("expected a TCP address")
    return `http://127.0.0.1:${address.port}`
  })

// what a user who left the middleware out must write for it to compile
const login = Effect.as(MisusedSession.set("username", "alice"), HttpServerResponse.text("ok")) as Effect.Effect<
  HttpServerResponse.HttpServerResponse
>

// Compile-time checks (the typecheck runs them; never called).
export const typeChecks = () => {
  const route = HttpRouter.add("GET", "/login", Effect.as(MisusedSession.set("username", "alice"), HttpServerResponse.text("ok")))
  const server = NodeHttpServer.layer(createServer, { port: 0 })
  // the middleware's layer provided to the route: the program needs nothing more
  const right: Effect.Effect<never, unknown, never> = HttpRouter.serve(
    route.pipe(Layer.provide(MisusedSession.middleware().layer), Layer.provide(MemoryStore.layer()))
  ).pipe(Layer.provide(server), Layer.launch)
  // @ts-expect-error without it, the session is still required
  const withoutMiddleware: Effect.Effect<never, unknown, never> = HttpRouter.serve(
    route.pipe(Layer.provide(MemoryStore.layer()))
  ).pipe(Layer.provide(server), Layer.launch)
  // @ts-expect-error serve's middleware option (which wraps the sending of the response) does not take it
  const inServe = HttpRouter.serve(route, { middleware: MisusedSession.middleware() })

  const Api = HttpApi.make("api").add(HttpApiGroup.make("account").add(HttpApiEndpoint.post("login", "/login")))
  // an endpoint using the session in a group without the session's HttpApiMiddleware
  const AccountLive = HttpApiBuilder.group(Api, "account", (handlers) =>
    handlers.handle("login", () => Effect.orDie(MisusedSession.set("username", "alice"))))
  // @ts-expect-error its group's layer still requires the session
  const endpoint: Layer.Layer<never, never, never> = AccountLive
  return [right, withoutMiddleware, inServe, endpoint]
}

describe("a session used without its middleware", () => {
  it.live("on a route: 500, no cookie, and the log names the session and where its middleware belongs", () =>
    Effect.gen(function*() {
      const log = capture()
      const base = yield* serveLogged(
        HttpRouter.add("GET", "/login", login).pipe(Layer.provide(MemoryStore.layer())),
        log.loggers
      )
      for (let i = 0; i < 2; i++) {
        const answer = yield* get(`${base}/login`)
        expect(answer.status).toBe(500)
        expect(answer.setCookie).toEqual([])
      }
      // each failed request is logged with the defect, which says what to do
      expect(log.entries.filter((entry) => entry.includes(notProvided))).toHaveLength(2)
    }).pipe(Effect.scoped))

  it.live("in place (the middleware's layer provided to the route), nothing is logged and the cookie is set", () =>
    Effect.gen(function*() {
      const log = capture()
      const base = yield* serveLogged(
        HttpRouter.add("GET", "/login", Effect.as(MisusedSession.set("username", "alice"), HttpServerResponse.text("ok"))).pipe(
          Layer.provide(MisusedSession.middleware({ cookie: { secure: false } }).layer),
          Layer.provide(MemoryStore.layer())
        ),
        log.loggers
      )
      const answer = yield* get(`${base}/login`)
      expect(answer.status).toBe(200)
      expect(answer.setCookie).toHaveLength(1)
      expect(log.entries.filter((entry) => entry.includes("is not provided"))).toEqual([])
    }).pipe(Effect.scoped))

  it.live("on an HttpApi endpoint of a group without the session's HttpApiMiddleware: 500, no cookie, logged", () =>
    Effect.gen(function*() {
      const log = capture()
      const Api = HttpApi.make("api").add(
        HttpApiGroup.make("account").add(HttpApiEndpoint.post("login", "/login"))
      )
      const AccountLive = HttpApiBuilder.group(Api, "account", (handlers) =>
        handlers.handle("login", () => Effect.orDie(MisusedSession.set("username", "alice")) as Effect.Effect<void>))
      const base = yield* serveLogged(
        HttpApiBuilder.layer(Api).pipe(Layer.provide(AccountLive), Layer.provide(MemoryStore.layer())),
        log.loggers
      )
      const answer = yield* get(`${base}/login`, undefined, "POST")
      expect(answer.status).toBe(500)
      expect(answer.setCookie).toEqual([])
      expect(log.entries.filter((entry) => entry.includes(notProvided))).toHaveLength(1)
    }).pipe(Effect.scoped))
})
