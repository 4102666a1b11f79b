/**
 * What the hand-written floors of both Effect lines (`bench/servers/floor.ts`
 * on Effect 3, `effect4/bench/floor.ts` on Effect 4) do outside Effect: the
 * id check, the storage key, the record layout and the compare-and-set
 * script. Plain TypeScript, so the two floors differ only in their Effect glue.
 *
 * Stored value: `"<version>:<expiresAt>:<json>"`, so the script can compare
 * the version without decoding JSON.
 */
import { Redis } from "ioredis"
import { createHash } from "node:crypto"

/** A session id as the floors issue it: 32 random bytes, base64url. */
export const idPattern = /^[A-Za-z0-9_-]{43}$/

/** Writes only if the stored version is the expected one: -1 missing, 0 conflict, else the new version. */
export const compareAndSet = `
local current = redis.call("GET", KEYS[1])
if not current then return -1 end
local version = tonumber(string.match(current, "^(%d+):"))
if version ~= tonumber(ARGV[1]) then return 0 end
redis.call("SET", KEYS[1], ARGV[2], "PX", ARGV[3])
return version + 1
`

/** An ioredis client with the script as a command (EVALSHA, EVAL on NOSCRIPT). */
export interface RedisWithCas extends Redis {
  sessionCas(key: string, expectedVersion: number, value: string, ttlMs: number): Promise<number>
}

export const makeClient = (url: string): RedisWithCas => {
  const redis = new Redis(url, { lazyConnect: false })
  redis.defineCommand("sessionCas", { numberOfKeys: 1, lua: compareAndSet })
  return redis as RedisWithCas
}

export interface Stored {
  readonly version: number
  readonly expiresAt: number
  readonly data: { readonly value?: string; readonly counter?: number }
}

export const decode = (raw: string): Stored => {
  const first = raw.indexOf(":")
  const second = raw.indexOf(":", first + 1)
  return {
    version: Number(raw.slice(0, first)),
    expiresAt: Number(raw.slice(first + 1, second)),
    data: JSON.parse(raw.slice(second + 1))
  }
}

export const encode = (version: number, expiresAt: number, data: Stored["data"]): string =>
  `${version}:${expiresAt}:${JSON.stringify(data)}`

/** The Redis key of an id: the prefix, then SHA-256 of the id. */
export const storageKey = (prefix: string, id: string): string =>
  prefix + createHash("sha256").update(id).digest("base64url")
