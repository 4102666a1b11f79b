/**
 * In process, no sockets: the Effect 4 apps of the benchmark (`apps.ts`:
 * effect-session and the hand-written floor) through
 * `HttpRouter.toWebHandler`, on a real Redis, in alternating rounds. Prints
 * the CPU µs per request of each app and route (the process's user + system
 * time over the round, 32 requests in flight), their medians and minimums over
 * the rounds, and the floor's CPU time per request over effect-session's (the
 * share of the floor's throughput effect-session can reach when CPU-bound). A quick A/B for changes to
 * the Effect 4 shell; the figures that count are the HTTP benchmark's
 * (`bench/run.ts`).
 *
 *   cd effect4
 *   node_modules/.bin/esbuild bench/micro.ts --bundle --packages=external --platform=node \
 *     --format=esm --target=node22 --outfile=bench/.build/micro.js
 *   PORT=0 REDIS_URL=redis://127.0.0.1:6379 node_modules/.bin/node bench/.build/micro.js [requests per round] [rounds]
 *
 * (PORT is not used; `bench/servers/config.ts` wants it set.) ROUTES=get,incr
 * picks routes; add `--cpu-prof` to profile (ONLY=session or ONLY=floor runs
 * one app). Keys go under `micro-effect4-session:` and `micro-effect4-floor:`.
 *
 * STEPS=1: instead, the fiber-runtime steps of one request (sent one at a
 * time), counted by a tracer's `context` hook (Effect calls it for every
 * primitive a fiber evaluates), by kind of primitive: a count that does not
 * move with the machine's load.
 */
import { Layer, Tracer } from "effect"
import { HttpRouter } from "effect/http"
import { cookieName, redisUrl } from "../../bench/servers/config.js"
import * as Apps from "./apps.js"

const perRound = Number(process.argv[2] ?? 4000)
const rounds = Number(process.argv[3] ?? 5)
const inFlight = 32
const sessions = 1000
const routes = (process.env.ROUTES ?? "get,incr").split(",")
const only = process.env.ONLY

const apps: ReadonlyArray<{ readonly name: string; readonly layer: Layer.Layer<never, unknown, unknown> }> = [
  { name: "session", layer: Apps.session({ url: redisUrl, prefix: "micro-effect4-session:" }) },
  { name: "floor", layer: Apps.floor({ url: redisUrl, prefix: "micro-effect4-floor:" }) }
].filter((app) => only === undefined || app.name === only)

// STEPS=1: every primitive evaluated while `counting`, by kind
const steps = process.env.STEPS === "1"
const counted = new Map<string, number>()
let counting = false
const evaluate = "~effect/Effect/evaluate"
const countingTracer = Tracer.make({
  span: (options) => Tracer.nativeTracer.span(options),
  context: (primitive, fiber) => {
    if (counting) {
      const kind = String((primitive as unknown as Record<string, unknown>)["~effect/Effect/identifier"] ?? "other")
      counted.set(kind, (counted.get(kind) ?? 0) + 1)
    }
    return primitive[evaluate](fiber)
  }
})

const handlers = apps.map((app) => ({
  name: app.name,
  ...HttpRouter.toWebHandler(
    (steps ? Layer.provideMerge(app.layer, Layer.succeed(Tracer.Tracer)(countingTracer)) : app.layer) as Layer.Layer<never>,
    { disableLogger: true }
  )
}))

const request = (path: string, cookie?: string) =>
  new Request(`http://localhost${path}`, cookie === undefined ? {} : { headers: { cookie } })

const setup = async (handler: (request: Request) => Promise<Response>) => {
  const cookies: Array<string> = []
  for (let i = 0; i < sessions; i++) {
    const response = await handler(request("/setup"))
    const cookie = response.headers.getSetCookie().map((c) => c.split(";")[0]!).find((c) => c.startsWith(`${cookieName}=`))
    if (cookie === undefined) throw new Error("micro: /setup set no session cookie")
    cookies.push(cookie)
  }
  return cookies
}

/** CPU µs per request of `count` requests to `path`, `inFlight` at a time, each with another session. */
const round = async (handler: (request: Request) => Promise<Response>, path: string, cookies: ReadonlyArray<string>, count: number) => {
  let next = 0
  const offset = Math.floor(Math.random() * cookies.length)
  const before = process.cpuUsage()
  await Promise.all(Array.from({ length: inFlight }, async () => {
    while (next < count) {
      const i = next++
      const response = await handler(request(path, cookies[(offset + i) % cookies.length]))
      if (response.status !== 200) throw new Error(`micro: ${path} answered ${response.status}`)
      await response.arrayBuffer()
    }
  }))
  const used = process.cpuUsage(before)
  return (used.user + used.system) / count
}

const median = (values: ReadonlyArray<number>) => {
  const sorted = [...values].sort((a, b) => a - b)
  const middle = Math.floor(sorted.length / 2)
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2
}

/** Steps per request of `count` requests to `path`, one at a time, after a warm-up. */
const countSteps = async (handler: (request: Request) => Promise<Response>, path: string, cookies: ReadonlyArray<string>) => {
  const send = async (i: number) => (await handler(request(path, cookies[i % cookies.length]))).arrayBuffer()
  for (let i = 0; i < 100; i++) await send(i)
  const count = 500
  counted.clear()
  counting = true
  for (let i = 0; i < count; i++) await send(i)
  counting = false
  const total = [...counted.values()].reduce((a, b) => a + b, 0)
  const kinds = [...counted].sort((a, b) => b[1] - a[1]).map(([kind, n]) => `${kind} ${(n / count).toFixed(1)}`)
  return `${(total / count).toFixed(1)} (${kinds.join(", ")})`
}

const main = async () => {
  const cookies = new Map<string, Array<string>>()
  for (const { handler, name } of handlers) cookies.set(name, await setup(handler as (request: Request) => Promise<Response>))
  if (steps) {
    for (const route of [...routes, "plain"]) {
      for (const { handler, name } of handlers) {
        console.log(`/${route} ${name}: ${await countSteps(handler as (request: Request) => Promise<Response>, `/${route}`, cookies.get(name)!)} steps per request`)
      }
    }
    for (const { dispose } of handlers) await dispose()
    return
  }
  for (const route of routes) {
    const path = `/${route}`
    const results = new Map<string, Array<number>>(handlers.map((h) => [h.name, []]))
    // warm-up, then rounds in alternating order
    for (const { handler, name } of handlers) await round(handler as (request: Request) => Promise<Response>, path, cookies.get(name)!, perRound)
    for (let r = 0; r < rounds; r++) {
      const order = r % 2 === 0 ? handlers : [...handlers].reverse()
      for (const { handler, name } of order) {
        results.get(name)!.push(await round(handler as (request: Request) => Promise<Response>, path, cookies.get(name)!, perRound))
      }
    }
    const line = [...results].map(([name, values]) =>
      `${name} median ${median(values).toFixed(1)} min ${Math.min(...values).toFixed(1)} µs [${values.map((v) => v.toFixed(0)).join(", ")}]`
    )
    const session = results.get("session")
    const floor = results.get("floor")
    // the minimum is the round least disturbed by other processes
    const ratio = session && floor && session.length > 0 && floor.length > 0
      ? `  floor/session: median ${(median(floor) / median(session)).toFixed(2)}x, min ${(Math.min(...floor) / Math.min(...session)).toFixed(2)}x`
      : ""
    console.log(`${path}: ${line.join("  ")}${ratio}`)
  }
  for (const { dispose } of handlers) await dispose()
}

main().then(() => process.exit(0), (error) => {
  console.error(error)
  process.exit(1)
})
