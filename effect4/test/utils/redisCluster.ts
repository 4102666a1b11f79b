/**
 * A private Redis Cluster for a test file: `redis-server --cluster-enabled
 * yes` masters on loopback ports of their own, joined by `redis-cli
 * --cluster create`, and an ioredis `Cluster` over them. Every node this file
 * starts is killed by its pid when the cluster stops, and at process exit if
 * a run is cut short.
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process"
import { mkdtempSync, rmSync } from "node:fs"
import { createServer } from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { setTimeout as sleep } from "node:timers/promises"
import { Cluster, Redis } from "ioredis"

/** Why a cluster cannot be started here, or `undefined` when it can. */
export const missingBinaries = (): string | undefined => {
  for (const binary of ["redis-server", "redis-cli"]) {
    const run = spawnSync(binary, ["--version"], { encoding: "utf8" })
    if (run.error !== undefined || run.status !== 0) return `${binary} is not installed (Debian package redis-server)`
  }
  return undefined
}

export interface RedisCluster {
  readonly client: Cluster
  /** The nodes' client ports. */
  readonly ports: ReadonlyArray<number>
  /** Kills the node on `port` (a crash), by its pid. */
  readonly crash: (port: number) => Promise<void>
  /** Closes the client, kills every node by pid, removes their directory. */
  readonly stop: () => Promise<void>
}

const host = "127.0.0.1"
const started = new Set<ChildProcess>()
process.once("exit", () => {
  for (const child of started) kill(child)
})

// a killed child has a signalCode, not an exitCode
const running = (child: ChildProcess) => child.exitCode === null && child.signalCode === null

const kill = (child: ChildProcess) => {
  try {
    if (child.pid !== undefined && running(child)) process.kill(child.pid, "SIGKILL")
  } catch {
    // it exited meanwhile
  }
}

// a port the kernel just handed out and took back; a node that finds it
// taken by then exits, and is started again on another
const unusedPort = (): Promise<number> =>
  new Promise((resolve, reject) => {
    const server = createServer()
    server.once("error", reject)
    server.listen(0, host, () => {
      const address = server.address()
      server.close(() => typeof address === "object" && address !== null ? resolve(address.port) : reject(new Error("no port")))
    })
  })

// the server on the port is this child (another test file's node could have
// taken a port chosen here)
const answersAs = async (port: number, pid: number): Promise<boolean> => {
  const probe = new Redis({ host, port, lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0, connectTimeout: 1_000 })
  probe.on("error", () => undefined)
  try {
    await probe.connect()
    return (await probe.info("server")).includes(`process_id:${pid}\r`)
  } catch {
    return false
  } finally {
    probe.disconnect()
  }
}

const startNode = async (dir: string): Promise<{ readonly port: number; readonly child: ChildProcess }> => {
  for (let attempt = 1;; attempt++) {
    const [port, busPort] = [await unusedPort(), await unusedPort()]
    const child = spawn("redis-server", [
      "--port", String(port), "--cluster-port", String(busPort), "--bind", host, "--dir", dir,
      "--cluster-enabled", "yes", "--cluster-config-file", `nodes-${port}.conf`,
      "--save", "", "--appendonly", "no"
    ], { cwd: dir, stdio: "ignore" })
    started.add(child)
    child.once("exit", () => started.delete(child))
    for (let i = 0; i < 100 && running(child); i++) {
      if (await answersAs(port, child.pid!)) return { port, child }
      await sleep(100)
    }
    kill(child)
    if (attempt === 5) throw new Error(`redis-server did not start on port ${port} (5 attempts)`)
  }
}

const cli = (args: ReadonlyArray<string>): string => {
  const run = spawnSync("redis-cli", args, { encoding: "utf8", timeout: 60_000 })
  if (run.error !== undefined || run.status !== 0) throw new Error(`redis-cli ${args.join(" ")}: ${run.error?.message ?? run.stderr}`)
  return run.stdout
}

/** Starts `nodes` masters (no replicas), waits for `cluster_state:ok`, connects a `Cluster`. */
export const startRedisCluster = async (nodes: number): Promise<RedisCluster> => {
  const dir = mkdtempSync(join(tmpdir(), "effect4-session-cluster-"))
  const children = new Map<number, ChildProcess>()
  let client: Cluster | undefined
  const crash = async (port: number) => {
    const child = children.get(port)
    if (child === undefined) return
    const exited = new Promise((resolve) => running(child) ? child.once("exit", resolve) : resolve(undefined))
    kill(child)
    await exited
  }
  const stop = async () => {
    // a QUIT to a crashed node could wait for its reconnection: not long
    if (client !== undefined) await Promise.race([client.quit().catch(() => undefined), sleep(2_000)])
    client?.disconnect()
    for (const port of children.keys()) await crash(port)
    rmSync(dir, { recursive: true, force: true })
  }
  try {
    const ports: Array<number> = []
    for (let i = 0; i < nodes; i++) {
      const node = await startNode(dir)
      children.set(node.port, node.child)
      ports.push(node.port)
    }
    cli(["--cluster", "create", ...ports.map((port) => `${host}:${port}`), "--cluster-replicas", "0", "--cluster-yes"])
    for (const port of ports) {
      for (let i = 0; !cli(["-h", host, "-p", String(port), "cluster", "info"]).includes("cluster_state:ok"); i++) {
        if (i === 300) throw new Error(`node ${port} did not reach cluster_state:ok`)
        await sleep(100)
      }
    }
    client = new Cluster(ports.map((port) => ({ host, port })))
    const ready = client
    await new Promise<void>((resolve, reject) => {
      ready.once("ready", resolve)
      ready.once("error", reject)
    })
    return { client: ready, ports, crash, stop }
  } catch (error) {
    await stop()
    throw error
  }
}
