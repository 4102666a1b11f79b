import { describe, it } from "@effect/vitest"
import { createConnection } from "node:net"

/**
 * True when CI asked for every backend: an unreachable server then fails the
 * run instead of skipping its suite.
 */
export const requireAll = process.env.SESSION_TEST_REQUIRE_ALL === "1"

/** Whether a TCP server answers on host:port within the timeout. */
export const reachable = (host: string, port: number, timeoutMs = 1000): Promise<boolean> =>
  new Promise((resolve) => {
    const socket = createConnection({ host, port })
    const done = (ok: boolean) => {
      socket.destroy()
      resolve(ok)
    }
    socket.setTimeout(timeoutMs, () => done(false))
    socket.once("connect", () => done(true))
    socket.once("error", () => done(false))
  })

/**
 * Declares a backend's suite. When the backend is unavailable the suite is
 * skipped with a printed notice, or — under SESSION_TEST_REQUIRE_ALL=1 —
 * replaced by one failing test that says what is missing.
 */
export const describeBackend = (
  name: string,
  availability: { readonly available: boolean; readonly reason: string; readonly required?: boolean },
  body: () => void
): void => {
  if (availability.available) {
    describe(name, body)
    return
  }
  const required = availability.required ?? requireAll
  if (required) {
    describe(name, () => {
      it(`${name} is available`, () => {
        throw new Error(`${name}: ${availability.reason} (SESSION_TEST_REQUIRE_ALL=1 requires every backend)`)
      })
    })
    return
  }
  console.warn(`[effect-session tests] SKIPPED ${name}: ${availability.reason}`)
  describe.skip(name, body)
}
