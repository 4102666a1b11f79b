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
import { storeNames } from "../examples/stores.js"

const packageRoot = join(import.meta.dirname, "..")

const scratch = mkdtempSync(join(tmpdir(), "e4fs_quickstart_"))
afterAll(() => rmSync(scratch, { recursive: true, force: true }))

/** `npm start` of this package, on a free port, once it listens. */
const npmStart = (env: Record<string, string>): Promise<Process> => start(env, { npm: "start", cwd: packageRoot })

const requireAll = process.env.SESSION_TEST_REQUIRE_ALL === "1"

const listening = (port: number) =>
  new Promise<boolean>((resolve) => {
    const socket = connect(port, "127.0.0.1")
    socket.setTimeout(1_000, () => (socket.destroy(), resolve(false)))
    socket.once("connect", () => (socket.end(), resolve(true)))
    socket.once("error", () => resolve(false))
  })

const others: ReadonlyArray<readonly [string, Record<string, string>, () => Promise<string | undefined>]> = [
  ["memory", {}, async () => undefined],
  ["redis", {}, async () => (await listening(6379)) ? undefined : "no Redis at 127.0.0.1:6379"],
  ["memcached", {}, async () => (await listening(11211)) ? undefined : "no Memcached at 127.0.0.1:11211"],
  // the in-process dynalite keeps its data in SESSION_DIR/dynamodb
  ["dynamodb", { SESSION_DIR: join(scratch, "dynamodb") }, async () => undefined],
  // a directory that does not exist yet: the quickstart creates it
  ["sqlite", { SQLITE_FILE: join(scratch, "not", "yet", "sessions.db") }, async () => undefined],
  ["postgres", {}, async () => (await listening(5432)) ? undefined : "no PostgreSQL at 127.0.0.1:5432"],
  ["mysql", {}, async () => (await listening(3306)) ? undefined : "no MariaDB at 127.0.0.1:3306"],
  ["mongodb", {}, async () =>
    process.env.MONGODB_URL === undefined ? "MONGODB_URL is not set (no MongoDB server can run on this machine)" : undefined]
]
const reasons = new Map<string, string>()
for (const [name, , probe] of others) {
  const reason = await probe()
  if (reason !== undefined) reasons.set(name, reason)
}

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

  // every other store of the line, with the Effect 3 quickstart's variables
  // and defaults; a server that is not here skips its case, saying so, or
  // fails it under SESSION_TEST_REQUIRE_ALL=1 (MongoDB runs only with MONGODB_URL)
  for (const [name, env] of others) {
    const reason = reasons.get(name)
    const required = name === "mongodb" ? false : requireAll
    it.skipIf(reason !== undefined && !required)(
      `does the same on SESSION_STORE=${name}${reason === undefined ? "" : ` (skipped: ${reason})`}`,
      async () => {
        if (reason !== undefined) throw new Error(`${name}: ${reason} (SESSION_TEST_REQUIRE_ALL=1 requires it)`)
        const other = await npmStart({ ...env, SESSION_STORE: name })
        try {
          expect(other.output()).toContain(`session store: ${name}`)
          await walkThrough(other.url, expect)
        } finally {
          await other.stop()
        }
      },
      120_000
    )
  }

  it("drives every store SESSION_STORE accepts", () => {
    expect(["filesystem", ...others.map(([name]) => name)].sort()).toEqual([...storeNames].sort())
  })
})
