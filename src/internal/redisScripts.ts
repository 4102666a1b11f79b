import { createHash } from "node:crypto"

/**
 * A Lua script run with EVALSHA, falling back to EVAL when the server has
 * not cached it yet (after a restart, or on a cluster node never used).
 *
 * @internal
 */
export interface RedisScript {
  readonly lua: string
  readonly sha: string
}

const script = (lua: string): RedisScript => ({ lua, sha: createHash("sha1").update(lua).digest("hex") })

// A record is a hash: v = version, e = expiresAt (epoch ms on the app's
// clock), p = principal (absent when there is none), d = data.
//
// The writing scripts share one argument layout, kept short (every argument
// costs the client a length computation and a piece of the command string on
// every save):
//   KEYS[1] the record, KEYS[2] (only on a single node) the principal's set
//   ARGV[1] "now expiresAt ttl" and, for update, " expectedVersion": numbers
//           separated by spaces; ttl is the native TTL in ms (expiresAt - now)
//   ARGV[2] data
//   ARGV[3] the principal and ARGV[4] the storage key (the member of the
//           principal's set): present only when the session has a principal
//
// "now" comes from the application's Clock: expiry is decided against it,
// never against Redis' clock. The native TTL only collects garbage.
const put = `
local meta = {}
for word in string.gmatch(ARGV[1], '%S+') do meta[#meta + 1] = word end
local now, expiresAt, ttl = tonumber(meta[1]), meta[2], tonumber(meta[3])
local function put(version)
  redis.call('DEL', KEYS[1])
  if ttl <= 0 then return end
  if ARGV[3] then
    redis.call('HSET', KEYS[1], 'v', version, 'e', expiresAt, 'p', ARGV[3], 'd', ARGV[2])
  else
    redis.call('HSET', KEYS[1], 'v', version, 'e', expiresAt, 'd', ARGV[2])
  end
  redis.call('PEXPIRE', KEYS[1], ttl)
end
local function index()
  if KEYS[2] == nil or not ARGV[4] then return 0 end
  if redis.call('SADD', KEYS[2], ARGV[4]) == 0 then return 0 end
  return redis.call('SCARD', KEYS[2])
end
`

/**
 * Returns `{ 1, setSize }` when written, `{ 0, 0 }` when a live record exists.
 * `setSize` is the principal set's size when the key was newly added to it.
 *
 * @internal
 */
export const insert: RedisScript = script(`${put}
local e = redis.call('HGET', KEYS[1], 'e')
if e and tonumber(e) > now then return { 0, 0 } end
put(1)
return { 1, index() }
`)

/**
 * Returns `{ newVersion, setSize, moved }`, `{ -1, 0, 0 }` when there is no
 * live record, `{ -2, 0, 0 }` when the stored version is not the expected
 * one. `moved` is 1 when the write gives the record a principal it did not
 * have (on a cluster the caller then adds it to that principal's set).
 *
 * @internal
 */
export const update: RedisScript = script(`${put}
local r = redis.call('HMGET', KEYS[1], 'v', 'e', 'p')
if not r[1] or not r[2] or tonumber(r[2]) <= now then return { -1, 0, 0 } end
if tonumber(r[1]) ~= tonumber(meta[4]) then return { -2, 0, 0 } end
local version = tonumber(r[1]) + 1
local moved = 0
if ARGV[3] and r[3] ~= ARGV[3] then moved = 1 end
put(version)
return { version, index(), moved }
`)

/**
 * KEYS[1] the record; ARGV[1] now, ARGV[2] expiresAt, ARGV[3] native TTL.
 * Returns 1 when a live record was extended, 0 otherwise.
 *
 * @internal
 */
export const touch: RedisScript = script(`
local e = redis.call('HGET', KEYS[1], 'e')
if not e or tonumber(e) <= tonumber(ARGV[1]) then return 0 end
if tonumber(ARGV[3]) <= 0 then
  redis.call('DEL', KEYS[1])
else
  redis.call('HSET', KEYS[1], 'e', ARGV[2])
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
end
return 1
`)

/**
 * KEYS[1] a principal's set; ARGV[1] a storage key. Returns the set's size
 * when the key was newly added, 0 when it was already there. Used on a
 * cluster, where the set and the record live on different slots.
 *
 * @internal
 */
export const addToIndex: RedisScript = script(`
if redis.call('SADD', KEYS[1], ARGV[1]) == 0 then return 0 end
return redis.call('SCARD', KEYS[1])
`)

/**
 * KEYS[1] the record; ARGV[1] principal, ARGV[2] now. Deletes the record
 * only if it still belongs to the principal (an update may have moved it).
 * Returns 1 when a live record was deleted, 0 when an expired one was,
 * -1 when it belongs to someone else or is gone.
 *
 * @internal
 */
export const revoke: RedisScript = script(`
local r = redis.call('HMGET', KEYS[1], 'p', 'e')
if not r[1] or r[1] ~= ARGV[1] then return -1 end
redis.call('DEL', KEYS[1])
if r[2] and tonumber(r[2]) > tonumber(ARGV[2]) then return 1 end
return 0
`)
