import { Effect } from "effect"
import type { AddressInfo, Server, Socket } from "node:net"
import { createConnection, createServer } from "node:net"

/**
 * Listens on a port the kernel picks (port 0) and reads it back: the port is
 * held from the moment it is chosen, so no other test file can take it.
 */
const listen = (server: Server): Promise<number> =>
  new Promise((resolve, reject) => {
    server.once("error", reject)
    server.listen(0, "127.0.0.1", () => resolve((server.address() as AddressInfo).port))
  })

const closeServer = (server: Server, sockets: Set<Socket>): Promise<void> =>
  new Promise((resolve) => {
    for (const socket of sockets) socket.destroy()
    server.close(() => resolve())
  })

/**
 * A loopback TCP server that accepts connections and never says a word, like
 * a wedged server or load balancer: a client's connect succeeds and its
 * commands wait for replies that never come. Closed with the scope.
 */
export const silentServer = Effect.acquireRelease(
  Effect.promise(async () => {
    const sockets = new Set<Socket>()
    const server = createServer((socket) => {
      sockets.add(socket)
      socket.on("close", () => sockets.delete(socket))
      socket.on("error", () => {})
    })
    const port = await listen(server)
    return { port, server, sockets, connections: () => sockets.size }
  }),
  ({ server, sockets }) => Effect.promise(() => closeServer(server, sockets))
)

/**
 * A loopback TCP proxy to host:port that counts the connections open through
 * it: what a server would see of a client's connections, and only this
 * client's, even when the server is shared. Closed with the scope.
 */
export const countingProxy = (host: string, port: number) =>
  Effect.acquireRelease(
    Effect.promise(async () => {
      const sockets = new Set<Socket>()
      const server = createServer((client) => {
        sockets.add(client)
        const upstream = createConnection({ host, port })
        const closeBoth = () => {
          client.destroy()
          upstream.destroy()
        }
        client.on("close", () => {
          sockets.delete(client)
          upstream.destroy()
        })
        upstream.on("close", () => client.destroy())
        client.on("error", closeBoth)
        upstream.on("error", closeBoth)
        client.pipe(upstream)
        upstream.pipe(client)
      })
      const proxyPort = await listen(server)
      return { port: proxyPort, server, sockets, connections: () => sockets.size }
    }),
    ({ server, sockets }) => Effect.promise(() => closeServer(server, sockets))
  )
