/**
 * Routes served over real HTTP on a loopback port for the scope of a test,
 * and a client that keeps a cookie as a browser does.
 */
import { NodeHttpServer } from "@effect/platform-node"
import { Context, Effect, Layer } from "effect"
import type { Scope } from "effect"
import { HttpRouter, HttpServer } from "effect/http"
import { createServer } from "node:http"

/** Serves `routes` until the scope closes; gives the base URL. */
export const serve = <A, E, R>(routes: Layer.Layer<A, E, R>): Effect.Effect<string, unknown, Scope.Scope> =>
  Effect.gen(function*() {
    // the routes' own requirements are the test's to provide: what is left
    // are the router's request markers, which `serve` discharges
    const served = HttpRouter.serve(routes, { disableLogger: true, disableListenLog: true }).pipe(
      Layer.provideMerge(NodeHttpServer.layer(createServer, { port: 0, host: "127.0.0.1" }))
    ) as Layer.Layer<HttpServer.HttpServer, unknown>
    const context = yield* Layer.build(served)
    const address = Context.get(context, HttpServer.HttpServer).address
    if (address._tag === "UnixPathAddress") throw new Error("expected a TCP address")
    return `http://127.0.0.1:${address.port}`
  })

export interface Answer {
  readonly status: number
  readonly body: string
  readonly headers: Headers
  readonly setCookie: ReadonlyArray<string>
}

/** One request, redirects not followed, with an optional cookie header. */
export const get = (url: string, cookie?: string, method = "GET"): Effect.Effect<Answer> =>
  Effect.promise(async () => {
    const res = await fetch(url, { method, redirect: "manual", headers: cookie === undefined ? {} : { cookie } })
    return { status: res.status, body: await res.text(), headers: res.headers, setCookie: res.headers.getSetCookie() }
  })

/** The `name=value` of the session cookie a response set, if any. */
export const sessionCookie = (answer: Answer, name = "session"): string | undefined =>
  answer.setCookie.find((line) => line.startsWith(`${name}=`))?.split(";")[0]

/** A browser's cookie jar of one cookie: keeps what the server sets, drops what it expires. */
export const browser = (base: string) => {
  let cookie: string | undefined
  return {
    get cookie() {
      return cookie
    },
    get: (path: string, method = "GET") =>
      Effect.tap(get(`${base}${path}`, cookie, method), (answer) =>
        Effect.sync(() => {
          const set = sessionCookie(answer)
          if (set === undefined) return
          cookie = /^session=;|Max-Age=0/.test(answer.setCookie.find((l) => l.startsWith("session="))!) ? undefined : set
        }))
  }
}
