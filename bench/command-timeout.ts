/**
 * What ioredis's own `commandTimeout` costs per command: the RedisStore of
 * both lines gives each command the client's timeout (issue 16: timeouts
 * with Effect's or the client's own, no hand-made deadline wheel), the
 * floors give none. Two clients on one Redis, one with the store's default
 * `commandTimeout` (2 s) and one without, send the commands of a session
 * write (a GET and a compare-and-set script) with 32 in flight, in
 * alternating rounds; prints the process's CPU µs per command pair of each
 * and the difference.
 *
 *   npx tsx bench/command-timeout.ts [pairs per round] [rounds]
 *
 * REDIS_URL (default redis://127.0.0.1:6379); keys under
 * `bench-command-timeout:`, removed at the end.
 */
import { Redis } from "ioredis"
import { compareAndSet } from "./servers/floor-protocol.js"

const perRound = Number(process.argv[2] ?? 20000)
const rounds = Number(process.argv[3] ?? 6)
const url = process.env.REDIS_URL ?? "redis://127.0.0.1:6379"
const inFlight = 32
const keys = Array.from({ length: 1000 }, (_, i) => `bench-command-timeout:${i}`)

interface Client extends Redis {
  cas(key: string, expectedVersion: number, value: string, ttlMs: number): Promise<number>
}

const client = (commandTimeout: number | undefined): Client => {
  const redis = new Redis(url, commandTimeout === undefined ? {} : { commandTimeout })
  redis.defineCommand("cas", { numberOfKeys: 1, lua: compareAndSet })
  return redis as Client
}

const clients = [
  { name: "commandTimeout 2000 ms", redis: client(2000) },
  { name: "no commandTimeout", redis: client(undefined) }
]

/** CPU µs per GET + compare-and-set pair, `inFlight` pairs at a time. */
const round = async (redis: Client) => {
  let next = 0
  const before = process.cpuUsage()
  await Promise.all(Array.from({ length: inFlight }, async () => {
    while (next < perRound) {
      const key = keys[next++ % keys.length]!
      const stored = await redis.get(key)
      const version = stored === null ? 0 : Number(stored.slice(0, stored.indexOf(":")))
      await redis.cas(key, version, `${version + 1}:0:{}`, 60_000)
    }
  }))
  const used = process.cpuUsage(before)
  return (used.user + used.system) / perRound
}

const median = (values: ReadonlyArray<number>) => {
  const sorted = [...values].sort((a, b) => a - b)
  const middle = Math.floor(sorted.length / 2)
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2
}

const main = async () => {
  await clients[0]!.redis.set(keys[0]!, "0:0:{}")
  for (const { redis } of clients) await round(redis)
  const results = clients.map(() => [] as Array<number>)
  for (let r = 0; r < rounds; r++) {
    const order = r % 2 === 0 ? [0, 1] : [1, 0]
    for (const i of order) results[i]!.push(await round(clients[i]!.redis))
  }
  clients.forEach(({ name }, i) =>
    console.log(`${name}: median ${median(results[i]!).toFixed(1)} µs, min ${Math.min(...results[i]!).toFixed(1)} µs per GET + script`)
  )
  console.log(
    `difference: median ${(median(results[0]!) - median(results[1]!)).toFixed(1)} µs, ` +
      `min ${(Math.min(...results[0]!) - Math.min(...results[1]!)).toFixed(1)} µs per pair`
  )
  await clients[0]!.redis.del(...keys)
  for (const { redis } of clients) await redis.quit()
}

main().catch((error) => {
  console.error(error)
  process.exit(1)
})
