import type { HttpApp } from "@effect/platform"
import { Cookies, HttpClient, HttpClientRequest, HttpServer } from "@effect/platform"
import type { HttpClientResponse } from "@effect/platform"
import { NodeHttpServer } from "@effect/platform-node"
import type { Duration } from "effect"
import { Clock, Context, Effect, Layer } from "effect"
import type { StoreOperation } from "../../src/SessionError.js"
import { SessionStore } from "../../src/SessionStore.js"

/** Counts the calls each store operation receives. */
export class StoreCalls extends Context.Tag("test/StoreCalls")<StoreCalls, Record<string, number>>() {}

/** Wraps the provided `SessionStore` so that tests can count its calls. */
export const counting = <E, R>(
  store: Layer.Layer<SessionStore, E, R>,
  options?: {
    /** A real-time pause before every operation, as a network store has, so requests interleave. */
    readonly latency?: Duration.DurationInput
  }
): Layer.Layer<SessionStore | StoreCalls, E, R> =>
  Layer.effectContext(Effect.gen(function*() {
    const inner = yield* SessionStore
    const calls: Record<string, number> = {}
    const pause = options?.latency === undefined
      ? Effect.void
      : Effect.withClock(Effect.sleep(options.latency), Clock.make())
    const count = (operation: StoreOperation) =>
      Effect.zipRight(
        Effect.sync(() => {
          calls[operation] = (calls[operation] ?? 0) + 1
        }),
        pause
      )
    const wrapped: SessionStore["Type"] = {
      name: inner.name,
      load: (key) => Effect.zipRight(count("load"), inner.load(key)),
      insert: (key, write) => Effect.zipRight(count("insert"), inner.insert(key, write)),
      update: (key, write, version) => Effect.zipRight(count("update"), inner.update(key, write, version)),
      touch: (key, expiresAt) => Effect.zipRight(count("touch"), inner.touch(key, expiresAt)),
      remove: (key) => Effect.zipRight(count("remove"), inner.remove(key))
    }
    return Context.make(SessionStore, wrapped).pipe(Context.add(StoreCalls, calls))
  })).pipe(Layer.provide(store))

export const totalCalls = (calls: Record<string, number>): number =>
  Object.values(calls).reduce((a, b) => a + b, 0)

/** Serves an app on a random loopback port; provides an `HttpClient` aimed at it. */
export const serve = <E, R>(app: HttpApp.Default<E, R>) =>
  HttpServer.serve(app).pipe(Layer.provideMerge(NodeHttpServer.layerTest))

export interface Response {
  readonly status: number
  readonly body: string
  readonly headers: Record<string, string>
  readonly setCookies: ReadonlyArray<string>
}

/**
 * A browser-like client: keeps the cookies the server sets (and drops the
 * ones it expires), sends them back.
 */
export const makeBrowser = Effect.gen(function*() {
  const client = yield* HttpClient.HttpClient
  const jar = new Map<string, string>()
  const toResponse = (res: HttpClientResponse.HttpClientResponse) =>
    Effect.map(res.text, (body): Response => {
      // the client joins several Set-Cookie headers into one; read them one by one
      const setCookies = Cookies.toSetCookieHeaders(res.cookies)
      for (const line of setCookies) {
        const [pair, ...attributes] = line.split(";").map((s) => s.trim())
        const eq = pair.indexOf("=")
        const name = pair.slice(0, eq)
        const value = pair.slice(eq + 1)
        const expired = attributes.some((a) => /^max-age=0$/i.test(a)) ||
          attributes.some((a) => /^expires=/i.test(a) && new Date(a.slice(8)).getTime() <= Date.now())
        if (expired) jar.delete(name)
        else jar.set(name, value)
      }
      return { status: res.status, body, headers: res.headers as Record<string, string>, setCookies }
    })
  const cookieHeader = () => [...jar].map(([k, v]) => `${k}=${v}`).join("; ")
  return {
    jar,
    get: (path: string, options?: { readonly cookie?: string }) =>
      client.execute(
        HttpClientRequest.get(path).pipe(
          (req) => {
            const cookie = options?.cookie ?? cookieHeader()
            return cookie === "" ? req : HttpClientRequest.setHeader(req, "cookie", cookie)
          }
        )
      ).pipe(Effect.flatMap(toResponse), Effect.scoped)
  }
})

/** Parses one Set-Cookie line into its value and lower-cased attributes. */
export const parseSetCookie = (line: string) => {
  const [pair, ...rest] = line.split(";").map((s) => s.trim())
  const eq = pair.indexOf("=")
  const attributes: Record<string, string | true> = {}
  for (const a of rest) {
    const i = a.indexOf("=")
    if (i === -1) attributes[a.toLowerCase()] = true
    else attributes[a.slice(0, i).toLowerCase()] = a.slice(i + 1)
  }
  return { name: pair.slice(0, eq), value: pair.slice(eq + 1), attributes }
}
