/**
 * The quickstart as a user runs it: `npm start` inside effect4/, driven over
 * real HTTP with the same checks as the Effect 3 line's quickstart.
 */
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { type ChildProcess, spawn } from "node:child_process"
import { connect } from "node:net"
import { join } from "node:path"
// the Effect 3 line's quickstart helpers: the same client for the same contract
import { freePort, walkThrough } from "../../test/quickstartProcess.js"

const packageRoot = join(import.meta.dirname, "..")

interface Running {
  readonly url: string
  readonly output: () => string
  readonly stop: () => Promise<void>
}

/**
 * `npm start` in its own process group: npm runs a shell that runs tsx that
 * runs node, and stopping the group stops the server too.
 */
const npmStart = async (env: Record<string, string>): Promise<Running> => {
  const port = await freePort()
  const child: ChildProcess = spawn("npm", ["start"], {
    cwd: packageRoot,
    env: { ...process.env, ...env, PORT: String(port) },
    stdio: ["ignore", "pipe", "pipe"],
    detached: true
  })
  let output = ""
  child.stdout!.on("data", (chunk) => output += chunk)
  child.stderr!.on("data", (chunk) => output += chunk)
  const exited = () => child.exitCode !== null || child.signalCode !== null
  const stop = () =>
    new Promise<void>((resolve) => {
      if (exited()) return resolve()
      child.once("exit", () => resolve())
      process.kill(-child.pid!, "SIGTERM")
    })
  const deadline = Date.now() + 60_000
  while (!/Listening on/.test(output)) {
    if (exited()) throw new Error(`npm start exited (${child.exitCode}):\n${output}`)
    if (Date.now() > deadline) {
      await stop()
      throw new Error(`npm start did not listen within 60 s:\n${output}`)
    }
    await new Promise((r) => setTimeout(r, 100))
  }
  return { url: `http://127.0.0.1:${port}`, output: () => output, stop }
}

const redisUp = await new Promise<boolean>((resolve) => {
  const socket = connect(6379, "127.0.0.1")
  socket.setTimeout(1_000, () => (socket.destroy(), resolve(false)))
  socket.once("connect", () => (socket.end(), resolve(true)))
  socket.once("error", () => resolve(false))
})

describe("quickstart (npm start)", () => {
  let server: Running
  beforeAll(async () => {
    server = await npmStart({})
  }, 90_000)
  afterAll(() => server?.stop())

  it("serves /, /login and /logout as the Effect 3 quickstart does, on the memory store by default", async () => {
    await walkThrough(server.url, expect)
    expect(server.output()).toMatch(/session store: memory/)
  })

  it.skipIf(!redisUp)("does the same on Redis (SESSION_STORE=redis)", async () => {
    const redis = await npmStart({ SESSION_STORE: "redis" })
    try {
      await walkThrough(redis.url, expect)
      expect(redis.output()).toMatch(/session store: redis/)
    } finally {
      await redis.stop()
    }
  }, 90_000)

  it("refuses at startup a store the Effect 4 line does not have yet, saying so", async () => {
    await expect(npmStart({ SESSION_STORE: "postgres" })).rejects.toThrow(/not on the Effect 4 line yet/)
  }, 90_000)
})
