import { createConnection } from "node:net"
import { reachable } from "./backend.js"

/** The server the Memcached suite runs against (`MEMCACHED_URL`, default 127.0.0.1:11211). */
export const server = (process.env.MEMCACHED_URL ?? "127.0.0.1:11211").replace(/^memcached?:\/\//, "")

export const [host, port] = (() => {
  const colon = server.lastIndexOf(":")
  return [server.slice(0, colon), Number(server.slice(colon + 1))] as const
})()

/** Whether the server answers, probed once per test file. */
export const availability = async () => ({
  available: await reachable(host, port),
  reason: `no Memcached on ${server} (run .ci/services/memcached.sh)`
})

/** An item as Memcached's LRU crawler reports it. */
export interface DumpedItem {
  readonly key: string
  /** Absolute Unix time in seconds; -1 when the item never expires. */
  readonly exp: number
}

/**
 * Every live item whose key starts with `prefix`, read with
 * `lru_crawler metadump all` on a connection of its own (the command must not
 * be pipelined). This is the server's own view: what a test finds here really
 * is stored in Memcached, under that key, with that expiry.
 */
export const dump = async (prefix: string): Promise<ReadonlyArray<DumpedItem>> => {
  // the crawler serves one request at a time and answers BUSY meanwhile
  for (let attempt = 1;; attempt++) {
    try {
      return await dumpOnce(prefix)
    } catch (error) {
      if (attempt >= 25 || !String(error).includes("BUSY")) throw error
      await new Promise((resolve) => setTimeout(resolve, 200))
    }
  }
}

const dumpOnce = (prefix: string): Promise<ReadonlyArray<DumpedItem>> =>
  new Promise((resolve, reject) => {
    const socket = createConnection({ host, port })
    let text = ""
    const timer = setTimeout(() => {
      socket.destroy()
      reject(new Error("lru_crawler metadump did not finish within 10 s"))
    }, 10_000)
    socket.on("error", (error) => {
      clearTimeout(timer)
      reject(error)
    })
    socket.on("data", (chunk) => {
      text += chunk.toString("latin1")
      if (text.startsWith("ERROR") || text.startsWith("CLIENT_ERROR") || text.startsWith("BUSY")) {
        clearTimeout(timer)
        socket.destroy()
        reject(new Error(`lru_crawler metadump: ${text.trim()}`))
        return
      }
      if (!text.endsWith("END\r\n")) return
      clearTimeout(timer)
      socket.destroy()
      const items: Array<DumpedItem> = []
      for (const line of text.split("\n")) {
        const fields = new Map(line.trim().split(" ").map((field) => {
          const eq = field.indexOf("=")
          return [field.slice(0, eq), field.slice(eq + 1)] as const
        }))
        const key = fields.get("key")
        if (key === undefined) continue
        const decoded = decodeURIComponent(key)
        if (decoded.startsWith(prefix)) items.push({ key: decoded, exp: Number(fields.get("exp")) })
      }
      resolve(items)
    })
    socket.write("lru_crawler metadump all\r\n")
  })
