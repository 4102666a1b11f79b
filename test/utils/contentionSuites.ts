/**
 * The vitest side of `contention.ts`: whether a backend's suite can run, and
 * the backend prepared for the suite (before its tests, cleaned up after).
 */
import { afterAll, beforeAll } from "@effect/vitest"
import { reachable } from "./backend.js"
import type { Backend, Prepared } from "./contention.js"

/** For `describeBackend`: a gated backend is required only when its variable is set. */
export const availabilityOf = async (backend: Backend) => {
  if (backend.gate !== undefined) {
    const set = process.env[backend.gate.variable] !== undefined
    return { available: set, reason: `${backend.gate.variable} is not set`, required: set }
  }
  if (backend.server === undefined) return { available: true, reason: "" }
  const { host, port } = backend.server
  return { available: await reachable(host, port), reason: `no server answers on ${host}:${port}` }
}

/** Prepares the backend before the suite's tests and cleans it up after them; returns its spec. */
export const preparedFor = (backend: Backend): () => Prepared["spec"] => {
  let prepared: Prepared | undefined
  beforeAll(async () => {
    prepared = await backend.prepare()
  })
  afterAll(async () => {
    await prepared?.close()
  })
  return () => {
    if (prepared === undefined) throw new Error(`${backend.name} was not prepared`)
    return prepared.spec
  }
}
