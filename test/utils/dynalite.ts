import type { Server } from "node:http"
import type { AddressInfo } from "node:net"
import { createRequire } from "node:module"
import { Redacted } from "effect"

interface DynaliteOptions {
  readonly createTableMs?: number
  readonly deleteTableMs?: number
  readonly updateTableMs?: number
}

// dynalite is CommonJS without type declarations: `import dynalite from
// "dynalite"` works at run time but does not type-check under `strict`, so it
// is loaded through require and given the one signature used here.
const require = createRequire(import.meta.url)
const dynalite = require("dynalite") as (options?: DynaliteOptions) => Server

/** A dynalite server listening on a free loopback port. */
export interface Dynalite {
  readonly endpoint: string
  readonly port: number
  readonly close: () => Promise<void>
}

/**
 * Starts dynalite in this process with table state changes that take no
 * time (CREATING → ACTIVE at once), in memory.
 */
export const startDynalite = async (): Promise<Dynalite> => {
  const server = dynalite({ createTableMs: 0, deleteTableMs: 0, updateTableMs: 0 })
  // Node closes an idle keep-alive connection after 5 s; held 30 s here,
  // a connection closes early only because its client closed it, which the
  // tests of a layer's client rely on
  server.keepAliveTimeout = 30_000
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject)
    server.listen(0, "127.0.0.1", () => resolve())
  })
  const { port } = server.address() as AddressInfo
  return {
    endpoint: `http://127.0.0.1:${port}`,
    port,
    close: () =>
      new Promise<void>((resolve, reject) => {
        // idle keep-alive sockets of SDK clients would hold close() open
        server.closeAllConnections()
        server.close((error) => (error ? reject(error) : resolve()))
      })
  }
}

/** Client settings for a dynalite endpoint: fixed dummy credentials, us-east-1. */
export const clientOptions = (endpoint: string) => ({
  endpoint,
  region: "us-east-1",
  credentials: { accessKeyId: "effect-session-test", secretAccessKey: Redacted.make("effect-session-test") }
})
