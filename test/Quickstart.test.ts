/**
 * The quickstart example, run as a user runs it (`npm start`), driven over
 * real HTTP for every store that is available here.
 */
import { afterAll, describe, expect, it } from "@effect/vitest"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { createRequire } from "node:module"
import { join } from "node:path"
import { get, sessionCookie, start, walkThrough } from "./quickstartProcess.js"
import { describeBackend, reachable } from "./utils/backend.js"

// `ws` (the WebSocket library of @effect/platform-node) ships no types; a
// client needs only this much of it, and it can send the cookie header that a
// browser's WebSocket sends on its own
interface WsClient {
  send(data: string): void
  close(): void
  once(event: "open" | "close", listener: () => void): void
  once(event: "error", listener: (error: Error) => void): void
  on(event: "message", listener: (data: unknown) => void): void
}
const { WebSocket } = createRequire(import.meta.url)("ws") as {
  WebSocket: new(url: string, options: { headers: Record<string, string> }) => WsClient
}

const scratch = mkdtempSync(join(tmpdir(), "effect-session-quickstart-"))
afterAll(() => rmSync(scratch, { recursive: true, force: true }))

const stores: ReadonlyArray<readonly [string, () => Promise<{ available: boolean; reason: string; required?: boolean }>, Record<string, string>]> = [
  ["filesystem", async () => ({ available: true, reason: "" }), { SESSION_DIR: join(scratch, "fs") }],
  ["memory", async () => ({ available: true, reason: "" }), {}],
  ["redis", async () => ({ available: await reachable("127.0.0.1", 6379), reason: "no Redis at 127.0.0.1:6379" }), {}],
  [
    "memcached",
    async () => ({ available: await reachable("127.0.0.1", 11211), reason: "no Memcached at 127.0.0.1:11211" }),
    {}
  ],
  // the in-process dynalite keeps its data in SESSION_DIR/dynamodb
  ["dynamodb", async () => ({ available: true, reason: "" }), { SESSION_DIR: join(scratch, "dynamodb") }],
  // a directory that does not exist yet: the quickstart creates it
  ["sqlite", async () => ({ available: true, reason: "" }), { SQLITE_FILE: join(scratch, "not", "yet", "sessions.db") }],
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
          await walkThrough(server.url, expect)
        } finally {
          await server.stop()
        }
      }, 120_000)
    })
  }

  // The embedded stores keep their data on disk (the filesystem store in
  // SESSION_DIR, dynalite in SESSION_DIR/dynamodb, SQLite in SQLITE_FILE):
  // a login outlives the process.
  const embedded: ReadonlyArray<readonly [string, Record<string, string>]> = [
    ["filesystem", { SESSION_DIR: join(scratch, "restart-fs") }],
    ["dynamodb", { SESSION_DIR: join(scratch, "restart-dynamodb") }],
    ["sqlite", { SQLITE_FILE: join(scratch, "restart-sqlite", "sessions.db") }]
  ]
  for (const [name, env] of embedded) {
    it(`sessions in the ${name} store survive a restart of the server`, async () => {
      const first = await start({ ...env, SESSION_STORE: name })
      let cookie: string | undefined
      try {
        cookie = sessionCookie((await get(`${first.url}/login`)).setCookie)
        expect((await get(`${first.url}/`, cookie)).body).toMatch(/^Hello, testuser!/)
      } finally {
        await first.stop()
      }
      const second = await start({ ...env, SESSION_STORE: name })
      try {
        expect((await get(`${second.url}/`, cookie)).body).toBe(`Hello, testuser! <a href="/logout">Logout</a>`)
      } finally {
        await second.stop()
      }
    }, 120_000)
  }

  // docs/getting-started.md is this file; what it promises, over HTTP and a
  // WebSocket
  it("the getting-started program: visits count, login keeps them, a WebSocket message runs in withSession", async () => {
    const server = await start({}, "examples/getting-started.ts")
    try {
      const first = await get(`${server.url}/`)
      expect(first.body).toBe("Hello, stranger! Visits: 1")
      let cookie = sessionCookie(first.setCookie)
      expect((await get(`${server.url}/`, cookie)).body).toBe("Hello, stranger! Visits: 2")
      const login = await get(`${server.url}/login`, cookie)
      expect(login.status).toBe(302)
      cookie = sessionCookie(login.setCookie)
      expect((await get(`${server.url}/`, cookie)).body).toBe("Hello, testuser! Visits: 3")

      // the upgrade request carries the cookie; the handler never names it
      const socket = new WebSocket(`${server.url.replace("http", "ws")}/ws`, { headers: { cookie: cookie! } })
      const replies: Array<string> = []
      await new Promise<void>((resolve, reject) => {
        socket.once("error", reject)
        socket.once("open", () => socket.send("hi"))
        socket.on("message", (data) => {
          replies.push(String(data))
          if (replies.length === 1) socket.send("again")
          else socket.close()
        })
        socket.once("close", () => resolve())
      })
      expect(replies).toEqual(["testuser: hi", "testuser: again"])
      // each message's update was saved to the browser's session
      expect((await get(`${server.url}/`, cookie)).body).toBe("Hello, testuser! Visits: 6")

      const logout = await get(`${server.url}/logout`, cookie)
      expect(logout.status).toBe(302)
      expect((await get(`${server.url}/`, cookie)).body).toBe("Hello, stranger! Visits: 1")
    } finally {
      await server.stop()
    }
  }, 120_000)
})
