/**
 * The quickstart as a user runs it: `npm start` inside effect4/, driven over
 * real HTTP with the same checks as the Effect 3 line's quickstart.
 */
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { connect } from "node:net"
import { join } from "node:path"
// the Effect 3 line's quickstart helpers: the same client for the same contract
import { type Process, start, walkThrough } from "../../test/quickstartProcess.js"

const packageRoot = join(import.meta.dirname, "..")

type Running = Process

/** `npm start` of this package, on a free port, once it listens. */
const npmStart = (env: Record<string, string>): Promise<Running> => start(env, { npm: "start", cwd: packageRoot })

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
