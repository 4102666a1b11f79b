/**
 * The quickstart as a user runs it: `npm start` inside effect4/, driven over
 * real HTTP with the same checks as the Effect 3 line's quickstart, on its
 * default store (the file store, as on the Effect 3 line) and the others
 * this line has.
 */
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { mkdtempSync, readdirSync, rmSync } from "node:fs"
import { connect } from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"
// the Effect 3 line's quickstart helpers: the same client for the same contract
import { get, type Process, sessionCookie, start, walkThrough } from "../../test/quickstartProcess.js"
import { available, storeNames } from "../examples/stores.js"

const packageRoot = join(import.meta.dirname, "..")

const scratch = mkdtempSync(join(tmpdir(), "e4fs_quickstart_"))
afterAll(() => rmSync(scratch, { recursive: true, force: true }))

/** `npm start` of this package, on a free port, once it listens. */
const npmStart = (env: Record<string, string>): Promise<Process> => start(env, { npm: "start", cwd: packageRoot })

const redisUp = await new Promise<boolean>((resolve) => {
  const socket = connect(6379, "127.0.0.1")
  socket.setTimeout(1_000, () => (socket.destroy(), resolve(false)))
  socket.once("connect", () => (socket.end(), resolve(true)))
  socket.once("error", () => resolve(false))
})

const sessionFiles = (directory: string) => readdirSync(directory).filter((n) => /^[\w-]{43}$/.test(n))

describe("quickstart (npm start)", () => {
  const directory = join(scratch, "default")
  let server: Process
  beforeAll(async () => {
    // SESSION_STORE unset: the default store, in SESSION_DIR
    server = await npmStart({ SESSION_DIR: directory })
  }, 90_000)
  afterAll(() => server?.stop())

  it("serves /, /login and /logout as the Effect 3 quickstart does, on the file store by default", async () => {
    expect(server.output()).toMatch(/session store: filesystem/)
    await walkThrough(server.url, expect)
    // a login is a session file in SESSION_DIR
    const before = sessionFiles(directory).length
    const login = await get(`${server.url}/login`)
    expect(sessionCookie(login.setCookie)).toMatch(/^session=[\w-]{43}$/)
    expect(sessionFiles(directory)).toHaveLength(before + 1)
  })

  it("a login on the file store outlives a restart of the server", async () => {
    const env = { SESSION_STORE: "filesystem", SESSION_DIR: join(scratch, "restart") }
    const first = await npmStart(env)
    let cookie: string | undefined
    try {
      cookie = sessionCookie((await get(`${first.url}/login`)).setCookie)
      expect((await get(`${first.url}/`, cookie)).body).toMatch(/^Hello, testuser!/)
    } finally {
      await first.stop()
    }
    const second = await npmStart(env)
    try {
      expect((await get(`${second.url}/`, cookie)).body).toBe(`Hello, testuser! <a href="/logout">Logout</a>`)
    } finally {
      await second.stop()
    }
  }, 120_000)

  it("does the same on the memory store (SESSION_STORE=memory)", async () => {
    const memory = await npmStart({ SESSION_STORE: "memory" })
    try {
      await walkThrough(memory.url, expect)
      expect(memory.output()).toMatch(/session store: memory/)
    } finally {
      await memory.stop()
    }
  }, 90_000)

  it.skipIf(!redisUp)(`does the same on Redis (SESSION_STORE=redis)${redisUp ? "" : " (skipped: no Redis at 127.0.0.1:6379)"}`, async () => {
    const redis = await npmStart({ SESSION_STORE: "redis" })
    try {
      await walkThrough(redis.url, expect)
      expect(redis.output()).toMatch(/session store: redis/)
    } finally {
      await redis.stop()
    }
  }, 90_000)

  // a store of the Effect 3 line that this line does not have yet, while there is one
  const missing = storeNames.find((name) => !available.includes(name))
  it.skipIf(missing === undefined)(
    `refuses at startup a store the Effect 4 line does not have yet, saying so${missing === undefined ? " (skipped: every store is here)" : ` (SESSION_STORE=${missing})`}`,
    async () => {
      await expect(npmStart({ SESSION_STORE: missing! })).rejects.toThrow(/not on the Effect 4 line yet/)
    },
    90_000
  )
})
