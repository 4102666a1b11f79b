/**
 * The benchmark driver: effect-session + RedisStore against a hand-written
 * Effect + ioredis floor, express-session + connect-redis and
 * @fastify/session + connect-redis, all on one private Redis; on both Effect
 * lines (Effect 3 from the root on this Node, Effect 4 from `effect4/` on its
 * Node 22), each against its own floor.
 *
 *   (cd bench && npm ci) && npx tsx bench/run.ts
 *
 * Bundles the servers with esbuild, starts a private redis-server (core 1)
 * and every server (core 0) side by side, creates each server's sessions
 * through its own /setup route and checks its routes. Then, route by route:
 * counts the Redis commands of exactly 500 requests per server (MONITOR,
 * script internals excluded), warms each server up, and runs RUNS rounds of
 * wrk (core 1) in rotating server order, reading the server's CPU time and
 * `INFO commandstats` around each run. Prints the table and the ratios and
 * writes them as JSON to `bench/results/latest.json`. Every process it starts
 * is stopped by pid at the end, on failure and on Ctrl-C.
 *
 * Environment (all optional): DURATION (s per measured run, 10), RUNS (3),
 * WARMUP (s, 5), SETTLE (s of quiet before each measured run, 2), CONNECTIONS (32), SESSIONS (1000), PICK (shuffle | uniform),
 * SERVERS (comma list of server names, default all; the Effect 4 line's are
 * effect4-session and effect4-floor), EFFECT3_BEFORE and EFFECT4_BEFORE (a git revision:
 * effect-session / effect4-session as of that revision runs too, as effect-session-before /
 * effect4-session-before), ROUTES (comma list of
 * get, incr, plain; default all), OUT (result path), CPU_PROF (a directory:
 * the servers run under `node --cpu-prof`, one subdirectory per server, and
 * write their profiles on exit; summarise the largest file of one with
 * `npx tsx bench/profile-top.ts FILE`).
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process"
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { randomBytes } from "node:crypto"
import { createServer } from "node:net"
import { cpus, tmpdir } from "node:os"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"
import { Redis } from "ioredis"

const benchDir = dirname(fileURLToPath(import.meta.url))
const rootDir = dirname(benchDir)

const env = (name: string, fallback: number) => {
  const raw = process.env[name]
  const value = raw === undefined || raw === "" ? fallback : Number(raw)
  if (!Number.isFinite(value) || value <= 0) throw new Error(`${name} must be a positive number, got ${raw}`)
  return value
}
const duration = env("DURATION", 10)
const runs = env("RUNS", 3)
const warmup = env("WARMUP", 5)
// Seconds of quiet before each measured run: a server that just served load
// keeps working for a moment after it (V8 shrinks its heap when it turns
// idle), on the core the next server runs on.
const settle = env("SETTLE", 2)
const connections = env("CONNECTIONS", 32)
const sessionCount = env("SESSIONS", 1000)
const countedRequests = 500
const pick = process.env.PICK === "uniform" ? "uniform" : "shuffle"
const routesSelected = (process.env.ROUTES ?? "get,incr,plain").split(",")
const cpuProfDir = process.env.CPU_PROF
const outFile = process.env.OUT ?? join(benchDir, "results", "latest.json")

type Route = "get" | "incr" | "plain"

interface ServerSpec {
  readonly name: string
  /** The Effect line it runs on: 3 (the root package, Node 20) or 4 (`effect4/`, its Node 22). */
  readonly line: 3 | 4
  /** Its source: under `bench/` for line 3, under `effect4/` for line 4. */
  readonly file: string
  readonly routes: ReadonlyArray<Route>
  /** Whether the server has a setup route and session cookies to send. */
  readonly sessions: boolean
  /** The key prefix of its sessions in Redis. */
  readonly prefix: string
  readonly description: string
  /**
   * The server also serves its app without the session middleware on a
   * second port (BARE_PORT), measured as this pseudo-server on `/plain`.
   */
  readonly bare?: ServerSpec | undefined
  /** Built from this git revision's sources instead of the working tree's (`EFFECT4_BEFORE`). */
  readonly revision?: string | undefined
}

const allServers: ReadonlyArray<ServerSpec> = [
  {
    name: "effect-session",
    line: 3,
    file: "servers/effect-session.ts",
    prefix: "bench-effect-session:",
    routes: ["get", "incr", "plain"],
    sessions: true,
    description: "(a) effect-session middleware + RedisStore, @effect/platform-node",
    bare: {
      name: "effect-session-bare",
    line: 3,
      file: "servers/effect-session.ts",
      prefix: "bench-effect-session:",
      routes: ["plain"],
      sessions: false,
      description: "(g) the app of (e) served by the process of (a) on a second port: the same history"
    }
  },
  {
    name: "effect-floor",
    line: 3,
    file: "servers/floor.ts",
    prefix: "bench-floor:",
    routes: ["get", "incr", "plain"],
    sessions: true,
    description: "(b) hand-written Effect + ioredis, no session library"
  },
  {
    name: "effect-no-mw",
    line: 3,
    file: "servers/plain-effect.ts",
    prefix: "bench-no-mw:",
    routes: ["plain"],
    sessions: false,
    description: "(e) the effect-session app's /plain without the session middleware"
  },
  {
    name: "effect-identity-mw",
    line: 3,
    file: "servers/identity-mw.ts",
    prefix: "bench-identity-mw:",
    routes: ["plain"],
    sessions: false,
    description: "(f) the app of (e) in a middleware that does nothing"
  },
  {
    name: "express-session",
    line: 3,
    file: "servers/express.ts",
    prefix: "bench-express:",
    routes: ["get", "incr", "plain"],
    sessions: true,
    description: "(c) express 5 + express-session + connect-redis (ioredis)"
  },
  {
    name: "fastify-session",
    line: 3,
    file: "servers/fastify.ts",
    prefix: "bench-fastify:",
    routes: ["get", "incr", "plain"],
    sessions: true,
    description: "(d) fastify 5 + @fastify/session + connect-redis (ioredis)"
  },
  {
    name: "effect4-session",
    line: 4,
    file: "bench/session.ts",
    prefix: "bench-effect4-session:",
    routes: ["get", "incr", "plain"],
    sessions: true,
    description: "(h) effect-session on Effect 4 (effect4/) + its RedisStore, effect/http, Node 22"
  },
  {
    name: "effect4-floor",
    line: 4,
    file: "bench/floor.ts",
    prefix: "bench-effect4-floor:",
    routes: ["get", "incr", "plain"],
    sessions: true,
    description: "(i) hand-written Effect 4 + ioredis, no session library, Node 22"
  }
]

// EFFECT3_BEFORE / EFFECT4_BEFORE=<git revision>: effect-session (Effect 3)
// or effect4-session as of that revision runs beside today's, as
// effect-session-before / effect4-session-before, for before/after figures
// from one run (its keys share today's prefix; their ids differ)
const beforeOf = (variable: string, name: string): ReadonlyArray<ServerSpec> => {
  const revision = process.env[variable]
  if (revision === undefined || revision === "") return []
  const today = allServers.find((server) => server.name === name)!
  return [{ ...today, name: `${name}-before`, revision, description: `${today.description.slice(0, 3)} ${name} as of ${revision}` }]
}
const candidates: ReadonlyArray<ServerSpec> = [
  ...allServers,
  ...beforeOf("EFFECT3_BEFORE", "effect-session"),
  ...beforeOf("EFFECT4_BEFORE", "effect4-session")
]
const selected = process.env.SERVERS
  ? candidates.filter((server) => process.env.SERVERS!.split(",").includes(server.name))
  : candidates

// ---------------------------------------------------------------------------
// Processes: every child is tracked by pid and stopped on every way out.

const children = new Set<ChildProcess>()
const workDir = mkdtempSync(join(tmpdir(), "effect-session-bench-"))

const stopChild = async (child: ChildProcess, graceMs = 5000): Promise<void> => {
  if (child.exitCode !== null || child.signalCode !== null) {
    children.delete(child)
    return
  }
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()))
  if (child.pid !== undefined) process.kill(child.pid, "SIGTERM")
  const timer = setTimeout(() => {
    if (child.pid !== undefined && child.exitCode === null && child.signalCode === null) process.kill(child.pid, "SIGKILL")
  }, graceMs)
  await exited
  clearTimeout(timer)
  children.delete(child)
}

const killAllNow = () => {
  for (const child of children) {
    if (child.pid !== undefined && child.exitCode === null && child.signalCode === null) {
      try {
        process.kill(child.pid, "SIGKILL")
      } catch {
        // already gone
      }
    }
  }
  rmSync(workDir, { recursive: true, force: true })
}
process.once("exit", killAllNow)
for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
  process.once(signal, () => {
    console.error(`\nbench: ${signal}, stopping everything it started`)
    killAllNow()
    process.exit(130)
  })
}

const pinned = cpus().length >= 2
const onCore = (core: number, command: string, args: ReadonlyArray<string>): [string, Array<string>] =>
  pinned ? ["taskset", ["-c", String(core), command, ...args]] : [command, [...args]]

const start = (name: string, core: number, command: string, args: ReadonlyArray<string>, extraEnv: Record<string, string> = {}) => {
  const [cmd, argv] = onCore(core, command, args)
  const logFile = join(workDir, `${name}.log`)
  const child = spawn(cmd, argv, {
    cwd: rootDir,
    env: { ...process.env, ...extraEnv },
    stdio: ["ignore", "pipe", "pipe"]
  })
  children.add(child)
  const log: Array<string> = []
  child.stdout!.on("data", (chunk: Buffer) => log.push(chunk.toString()))
  child.stderr!.on("data", (chunk: Buffer) => log.push(chunk.toString()))
  child.once("exit", () => writeFileSync(logFile, log.join("")))
  return { child, log }
}

const freePort = () =>
  new Promise<number>((resolve, reject) => {
    const server = createServer()
    server.once("error", reject)
    server.listen(0, "127.0.0.1", () => {
      const address = server.address()
      const port = typeof address === "object" && address !== null ? address.port : 0
      server.close(() => resolve(port))
    })
  })

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

const requireTool = (tool: string, hint: string) => {
  if (spawnSync("sh", ["-c", `command -v ${tool}`]).status !== 0) {
    throw new Error(`bench: '${tool}' not found (${hint})`)
  }
}

// ---------------------------------------------------------------------------
// The servers run as plain JavaScript, as they would in production: each is
// bundled with its imports from src/ by esbuild (the version tsx uses), npm
// packages left as imports. No loader thread, no source maps at run time.
//
// Each line is built by its own package's esbuild into a directory inside
// that package, so that its npm imports resolve to its own node_modules
// (effect 3 from the root, effect 4 from effect4/), and runs on that
// package's Node: the driver's own for line 3, effect4's `node` dev
// dependency (Node 22) for line 4.

const effect4Dir = join(rootDir, "effect4")
const builds = {
  3: { sources: benchDir, buildDir: join(benchDir, ".build"), packageDir: rootDir, target: "node20", node: process.execPath },
  4: {
    sources: effect4Dir,
    buildDir: join(effect4Dir, "bench", ".build"),
    packageDir: effect4Dir,
    target: "node22",
    node: join(effect4Dir, "node_modules", ".bin", "node")
  }
} as const
const builtFile = (spec: ServerSpec) =>
  join(
    builds[spec.line].buildDir,
    spec.file.replace(/^(servers|bench)\//, "").replace(/\.ts$/, spec.revision === undefined ? ".js" : "-before.js")
  )

const buildServers = () => {
  for (const line of [3, 4] as const) {
    const { buildDir, packageDir, sources, target } = builds[line]
    const specs = selected.filter((spec) => spec.line === line)
    if (specs.length === 0) continue
    rmSync(buildDir, { recursive: true, force: true })
    const esbuild = join(packageDir, "node_modules", ".bin", "esbuild")
    const options = ["--bundle", "--packages=external", "--platform=node", "--format=esm", `--target=${target}`, "--log-level=warning"]
    const current = specs.filter((spec) => spec.revision === undefined)
    if (current.length > 0) {
      const result = spawnSync(esbuild, [...current.map((spec) => join(sources, spec.file)), ...options, `--outdir=${buildDir}`], {
        encoding: "utf8"
      })
      if (result.status !== 0) throw new Error(`bench: building the Effect ${line} servers failed:\n${result.stderr}`)
    }
    for (const spec of specs.filter((spec) => spec.revision !== undefined)) {
      // that revision's sources (the line's, the core, the bench servers),
      // built into the same directory so its packages resolve the same way
      const tree = join(buildDir, "revision")
      mkdirSync(tree, { recursive: true })
      // (the Effect 3 line's sources are the root's src/ and bench/servers/;
      // the Effect 4 line's, effect4/ and the core)
      const paths = line === 3 ? "src bench/servers" : "src/core bench/servers effect4/src effect4/bench"
      const archive = spawnSync("sh", [
        "-c",
        `git -C "$0" archive --format=tar "$1" ${paths} | tar -x -C "$2"`,
        rootDir,
        spec.revision!,
        tree
      ], { encoding: "utf8" })
      if (archive.status !== 0) throw new Error(`bench: reading revision ${spec.revision} failed:\n${archive.stderr}`)
      const entry = line === 3 ? join(tree, "bench", spec.file) : join(tree, "effect4", spec.file)
      const result = spawnSync(esbuild, [entry, ...options, `--outfile=${builtFile(spec)}`], {
        encoding: "utf8"
      })
      if (result.status !== 0) throw new Error(`bench: building ${spec.name} failed:\n${result.stderr}`)
    }
  }
}

/** The version of the Node a line's servers run on. */
const nodeVersion = (line: 3 | 4) =>
  line === 3 ? process.version : spawnSync(builds[4].node, ["--version"], { encoding: "utf8" }).stdout.trim() || "?"

// ---------------------------------------------------------------------------
// HTTP helpers for setup and checks (not measured).

const fetchText = async (url: string, cookie?: string) => {
  const response = await fetch(url, {
    headers: cookie === undefined ? {} : { cookie },
    signal: AbortSignal.timeout(5000)
  })
  return { status: response.status, body: await response.text(), setCookie: response.headers.getSetCookie() }
}

const inBatches = async <A>(count: number, parallel: number, f: (i: number) => Promise<A>) => {
  const results: Array<A> = new Array(count)
  let next = 0
  await Promise.all(Array.from({ length: parallel }, async () => {
    while (next < count) {
      const i = next++
      results[i] = await f(i)
    }
  }))
  return results
}

const waitForServer = async (base: string, spec: ServerSpec, handle: { child: ChildProcess; log: Array<string> }) => {
  const deadline = Date.now() + 30_000
  while (Date.now() < deadline) {
    if (handle.child.exitCode !== null) {
      throw new Error(`bench: ${spec.name} exited with ${handle.child.exitCode}:\n${handle.log.join("")}`)
    }
    try {
      const { status } = await fetchText(`${base}/plain`)
      if (status === 200) return
    } catch {
      // not listening yet
    }
    await sleep(100)
  }
  throw new Error(`bench: ${spec.name} did not answer /plain within 30 s:\n${handle.log.join("")}`)
}

const createSessions = async (base: string, spec: ServerSpec) => {
  const cookies = await inBatches(sessionCount, 16, async () => {
    const { status, setCookie } = await fetchText(`${base}/setup`)
    const cookie = setCookie.map((header) => header.split(";")[0]!).find((pair) => pair.startsWith("session="))
    if (status !== 200 || cookie === undefined) {
      throw new Error(`bench: ${spec.name} /setup answered ${status} without a session cookie`)
    }
    return cookie
  })
  if (new Set(cookies).size !== cookies.length) throw new Error(`bench: ${spec.name} issued duplicate session cookies`)
  return cookies
}

const sumCounters = async (base: string, cookies: ReadonlyArray<string>) => {
  const values = await inBatches(cookies.length, 16, async (i) => {
    const { status, body } = await fetchText(`${base}/counter`, cookies[i])
    if (status !== 200) throw new Error(`bench: /counter answered ${status}`)
    return Number(body)
  })
  return values.reduce((a, b) => a + b, 0)
}

/** The routes answer what they should before anything is measured. */
const checkRoutes = async (base: string, spec: ServerSpec, cookies: ReadonlyArray<string>) => {
  const notes: Array<string> = []
  const plain = await fetchText(`${base}/plain`, cookies[0])
  if (plain.status !== 200 || plain.body !== "plain") throw new Error(`bench: ${spec.name} /plain answered ${plain.status} ${plain.body}`)
  if (plain.setCookie.length > 0) notes.push("/plain sets a cookie")
  if (!spec.sessions) return notes
  for (const cookie of cookies.slice(0, 3)) {
    const get = await fetchText(`${base}/get`, cookie)
    if (get.status !== 200 || get.body !== "hello") {
      throw new Error(`bench: ${spec.name} /get answered ${get.status} '${get.body}', expected 'hello'`)
    }
    if (get.setCookie.length > 0) notes.push("/get sets a cookie")
    const before = Number((await fetchText(`${base}/counter`, cookie)).body)
    const incr = await fetchText(`${base}/incr`, cookie)
    const after = Number((await fetchText(`${base}/counter`, cookie)).body)
    if (incr.status !== 200 || after !== before + 1) {
      throw new Error(`bench: ${spec.name} /incr answered ${incr.status}; counter ${before} -> ${after}`)
    }
    if (incr.setCookie.length > 0) notes.push("/incr sets a cookie")
  }
  const bogus = await fetchText(`${base}/get`, `session=${"A".repeat(43)}`)
  if (bogus.status >= 500) throw new Error(`bench: ${spec.name} /get with an unknown id answered ${bogus.status}`)
  return [...new Set(notes)]
}

// ---------------------------------------------------------------------------
// Server CPU time: user + system time of the server process, from
// /proc/<pid>/stat (fields 14 and 15, in clock ticks). Unlike req/s it does not
// drop when other processes take the core, so it is the steadier figure on a
// busy machine. taskset execs the server, so the child's pid is the server's.

const clockTicksPerSecond = Number(spawnSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).stdout.trim()) || 100

const cpuMillis = (child: ChildProcess): number => {
  try {
    const stat = readFileSync(`/proc/${child.pid}/stat`, "utf8")
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ")
    // fields[0] is field 3 (state): utime is field 14, stime field 15.
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / clockTicksPerSecond
  } catch {
    return Number.NaN
  }
}

// ---------------------------------------------------------------------------
// Redis command counting.

const ignoredCommands = new Set(["info", "config", "config|resetstat", "ping", "client", "hello", "select", "command"])

const commandStats = async (redis: Redis) => {
  const info = await redis.info("commandstats")
  const calls: Record<string, number> = {}
  for (const line of info.split("\n")) {
    const match = /^cmdstat_([^:]+):calls=(\d+)/.exec(line.trim())
    if (match && !ignoredCommands.has(match[1]!)) calls[match[1]!] = Number(match[2])
  }
  return calls
}

// ---------------------------------------------------------------------------
// wrk.

interface WrkSummary {
  readonly requests: number
  readonly durationUs: number
  readonly p50Us: number
  readonly p90Us: number
  readonly p99Us: number
  readonly meanUs: number
  readonly maxUs: number
  readonly errConnect: number
  readonly errRead: number
  readonly errWrite: number
  readonly errStatus: number
  readonly errTimeout: number
}

const runWrk = async (url: string, seconds: number, cookiesFile: string) => {
  const resultFile = join(workDir, "wrk-result.json")
  rmSync(resultFile, { force: true })
  const { child, log } = start("wrk", 1, "wrk", [
    "-t1",
    `-c${connections}`,
    `-d${seconds}s`,
    "--timeout",
    "5s",
    "-s",
    join(benchDir, "wrk", "sessions.lua"),
    url
  ], { COOKIES_FILE: cookiesFile, RESULT_FILE: resultFile, PICK: pick })
  const code = await new Promise<number | null>((resolve) => child.once("exit", (c) => resolve(c)))
  children.delete(child)
  // Let the server finish the requests that were in flight when wrk stopped,
  // so they do not load the next measurement.
  await sleep(500)
  if (code !== 0) throw new Error(`bench: wrk exited with ${code}:\n${log.join("")}`)
  return JSON.parse(readFileSync(resultFile, "utf8")) as WrkSummary
}

// ---------------------------------------------------------------------------
// Results.

interface RunResult {
  readonly rps: number
  readonly p50Ms: number
  readonly p99Ms: number
  readonly requests: number
  /** CPU time (user + system) of the server process per request. */
  readonly cpuUsPerRequest: number
  readonly errors: number
  readonly commandsPerRequest: number
  readonly commands: Record<string, number>
}

interface RouteResult {
  readonly server: string
  readonly route: Route
  readonly rps: number
  readonly p50Ms: number
  readonly p99Ms: number
  readonly cpuUsPerRequest: number
  /** Commands sent by the server per request (MONITOR, script internals excluded). */
  readonly roundTrips: number
  readonly roundTripBreakdown: string
  /** All commands per request from commandstats, script internals included. */
  readonly commandsPerRequest: number
  readonly commandBreakdown: string
  readonly errors: number
  readonly runs: ReadonlyArray<RunResult>
}

const median = (values: ReadonlyArray<number>) => {
  const sorted = [...values].sort((a, b) => a - b)
  const middle = Math.floor(sorted.length / 2)
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2
}

const breakdown = (runsOf: ReadonlyArray<RunResult>) => {
  const total: Record<string, number> = {}
  let requests = 0
  for (const run of runsOf) {
    requests += run.requests
    for (const [command, calls] of Object.entries(run.commands)) total[command] = (total[command] ?? 0) + calls
  }
  return Object.entries(total)
    .sort((a, b) => b[1] - a[1])
    .map(([command, calls]) => `${command} ${(calls / requests).toFixed(3)}`)
    .join(" + ") || "none"
}

// ---------------------------------------------------------------------------

interface Running {
  readonly spec: ServerSpec
  readonly base: string
  readonly cookiesFile: string
  readonly cookies: ReadonlyArray<string>
  readonly handle: { child: ChildProcess; log: Array<string> }
}

/**
 * Counts the commands clients send to Redis for exactly `count` requests to
 * `url` (8 at a time, cookies in random order), from MONITOR: commands a Lua
 * script issues (source "lua") are not round trips and are left out.
 * `INFO commandstats` cannot tell them apart, and under wrk the requests in
 * flight when it stops blur the count; this pass is exact.
 */
const countCommands = async (
  redisUrl: string,
  url: string,
  prefix: string,
  cookies: ReadonlyArray<string>,
  count: number
) => {
  const client = new Redis(redisUrl)
  client.on("error", () => {})
  const monitor = await client.monitor()
  monitor.on("error", () => {})
  let commands = 0
  const byCommand: Record<string, number> = {}
  monitor.on("monitor", (_time: string, args: Array<string>, source: string) => {
    const command = String(args[0]).toLowerCase()
    // Only this server's commands: a previous server may still be finishing
    // requests that were in flight when its load stopped.
    if (source === "lua" || !args.some((arg) => String(arg).startsWith(prefix))) return
    commands++
    byCommand[command] = (byCommand[command] ?? 0) + 1
  })
  try {
    const offset = randomBytes(4).readUInt32BE(0)
    await inBatches(count, 8, async (i) => {
      const { status } = await fetchText(url, cookies[(offset + i * 7919) % cookies.length])
      if (status !== 200) throw new Error(`bench: ${url} answered ${status} while counting commands`)
    })
    // MONITOR lines arrive after the replies; wait until they stop coming.
    let seen = -1
    while (seen !== commands) {
      seen = commands
      await sleep(150)
    }
    const breakdown = Object.entries(byCommand)
      .sort((a, b) => b[1] - a[1])
      .map(([command, calls]) => `${command} ${Number((calls / count).toFixed(3))}`)
      .join(" + ") || "none"
    return { perRequest: commands / count, breakdown }
  } finally {
    monitor.disconnect()
    client.disconnect()
  }
}

const main = async () => {
  requireTool("wrk", "apt-get update && apt-get install -y wrk")
  requireTool("redis-server", "apt-get install -y redis-server")
  if (pinned) requireTool("taskset", "util-linux")
  else console.warn("bench: fewer than 2 cores, running without CPU pinning (figures are not comparable)")

  const plannedSeconds = selected.reduce(
    (total, spec) =>
      total + [...spec.routes, ...(spec.bare?.routes ?? [])].filter((route) => routesSelected.includes(route)).length *
          (warmup + runs * duration),
    0
  )
  console.log(
    `bench: ${selected.length} servers, ${runs} x ${duration} s per route after ${warmup} s warm-up, ` +
      `${connections} connections, ${sessionCount} sessions, pick=${pick}; about ${Math.ceil(plannedSeconds / 60)} min of load`
  )
  // The whole run is bounded: planned load time plus generous setup time.
  const watchdog = setTimeout(() => {
    console.error("bench: over the time bound, stopping")
    killAllNow()
    process.exit(1)
  }, (plannedSeconds * 1.5 + 30 * selected.length + 120) * 1000)
  watchdog.unref()

  buildServers()

  const redisPort = await freePort()
  const redisServer = start("redis", 1, "redis-server", [
    "--port",
    String(redisPort),
    "--bind",
    "127.0.0.1",
    "--save",
    "",
    "--appendonly",
    "no",
    "--daemonize",
    "no"
  ])
  const redisUrl = `redis://127.0.0.1:${redisPort}`
  const redis = new Redis(redisUrl, { maxRetriesPerRequest: 50, retryStrategy: (times) => (times > 100 ? null : 100) })
  // Connection refusals while redis-server starts (slowly, on a busy
  // machine) are retried for up to 10 s; a lasting
  // failure surfaces as the rejection of the ping below.
  redis.on("error", () => {})
  await redis.ping()
  const redisVersion = /redis_version:(\S+)/.exec(await redis.info("server"))?.[1] ?? "?"

  const results: Array<RouteResult> = []
  const counterChecks: Array<{ server: string; responses: number; counted: number }> = []
  const notes: Record<string, ReadonlyArray<string>> = {}
  const running: Array<Running> = []

  try {
    // All servers run side by side on core 0 (idle but one at a time under
    // load), so the runs of different servers can be interleaved: a slow
    // spell of the machine then hits every server, not just one.
    for (const spec of selected) {
      const port = await freePort()
      const base = `http://127.0.0.1:${port}`
      const barePort = spec.bare === undefined ? undefined : await freePort()
      console.log(`== ${spec.name}: ${spec.description}`)
      const profile = cpuProfDir === undefined
        ? []
        // One directory per server: node writes a profile per thread (tsx's
        // loader thread too); the largest file is the main thread's.
        : ["--cpu-prof", `--cpu-prof-dir=${join(cpuProfDir, spec.name)}`]
      const handle = start(spec.name, 0, builds[spec.line].node, [...profile, builtFile(spec)], {
        PORT: String(port),
        ...(barePort === undefined ? {} : { BARE_PORT: String(barePort) }),
        REDIS_URL: redisUrl,
        NODE_ENV: "production"
      })
      await waitForServer(base, spec, handle)
      const keysBefore = await redis.dbsize()
      // A server without sessions still gets well-formed session cookies, so
      // its requests are byte-for-byte the size of the others'.
      const cookies = spec.sessions
        ? await createSessions(base, spec)
        : Array.from({ length: sessionCount }, () => `session=${randomBytes(32).toString("base64url")}`)
      const stored = (await redis.dbsize()) - keysBefore
      if (spec.sessions && stored !== sessionCount) {
        throw new Error(`bench: ${spec.name}: ${stored} keys in Redis for ${sessionCount} sessions`)
      }
      const cookiesFile = join(workDir, `${spec.name}.cookies`)
      writeFileSync(cookiesFile, cookies.join("\n") + "\n")
      notes[spec.name] = await checkRoutes(base, spec, cookies)
      console.log(spec.sessions ? `   ${cookies.length} sessions created through /setup, routes checked` : "   routes checked")
      running.push({ spec, base, cookiesFile, cookies, handle })
      if (spec.bare !== undefined && barePort !== undefined) {
        // the same process on its second port, with the same cookies as (a)
        // sends (valid session ids the bare app never reads)
        const bareBase = `http://127.0.0.1:${barePort}`
        await waitForServer(bareBase, spec.bare, handle)
        notes[spec.bare.name] = await checkRoutes(bareBase, spec.bare, cookies)
        running.push({ spec: spec.bare, base: bareBase, cookiesFile, cookies, handle })
      }
    }

    for (const route of ["get", "incr", "plain"] as const) {
      const targets = routesSelected.includes(route)
        ? running.filter((server) => server.spec.routes.includes(route))
        : []
      if (targets.length === 0) continue
      console.log(`\n-- /${route}`)
      const perServer = new Map<string, { runs: Array<RunResult>; roundTrips: number; roundTripBreakdown: string; incrResponses: number; counterBefore: number }>()
      for (const server of targets) {
        const counterBefore = route === "incr" ? await sumCounters(server.base, server.cookies) : 0
        const counted = await countCommands(
          redisUrl,
          `${server.base}/${route}`,
          server.spec.prefix,
          server.cookies,
          countedRequests
        )
        const warm = await runWrk(`${server.base}/${route}`, warmup, server.cookiesFile)
        perServer.set(server.spec.name, {
          runs: [],
          roundTrips: counted.perRequest,
          roundTripBreakdown: counted.breakdown,
          incrResponses: route === "incr" ? warm.requests - warm.errStatus + countedRequests : 0,
          counterBefore
        })
      }
      for (let i = 0; i < runs; i++) {
        // Rotate the order every round so no server always runs first.
        const order = targets.map((_, j) => targets[(i + j) % targets.length]!)
        for (const server of order) {
          const state = perServer.get(server.spec.name)!
          await new Promise((resolve) => setTimeout(resolve, settle * 1000))
          await redis.config("RESETSTAT")
          const cpuBefore = cpuMillis(server.handle.child)
          const summary = await runWrk(`${server.base}/${route}`, duration, server.cookiesFile)
          const cpuAfter = cpuMillis(server.handle.child)
          const commands = await commandStats(redis)
          const total = Object.values(commands).reduce((a, b) => a + b, 0)
          const errors = summary.errConnect + summary.errRead + summary.errWrite + summary.errStatus +
            summary.errTimeout
          if (route === "incr") state.incrResponses += summary.requests - summary.errStatus
          state.runs.push({
            rps: summary.requests / (summary.durationUs / 1e6),
            p50Ms: summary.p50Us / 1000,
            p99Ms: summary.p99Us / 1000,
            requests: summary.requests,
            cpuUsPerRequest: (cpuAfter - cpuBefore) * 1000 / summary.requests,
            errors,
            commandsPerRequest: total / summary.requests,
            commands
          })
        }
      }
      for (const server of targets) {
        const state = perServer.get(server.spec.name)!
        if (route === "incr") {
          const counted = (await sumCounters(server.base, server.cookies)) - state.counterBefore
          counterChecks.push({ server: server.spec.name, responses: state.incrResponses, counted })
        }
        const result: RouteResult = {
          server: server.spec.name,
          route,
          rps: median(state.runs.map((r) => r.rps)),
          p50Ms: median(state.runs.map((r) => r.p50Ms)),
          p99Ms: median(state.runs.map((r) => r.p99Ms)),
          cpuUsPerRequest: median(state.runs.map((r) => r.cpuUsPerRequest)),
          roundTrips: state.roundTrips,
          roundTripBreakdown: state.roundTripBreakdown,
          commandsPerRequest: median(state.runs.map((r) => r.commandsPerRequest)),
          commandBreakdown: breakdown(state.runs),
          errors: state.runs.reduce((a, r) => a + r.errors, 0),
          runs: state.runs
        }
        results.push(result)
        console.log(
          `   ${server.spec.name.padEnd(22)} ${result.rps.toFixed(0).padStart(7)} req/s  p50 ${result.p50Ms.toFixed(2)} ms  ` +
            `p99 ${result.p99Ms.toFixed(2)} ms  ${result.cpuUsPerRequest.toFixed(0)} µs CPU/req  ${result.roundTrips.toFixed(3)} commands/req (${result.roundTripBreakdown}) ` +
            `(commandstats: ${result.commandBreakdown})` +
            (result.errors > 0 ? `  ${result.errors} errors` : "") +
            `  [runs: ${state.runs.map((r) => r.rps.toFixed(0)).join(", ")}]`
        )
      }
    }
  } finally {
    for (const child of new Set(running.map((server) => server.handle.child))) await stopChild(child)
    redis.disconnect()
    await stopChild(redisServer.child)
  }

  report(results, counterChecks, notes, redisVersion)
}

const packageVersion = (dir: string, name: string): string => {
  try {
    return (JSON.parse(readFileSync(join(dir, "node_modules", name, "package.json"), "utf8")) as { version: string })
      .version
  } catch {
    return "?"
  }
}

const report = (
  results: ReadonlyArray<RouteResult>,
  counterChecks: ReadonlyArray<{ server: string; responses: number; counted: number }>,
  notes: Record<string, ReadonlyArray<string>>,
  redisVersion: string
) => {
  const find = (server: string, route: Route) => results.find((r) => r.server === server && r.route === route)
  const lines: Array<string> = []
  lines.push("")
  lines.push("| server | route | req/s | p50 ms | p99 ms | server CPU µs/req | Redis commands/req | which | errors |")
  lines.push("|---|---|---:|---:|---:|---:|---:|---|---:|")
  for (const r of results) {
    lines.push(
      `| ${r.server} | /${r.route} | ${r.rps.toFixed(0)} | ${r.p50Ms.toFixed(2)} | ${r.p99Ms.toFixed(2)} | ` +
        `${r.cpuUsPerRequest.toFixed(0)} | ` +
        `${r.roundTrips.toFixed(3)} | ${r.roundTripBreakdown} | ${r.errors} |`
    )
  }

  // value: ratio of req/s; cpu: ratio of requests per CPU-second (b's CPU
  // time per request over a's), the same comparison free of other load;
  // rounds: the median over the rounds of the two servers' ratio within a
  // round (a round runs every server once, back to back), which a machine
  // whose speed changes between rounds moves less than the ratio of medians
  const ratios: Array<
    { name: string; value: number | undefined; cpu: number | undefined; rounds: number | undefined; target: number }
  > = []
  const sameRound = (a: RouteResult, b: RouteResult) =>
    a.runs.length === b.runs.length ? median(a.runs.map((run, i) => run.rps / b.runs[i]!.rps)) : undefined
  const ratio = (name: string, a: RouteResult | undefined, b: RouteResult | undefined, target: number) =>
    ratios.push({
      name,
      value: a && b ? a.rps / b.rps : undefined,
      cpu: a && b ? b.cpuUsPerRequest / a.cpuUsPerRequest : undefined,
      rounds: a && b ? sameRound(a, b) : undefined,
      target
    })
  ratio("effect-session / effect-floor, read (/get)", find("effect-session", "get"), find("effect-floor", "get"), 0.9)
  ratio("effect-session / effect-floor, write (/incr)", find("effect-session", "incr"), find("effect-floor", "incr"), 0.9)
  ratio("effect-session /plain / app without middleware, own process (e)", find("effect-session", "plain"), find("effect-no-mw", "plain"), 0.95)
  ratio(
    "effect-session /plain / app without middleware, same process (g)",
    find("effect-session", "plain"),
    find("effect-session-bare", "plain"),
    0.95
  )
  ratio("a do-nothing middleware /plain / app without middleware", find("effect-identity-mw", "plain"), find("effect-no-mw", "plain"), 0)
  ratio("effect-session /plain / do-nothing middleware", find("effect-session", "plain"), find("effect-identity-mw", "plain"), 0)
  // today against EFFECT3_BEFORE's revision (issue 16: within 5 %)
  for (const [route, what] of [["get", "read"], ["incr", "write"], ["plain", "untouched"]] as const) {
    ratio(`effect-session / effect-session-before, ${what} (/${route})`, find("effect-session", route), find("effect-session-before", route), 0.95)
  }
  ratio("effect-session / express-session, read", find("effect-session", "get"), find("express-session", "get"), 1.6)
  ratio("effect-session / express-session, write", find("effect-session", "incr"), find("express-session", "incr"), 1.4)
  ratio("effect-session / fastify-session, read", find("effect-session", "get"), find("fastify-session", "get"), 0)
  ratio("effect-session / fastify-session, write", find("effect-session", "incr"), find("fastify-session", "incr"), 0)
  // the Effect 4 line (issue 17): against its own floor, and ahead of @fastify/session
  ratio("effect4-session / effect4-floor, read (/get)", find("effect4-session", "get"), find("effect4-floor", "get"), 0.9)
  ratio("effect4-session / effect4-floor, write (/incr)", find("effect4-session", "incr"), find("effect4-floor", "incr"), 0.9)
  ratio("effect4-session-before / effect4-floor, read (/get)", find("effect4-session-before", "get"), find("effect4-floor", "get"), 0)
  ratio("effect4-session-before / effect4-floor, write (/incr)", find("effect4-session-before", "incr"), find("effect4-floor", "incr"), 0)
  ratio("effect4-session / effect4-floor, untouched (/plain)", find("effect4-session", "plain"), find("effect4-floor", "plain"), 0)
  ratio("effect4-session / fastify-session, read", find("effect4-session", "get"), find("fastify-session", "get"), 1)
  ratio("effect4-session / fastify-session, write", find("effect4-session", "incr"), find("fastify-session", "incr"), 1)
  ratio("effect4-session / express-session, read", find("effect4-session", "get"), find("express-session", "get"), 0)
  ratio("effect4-session / express-session, write", find("effect4-session", "incr"), find("express-session", "incr"), 0)
  ratio("effect4-floor / effect-floor, read", find("effect4-floor", "get"), find("effect-floor", "get"), 0)
  ratio("effect4-floor / effect-floor, write", find("effect4-floor", "incr"), find("effect-floor", "incr"), 0)
  ratio("effect4-session / effect-session, read", find("effect4-session", "get"), find("effect-session", "get"), 0)
  ratio("effect4-session / effect-session, write", find("effect4-session", "incr"), find("effect-session", "incr"), 0)

  lines.push("")
  lines.push("| ratio | req/s | requests per CPU-second | req/s, same round | target (req/s) |")
  lines.push("|---|---:|---:|---:|---|")
  // only the ratios of servers in this run
  for (const r of ratios.filter((r) => r.value !== undefined)) {
    const value = r.value === undefined ? "n/a" : `${r.value.toFixed(2)}x`
    const cpu = r.cpu === undefined || Number.isNaN(r.cpu) ? "n/a" : `${r.cpu.toFixed(2)}x`
    const target = r.target === 0 ? "—" : `>= ${r.target}x ${r.value === undefined ? "" : r.value >= r.target ? "met" : "MISSED"}`
    const rounds = r.rounds === undefined ? "n/a" : `${r.rounds.toFixed(2)}x`
    lines.push(`| ${r.name} | ${value} | ${cpu} | ${rounds} | ${target} |`)
  }

  // both lines' effect-session: 1 command to read, 2 to write, none untouched
  const es = (server: string, route: Route, expected: number) => {
    const r = find(server, route)
    return r === undefined
      ? undefined
      : { server, route, expected, measured: r.roundTrips, met: Math.abs(r.roundTrips - expected) < 0.01 }
  }
  const commandTargets = ["effect-session", "effect4-session", "effect4-session-before"]
    .flatMap((server) => [es(server, "get", 1), es(server, "incr", 2), es(server, "plain", 0)])
    .filter((x) => x !== undefined)
  if (commandTargets.length > 0) {
    lines.push("")
    lines.push("| Redis commands/request | route | measured | target |")
    lines.push("|---|---|---:|---|")
    for (const t of commandTargets) {
      lines.push(`| ${t.server} | /${t.route} | ${t.measured.toFixed(3)} | ${t.expected} ${t.met ? "met" : "MISSED"} |`)
    }
  }

  if (counterChecks.length > 0) {
    lines.push("")
    // Requests in flight when wrk stops are applied but not counted as
    // responses, so the increase may exceed the responses by up to the
    // number of connections per wrk run: a shortfall is a floor on the
    // updates lost, and no shortfall does not prove none were.
    lines.push("| /incr: counter check | 2xx responses | counter increase | updates lost (at least) |")
    lines.push("|---|---:|---:|---:|")
    for (const c of counterChecks) {
      lines.push(`| ${c.server} | ${c.responses} | ${c.counted} | ${Math.max(0, c.responses - c.counted)} |`)
    }
  }
  const noted = Object.entries(notes).filter(([, n]) => n.length > 0)
  if (noted.length > 0) {
    lines.push("")
    for (const [server, n] of noted) lines.push(`- ${server}: ${n.join("; ")}`)
  }
  console.log(lines.join("\n"))

  const machine = {
    cpus: cpus().length,
    cpuModel: cpus()[0]?.model ?? "?",
    node: process.version,
    nodeEffect4: selected.some((spec) => spec.line === 4) ? nodeVersion(4) : undefined,
    redis: redisVersion,
    wrk: spawnSync("wrk", ["-v"], { encoding: "utf8" }).stdout.split("\n")[0]?.trim() ?? "?",
    packages: Object.fromEntries(
      [
        ["effect", rootDir],
        ["@effect/platform", rootDir],
        ["@effect/platform-node", rootDir],
        ["ioredis", rootDir],
        ["express", benchDir],
        ["express-session", benchDir],
        ["connect-redis", benchDir],
        ["fastify", benchDir],
        ["@fastify/session", benchDir],
        ["@fastify/cookie", benchDir]
      ].map(([name, dir]) => [name, packageVersion(dir!, name!)])
    ),
    packagesEffect4: Object.fromEntries(
      ["effect", "@effect/platform-node", "ioredis"].map((name) => [name, packageVersion(effect4Dir, name)])
    )
  }
  mkdirSync(dirname(outFile), { recursive: true })
  writeFileSync(
    outFile,
    JSON.stringify(
      {
        date: new Date().toISOString(),
        settings: { duration, runs, warmup, connections, sessions: sessionCount, pick, pinned },
        machine,
        results,
        ratios,
        commandTargets,
        counterChecks,
        notes,
        markdown: lines.join("\n")
      },
      null,
      2
    ) + "\n"
  )
  console.log(`\nbench: results written to ${outFile}`)
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    console.error(error instanceof Error ? error.message : error)
    process.exitCode = 1
    killAllNow()
    process.exit(1)
  }
)
