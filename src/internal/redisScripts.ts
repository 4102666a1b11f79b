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
//   KEYS[1] the record, KEYS[2] (only on a single node) the principal's set
//   ARGV[1] "now expiresAt ttl" and, for update, " expectedVersion": numbers
//           separated by spaces; ttl is the native TTL in ms (expiresAt - now)
//   ARGV[2] data
//   ARGV[3] the principal and ARGV[4] the storage key (the member of the
//           principal's set): present only when the session has a principal
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

const put = `${parse}
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
local function index()
  if KEYS[2] == nil or not ARGV[4] then return 0 end
  if redis.call('SADD', KEYS[2], ARGV[4]) == 0 then return 0 end
  return redis.call('SCARD', KEYS[2])
end
local function current()
  local value = redis.call('GET', KEYS[1])
  if not value then return nil end
  return parse(value)
end
`

/**
 * Returns `{ 1, setSize }` when written, `{ 0, 0 }` when a live record exists.
 * `setSize` is the principal set's size when the key was newly added to it.
 *
 * @internal
 */
export const insert: RedisScript = script(`${put}
local version, e = current()
if version and e > now then return { 0, 0 } end
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
local version, e, principal = current()
if not version or e <= now then return { -1, 0, 0 } end
if version ~= tonumber(meta[4]) then return { -2, 0, 0 } end
local moved = 0
if ARGV[3] and principal ~= ARGV[3] then moved = 1 end
put(version + 1)
return { version + 1, index(), moved }
`)

/**
 * KEYS[1] the record; ARGV[1] now, ARGV[2] expiresAt, ARGV[3] native TTL.
 * Returns 1 when a live record was extended, 0 otherwise.
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
else
  redis.call('SET', KEYS[1], version .. ':' .. ARGV[2] .. ':' .. string.sub(value, at), 'PX', ARGV[3])
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
export const revoke: RedisScript = script(`${parse}
local value = redis.call('GET', KEYS[1])
if not value then return -1 end
local version, e, principal = parse(value)
if not version or principal ~= ARGV[1] then return -1 end
redis.call('DEL', KEYS[1])
if e > tonumber(ARGV[2]) then return 1 end
return 0
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
