/**
 * The quickstart example, run as a user runs it (`npm start`), driven over
 * real HTTP for every store that is available here.
 */
import { afterAll, describe, expect, it } from "@effect/vitest"
import { type ChildProcess, spawn } from "node:child_process"
import { mkdtempSync, rmSync } from "node:fs"
import { createServer } from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { describeBackend, reachable } from "./utils/backend.js"

const root = join(import.meta.dirname, "..")
const scratch = mkdtempSync(join(tmpdir(), "effect-session-quickstart-"))
afterAll(() => rmSync(scratch, { recursive: true, force: true }))

const freePort = (): Promise<number> =>
  new Promise((resolve, reject) => {
    const server = createServer()
    server.once("error", reject)
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as { port: number }
      server.close(() => resolve(port))
    })
  })

interface Running {
  readonly url: string
  readonly child: ChildProcess
  readonly output: () => string
  readonly stop: () => Promise<void>
}

/** The port was taken between `freePort` closing it and the quickstart binding it. */
class PortTaken extends Error {}

const launch = async (env: Record<string, string>, listenPort: number): Promise<Running> => {
  const child = spawn(process.execPath, ["--import", "tsx", "examples/quickstart.ts"], {
    cwd: root,
    env: { ...process.env, ...env, PORT: String(listenPort) },
    stdio: ["ignore", "pipe", "pipe"]
  })
  let output = ""
  child.stdout!.on("data", (chunk) => output += chunk)
  child.stderr!.on("data", (chunk) => output += chunk)
  const stop = () =>
    new Promise<void>((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) return resolve()
      child.once("exit", () => resolve())
      child.kill("SIGTERM")
    })
  const deadline = Date.now() + 60_000
  while (!/Listening on/.test(output)) {
    if (child.exitCode !== null) {
      if (/EADDRINUSE/.test(output)) throw new PortTaken(`port ${listenPort} was taken:\n${output}`)
      throw new Error(`quickstart exited (${child.exitCode}):\n${output}`)
    }
    if (Date.now() > deadline) {
      await stop()
      throw new Error(`quickstart did not start within 60 s:\n${output}`)
    }
    await new Promise((r) => setTimeout(r, 100))
  }
  return { url: `http://127.0.0.1:${listenPort}`, child, output: () => output, stop }
}

/**
 * Starts the quickstart on a free port. The quickstart takes its port from
 * `PORT` (no 0 for "any"), so a port is chosen, closed and handed over: test
 * files running in parallel may take it meanwhile, and then another is tried.
 */
const start = async (env: Record<string, string>): Promise<Running> => {
  for (let attempt = 1;; attempt++) {
    try {
      return await launch(env, await freePort())
    } catch (error) {
      if (!(error instanceof PortTaken) || attempt === 5) throw error
    }
  }
}

const get = async (url: string, cookie?: string) => {
  const res = await fetch(url, { redirect: "manual", headers: cookie ? { cookie } : {} })
  return { status: res.status, body: await res.text(), headers: res.headers, setCookie: res.headers.getSetCookie() }
}

const sessionCookie = (setCookie: ReadonlyArray<string>) => {
  const line = setCookie.find((l) => l.startsWith("session="))
  return line === undefined ? undefined : line.split(";")[0]
}

/** The quickstart's behaviour as Flask-Session's seed program shows it. */
const walkThrough = async (url: string) => {
  const anonymous = await get(`${url}/`)
  expect(anonymous.status).toBe(200)
  expect(anonymous.body).toBe(`You are not logged in. <a href="/login">Login</a>`)
  expect(anonymous.setCookie).toEqual([])

  const login = await get(`${url}/login`)
  expect(login.status).toBe(302)
  expect(login.headers.get("location")).toBe("/")
  const cookie = sessionCookie(login.setCookie)
  expect(cookie).toMatch(/^session=[A-Za-z0-9_-]{43}$/)
  expect(login.setCookie[0]).toMatch(/HttpOnly/)

  const hello = await get(`${url}/`, cookie)
  expect(hello.body).toBe(`Hello, testuser! <a href="/logout">Logout</a>`)
  expect(hello.headers.get("vary")).toBe("Cookie")

  const malformed = await get(`${url}/`, "session=../../etc/passwd")
  expect(malformed.status).toBe(200)
  expect(malformed.body).toBe(`You are not logged in. <a href="/login">Login</a>`)

  const relogin = await get(`${url}/login`, cookie)
  const rotated = sessionCookie(relogin.setCookie)
  expect(rotated).toBeDefined()
  expect(rotated).not.toBe(cookie)
  expect((await get(`${url}/`, cookie)).body).toMatch(/^You are not logged in/)

  const logout = await get(`${url}/logout`, rotated)
  expect(logout.status).toBe(302)
  expect(logout.setCookie.some((l) => l.startsWith("session=;") && /Max-Age=0/.test(l))).toBe(true)
  expect((await get(`${url}/`, rotated)).body).toBe(`You are not logged in. <a href="/login">Login</a>`)
  return rotated
}

const stores: ReadonlyArray<readonly [string, () => Promise<{ available: boolean; reason: string; required?: boolean }>, Record<string, string>]> = [
  ["filesystem", async () => ({ available: true, reason: "" }), { SESSION_DIR: join(scratch, "fs") }],
  ["memory", async () => ({ available: true, reason: "" }), {}],
  ["redis", async () => ({ available: await reachable("127.0.0.1", 6379), reason: "no Redis at 127.0.0.1:6379" }), {}],
  [
    "memcached",
    async () => ({ available: await reachable("127.0.0.1", 11211), reason: "no Memcached at 127.0.0.1:11211" }),
    {}
  ],
  ["dynamodb", async () => ({ available: true, reason: "" }), {}],
  ["sqlite", async () => ({ available: true, reason: "" }), { SQLITE_FILE: join(scratch, "sessions.db") }],
  [
    "postgres",
    async () => ({ available: await reachable("127.0.0.1", 5432), reason: "no PostgreSQL at 127.0.0.1:5432" }),
    {}
  ],
  ["mysql", async () => ({ available: await reachable("127.0.0.1", 3306), reason: "no MariaDB at 127.0.0.1:3306" }), {}],
  [
    "mongodb",
    async () => ({
      available: process.env.MONGODB_URL !== undefined,
      reason: "MONGODB_URL is not set (no MongoDB server can run on this machine)",
      required: process.env.MONGODB_URL !== undefined
    }),
    {}
  ]
]

const availabilities = await Promise.all(stores.map(([, probe]) => probe()))

describe("quickstart", () => {
  for (const [i, [name, , env]] of stores.entries()) {
    const availability = availabilities[i]
    describeBackend(`quickstart with SESSION_STORE=${name}`, availability, () => {
      it(`behaves as the seed program over HTTP`, async () => {
        const server = await start({ ...env, SESSION_STORE: name })
        try {
          expect(server.output()).toContain(`session store: ${name}`)
          await walkThrough(server.url)
        } finally {
          await server.stop()
        }
      }, 120_000)
    })
  }

  it("sessions in the filesystem store survive a restart of the server", async () => {
    const env = { SESSION_STORE: "filesystem", SESSION_DIR: join(scratch, "restart") }
    const first = await start(env)
    let cookie: string | undefined
    try {
      cookie = sessionCookie((await get(`${first.url}/login`)).setCookie)
      expect((await get(`${first.url}/`, cookie)).body).toMatch(/^Hello, testuser!/)
    } finally {
      await first.stop()
    }
    const second = await start(env)
    try {
      expect((await get(`${second.url}/`, cookie)).body).toBe(`Hello, testuser! <a href="/logout">Logout</a>`)
    } finally {
      await second.stop()
    }
  }, 120_000)
})
