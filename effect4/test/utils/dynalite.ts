/**
 * dynalite (a DynamoDB-compatible server) in this process, on a free
 * loopback port, for the scope of a test file.
 */
import type { Server } from "node:http"
import { createRequire } from "node:module"
import { Redacted } from "effect"

// CommonJS without type declarations: required, with the one signature used
const dynalite = createRequire(import.meta.url)("dynalite") as (options: Record<string, number>) => Server

export interface Dynalite {
  readonly endpoint: string
  readonly port: number
  readonly close: () => Promise<void>
}

/** Starts dynalite in memory, its tables ACTIVE as soon as they are created. */
export const startDynalite = async (): Promise<Dynalite> => {
  const server = dynalite({ createTableMs: 0, deleteTableMs: 0, updateTableMs: 0 })
  // idle connections are closed by their client, not after Node's 5 s default
  server.keepAliveTimeout = 30_000
  await new Promise<void>((resolve, reject) => server.once("error", reject).listen(0, "127.0.0.1", resolve))
  const port = (server.address() as { readonly port: number }).port
  const close = () =>
    new Promise<void>((resolve) => {
      server.closeAllConnections()
      server.close(() => resolve())
    })
  return { endpoint: `http://127.0.0.1:${port}`, port, close }
}

/** The store's client options for a dynalite endpoint: dummy credentials, us-east-1. */
export const clientOptions = (endpoint: string) => ({
  endpoint,
  region: "us-east-1",
  credentials: { accessKeyId: "effect4-session-test", secretAccessKey: Redacted.make("effect4-session-test") }
})
