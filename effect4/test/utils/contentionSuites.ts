/**
 * The vitest side of `contention.ts`: whether a backend's suite can run, the
 * backend prepared for the suite (before its tests, cleaned up after), and
 * the suite declared — skipped with a notice in its name, or failing under
 * SESSION_TEST_REQUIRE_ALL=1, when its server does not answer.
 */
import { afterAll, beforeAll, describe, it } from "@effect/vitest"
import { connect } from "node:net"
import type { Backend, Prepared } from "./contention.js"

const reachable = (host: string, port: number): Promise<boolean> =>
  new Promise((resolve) => {
    const socket = connect(port, host)
    const done = (ok: boolean) => {
      socket.destroy()
      resolve(ok)
    }
    socket.setTimeout(1_000, () => done(false))
    socket.once("connect", () => done(true))
    socket.once("error", () => done(false))
  })

/** Whether the backend's server answers (an embedded store always can), and why not. */
export const availabilityOf = async (backend: Backend) => {
  if (backend.server === undefined) return { available: true, reason: "" }
  const { host, port } = backend.server
  return { available: await reachable(host, port), reason: `no server answers on ${host}:${port}` }
}

/**
 * Declares a backend's suite: skipped (and named so) when the backend is
 * unavailable, or replaced by one failing test under SESSION_TEST_REQUIRE_ALL=1.
 */
export const describeBackend = (
  name: string,
  availability: { readonly available: boolean; readonly reason: string },
  body: () => void
): void => {
  if (availability.available) {
    describe(name, body)
  } else if (process.env.SESSION_TEST_REQUIRE_ALL === "1") {
    describe(name, () => {
      it(`${name} is available`, () => {
        throw new Error(`${name}: ${availability.reason} (SESSION_TEST_REQUIRE_ALL=1 requires every backend)`)
      })
    })
  } else {
    describe.skip(`${name} (skipped: ${availability.reason})`, body)
  }
}

/** Prepares the backend before the suite's tests and cleans it up after them; returns its spec. */
export const preparedFor = (backend: Backend, label: string): () => Prepared["spec"] => {
  let prepared: Prepared | undefined
  beforeAll(async () => {
    prepared = await backend.prepare(label)
  })
  afterAll(async () => {
    await prepared?.close()
  })
  return () => {
    if (prepared === undefined) throw new Error(`${backend.name} was not prepared`)
    return prepared.spec
  }
}
