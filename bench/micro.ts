/**
 * In-process micro-measurement of what the session middleware costs per
 * request on top of the Effect HTTP stack, with no I/O: the store answers
 * from a Map synchronously. Prints µs per request for each case.
 *
 *   npx tsx bench/micro.ts [iterations]
 */
import { HttpApp, HttpRouter, HttpServerRequest, HttpServerResponse } from "@effect/platform"
import { Clock, Context, Effect, Option, RuntimeFlags, RuntimeFlagsPatch, Schema, Supervisor } from "effect"
import { createHash } from "node:crypto"
import * as Session from "../src/Session.js"
import * as SessionStore from "../src/SessionStore.js"
import * as Id from "../src/SessionId.js"

const iterations = Number(process.argv[2] ?? 20000)

class AppSession extends Session.Tag<AppSession>()("micro/AppSession", {
  value: Schema.optional(Schema.String),
  counter: Schema.optional(Schema.Number)
}) {}

interface Rec { data: Uint8Array; version: number; expiresAt: number; principal: Option.Option<string> }
const records = new Map<string, Rec>()
const ops: SessionStore.SessionStoreOperations = ({
  load: (key) => Effect.sync(() => Option.fromNullable(records.get(key))),
  insert: (key, w) => Effect.sync(() => { records.set(key, { ...w, version: 1 }) }),
  update: (key, w, v) => Effect.sync(() => { records.set(key, { ...w, version: v + 1 }); return v + 1 }),
  touch: () => Effect.succeed(true),
  remove: (key) => Effect.sync(() => { records.delete(key) })
})
const store = process.env.NOSPAN ? { name: "micro", ...ops } : SessionStore.make("micro", ops)

const sessionApp = HttpRouter.empty.pipe(
  HttpRouter.get("/get", Effect.map(AppSession.get("value"), (v) => HttpServerResponse.text(v ?? ""))),
  HttpRouter.get("/incr", Effect.gen(function*() {
    yield* AppSession.update("counter", (n) => (n ?? 0) + 1)
    const counter = yield* AppSession.get("counter")
    return HttpServerResponse.text(String(counter ?? 0))
  })),
  HttpRouter.get("/plain", HttpServerResponse.text("plain")),
  AppSession.middleware({ cookie: { secure: false } })
)

const floorData = new Map<string, string>()
const floorLoad = Effect.gen(function*() {
  const request = yield* HttpServerRequest.HttpServerRequest
  const id = request.cookies["session"]
  if (id === undefined || !/^[A-Za-z0-9_-]{43}$/.test(id)) return undefined
  const key = createHash("sha256").update(id).digest("base64url")
  const raw = yield* Effect.sync(() => floorData.get(key))
  if (raw === undefined) return undefined
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
    yield* Effect.sync(() => floorData.set(s.key, JSON.stringify({ version: s.stored.version + 1, expiresAt: now + 1e9, data: { ...s.stored.data, counter } })))
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

const run = async (name: string, app: HttpApp.Default<any, any>, path: string, cookie: string | undefined) => {
  const handler = HttpApp.toWebHandler(Effect.provideService(app, SessionStore.SessionStore, store) as any)
  const headers = cookie ? { cookie } : {}
  const once = () => handler(new Request(`http://localhost${path}`, { headers }))
  for (let i = 0; i < 2000; i++) await once()
  const start = process.hrtime.bigint()
  for (let i = 0; i < iterations; i++) await once()
  const us = Number(process.hrtime.bigint() - start) / 1000 / iterations
  console.log(`${name.padEnd(28)} ${path.padEnd(7)} ${us.toFixed(1)} µs/req`)
  return us
}

const main = async () => {
  // one session for effect-session, one for the floor
  const setupHandler = HttpApp.toWebHandler(Effect.provideService(HttpRouter.empty.pipe(
    HttpRouter.get("/setup", Effect.as(Effect.zipRight(AppSession.set("value", "hello"), AppSession.set("counter", 0)), HttpServerResponse.text("ok"))),
    AppSession.middleware({ cookie: { secure: false } })
  ), SessionStore.SessionStore, store) as any)
  const res = await setupHandler(new Request("http://localhost/setup"))
  const cookie = res.headers.get("set-cookie")!.split(";")[0]
  const floorId = Id.unsafeGenerate()
  floorData.set(createHash("sha256").update(floorId).digest("base64url"), JSON.stringify({ version: 1, expiresAt: Date.now() + 1e9, data: { value: "hello", counter: 0 } }))
  const floorCookie = `session=${floorId}`
  if (process.env.TRACE) {
    const counter = new StepCounter()
    const app = process.env.TRACE === "/plain0" ? plainApp : sessionApp
    const path = process.env.TRACE === "/plain0" ? "/plain" : process.env.TRACE
    const supervised = Effect.withRuntimeFlagsPatch(
      Effect.supervised(Effect.provideService(app, SessionStore.SessionStore, store), counter),
      RuntimeFlagsPatch.enable(RuntimeFlags.OpSupervision)
    )
    const handler = HttpApp.toWebHandler(supervised as any)
    await handler(new Request(`http://localhost${path}`, { headers: { cookie } }))
    counter.log = []
    await handler(new Request(`http://localhost${path}`, { headers: { cookie } }))
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
    return
  }
  if (process.env.ONLY === "/plain") {
    for (let round = 0; round < 3; round++) {
      const base = await run("no middleware", plainApp, "/plain", cookie)
      const sp = await run("effect-session", sessionApp, "/plain", cookie)
      console.log(`plain: +${(sp - base).toFixed(1)}`)
    }
    return
  }
  if (process.env.ONLY) {
    const [path] = [process.env.ONLY]
    await run("effect-session", sessionApp, path, cookie)
    return
  }
  for (let round = 0; round < 2; round++) {
    const base = await run("no middleware", plainApp, "/plain", cookie)
    const sp = await run("effect-session", sessionApp, "/plain", cookie)
    const fg = await run("floor", floorApp, "/get", floorCookie)
    const sg = await run("effect-session", sessionApp, "/get", cookie)
    const fi = await run("floor", floorApp, "/incr", floorCookie)
    const si = await run("effect-session", sessionApp, "/incr", cookie)
    console.log(`over base: plain +${(sp - base).toFixed(1)}  get floor +${(fg - base).toFixed(1)} session +${(sg - base).toFixed(1)}  incr floor +${(fi - base).toFixed(1)} session +${(si - base).toFixed(1)}`)
  }
}
main()
