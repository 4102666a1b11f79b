/**
 * examples/httpapi.ts of the Effect 4 line, run as a user runs it
 * (`npm run example:httpapi`, default store: the filesystem), driven over
 * real HTTP with the checks of the Effect 3 line's example test.
 */
import { afterAll, describe, expect, it } from "@effect/vitest"
import { mkdtempSync, readdirSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
// the Effect 3 line's process helpers
import { call, postJson, start } from "../../test/quickstartProcess.js"

const packageRoot = join(import.meta.dirname, "..")

const scratch = mkdtempSync(join(tmpdir(), "e4httpapi_"))
afterAll(() => rmSync(scratch, { recursive: true, force: true }))

const sessionFiles = (directory: string) => readdirSync(directory).filter((n) => /^[\w-]{43}$/.test(n))

describe("examples/httpapi.ts (npm run example:httpapi)", () => {
  it("logs in, counts visits, logs out and serves its OpenAPI document", async () => {
    const directory = join(scratch, "sessions")
    // SESSION_STORE unset: the filesystem store, as in the quickstart
    const server = await start({ SESSION_DIR: directory }, { npm: "example:httpapi", cwd: packageRoot })
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
      // the login is a session file of the store
      expect(sessionFiles(directory)).toHaveLength(1)

      const first = await call(`${server.url}/me`, { cookie })
      expect(first.status).toBe(200)
      expect(JSON.parse(first.body)).toEqual({ username: "alice", visits: 1 })
      expect(JSON.parse((await call(`${server.url}/me`, { cookie })).body)).toEqual({ username: "alice", visits: 2 })

      // a principal is 1 to 255 characters: the payload schema refuses the rest
      expect((await postJson(`${server.url}/login`, { username: "" })).status).toBe(400)
      expect((await postJson(`${server.url}/login`, { username: "x".repeat(256) })).status).toBe(400)

      const logout = await call(`${server.url}/logout`, { method: "POST", cookie })
      expect(logout.status).toBe(204)
      expect(logout.setCookie).toHaveLength(1)
      expect(logout.setCookie[0]).toMatch(/^session=; Max-Age=0; Path=\/; (Expires=[^;]+; )?HttpOnly; SameSite=Lax$/)
      expect((await call(`${server.url}/me`, { cookie })).status).toBe(401)
      expect(sessionFiles(directory)).toEqual([])

      const doc = JSON.parse((await call(`${server.url}/openapi.json`)).body)
      expect(doc.openapi).toMatch(/^3\./)
      expect(doc.components.securitySchemes.session).toEqual({ type: "apiKey", name: "session", in: "cookie" })
      expect(Object.keys(doc.paths)).toEqual(["/login", "/me", "/logout"])
      expect(doc.paths["/me"].get.security).toEqual([{ session: [] }])
      expect(doc.paths["/me"].get.responses["503"]).toBeDefined()
      expect(doc.paths["/login"].post.requestBody.content["application/json"].schema.properties.username)
        .toEqual({ type: "string", minLength: 1, maxLength: 255 })
    } finally {
      await server.stop()
    }
  }, 120_000)
})
