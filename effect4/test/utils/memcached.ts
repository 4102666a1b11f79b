/**
 * What the Memcached suite needs around the store: the server it runs
 * against and whether it answers, how its suite is declared when it does
 * not, and two loopback TCP servers standing in front of or instead of it.
 */
import { describe, it } from "@effect/vitest"
import { Effect } from "effect"
import type { AddressInfo, Socket } from "node:net"
import { createConnection, createServer } from "node:net"

/** `MEMCACHED_URL` (host:port, a memcached:// scheme accepted), default 127.0.0.1:11211. */
export const server = (process.env.MEMCACHED_URL ?? "127.0.0.1:11211").replace(/^memcached?:\/\//, "")
export const host = server.slice(0, server.lastIndexOf(":"))
export const port = Number(server.slice(server.lastIndexOf(":") + 1))

/** Whether something accepts connections at host:port within a second. */
export const accepts = (atHost: string, atPort: number): Promise<boolean> =>
  new Promise((resolve) => {
    const socket = createConnection({ host: atHost, port: atPort })
    const settle = (answer: boolean) => (socket.destroy(), resolve(answer))
    socket.setTimeout(1_000, () => settle(false))
    socket.once("connect", () => settle(true)).once("error", () => settle(false))
  })

/**
 * Declares the suite of a server: skipped with its reason in its name when
 * the server is missing, or — under SESSION_TEST_REQUIRE_ALL=1 — one test
 * that fails saying what is missing.
 */
export const describeWithServer = (name: string, available: boolean, missing: string, body: () => void): void => {
  if (available) {
    describe(name, body)
  } else if (process.env.SESSION_TEST_REQUIRE_ALL === "1") {
    describe(name, () =>
      it(`has its server (${missing})`, () => {
        throw new Error(`${name}: ${missing} (SESSION_TEST_REQUIRE_ALL=1 requires every backend)`)
      }))
  } else {
    console.warn(`[effect-session tests] SKIPPED ${name}: ${missing}`)
    describe.skip(`${name} (skipped: ${missing})`, body)
  }
}

/**
 * A loopback TCP server for the scope, on a port the kernel picks; every
 * connection it accepts goes to `accept`, and all are destroyed at the end.
 * What it counts is what a server would see of a client's connections.
 */
const loopback = (accept: (socket: Socket) => void) =>
  Effect.acquireRelease(
    Effect.callback<{ readonly port: number; readonly connections: () => number; readonly close: () => void }>(
      (resume) => {
        const open = new Set<Socket>()
        const listener = createServer((socket) => {
          open.add(socket)
          socket.on("close", () => open.delete(socket)).on("error", () => socket.destroy())
          accept(socket)
        })
        listener.listen(0, "127.0.0.1", () =>
          resume(Effect.succeed({
            port: (listener.address() as AddressInfo).port,
            connections: () => open.size,
            close: () => {
              for (const socket of open) socket.destroy()
              listener.close()
            }
          })))
      }
    ),
    (listening) => Effect.sync(listening.close)
  )

/** A server that accepts connections and never answers, like a wedged server: only a timeout ends a command. */
export const silentServer = loopback(() => undefined)

/** A proxy to the Memcached server that counts the connections open through it. */
export const countingProxy = loopback((socket) => {
  const upstream = createConnection({ host, port })
  upstream.on("close", () => socket.destroy()).on("error", () => socket.destroy())
  socket.on("close", () => upstream.destroy())
  socket.pipe(upstream).pipe(socket)
})
