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

// A record is one string value:
//
//   <version>:<expiresAt>:<n>:<principal><data>
//
// version is 1 after insert and +1 per update; expiresAt is epoch ms on the
// application's clock; n is the byte length of the principal, or "-" when
// there is none (then nothing stands for the principal); data is the
// encoded session, raw bytes, to the end of the value. One GET reads it all.
//
// The writing scripts share one argument layout, kept short (every argument
// costs the client a length computation and a piece of the command string on
// every save):
//   KEYS[1] the record, KEYS[2] (only on a single node) the principal's index
//   ARGV[1] "now expiresAt ttl" and, for update, " expectedVersion": numbers
//           separated by spaces; ttl is the native TTL in ms (expiresAt - now)
//   ARGV[2] data
//   ARGV[3] the principal and ARGV[4] the storage key (the member of the
//           principal's index): present only when the session has a principal
//
// "now" comes from the application's Clock: expiry is decided against it,
// never against Redis' clock. The native TTL only collects garbage.

// parse(value) -> version, expiresAt, principal (false when none), position
// of the principal's length field; nil when the value is not a record.
const parse = `
local function parse(value)
  local version, expiresAt, at = string.match(value, '^(%d+):([^:]+):()')
  if not version then return nil end
  local length, start = string.match(value, '^([^:]+):()', at)
  if not length then return nil end
  local principal = false
  if length ~= '-' then principal = string.sub(value, start, start + tonumber(length) - 1) end
  return tonumber(version), tonumber(expiresAt), principal, at
end
`

// A principal's index is a sorted set of storage keys, each scored with an
// expiry at or after its session's own (every write and every touch that
// extends a session raises its score; nothing lowers one). So the members
// scored at or before now are sessions that have ended, and a score range
// removes them without reading a record: O(log n) per write, plus what has
// expired. A member may still be dead earlier (removed, moved to another
// principal): reads check each record and drop those.
//
// indexed(key) makes sure the key holds a sorted set (or nothing). An index
// written by an earlier version of the store is a plain set: it becomes a
// sorted set with every member scored +inf (its expiry is unknown here), so
// those members are never dropped by score, only by a read that finds them
// dead. Anything else under the key fails the script before it writes.
//
// raise(key, member, score, now) adds the member or raises its score, drops
// the members that have expired, and gives the index the native TTL of its
// longest-lived session (none while it holds a +inf member).
const index = `
local function indexed(key)
  if redis.call('TYPE', key)['ok'] ~= 'set' then return end
  local members = redis.call('SMEMBERS', key)
  redis.call('DEL', key)
  for i = 1, #members, 1000 do
    local args = {}
    for j = i, math.min(i + 999, #members) do
      args[#args + 1] = '+inf'
      args[#args + 1] = members[j]
    end
    redis.call('ZADD', key, unpack(args))
  end
end
local function raise(key, member, score, now)
  indexed(key)
  local current = redis.call('ZSCORE', key, member)
  if not current or tonumber(current) < tonumber(score) then redis.call('ZADD', key, score, member) end
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
  local last = redis.call('ZRANGE', key, -1, -1, 'WITHSCORES')[2]
  if not last then return end
  local ttl = math.ceil(tonumber(last) - tonumber(now))
  if ttl == math.huge then redis.call('PERSIST', key) else redis.call('PEXPIRE', key, ttl) end
end
`

const put = `${parse}${index}
local meta = {}
for word in string.gmatch(ARGV[1], '%S+') do meta[#meta + 1] = word end
local now, expiresAt, ttl = tonumber(meta[1]), meta[2], tonumber(meta[3])
local function put(version)
  if ttl <= 0 then
    redis.call('DEL', KEYS[1])
    return
  end
  local principal = '-:'
  if ARGV[3] then principal = string.len(ARGV[3]) .. ':' .. ARGV[3] end
  redis.call('SET', KEYS[1], version .. ':' .. expiresAt .. ':' .. principal .. ARGV[2], 'PX', ttl)
end
-- first, so that an index of the wrong type fails the script before the record is written
local function index()
  if KEYS[2] ~= nil and ARGV[4] then raise(KEYS[2], ARGV[4], expiresAt, meta[1]) end
end
local function current()
  local value = redis.call('GET', KEYS[1])
  if not value then return nil end
  return parse(value)
end
`

/**
 * Returns 1 when written, 0 when a live record exists.
 *
 * @internal
 */
export const insert: RedisScript = script(`${put}
local version, e = current()
if version and e > now then return 0 end
index()
put(1)
return 1
`)

/**
 * Returns `{ newVersion, indexed }`, `{ -1, 0 }` when there is no live
 * record, `{ -2, 0 }` when the stored version is not the expected one.
 * `indexed` is 1 when the principal's index must learn of the write: the
 * record gets a principal it did not have, or a later expiry (on a cluster
 * the caller then raises it there; on a single node the script did).
 *
 * @internal
 */
export const update: RedisScript = script(`${put}
local version, e, principal = current()
if not version or e <= now then return { -1, 0 } end
if version ~= tonumber(meta[4]) then return { -2, 0 } end
local indexed = 0
if ARGV[3] and (principal ~= ARGV[3] or tonumber(expiresAt) > e) then indexed = 1 end
index()
put(version + 1)
return { version + 1, indexed }
`)

/**
 * KEYS[1] the record; ARGV[1] now, ARGV[2] expiresAt, ARGV[3] native TTL.
 * Returns 0 when there is no live record, 1 when it was extended, and
 * `{ 1, principal }` when it was extended past its former expiry and has a
 * principal, whose index the caller must then raise (the index's key
 * depends on the record's content, so this script cannot declare it).
 *
 * @internal
 */
export const touch: RedisScript = script(`${parse}
local value = redis.call('GET', KEYS[1])
if not value then return 0 end
local version, e, principal, at = parse(value)
if not version or e <= tonumber(ARGV[1]) then return 0 end
if tonumber(ARGV[3]) <= 0 then
  redis.call('DEL', KEYS[1])
  return 1
end
redis.call('SET', KEYS[1], version .. ':' .. ARGV[2] .. ':' .. string.sub(value, at), 'PX', ARGV[3])
if principal and tonumber(ARGV[2]) > e then return { 1, principal } end
return 1
`)

/**
 * KEYS[1] a principal's index; ARGV[1] a storage key, ARGV[2] its expiry,
 * ARGV[3] now. Adds the key or raises its score (see `index`). Used where
 * the index is not written by the record's own script: on a cluster, where
 * the index lives on another slot, and after a touch.
 *
 * @internal
 */
export const raise: RedisScript = script(`${index}
raise(KEYS[1], ARGV[1], ARGV[2], ARGV[3])
return 1
`)

/**
 * KEYS[1] a principal's index; ARGV[1] now. Drops the members that have
 * expired and returns the others.
 *
 * @internal
 */
export const members: RedisScript = script(`${index}
indexed(KEYS[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
return redis.call('ZRANGE', KEYS[1], 0, -1)
`)

/**
 * Checks the records of a principal's index members, and with mode `r`
 * (revoke) deletes those that still belong to the principal.
 *
 * KEYS the records, preceded on a single node by the principal's index;
 * ARGV[1] the principal, ARGV[2] now, ARGV[3] `k` (keys) or `r` (revoke),
 * ARGV[4] the byte length of the key prefix, given only when KEYS[1] is the
 * index: the script then removes from it the members that are dead (`k`) or
 * every member it read (`r`), and raises the score of a live member below
 * its record's expiry. Returns, per record, 1 when it was live and the
 * principal's, else 0.
 *
 * @internal
 */
export const check: RedisScript = script(`${parse}
local now, revoke = tonumber(ARGV[2]), ARGV[3] == 'r'
local index, first = false, 1
if ARGV[4] then index, first = KEYS[1], 2 end
local out = {}
for i = first, #KEYS do
  local value = redis.pcall('GET', KEYS[i])
  local version, e, principal = nil, 0, false
  if type(value) == 'string' then version, e, principal = parse(value) end
  local ours = version ~= nil and principal == ARGV[1]
  local live = ours and e > now
  if revoke and ours then redis.call('DEL', KEYS[i]) end
  out[#out + 1] = live and 1 or 0
  if index then
    local member = string.sub(KEYS[i], tonumber(ARGV[4]) + 1)
    if revoke or not live then
      redis.call('ZREM', index, member)
    else
      local score = redis.call('ZSCORE', index, member)
      if score and tonumber(score) < e then redis.call('ZADD', index, e, member) end
    end
  end
end
return out
`)

/**
 * A record's header — `version:expiresAt:principalLength:` (`-` for no
 * principal) — read from the start of its value; `start` is where the
 * principal (if any) and then the data begin. `undefined` when the value is
 * not a record.
 */
const parseHeader = (value: string): {
  readonly version: number
  readonly expiresAt: number
  readonly principalLength: number | undefined
  readonly start: number
} | undefined => {
  const first = value.indexOf(":")
  const second = first < 0 ? -1 : value.indexOf(":", first + 1)
  const third = second < 0 ? -1 : value.indexOf(":", second + 1)
  if (third < 0) return undefined
  const version = textNumber(value, 0, first)
  const expiresAt = textNumber(value, first + 1, second)
  if (!Number.isInteger(version) || version < 1 || Number.isNaN(expiresAt)) return undefined
  if (third === second + 2 && value.charCodeAt(second + 1) === dash) {
    return { version, expiresAt, principalLength: undefined, start: third + 1 }
  }
  const n = textNumber(value, second + 1, third)
  if (!Number.isInteger(n) || n < 0) return undefined
  return { version, expiresAt, principalLength: n, start: third + 1 }
}

/**
 * A stored record's fields, read from its value; `undefined` when the value
 * is not a record.
 *
 * @internal
 */
export const parseRecord = (value: Buffer): {
  readonly version: number
  readonly expiresAt: number
  readonly principal: string | undefined
  readonly data: Uint8Array
} | undefined => {
  // latin1 gives one character per byte: the header reads the same as bytes
  const header = parseHeader(value.toString("latin1"))
  if (header === undefined) return undefined
  const { expiresAt, principalLength, version } = header
  let start = header.start
  let principal: string | undefined
  if (principalLength !== undefined) {
    if (start + principalLength > value.length) return undefined
    principal = value.toString("utf8", start, start + principalLength)
    start += principalLength
  }
  // a copy: the reply may be a view into the parser's shared buffer
  return { version, expiresAt, principal, data: new Uint8Array(value.subarray(start)) }
}

/**
 * `parseRecord` on the value read as a string (what a plain GET gives, with
 * no Buffer made), the data as text. `"bytes"` when the string cannot be
 * trusted to hold the stored bytes exactly: a principal that is not ASCII
 * (its length is counted in bytes), or a replacement character, which is
 * what a byte sequence that is not UTF-8 decodes to; the caller then reads
 * the bytes instead.
 *
 * @internal
 */
export const parseRecordText = (value: string): {
  readonly version: number
  readonly expiresAt: number
  readonly principal: string | undefined
  readonly text: string
} | "bytes" | undefined => {
  const header = parseHeader(value)
  if (header === undefined) return undefined
  const { expiresAt, principalLength, version } = header
  let start = header.start
  let principal: string | undefined
  if (principalLength !== undefined) {
    if (start + principalLength > value.length) return "bytes"
    principal = value.slice(start, start + principalLength)
    if (!isAscii(principal)) return "bytes"
    start += principalLength
  }
  const text = value.slice(start)
  return text.includes("\uFFFD") ? "bytes" : { version, expiresAt, principal, text }
}

// A decimal number in value[start, end): digits are read in place (the
// common case, no string made); anything else goes through Number().
const textNumber = (value: string, start: number, end: number): number => {
  if (end <= start || end - start > 15) return end <= start ? NaN : Number(value.slice(start, end))
  let n = 0
  for (let i = start; i < end; i++) {
    const digit = value.charCodeAt(i) - 48
    if (digit < 0 || digit > 9) return Number(value.slice(start, end))
    n = n * 10 + digit
  }
  return n
}

const isAscii = (text: string): boolean => {
  for (let i = 0; i < text.length; i++) if (text.charCodeAt(i) > 0x7f) return false
  return true
}

const dash = 45
