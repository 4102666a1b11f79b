/**
 * examples/httpapi.ts, run as a user runs it (`npm run example:httpapi`,
 * default store: the filesystem), driven over real HTTP.
 */
import { afterAll, describe, expect, it } from "@effect/vitest"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { call, postJson, start } from "./quickstartProcess.js"

const scratch = mkdtempSync(join(tmpdir(), "effect-session-httpapi-"))
afterAll(() => rmSync(scratch, { recursive: true, force: true }))

describe("examples/httpapi.ts", () => {
  it("logs in, counts visits, logs out and serves its OpenAPI document", async () => {
    // SESSION_STORE unset: the filesystem store, as in the quickstart
    const server = await start({ SESSION_DIR: join(scratch, "sessions") }, "examples/httpapi.ts")
    try {
      expect(server.output()).toContain("session store: filesystem")
      const anonymous = await call(`${server.url}/me`)
      expect(anonymous.status).toBe(401)
      expect(anonymous.setCookie).toEqual([])

      const login = await postJson(`${server.url}/login`, { username: "alice" })
      expect(login.status).toBe(204)
      expect(login.setCookie).toHaveLength(1)
      expect(login.setCookie[0]).toMatch(/^session=[A-Za-z0-9_-]{43}; Max-Age=\d+; Path=\/; HttpOnly; SameSite=Lax$/)
      const cookie = login.setCookie[0].split(";")[0]

      const first = await call(`${server.url}/me`, { cookie })
      expect(first.status).toBe(200)
      expect(JSON.parse(first.body)).toEqual({ username: "alice", visits: 1 })
      expect(JSON.parse((await call(`${server.url}/me`, { cookie })).body)).toEqual({ username: "alice", visits: 2 })

      const invalid = await postJson(`${server.url}/login`, { username: "" })
      expect(invalid.status).toBe(400)

      const logout = await call(`${server.url}/logout`, { method: "POST", cookie })
      expect(logout.status).toBe(204)
      expect(logout.setCookie).toEqual(["session=; Max-Age=0; Path=/; HttpOnly; SameSite=Lax"])
      expect((await call(`${server.url}/me`, { cookie })).status).toBe(401)

      const doc = JSON.parse((await call(`${server.url}/openapi.json`)).body)
      expect(doc.openapi).toMatch(/^3\./)
      expect(doc.components.securitySchemes.session).toEqual({ type: "apiKey", name: "session", in: "cookie" })
      expect(Object.keys(doc.paths)).toEqual(["/login", "/me", "/logout"])
      expect(doc.paths["/me"].get.responses["503"]).toBeDefined()
    } finally {
      await server.stop()
    }
  }, 120_000)
})
