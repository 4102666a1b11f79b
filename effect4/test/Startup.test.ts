/**
 * No request hangs while the Effect 4 quickstart starts (issue 17, item 4),
 * as on the Effect 3 line (test/Startup.test.ts). `npm start` is spawned as a
 * user runs it, on a store that is not there or cannot be written, and on the
 * file store, and requests are fired every 50 ms from the moment of the
 * spawn: each one is refused (nothing listens yet) or answered, within a
 * budget. The process either serves, or exits with a message naming what
 * failed. A server that listened before its store was built would accept
 * connections it never answers: the quickstart provides the store last, so
 * it is built before the server listens.
 */
import { afterAll, describe, expect, it } from "@effect/vitest"
import { mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
// the Effect 3 line's process helpers: the same spawn for the same contract
import { freePort, probeStartup } from "../../test/quickstartProcess.js"

const packageRoot = join(import.meta.dirname, "..")

const scratch = mkdtempSync(join(tmpdir(), "e4startup_"))
afterAll(() => rmSync(scratch, { recursive: true, force: true }))

/** A file where a directory is expected: nothing can be created under it. */
const notADirectory = join(scratch, "a-file")
writeFileSync(notADirectory, "")

const cases: ReadonlyArray<{
  readonly name: string
  readonly env: () => Promise<Record<string, string>>
  /** how long a request may wait for its answer */
  readonly budgetMs: number
  /** what the process does: serve with this status, or exit with this message */
  readonly expected:
    | { readonly serves: number; readonly logged?: ReadonlyArray<RegExp> }
    | { readonly exits: RegExp }
}> = [
  {
    // nothing listens there: the layer waits its 2 s connect deadline, warns,
    // then serves, and every load fails at once (503, logged with the cause)
    name: "redis at a closed port",
    env: async () => ({ SESSION_STORE: "redis", REDIS_URL: `redis://127.0.0.1:${await freePort()}` }),
    budgetMs: 2_000 + 1_000,
    expected: {
      serves: 503,
      logged: [/WARN \(#\d+\).*: redis store: connection lost; reconnecting/, /WARN \(#\d+\).*: redis store: not connected after 2000 ms/, /ERROR \(#\d+\).*: redis store: load failed: \S/]
    }
  },
  {
    // the table is described (and created) while the layer is built: an
    // endpoint nobody answers at fails the start, naming the endpoint
    name: "dynamodb at a closed port",
    env: async () => ({ SESSION_STORE: "dynamodb", DYNAMODB_ENDPOINT: `http://127.0.0.1:${await freePort()}` }),
    budgetMs: 5_000 + 1_000,
    expected: { exits: /dynamodb store: setup failed: connect ECONNREFUSED 127\.0\.0\.1:\d+/ }
  },
  {
    name: "filesystem in a directory that cannot be created",
    env: async () => ({ SESSION_STORE: "filesystem", SESSION_DIR: join(notADirectory, "sessions") }),
    budgetMs: 5_000,
    expected: { exits: /filesystem store: setup failed: ENOTDIR: not a directory/ }
  },
  {
    // the directory is created while the layer is built; then it serves
    name: "filesystem",
    env: async () => ({ SESSION_STORE: "filesystem", SESSION_DIR: join(scratch, "filesystem") }),
    budgetMs: 5_000,
    expected: { serves: 200 }
  }
]

describe("start-up of npm start", () => {
  for (const store of cases) {
    const what = "serves" in store.expected ? `serves ${store.expected.serves}` : "exits naming the cause"
    it(`${store.name}: every request during start-up is refused or answered, none hangs; it ${what}`, async () => {
      const { exited, output, results } = await probeStartup(await store.env(), store.budgetMs, { npm: "start", cwd: packageRoot })
      const hung = results.filter((p) => p.outcome === "hung")
      expect(hung, `requests sent at these ms after the spawn were never answered:\n${output}`).toEqual([])
      // the probes saw the phase before anything listened
      expect(results.some((p) => p.outcome === "refused")).toBe(true)
      const expected = store.expected
      if ("serves" in expected) {
        expect(output).toContain("Listening on")
        expect(exited).toBe(false)
        const unexpected = results.filter((p) => p.outcome !== "refused" && p.outcome !== `answered ${expected.serves}`)
        expect(unexpected, output).toEqual([])
        expect(results.filter((p) => p.outcome === `answered ${expected.serves}`).length).toBeGreaterThan(5)
        for (const line of expected.logged ?? []) expect(output).toMatch(line)
        // connection errors are the store's to report, once: never the client library's raw dump
        expect(output).not.toContain("Unhandled error event")
      } else {
        expect(exited, output).toBe(true)
        expect(output).not.toContain("Listening on")
        expect(results.filter((p) => p.outcome !== "refused"), output).toEqual([])
        expect(output).toMatch(expected.exits)
      }
    }, 120_000)
  }
})
