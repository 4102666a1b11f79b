/**
 * No request hangs while the app starts (issue 13, item 4). The quickstart is
 * started as a user starts it, with a store that takes a while to become
 * ready, and requests are fired every 50 ms from the moment the process is
 * spawned: each one must be refused (nothing listens yet) or answered, within
 * the store's timeout + 1 s. A server that listened before the store was
 * built would accept connections it never answers: @effect/platform-node
 * attaches the request handler only when the app is served, after the store.
 */
import { afterAll, describe, expect, it } from "@effect/vitest"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { freePort, probeStartup } from "./quickstartProcess.js"

const scratch = mkdtempSync(join(tmpdir(), "effect-session-startup-"))
afterAll(() => rmSync(scratch, { recursive: true, force: true }))

const slowStores: ReadonlyArray<{
  readonly name: string
  readonly env: () => Promise<Record<string, string>>
  /** the store's own timeout + 1 s */
  readonly budgetMs: number
  /** what a request that reaches the app answers */
  readonly status: number
  /** what the app logs about it */
  readonly logged?: RegExp
}> = [
  {
    // nothing listens there: ioredis keeps reconnecting, the layer waits its
    // 2 s connect deadline, then every load fails at once
    name: "redis",
    env: async () => ({ REDIS_URL: `redis://127.0.0.1:${await freePort()}` }),
    budgetMs: 2_000 + 1_000,
    status: 503,
    // SessionError.respond logs what failed
    logged: /ERROR \(#\d+\).*: redis store: load failed: \S/
  },
  {
    // dynalite starts in the process, opens its LevelDB and the table is created
    name: "dynamodb",
    env: async () => ({ SESSION_DIR: join(scratch, "dynamodb") }),
    budgetMs: 5_000 + 1_000,
    status: 200
  },
  {
    name: "filesystem",
    env: async () => ({ SESSION_DIR: join(scratch, "filesystem") }),
    budgetMs: 5_000,
    status: 200
  }
]

describe("start-up", () => {
  for (const store of slowStores) {
    it(`SESSION_STORE=${store.name}: every request during start-up is refused or answered, none hangs`, async () => {
      const { output, results } = await probeStartup(
        { ...(await store.env()), SESSION_STORE: store.name },
        store.budgetMs
      )
      expect(output).toContain("Listening on")
      const hung = results.filter((p) => p.outcome === "hung")
      expect(hung, `requests sent at these ms after the spawn were never answered:\n${output}`).toEqual([])
      const unexpected = results.filter((p) => p.outcome !== "refused" && p.outcome !== `answered ${store.status}`)
      expect(unexpected).toEqual([])
      // the probes saw both phases: before the server listened, and the app answering
      expect(results.some((p) => p.outcome === "refused")).toBe(true)
      expect(results.filter((p) => p.outcome === `answered ${store.status}`).length).toBeGreaterThan(5)
      if (store.logged !== undefined) expect(output).toMatch(store.logged)
    }, 120_000)
  }
})
