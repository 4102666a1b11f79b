/**
 * Contention benchmark (issue 11): per store, the time of
 *
 * - 200 concurrent `update("counter", n => n + 1)` requests on one session,
 *   all sent at once to one server process;
 * - 4 × 50 concurrent increments on one session, sent at once to 4 server
 *   processes that share the store (each its own store layer and client);
 *   not for memory, which processes cannot share;
 * - the same 200 increments made one after another through one process.
 *
 *   npx tsx bench/contention.ts
 *
 * The servers are child processes of this one (this file, run with `serve`),
 * each on a loopback port it binds with port 0 and reports; the requests come
 * from this process over fresh connections. Each server first serves 50
 * increments of a session of its own (warm-up). A row also says how many
 * requests were not answered 200 and the counter the session ended at.
 *
 * Stores: memory, files, Redis (127.0.0.1:6379), PostgreSQL (:5432),
 * MariaDB (:3306), SQLite (a file), Memcached (:11211), DynamoDB (dynalite,
 * started in this process), MongoDB (only with MONGODB_URL). A store whose
 * server does not answer is listed as skipped. STORES (a comma list of
 * names, as printed) picks some. Every child is stopped by pid at the end,
 * on failure and on Ctrl-C; what a run stored is removed.
 */
import { HttpServer } from "@effect/platform"
import { NodeHttpServer, NodeRuntime } from "@effect/platform-node"
import { Effect, Layer } from "effect"
import { type ChildProcess, spawn } from "node:child_process"
import { request as httpRequest } from "node:http"
import { createServer } from "node:http"
import { connect } from "node:net"
import { dirname } from "node:path"
import { fileURLToPath } from "node:url"
import type { Backend, StoreSpec } from "../test/utils/contention.js"
import { backends, counterApp, storeLayer } from "../test/utils/contention.js"

const thisFile = fileURLToPath(import.meta.url)
const rootDir = dirname(dirname(thisFile))

// --- the server process -----------------------------------------------------

const serve = (spec: StoreSpec) =>
  Effect.flatMap(HttpServer.HttpServer, (server) =>
    Effect.zipRight(
      Effect.sync(() => {
        const address = server.address
        if (address._tag !== "TcpAddress") throw new Error("the server is not on TCP")
        // the parent reads this line for the port
        process.stdout.write(`listening ${address.port}\n`)
      }),
      Effect.never
    )).pipe(
      Effect.provide(
        HttpServer.serve(counterApp(Effect.void)).pipe(
          Layer.provide(storeLayer(spec)),
          Layer.provideMerge(NodeHttpServer.layer(createServer, { port: 0, host: "127.0.0.1" }))
        )
      )
    )

// --- the driver ---------------------------------------------------------------

const children = new Set<ChildProcess>()

const stopChild = (child: ChildProcess) => {
  children.delete(child)
  if (child.pid !== undefined && child.exitCode === null && child.signalCode === null) process.kill(child.pid, "SIGKILL")
}

const stopAll = () => {
  for (const child of [...children]) stopChild(child)
}

/** Starts a server process over a new instance of the store; resolves with its port. */
const startChild = (spec: StoreSpec): Promise<{ readonly child: ChildProcess; readonly port: number }> =>
  new Promise((resolve, reject) => {
    // node itself with tsx's loader, not the tsx command: that would run the
    // server as a grandchild, which outlives a kill of the pid we hold
    const child = spawn(process.execPath, ["--import", "tsx", thisFile, "serve"], {
      cwd: rootDir,
      env: { ...process.env, CONTENTION_STORE: JSON.stringify(spec) },
      stdio: ["ignore", "pipe", "pipe"]
    })
    children.add(child)
    let out = ""
    let err = ""
    const timer = setTimeout(() => fail(new Error("did not report its port within 60 s")), 60_000)
    const fail = (error: Error) => {
      clearTimeout(timer)
      stopChild(child)
      reject(new Error(`server process: ${error.message}\n${err.slice(-2000)}`))
    }
    child.stderr!.on("data", (chunk: Buffer) => {
      err += chunk.toString()
    })
    child.stdout!.on("data", (chunk: Buffer) => {
      out += chunk.toString()
      const match = /listening (\d+)/.exec(out)
      if (match !== null) {
        clearTimeout(timer)
        resolve({ child, port: Number(match[1]) })
      }
    })
    child.once("exit", (code) => fail(new Error(`exited with ${code}`)))
  })

interface Reply {
  readonly status: number
  readonly body: string
  readonly setCookie: ReadonlyArray<string>
}

/** One GET on a connection of its own (no pooling: every request of a burst is in flight at once). */
const get = (port: number, path: string, cookie?: string): Promise<Reply> =>
  new Promise((resolve, reject) => {
    const req = httpRequest(
      { host: "127.0.0.1", port, path, agent: false, headers: cookie === undefined ? {} : { cookie } },
      (res) => {
        let body = ""
        res.setEncoding("utf8")
        res.on("data", (chunk: string) => {
          body += chunk
        })
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body, setCookie: res.headers["set-cookie"] ?? [] }))
        res.on("error", reject)
      }
    )
    req.on("error", reject)
    req.end()
  })

/** A stored session (counter 0) through the server on `port`; its cookie header. */
const startSession = async (port: number): Promise<string> => {
  const reply = await get(port, "/start")
  const cookie = reply.setCookie.map((line) => line.split(";")[0]).find((pair) => pair.startsWith("session="))
  if (reply.status !== 200 || cookie === undefined) throw new Error(`/start answered ${reply.status} without a session cookie`)
  return cookie
}

interface Measured {
  readonly millis: number
  readonly failed: number
  readonly counter: string
}

/** Increments a new session: `perServer` requests at once to each server, or one after another. */
const measure = async (ports: ReadonlyArray<number>, perServer: number, concurrent: boolean): Promise<Measured> => {
  const cookie = await startSession(ports[0])
  const started = performance.now()
  let replies: Array<Reply> = []
  if (concurrent) {
    replies = await Promise.all(ports.flatMap((port) => Array.from({ length: perServer }, () => get(port, "/incr", cookie))))
  } else {
    for (let i = 0; i < perServer; i++) replies.push(await get(ports[0], "/incr", cookie))
  }
  const millis = performance.now() - started
  const counter = await get(ports[0], "/counter", cookie)
  return { millis, failed: replies.filter((reply) => reply.status !== 200).length, counter: counter.body }
}

const warmUp = async (port: number) => {
  const cookie = await startSession(port)
  for (let i = 0; i < 50; i++) await get(port, "/incr", cookie)
}

const reachable = (host: string, port: number): Promise<boolean> =>
  new Promise((resolve) => {
    const socket = connect({ host, port, timeout: 1000 })
    const settle = (ok: boolean) => {
      socket.destroy()
      resolve(ok)
    }
    socket.once("connect", () => settle(true)).once("error", () => settle(false)).once("timeout", () => settle(false))
  })

const skipReason = async (backend: Backend): Promise<string | undefined> => {
  if (backend.gate !== undefined && process.env[backend.gate.variable] === undefined) {
    return `${backend.gate.variable} is not set`
  }
  if (backend.server !== undefined && !(await reachable(backend.server.host, backend.server.port))) {
    return `no server on ${backend.server.host}:${backend.server.port}`
  }
  return undefined
}

interface Row {
  readonly store: string
  readonly concurrent?: Measured | undefined
  readonly processes?: Measured | undefined
  readonly sequential?: Measured | undefined
  readonly note?: string | undefined
}

const benchmark = async (backend: Backend): Promise<Row> => {
  const reason = await skipReason(backend)
  if (reason !== undefined) return { store: backend.name, note: `skipped: ${reason}` }
  const prepared = await backend.prepare()
  try {
    const count = backend.shared ? 4 : 1
    const started = await Promise.all(Array.from({ length: count }, () => startChild(prepared.spec)))
    const ports = started.map((server) => server.port)
    for (const port of ports) await warmUp(port)
    const concurrent = await measure([ports[0]], 200, true)
    const processes = backend.shared ? await measure(ports, 50, true) : undefined
    const sequential = await measure([ports[0]], 200, false)
    for (const server of started) stopChild(server.child)
    return { store: backend.name, concurrent, processes, sequential }
  } finally {
    stopAll()
    await prepared.close()
  }
}

const cell = (measured: Measured | undefined) =>
  measured === undefined
    ? "—"
    : `${(measured.millis / 1000).toFixed(2)} s${measured.failed > 0 ? `, ${measured.failed} × non-200` : ""}${
      measured.counter === "200" ? "" : `, counter ${measured.counter}`
    }`

const printTable = (rows: ReadonlyArray<Row>) => {
  const header = ["store", "200 concurrent, 1 process", "4 × 50 concurrent, 4 processes", "200 sequential, 1 process"]
  const lines = rows.map((row) =>
    row.note !== undefined ? [row.store, row.note, "", ""] : [row.store, cell(row.concurrent), cell(row.processes), cell(row.sequential)]
  )
  const widths = header.map((title, i) => Math.max(title.length, ...lines.map((line) => line[i].length)))
  const format = (line: ReadonlyArray<string>) => `| ${line.map((text, i) => text.padEnd(widths[i])).join(" | ")} |`
  console.log(format(header))
  console.log(`|${widths.map((width) => "-".repeat(width + 2)).join("|")}|`)
  for (const line of lines) console.log(format(line))
}

const main = async () => {
  const selected = process.env.STORES?.split(",").map((name) => name.trim())
  const rows: Array<Row> = []
  for (const backend of backends) {
    if (selected !== undefined && !selected.includes(backend.name)) continue
    const t0 = performance.now()
    try {
      rows.push(await benchmark(backend))
    } catch (error) {
      rows.push({ store: backend.name, note: `failed: ${String(error).split("\n")[0]}` })
    }
    console.error(`${backend.name}: ${((performance.now() - t0) / 1000).toFixed(1)} s`)
  }
  printTable(rows)
  console.log("\n(each cell: wall time from the first request sent to the last answer; every request answered 200 and the")
  console.log("counter at 200 unless the cell says otherwise)")
}

if (process.argv[2] === "serve") {
  const spec = process.env.CONTENTION_STORE
  if (spec === undefined) throw new Error("bench/contention.ts serve: CONTENTION_STORE is not set")
  NodeRuntime.runMain(serve(JSON.parse(spec) as StoreSpec))
} else {
  process.once("exit", stopAll)
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    process.once(signal, () => {
      stopAll()
      process.exit(130)
    })
  }
  main().then(() => process.exit(0), (error) => {
    console.error(error)
    process.exit(1)
  })
}
