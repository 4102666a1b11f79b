import { type ChildProcess, spawn, spawnSync } from "node:child_process"
import { mkdtempSync, rmSync } from "node:fs"
import { createServer } from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Redis } from "ioredis"

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

/** A loopback port nobody listens on right now. */
export const freePort = (): Promise<number> =>
  new Promise((resolve, reject) => {
    const server = createServer()
    server.once("error", reject)
    server.listen(0, "127.0.0.1", () => {
      const address = server.address()
      const port = typeof address === "object" && address !== null ? address.port : 0
      server.close(() => resolve(port))
    })
  })

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
    stdio: ["ignore", "ignore", "pipe"]
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
  try {
    await waitFor(async () => !exited && (await ping(port)), 10_000, `redis-server on port ${port} did not start`)
  } catch (error) {
    await stop("SIGKILL")
    throw error
  }
  return { port, process: child, stop }
}

const ping = async (port: number): Promise<boolean> => {
  const client = new Redis({ port, host: "127.0.0.1", lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null })
  // refused connections are expected while the server starts
  client.on("error", () => {})
  try {
    await client.connect()
    return (await client.ping()) === "PONG"
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
