/**
 * The Redis store's protocol, without Effect and without ioredis: the key
 * layout, the Lua scripts' text, how each reply is read and checked, the
 * record format and the expiry arithmetic. `src/RedisStore.ts` (the Effect 3
 * line) sends these commands through ioredis; the Effect 4 line will do the
 * same over the same text.
 *
 * @internal
 */
import { Buffer } from "node:buffer"

/**
 * A Lua script as ioredis's `defineCommand` takes it: the client sends
 * EVALSHA and falls back to EVAL itself. `numberOfKeys` is `undefined` when
 * the caller passes the key count first (the script's keys vary).
 *
 * @internal
 */
export interface SessionScript {
  /** The command's name on the client: prefixed so that it cannot shadow one of the application's. */
  readonly name: string
  readonly lua: string
  readonly numberOfKeys: number | undefined
}

/** @internal */
const script = (name: string, numberOfKeys: number | undefined, lua: string): SessionScript => ({
  name,
  lua,
  numberOfKeys
})

/** @internal */
export const defaultPrefix = "session:"

/**
 * The options of a Redis store that are its own, as both lines'
 * `RedisStore.Options` take them beside ioredis' `RedisOptions`: `D` is the
 * line's duration input, `Client` ioredis' `Redis | Cluster` (parameters, so
 * that the core imports neither Effect nor ioredis).
 *
 * @internal
 */
export interface StoreOptions<D, Client> {
  /**
   * A client owned by the caller. When given, `url` and the connection
   * options are ignored, and the client is not closed by the layer.
   */
  readonly client?: Client | undefined
  /**
   * A `redis://` or `rediss://` URL; the other options refine it. One of
   * another scheme, or one ioredis cannot read, fails the layer.
   */
  readonly url?: string | undefined
  /** Prepended to every key. Default `"session:"`. Must not contain a hash tag on a cluster. */
  readonly prefix?: string | undefined
  /**
   * How long a command may take before the operation fails with
   * `SessionStoreError`, whatever state the connection is in. Default 2 seconds.
   */
  readonly commandTimeout?: D | undefined
}

/**
 * How many records one script checks when a principal's index is read on a
 * single node (a script blocks the server while it runs).
 *
 * @internal
 */
export const checkBatch = 500

/**
 * How many check scripts are sent in one round trip.
 *
 * @internal
 */
export const checksInFlight = 1000

/** @internal */
export const recordKey = (prefix: string, key: string): string => prefix + key

/** @internal */
export const principalIndexKey = (prefix: string, principal: string): string => `${prefix}principal:${principal}`

/**
 * Whether a prefix holds a hash tag. Redis Cluster hashes only the part of a
 * key between the first `{` and the next `}` when it is not empty; storage
 * keys never contain braces, so the prefix alone decides. With a tag every
 * session would live in one slot.
 *
 * @internal
 */
export const hasHashTag = (prefix: string): boolean => {
  const open = prefix.indexOf("{")
  if (open === -1) return false
  const close = prefix.indexOf("}", open + 1)
  return close > open + 1
}

/** @internal */
export const hashTagMessage = (prefix: string): string =>
  `prefix ${JSON.stringify(prefix)} contains a hash tag: every session would live in one cluster slot`

/** @internal */
const storageKeyPattern = /^[A-Za-z0-9_-]{43}$/

/**
 * Whether a member of a principal's index is a storage key: anything else
 * was not written by this store and is dropped from the index.
 *
 * @internal
 */
export const isStorageKey = (member: string): boolean => storageKeyPattern.test(member)

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
/** @internal */
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
/** @internal */
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

/** @internal */
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
export const insertScript: SessionScript = script("effectSessionInsert", undefined, `${put}
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
export const updateScript: SessionScript = script("effectSessionUpdate", undefined, `${put}
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
export const touchScript: SessionScript = script("effectSessionTouch", 1, `${parse}
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
export const raiseScript: SessionScript = script("effectSessionRaise", 1, `${index}
raise(KEYS[1], ARGV[1], ARGV[2], ARGV[3])
return 1
`)

/**
 * KEYS[1] a principal's index; ARGV[1] now. Drops the members that have
 * expired and returns the others.
 *
 * @internal
 */
export const membersScript: SessionScript = script("effectSessionMembers", 1, `${index}
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
export const checkScript: SessionScript = script("effectSessionCheck", undefined, `${parse}
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
 * The native TTL in milliseconds of a record or index entry that expires at
 * `expiresAt` (the application's clock), written at `now`: rounded up, so
 * that Redis never collects a record before the application's clock says it
 * has expired. Zero or less deletes instead of writing.
 *
 * @internal
 */
export const ttlMillis = (expiresAt: number, now: number): number => Math.ceil(expiresAt - now)

/**
 * Whether a record read at `now` is live: a record expires at its
 * `expiresAt`, whatever its native TTL says.
 *
 * @internal
 */
export const isLive = (expiresAt: number, now: number): boolean => expiresAt > now

/**
 * One script to run: the script, its keys and its arguments.
 *
 * @internal
 */
export interface ScriptCall {
  readonly script: SessionScript
  readonly keys: ReadonlyArray<string>
  readonly args: ReadonlyArray<string | Buffer>
}

/**
 * An insert (no `expectedVersion`) or update, in the argument layout above:
 * `"now expiresAt ttl[ expectedVersion]"`, the data, and with a principal
 * the principal and the storage key. On a single node the principal's index
 * is a key of the script, which updates it in the same step; on a cluster
 * the index usually lives in another slot, and the shell raises it with
 * `raiseCall` after the record.
 *
 * @internal
 */
export const writeCall = (
  prefix: string,
  cluster: boolean,
  key: string,
  now: number,
  write: { readonly expiresAt: number; readonly data: string | Buffer; readonly principal: string | undefined },
  expectedVersion?: number
): ScriptCall => {
  const { data, expiresAt, principal } = write
  const meta = `${now} ${expiresAt} ${ttlMillis(expiresAt, now)}`
  const args: Array<string | Buffer> = [expectedVersion === undefined ? meta : `${meta} ${expectedVersion}`, data]
  if (principal !== undefined) args.push(principal, key)
  return {
    script: expectedVersion === undefined ? insertScript : updateScript,
    keys: principal !== undefined && !cluster
      ? [recordKey(prefix, key), principalIndexKey(prefix, principal)]
      : [recordKey(prefix, key)],
    args
  }
}

/** @internal */
export const touchCall = (prefix: string, key: string, now: number, expiresAt: number): ScriptCall => ({
  script: touchScript,
  keys: [recordKey(prefix, key)],
  args: [String(now), String(expiresAt), String(ttlMillis(expiresAt, now))]
})

/** @internal */
export const raiseCall = (prefix: string, key: string, principal: string, expiresAt: number, now: number): ScriptCall => ({
  script: raiseScript,
  keys: [principalIndexKey(prefix, principal)],
  args: [key, String(expiresAt), String(now)]
})

/** @internal */
export const membersCall = (prefix: string, principal: string, now: number): ScriptCall => ({
  script: membersScript,
  keys: [principalIndexKey(prefix, principal)],
  args: [String(now)]
})

/**
 * Every script the store runs, for the shell to define on its client.
 *
 * @internal
 */
export const sessionScripts = (): ReadonlyArray<SessionScript> => [
  insertScript,
  updateScript,
  touchScript,
  raiseScript,
  membersScript,
  checkScript
]

/** @internal */
const utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true })

/**
 * The data argument of a write. Text (what the JSON codec writes) goes as a
 * string: ioredis sends a command holding any Buffer argument down a slower
 * buffer path, measurably so on every write (docs/performance.md). A
 * string's UTF-8 bytes are exactly the original bytes, so Redis stores the
 * same thing; anything that is not valid UTF-8 goes as a Buffer.
 *
 * @internal
 */
export const dataArgument = (data: Uint8Array): string | Buffer => {
  try {
    return utf8.decode(data)
  } catch {
    return Buffer.from(data.buffer, data.byteOffset, data.byteLength)
  }
}

/**
 * The message of a reply this store did not expect (a record written by
 * something else, a script of another version).
 *
 * @internal
 */
export const unexpectedReply = (detail: string): string => `unexpected reply from Redis: ${detail}`

/** @internal */
export const notARecord = "a value that is not a session record"

/** @internal */
export const notMembers = "the members of a principal's index"

/** @internal */
export const describeReply = (reply: unknown): string => JSON.stringify(reply) ?? String(reply)

/**
 * The integers a script returns, or `undefined` when the reply is not an
 * array of exactly `length` integers.
 *
 * @internal
 */
export const readIntegers = (reply: unknown, length: number): ReadonlyArray<number> | undefined =>
  Array.isArray(reply) && reply.length === length && reply.every((n) => typeof n === "number")
    ? reply as Array<number>
    : undefined

/**
 * The insert script's reply: `"inserted"` (1), `"Exists"` (0: a live record
 * holds the key, the conflict's reason), `undefined` for anything else.
 *
 * @internal
 */
export const readInsertReply = (reply: unknown): "inserted" | "Exists" | undefined =>
  reply === 1 ? "inserted" : reply === 0 ? "Exists" : undefined

/**
 * The update script's reply: the new version and whether the principal's
 * index must learn of the write, or the conflict's reason: `"Missing"`
 * (`{ -1, 0 }`: no live record), `"VersionMismatch"` (`{ -2, 0 }`: another
 * version is stored); `undefined` for anything else.
 *
 * @internal
 */
export const readUpdateReply = (
  reply: unknown
): { readonly version: number; readonly indexed: boolean } | "Missing" | "VersionMismatch" | undefined => {
  const replies = readIntegers(reply, 2)
  if (replies === undefined) return undefined
  const [version, indexed] = replies as [number, number]
  if (version === -1) return "Missing"
  if (version === -2) return "VersionMismatch"
  return Number.isInteger(version) && version >= 1 ? { version, indexed: indexed === 1 } : undefined
}

/**
 * The touch script's reply: whether a live record was extended, and the
 * principal whose index must then be raised (`{ 1, principal }`: extended
 * past its former expiry). `undefined` for anything else.
 *
 * @internal
 */
export const readTouchReply = (
  reply: unknown
): { readonly extended: boolean; readonly principal: string | undefined } | undefined => {
  if (reply === 0 || reply === 1) return { extended: reply === 1, principal: undefined }
  if (Array.isArray(reply) && reply.length === 2 && reply[0] === 1 && typeof reply[1] === "string") {
    return { extended: true, principal: reply[1] }
  }
  return undefined
}

/**
 * The members script's reply: the members as strings, or `undefined`.
 *
 * @internal
 */
export const readMembersReply = (reply: unknown): ReadonlyArray<string> | undefined =>
  Array.isArray(reply) && reply.every((member) => typeof member === "string") ? reply as Array<string> : undefined

/**
 * How a principal's index is read (`keys`) or revoked (`removeAll`): which
 * members to check, the check scripts to send and, once their replies are
 * in, which members are live and which to remove from the index.
 *
 * On a single node one script per batch of members checks the records and,
 * in the same step, drops the dead members from the index (or, with
 * `revoke`, every member it read). On a cluster, where records live on
 * every slot, each record is checked by its own script and the index is then
 * trimmed with one ZREM.
 *
 * @internal
 */
export const planIndexRead = (options: {
  readonly prefix: string
  readonly principal: string
  readonly now: number
  readonly revoke: boolean
  readonly cluster: boolean
  readonly listed: ReadonlyArray<string>
}): {
  readonly members: ReadonlyArray<string>
  /** The check scripts, in groups of `checksInFlight` sent together. */
  readonly groups: ReadonlyArray<ReadonlyArray<ScriptCall>>
  /** Each checked member's liveness from a group's replies; `undefined` when a reply is malformed. */
  readonly readReplies: (group: ReadonlyArray<ScriptCall>, replies: ReadonlyArray<unknown>) => Array<boolean> | string
  /** The members to ZREM once the checks have answered, from each member's liveness (in `members` order). */
  readonly dropped: (live: ReadonlyArray<boolean>) => ReadonlyArray<string>
} => {
  const { cluster, listed, now, prefix, principal, revoke } = options
  const members = listed.filter(isStorageKey)
  const junk = listed.filter((member) => !isStorageKey(member))
  const mode = revoke ? "r" : "k"
  const checks: Array<ScriptCall> = []
  if (cluster) {
    for (const member of members) {
      checks.push({ script: checkScript, keys: [recordKey(prefix, member)], args: [principal, String(now), mode] })
    }
  } else {
    // the index first: the script trims it as it reads; the prefix's byte
    // length lets it turn a record's key back into the member
    const set = principalIndexKey(prefix, principal)
    const prefixBytes = String(Buffer.byteLength(prefix))
    for (let i = 0; i < members.length; i += checkBatch) {
      const batch = members.slice(i, i + checkBatch).map((member) => recordKey(prefix, member))
      checks.push({ script: checkScript, keys: [set, ...batch], args: [principal, String(now), mode, prefixBytes] })
    }
  }
  const groups: Array<ReadonlyArray<ScriptCall>> = []
  for (let i = 0; i < checks.length; i += checksInFlight) groups.push(checks.slice(i, i + checksInFlight))
  return {
    members,
    groups,
    readReplies: (group, replies) => {
      const live: Array<boolean> = []
      for (const [j, reply] of replies.entries()) {
        const flags = readIntegers(reply, cluster ? 1 : group[j]!.keys.length - 1)
        if (flags === undefined) return describeReply(reply)
        for (const flag of flags) live.push(flag === 1)
      }
      return live
    },
    // on a single node the scripts trimmed the index themselves
    dropped: (live) => cluster ? [...junk, ...members.filter((_, i) => revoke || !live[i])] : junk
  }
}

/**
 * What an operation says when it fails because the client is not connected:
 * the server's address and the connection's last error code, instead of
 * ioredis's words for a command it refused to queue.
 *
 * @internal
 */
export const notConnectedMessage = (address: string, code: string | undefined): string =>
  code === undefined ? `not connected to ${address}` : `not connected to ${address} (${code})`

/**
 * Whether a command's rejection is ioredis refusing it for want of a
 * connection (rather than an error of the command itself): the offline queue
 * is off, the connection is closed, or the command waited through too many
 * reconnection attempts.
 *
 * @internal
 */
export const isRefusedWhileDisconnected = (error: Error): boolean =>
  error.message === "Stream isn't writeable and enableOfflineQueue options is false" ||
  error.message === "Connection is closed." ||
  error.name === "MaxRetriesPerRequestError"

/**
 * What a command's rejection means: ioredis's `commandTimeout` ended it
 * (`"timeout"`), ioredis refused it for want of a connection while the
 * client is not ready (`"refused"`), or anything else, reported as it is.
 *
 * @internal
 */
export const rejectionKind = (error: unknown, ready: boolean): "timeout" | "refused" | "other" =>
  !(error instanceof Error)
    ? "other"
    : error.message === commandTimedOut
    ? "timeout"
    : !ready && isRefusedWhileDisconnected(error)
    ? "refused"
    : "other"

/**
 * The error of a command refused while the client is not connected: the
 * server's address (a socket path, host:port, or the cluster) and the code
 * of the connection's last error when there was one.
 *
 * @internal
 */
export const notConnectedError = (
  server: { readonly host?: string | undefined; readonly port?: number | undefined; readonly path?: string | undefined } | "cluster",
  lastError: unknown
): Error & { readonly code: string | undefined } => {
  const address = server === "cluster"
    ? "the Redis Cluster"
    : server.path ?? `${server.host ?? "localhost"}:${server.port ?? 6379}`
  const code = typeof lastError === "object" && lastError !== null && "code" in lastError &&
      typeof lastError.code === "string"
    ? lastError.code
    : undefined
  return Object.assign(new Error(notConnectedMessage(address, code)), { code })
}

/**
 * The replies a layer waits for, so that those still waiting when the layer
 * closes fail then instead of whenever the client gives up on them (a hung
 * server's QUIT waits for the command timeout). A command sent after the
 * close is not refused: a client passed in outlives the layer.
 *
 * `beforeSend` is called right before each command is handed to the client,
 * with whether replies are awaited (`coalesceWrites` of `redisClient.ts`).
 *
 * @internal
 */
export class WaitingReplies {
  // a list linked through the waiters, not a `Set`: a set that empties after
  // every command (one request at a time) reallocates its table on each
  // such delete (about 1 µs per command; docs/performance.md, "A table that
  // empties")
  #first: Waiter | undefined = undefined

  constructor(private readonly beforeSend: (busy: boolean) => void = writeAtOnce) {}

  /**
   * Calls `send` and hands what its promise settles with to `onReply` or
   * `onError`, or an error with `layerClosed` to `onError` if `close` runs
   * first: exactly one of them, once (a shell resumes its fiber from them,
   * with no promise of its own per command).
   */
  watch<A>(send: () => Promise<A>, onReply: (reply: A) => void, onError: (error: unknown) => void): void {
    let sent: Promise<A>
    try {
      this.beforeSend(this.#first !== undefined)
      sent = send()
    } catch (error) {
      return onError(error)
    }
    const waiter: Waiter = { onError, previous: undefined, next: this.#first, done: false }
    if (this.#first !== undefined) this.#first.previous = waiter
    this.#first = waiter
    sent.then((reply) => {
      if (this.#settle(waiter)) onReply(reply)
    }, (error) => {
      if (this.#settle(waiter)) onError(error)
    })
  }

  /** The reply `send` promises, or a rejection with `layerClosed` if `close` runs first. */
  track<A>(send: () => Promise<A>): Promise<A> {
    return new Promise<A>((resolve, reject) => this.watch(send, resolve, reject))
  }

  close(): void {
    const error = new Error(layerClosed)
    let waiter = this.#first
    this.#first = undefined
    while (waiter !== undefined) {
      const next = waiter.next
      // unlinked: a command that never answers keeps only its own waiter
      waiter.done = true
      waiter.previous = waiter.next = undefined
      waiter.onError(error)
      waiter = next
    }
  }

  /** Takes `waiter` out of the list; `false` when it was already answered (by `close`). */
  #settle(waiter: Waiter): boolean {
    if (waiter.done) return false
    waiter.done = true
    if (waiter.previous === undefined) this.#first = waiter.next
    else waiter.previous.next = waiter.next
    if (waiter.next !== undefined) waiter.next.previous = waiter.previous
    return true
  }
}

/** Sends every command at once (a client passed in, whose writes are the application's). */
const writeAtOnce = (_busy: boolean): void => undefined

interface Waiter {
  readonly onError: (error: unknown) => void
  previous: Waiter | undefined
  next: Waiter | undefined
  done: boolean
}

/**
 * ioredis's message for a command its `commandTimeout` ended.
 *
 * @internal
 */
export const commandTimedOut = "Command timed out"

/** @internal */
export const didNotAnswer = (timeoutMillis: number): string => `Redis did not answer within ${timeoutMillis} ms`

/** @internal */
export const layerClosed = "the store's layer was closed before Redis answered"

/**
 * A record's header — `version:expiresAt:principalLength:` (`-` for no
 * principal) — read from the start of its value; `start` is where the
 * principal (if any) and then the data begin. `undefined` when the value is
 * not a record.
 *
 * @internal
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

/** @internal */
const lenientUtf8 = new TextDecoder()

/**
 * `parseRecord` with the data as text (a byte sequence that is not UTF-8
 * read as the replacement character), for a line whose records are text.
 *
 * @internal
 */
export const parseRecordAsText = (value: Buffer): {
  readonly version: number
  readonly expiresAt: number
  readonly principal: string | undefined
  readonly text: string
} | undefined => {
  const parsed = parseRecord(value)
  if (parsed === undefined) return undefined
  const { data, expiresAt, principal, version } = parsed
  return { version, expiresAt, principal, text: lenientUtf8.decode(data) }
}

// A decimal number in value[start, end): digits are read in place (the
// common case, no string made); anything else goes through Number().
/** @internal */
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

/** @internal */
const isAscii = (text: string): boolean => {
  for (let i = 0; i < text.length; i++) if (text.charCodeAt(i) > 0x7f) return false
  return true
}

/** @internal */
const dash = 45
