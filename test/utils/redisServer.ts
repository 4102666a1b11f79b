import { Effect } from "effect"
import { type ChildProcess, spawn, spawnSync } from "node:child_process"
import { randomBytes } from "node:crypto"
import { mkdtempSync, readFileSync, rmSync } from "node:fs"
import { createServer } from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Cluster, Redis } from "ioredis"

/** Whether `redis-server` and `redis-cli` can be run on this machine. */
export const redisBinaries = (): { readonly available: boolean; readonly reason: string } => {
  for (const binary of ["redis-server", "redis-cli"]) {
    const result = spawnSync(binary, ["--version"], { encoding: "utf8" })
    if (result.error !== undefined || result.status !== 0) {
      return { available: false, reason: `${binary} is not installed (Debian package redis-server)` }
    }
  }
  return { available: true, reason: "" }
}

// The kernel takes the ports of outgoing connections and of `listen(0)`
// from its ephemeral range; a port below it is never handed out that way,
// so between choosing a port and a redis-server binding it, only another
// explicit choice can take it (and `startRedisServerOnFreePort` then retries).
const ephemeralLow = (() => {
  try {
    return Number(readFileSync("/proc/sys/net/ipv4/ip_local_port_range", "utf8").trim().split(/\s+/)[0]) || 32768
  } catch {
    return 32768
  }
})()

const bindable = (port: number): Promise<boolean> =>
  new Promise((resolve) => {
    const server = createServer()
    server.once("error", () => resolve(false))
    server.listen(port, "127.0.0.1", () => server.close(() => resolve(true)))
  })

/**
 * A loopback port nobody listens on right now, below the kernel's ephemeral
 * range, and so is the port 10000 above it (a cluster node's bus).
 */
export const freePort = async (): Promise<number> => {
  const low = 10_000
  const high = ephemeralLow - 10_001
  for (;;) {
    const port = low + Math.floor(Math.random() * (high - low + 1))
    if ((await bindable(port)) && (await bindable(port + 10_000))) return port
  }
}

export const tempDir = (label: string): string => mkdtempSync(join(tmpdir(), `effect-session-${label}-`))

export const removeDir = (dir: string): void => rmSync(dir, { recursive: true, force: true })

// Servers still running when the test process exits (a crash, an aborted
// run) are killed then, by pid, so none outlives the run.
const running = new Set<ChildProcess>()
process.once("exit", () => {
  for (const child of running) {
    if (child.pid !== undefined) {
      try {
        process.kill(child.pid, "SIGKILL")
      } catch {
        // already gone
      }
    }
  }
})

/** One `redis-server` process this test run started; stopped only by its pid. */
export interface RedisServer {
  readonly port: number
  readonly process: ChildProcess
  /** Stops the server: SIGKILL simulates a crash, SIGTERM a clean shutdown. */
  readonly stop: (signal?: NodeJS.Signals) => Promise<void>
}

/**
 * Starts `redis-server --port <port> --bind 127.0.0.1 <args>` in `dir` and
 * waits until it answers PING.
 */
export const startRedisServer = async (
  port: number,
  dir: string,
  args: ReadonlyArray<string>
): Promise<RedisServer> => {
  const child = spawn("redis-server", ["--port", String(port), "--bind", "127.0.0.1", "--dir", dir, ...args], {
    cwd: dir,
    stdio: ["ignore", "pipe", "pipe"]
  })
  running.add(child)
  let exited = false
  const exit = new Promise<void>((resolve) =>
    child.once("exit", () => {
      exited = true
      running.delete(child)
      resolve()
    })
  )
  const stop = async (signal: NodeJS.Signals = "SIGTERM") => {
    if (exited || child.pid === undefined) return
    process.kill(child.pid, signal)
    await exit
  }
  // redis-server logs to stdout; the tail says why it exited
  let output = ""
  const keep = (chunk: unknown) => (output = (output + String(chunk)).slice(-4096))
  child.stdout?.on("data", keep)
  child.stderr?.on("data", keep)
  try {
    await waitFor(
      async () => {
        // exited: it could not bind (or start at all); no use waiting
        if (exited) throw new RedisServerExited(port, output)
        return await answers(port, child.pid)
      },
      10_000,
      `redis-server on port ${port} did not start`
    )
  } catch (error) {
    await stop("SIGKILL")
    throw error
  }
  return { port, process: child, stop }
}

/** A redis-server that exited while starting, e.g. because its port was taken. */
export class RedisServerExited extends Error {
  constructor(readonly port: number, readonly output: string) {
    super(`redis-server on port ${port} exited while starting: ${output.trim().split("\n").at(-1) ?? ""}`)
  }
}

/**
 * Starts a redis-server on a port chosen by `freePort`, with `args(port)`;
 * when another process took the port in between (the server exits), chooses
 * another and tries again.
 */
export const startRedisServerOnFreePort = async (
  dir: string,
  args: (port: number) => ReadonlyArray<string>,
  attempts = 5
): Promise<RedisServer> => {
  for (let attempt = 1;; attempt++) {
    const port = await freePort()
    try {
      return await startRedisServer(port, dir, args(port))
    } catch (error) {
      if (!(error instanceof RedisServerExited) || attempt >= attempts) throw error
    }
  }
}

// The server on the port answers, and it is this child: a server another
// test file started on a port this one also chose would answer as well.
const answers = async (port: number, pid: number | undefined): Promise<boolean> => {
  const client = new Redis({
    port,
    host: "127.0.0.1",
    lazyConnect: true,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
    // whatever holds the port may never answer
    connectTimeout: 1_000,
    commandTimeout: 1_000
  })
  // refused connections are expected while the server starts
  client.on("error", () => {})
  try {
    await client.connect()
    const info = await client.info("server")
    return new RegExp(`^process_id:${pid}\\s*$`, "m").test(info)
  } catch {
    return false
  } finally {
    client.disconnect()
  }
}

export const sleep = (millis: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, millis))

/** Polls `condition` until it holds or `timeoutMs` passed. */
export const waitFor = async (condition: () => Promise<boolean>, timeoutMs: number, what: string): Promise<void> => {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    if (await condition()) return
    await sleep(100)
  }
  throw new Error(`${what} within ${timeoutMs} ms`)
}

/** Runs `redis-cli` and returns its output; throws when it fails. */
export const redisCli = (args: ReadonlyArray<string>): string => {
  const result = spawnSync("redis-cli", [...args], { encoding: "utf8", timeout: 60_000 })
  if (result.error !== undefined || result.status !== 0) {
    throw new Error(`redis-cli ${args.join(" ")} failed: ${result.error?.message ?? result.stderr}`)
  }
  return result.stdout
}

/**
 * Watches a Redis server with MONITOR, on connections of its own closed with
 * the scope. `commandsOf(effect)` runs the effect and returns the commands the
 * server received meanwhile from any other client, lower-cased, in order;
 * those a script ran are marked `lua:` (work on the server, not round trips).
 * An ECHO from a marker connection brackets each effect.
 */
export const monitorCommands = (host: string, port: number) =>
  Effect.gen(function*() {
    const marker = new Redis({ host, port })
    const monitored = new Redis({ host, port })
    const monitor = yield* Effect.promise(() => monitored.monitor())
    yield* Effect.addFinalizer(() =>
      Effect.promise(async () => {
        monitor.disconnect()
        await Promise.all([marker.quit(), monitored.quit()])
      })
    )
    const seen: Array<{ readonly args: ReadonlyArray<string>; readonly source: string }> = []
    monitor.on("monitor", (_time: string, args: Array<string>, source: string) => seen.push({ args, source }))
    const markerName = `marker-${randomBytes(4).toString("hex")}`
    let round = 0
    return <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<ReadonlyArray<string>, E, R> =>
      Effect.gen(function*() {
        const begin = `${markerName}-${round++}-begin`
        const end = `${markerName}-${round}-end`
        yield* Effect.promise(() => marker.echo(begin))
        yield* effect
        yield* Effect.promise(() => marker.echo(end))
        yield* Effect.promise(() =>
          waitFor(async () => seen.some((e) => e.args[1] === end), 5000, "MONITOR did not report the end marker")
        )
        const from = seen.findIndex((e) => e.args[1] === begin)
        const to = seen.findIndex((e) => e.args[1] === end)
        return seen.slice(from + 1, to).map((e) => `${e.source === "lua" ? "lua:" : ""}${e.args[0]!.toLowerCase()}`)
      })
  })

/**
 * A Redis Cluster of `nodes` private masters in `dir` (no replicas), up and
 * reporting `cluster_state:ok`, with a connected ioredis `Cluster`. The
 * servers started are pushed to `servers` as they start, so the caller can
 * stop them even when a later step fails.
 */
export const startRedisCluster = async (
  dir: string,
  nodes: number,
  servers: Array<RedisServer>
): Promise<Cluster> => {
  const host = "127.0.0.1"
  for (let i = 0; i < nodes; i++) {
    // freePort leaves port + 10000, a node's cluster bus, free too
    servers.push(
      await startRedisServerOnFreePort(dir, (port) => [
        "--cluster-enabled",
        "yes",
        "--cluster-config-file",
        `${dir}/nodes-${port}.conf`,
        "--save",
        "",
        "--appendonly",
        "no",
        "--daemonize",
        "no"
      ])
    )
  }
  const ports = servers.map((server) => server.port)
  redisCli(["--cluster", "create", ...ports.map((port) => `${host}:${port}`), "--cluster-replicas", "0", "--cluster-yes"])
  for (const port of ports) {
    await waitFor(
      async () => redisCli(["-h", host, "-p", String(port), "cluster", "info"]).includes("cluster_state:ok"),
      30_000,
      `node ${port} did not reach cluster_state:ok`
    )
  }
  const cluster = new Cluster(ports.map((port) => ({ host, port })))
  await new Promise<void>((resolve, reject) => {
    cluster.once("ready", resolve)
    cluster.once("error", reject)
  })
  return cluster
}
