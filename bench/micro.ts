/**
 * In-process diagnostics of what the session middleware costs per request on
 * top of the Effect HTTP stack, next to a hand-written "floor" doing the same
 * store work (no HTTP server: requests go through `HttpApp.toWebHandler`).
 * Used to find where effect-session's time goes; the figures that count are
 * the HTTP benchmark's (`bench/run.ts`).
 *
 *   npx tsx bench/micro.ts [iterations]      µs per request, both apps, sync Map store
 *   REDIS_URL=redis://127.0.0.1:6379 …       the same on RedisStore / ioredis, CPU µs
 *                                            per request with 32 requests in flight
 *   STEPS=1 …                                fiber-runtime steps per request (op supervision)
 *   TRACE=/get … (FLOOR=1 for the floor)     every step of one request, one per line
 *   ONLY=/incr … (FLOOR=1)                   one app and route only (for --cpu-prof)
 *   ONLY=/incr HEAP=1 …                      bytes allocated per request, by function
 *                                            (HEAP_TOP=n: the n largest, default 40;
 *                                            HEAP=promoted: only what outlived a scavenge;
 *                                            HEAP_OUT=file: the sampled call trees)
 *   DIRECT=1 …                               no web Response per request (see directHandler)
 *
 * For readable profiles, bundle it first as bench/run.ts bundles the servers:
 *   node_modules/.bin/esbuild bench/micro.ts --bundle --packages=external \
 *     --platform=node --format=esm --outfile=bench/.build/micro.mjs
 */
import { HttpApp, HttpRouter, HttpServerRequest, HttpServerResponse } from "@effect/platform"
import { Clock, Effect, RuntimeFlags, RuntimeFlagsPatch, Scope, Supervisor } from "effect"
import { createHash } from "node:crypto"
import * as SessionStore from "../src/SessionStore.js"
import * as Id from "../src/SessionId.js"
import * as RedisStore from "../src/RedisStore.js"
import { Redis } from "ioredis"
import { AppSession, memoryOperations, sessionApp } from "./session-app.js"

const iterations = Number(process.argv[2] ?? 20000)

let store: SessionStore.SessionStore["Type"] = SessionStore.make("micro", memoryOperations())

const floorData = new Map<string, string>()
const redisUrl = process.env.REDIS_URL
const floorRedis = redisUrl ? new Redis(redisUrl) : undefined
const floorGet = (key: string) =>
  floorRedis ? Effect.tryPromise({ try: () => floorRedis.get("micro-floor:" + key), catch: (e) => e }) : Effect.sync(() => floorData.get(key) ?? null)
const floorSet = (key: string, value: string) =>
  floorRedis ? Effect.tryPromise({ try: () => floorRedis.eval("return redis.call('SET', KEYS[1], ARGV[1])", 1, "micro-floor:" + key, value), catch: (e) => e }) : Effect.sync(() => floorData.set(key, value))
const floorLoad = Effect.gen(function*() {
  const request = yield* HttpServerRequest.HttpServerRequest
  const id = request.cookies["session"]
  if (id === undefined || !/^[A-Za-z0-9_-]{43}$/.test(id)) return undefined
  const key = createHash("sha256").update(id).digest("base64url")
  const raw = yield* floorGet(key)
  if (raw === null) return undefined
  const now = yield* Clock.currentTimeMillis
  const stored = JSON.parse(raw)
  return stored.expiresAt > now ? { key, stored } : undefined
})
const floorApp = HttpRouter.empty.pipe(
  HttpRouter.get("/get", Effect.map(floorLoad, (s) => HttpServerResponse.text(s?.stored.data.value ?? ""))),
  HttpRouter.get("/incr", Effect.gen(function*() {
    const s = yield* floorLoad
    if (s === undefined) return HttpServerResponse.text("none", { status: 404 })
    const counter = (s.stored.data.counter ?? 0) + 1
    const now = yield* Clock.currentTimeMillis
    yield* floorSet(s.key, JSON.stringify({ version: s.stored.version + 1, expiresAt: now + 1e9, data: { ...s.stored.data, counter } }))
    return HttpServerResponse.text(String(counter))
  })),
  HttpRouter.get("/plain", HttpServerResponse.text("plain"))
)
const plainApp = HttpRouter.empty.pipe(HttpRouter.get("/plain", HttpServerResponse.text("plain")))

// Counts the effect steps the fiber runtime evaluates (op supervision).
class StepCounter extends Supervisor.AbstractSupervisor<void> {
  steps = 0
  get value() { return Effect.void }
  log: Array<string> | undefined
  override onEffect(_fiber: unknown, effect: any) {
    this.steps++
    if (this.log) {
      const f = effect.effect_instruction_i1 ?? effect.effect_instruction_i0
      const src = typeof f === "function" ? f.toString().replace(/\s+/g, " ").slice(0, 90) : ""
      this.log.push(`${effect._op} ${src}`)
    }
  }
}

const countSteps = async (app: HttpApp.Default<any, any>, path: string, cookie: string | undefined) => {
  const counter = new StepCounter()
  const supervised = Effect.withRuntimeFlagsPatch(
    Effect.supervised(Effect.provideService(app, SessionStore.SessionStore, store), counter),
    RuntimeFlagsPatch.enable(RuntimeFlags.OpSupervision)
  )
  const handler = HttpApp.toWebHandler(supervised as any)
  const n = 100
  for (let i = 0; i < n; i++) await handler(new Request(`http://localhost${path}`, { headers: cookie ? { cookie } : {} }))
  return counter.steps / n
}

// DIRECT=1: the app runs through `HttpApp.toHandled` (what the servers run: the
// app, its middleware, the pre-response handlers), its response kept as the
// HttpServerResponse it is. No web Response is made from it: the web streams a
// Response brings lead V8 to pretenure their state (two object literals of
// Node's ReadableStream), and from then on every request's objects outlive the
// scavenges — a cost of this harness that swamps the middleware's own.
const directHandler = (app: HttpApp.Default<any, any>) => {
  let response: unknown
  const handled = HttpApp.toHandled(
    Effect.provideService(app, SessionStore.SessionStore, store) as HttpApp.Default<unknown, never>,
    (_request, res) => Effect.sync(() => { response = res })
  )
  return (request: Request) =>
    new Promise<unknown>((resolve) => {
      const fiber = Effect.runFork(Effect.provideService(handled, HttpServerRequest.HttpServerRequest, HttpServerRequest.fromWeb(request)))
      fiber.addObserver(() => resolve(response))
    })
}

const run = async (name: string, app: HttpApp.Default<any, any>, path: string, cookie: string | ReadonlyArray<string> | undefined) => {
  const handler = process.env.DIRECT ? directHandler(app) : HttpApp.toWebHandler(Effect.provideService(app, SessionStore.SessionStore, store) as any)
  const cookies = cookie === undefined ? [undefined] : typeof cookie === "string" ? [cookie] : cookie
  let next = 0
  const once = () => {
    const c = cookies[next++ % cookies.length]
    return handler(new Request(`http://localhost${path}`, { headers: c ? { cookie: c } : {} }))
  }
  for (let i = 0; i < 2000; i++) await once()
  const start = process.hrtime.bigint()
  const cpu = process.cpuUsage()
  if (redisUrl) {
    // 32 requests in flight, as in the HTTP benchmark
    let left = iterations
    await Promise.all(Array.from({ length: 32 }, async () => { while (left-- > 0) await once() }))
  } else {
    for (let i = 0; i < iterations; i++) await once()
  }
  const used = process.cpuUsage(cpu)
  const us = redisUrl ? (used.user + used.system) / iterations : Number(process.hrtime.bigint() - start) / 1000 / iterations
  console.log(`${name.padEnd(28)} ${path.padEnd(7)} ${us.toFixed(1)} µs/req`)
  return us
}

const main = async () => {
  if (redisUrl) {
    const scope = Effect.runSync(Scope.make())
    store = (await Effect.runPromise(Scope.extend(RedisStore.make({ url: redisUrl, prefix: "micro:" }), scope))).store
  }
  // one session for effect-session, one for the floor
  const setupHandler = HttpApp.toWebHandler(Effect.provideService(HttpRouter.empty.pipe(
    HttpRouter.get("/setup", Effect.as(Effect.zipRight(AppSession.set("value", "hello"), AppSession.set("counter", 0)), HttpServerResponse.text("ok"))),
    AppSession.middleware({ cookie: { secure: false } })
  ), SessionStore.SessionStore, store) as any)
  const sessionCookies: Array<string> = []
  const floorCookies: Array<string> = []
  for (let i = 0; i < (redisUrl ? 1000 : 1); i++) {
    const res = await setupHandler(new Request("http://localhost/setup"))
    sessionCookies.push(res.headers.get("set-cookie")!.split(";")[0])
    const floorId = Id.unsafeGenerate()
    await Effect.runPromise(floorSet(createHash("sha256").update(floorId).digest("base64url"), JSON.stringify({ version: 1, expiresAt: Date.now() + 1e9, data: { value: "hello", counter: 0 } })) as Effect.Effect<unknown>)
    floorCookies.push(`session=${floorId}`)
  }
  const cookie = sessionCookies[0]
  const floorCookie = floorCookies[0]
  if (process.env.TRACE) {
    const counter = new StepCounter()
    const app = process.env.TRACE === "/plain0" ? plainApp : process.env.FLOOR ? floorApp : sessionApp
    const path = process.env.TRACE === "/plain0" ? "/plain" : process.env.TRACE
    const supervised = Effect.withRuntimeFlagsPatch(
      Effect.supervised(Effect.provideService(app, SessionStore.SessionStore, store), counter),
      RuntimeFlagsPatch.enable(RuntimeFlags.OpSupervision)
    )
    const handler = HttpApp.toWebHandler(supervised as any)
    const c = process.env.FLOOR ? floorCookie : cookie
    await handler(new Request(`http://localhost${path}`, { headers: { cookie: c } }))
    counter.log = []
    await handler(new Request(`http://localhost${path}`, { headers: { cookie: c } }))
    console.log(counter.log.join("\n"))
    return
  }
  if (process.env.STEPS) {
    const plainApp2 = plainApp
    console.log("effect steps per request (op supervision):")
    console.log("  no middleware /plain", await countSteps(plainApp2, "/plain", cookie))
    console.log("  effect-session /plain", await countSteps(sessionApp, "/plain", cookie))
    console.log("  floor /get", await countSteps(floorApp, "/get", floorCookie))
    console.log("  effect-session /get", await countSteps(sessionApp, "/get", cookie))
    console.log("  floor /incr", await countSteps(floorApp, "/incr", floorCookie))
    console.log("  effect-session /incr", await countSteps(sessionApp, "/incr", cookie))
    floorRedis?.disconnect()
    process.exit(0)
  }
  if (process.env.ONLY === "/plain") {
    for (let round = 0; round < 3; round++) {
      const base = await run("no middleware", plainApp, "/plain", cookie)
      const sp = await run("effect-session", sessionApp, "/plain", cookie)
      console.log(`plain: +${(sp - base).toFixed(1)}`)
    }
    return
  }
  if (process.env.ONLY && process.env.HEAP) {
    // allocation sampling, collected objects included: what a request allocates, by function
    const { Session: InspectorSession } = await import("node:inspector/promises")
    const inspector = new InspectorSession()
    inspector.connect()
    const path = process.env.ONLY
    const go = () => process.env.FLOOR ? run("floor", floorApp, path, floorCookies) : run("effect-session", sessionApp, path, sessionCookies)
    await go()
    await inspector.post("HeapProfiler.startSampling", {
      samplingInterval: 256,
      includeObjectsCollectedByMajorGC: true,
      includeObjectsCollectedByMinorGC: process.env.HEAP !== "promoted"
    } as any)
    await go()
    const { profile } = await inspector.post("HeapProfiler.stopSampling") as any
    // HEAP_OUT=file.heapprofile: the whole sampled profile (call trees), for DevTools
    if (process.env.HEAP_OUT) (await import("node:fs")).writeFileSync(process.env.HEAP_OUT, JSON.stringify(profile))
    const bySite = new Map<string, number>()
    let total = 0
    const walk = (node: any) => {
      const f = node.callFrame
      const where = f.url.replace(/.*node_modules\//, "").replace(/^file:\/\/.*\//, "")
      const name = `${f.functionName || "(anonymous)"} ${where}:${f.lineNumber + 1}`
      bySite.set(name, (bySite.get(name) ?? 0) + node.selfSize)
      total += node.selfSize
      for (const child of node.children) walk(child)
    }
    walk(profile.head)
    console.log(`allocated ≈ ${(total / iterations).toFixed(0)} bytes/request`)
    for (const [name, size] of [...bySite].sort((a, b) => b[1] - a[1]).slice(0, Number(process.env.HEAP_TOP ?? 40))) {
      console.log(`${(size / iterations).toFixed(0).padStart(7)}  ${name}`)
    }
    floorRedis?.disconnect()
    process.exit(0)
  }
  if (process.env.ONLY) {
    const path = process.env.ONLY
    if (process.env.FLOOR) await run("floor", floorApp, path, floorCookies)
    else await run("effect-session", sessionApp, path, sessionCookies)
    floorRedis?.disconnect()
    process.exit(0)
  }
  for (let round = 0; round < 2; round++) {
    const base = await run("no middleware", plainApp, "/plain", cookie)
    const sp = await run("effect-session", sessionApp, "/plain", cookie)
    const fg = await run("floor", floorApp, "/get", floorCookies)
    const sg = await run("effect-session", sessionApp, "/get", sessionCookies)
    const fi = await run("floor", floorApp, "/incr", floorCookies)
    const si = await run("effect-session", sessionApp, "/incr", sessionCookies)
    if (round === 1) { floorRedis?.disconnect(); process.exit(0) }
    console.log(`over base: plain +${(sp - base).toFixed(1)}  get floor +${(fg - base).toFixed(1)} session +${(sg - base).toFixed(1)}  incr floor +${(fi - base).toFixed(1)} session +${(si - base).toFixed(1)}`)
  }
}
main()
