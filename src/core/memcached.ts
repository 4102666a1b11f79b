/**
 * The Memcached store's protocol as data and pure functions: the key layout,
 * the native expiry (exptime), the stored value's framing and its parsing,
 * and the compare-and-set decisions. The store shell sends the commands with
 * its client; everything it decides with what the server answered is here.
 *
 * @internal
 */
import { Buffer } from "node:buffer"
import { createHash } from "node:crypto"

/**
 * A session record as the value carries it. `principal` is `undefined` for an
 * anonymous session (the shells turn it into their own optional type).
 *
 * @internal
 */
export interface MemcachedRecord {
  readonly data: Uint8Array
  readonly version: number
  readonly expiresAt: number
  readonly principal: string | undefined
}

/**
 * The options of a Memcached store, as both lines' `MemcachedStore` take
 * them: each line's `Options` extends this with its duration input `D` and
 * `memcache-client`'s client (a parameter, so that the core does not import
 * the library).
 *
 * @internal
 */
export interface MemcachedOptions<D, Client> {
  /**
   * The server as `host:port` (a `memcached://` scheme is accepted). Default
   * `"127.0.0.1:11211"`. Ignored when a `client` is given. One server only,
   * and a list fails the layer: `memcache-client` treats several servers as
   * failover replicas and picks one at random per command, which would break
   * compare-and-set (use mcrouter in front of a pool instead).
   */
  readonly servers?: string | undefined
  /**
   * A client to use instead of one the layer creates. The layer never closes
   * it. It must talk to a single server (see `servers`).
   */
  readonly client?: Client | undefined
  /**
   * Prepended to every storage key. Default `"session:"`. Printable ASCII
   * without spaces; a prefix too long to leave room for the 43-character
   * storage key within Memcached's 250 bytes is shortened to its head plus
   * its SHA-256.
   */
  readonly prefix?: string | undefined
  /**
   * How long a connection or a command may take before it fails with
   * `SessionStoreError`. Default 5 seconds. Ignored when a `client` is given.
   */
  readonly commandTimeout?: D | undefined
}

/**
 * `prefix`'s default.
 *
 * @internal
 */
export const defaultPrefix = "session:"

/**
 * What the layer's own client is created with, from the options (`toMillis`
 * reads the line's duration input), or why it cannot be: the single server,
 * and `commandTimeout` (default 5 seconds) as both the command and the
 * connect timeout, so that a command fails instead of holding the request
 * that needs the session.
 *
 * @internal
 */
export const clientSettings = <D>(
  options: Pick<MemcachedOptions<D, unknown>, "servers" | "commandTimeout"> | undefined,
  toMillis: (duration: D) => number
):
  | {
    readonly _tag: "Right"
    readonly settings: {
      readonly server: string
      readonly cmdTimeout: number
      readonly connectTimeout: number
      readonly noDelay: true
    }
  }
  | { readonly _tag: "Left"; readonly reason: string } =>
{
  const address = serverAddress(options?.servers ?? "127.0.0.1:11211")
  if (address._tag === "Left") return address
  const timeout = Math.max(1, Math.ceil(options?.commandTimeout === undefined ? 5_000 : toMillis(options.commandTimeout)))
  return { _tag: "Right", settings: { server: address.server, cmdTimeout: timeout, connectTimeout: timeout, noDelay: true } }
}

/**
 * Memcached rejects keys over 250 bytes.
 *
 * @internal
 */
export const maxKeyBytes = 250

/**
 * Storage keys are base64url SHA-256 digests: always 43 ASCII bytes.
 *
 * @internal
 */
export const storageKeyBytes = 43

/**
 * An exptime up to 30 days is relative seconds; anything larger is read by
 * Memcached as an absolute Unix time.
 *
 * @internal
 */
export const maxRelativeSeconds = 30 * 24 * 60 * 60

/**
 * The ASCII protocol splits commands on spaces and ends them on CR LF: a key
 * may hold only printable ASCII without the space.
 *
 * @internal
 */
export const safeKeyCharacters = /^[\x21-\x7e]*$/

/**
 * The server address of the single server the store talks to, from the
 * `servers` option (a `memcached://` scheme is accepted), or why it cannot
 * be used: the client treats several servers as failover replicas picked at
 * random per command, which would break compare-and-set.
 *
 * @internal
 */
export const serverAddress = (
  servers: string
): { readonly _tag: "Right"; readonly server: string } | { readonly _tag: "Left"; readonly reason: string } => {
  const server = servers.trim().replace(/^memcached?:\/\//, "")
  return /^[^\s,;]+:\d+$/.test(server)
    ? { _tag: "Right", server }
    : { _tag: "Left", reason: `servers must be one "host:port" (got ${JSON.stringify(server)})` }
}

/**
 * Turns the configured prefix into the one keys are built with, or says why
 * it cannot be used. A prefix too long to leave room for a storage key is
 * shortened to its head plus its SHA-256, so that distinct prefixes still
 * give distinct keys and every key fits in 250 bytes.
 *
 * @internal
 */
export const keyPrefix = (prefix: string): { readonly _tag: "Right"; readonly prefix: string } | {
  readonly _tag: "Left"
  readonly reason: string
} => {
  if (!safeKeyCharacters.test(prefix)) {
    return {
      _tag: "Left",
      reason: `prefix ${
        JSON.stringify(prefix)
      } holds a space, a control or a non-ASCII character, which Memcached keys cannot contain`
    }
  }
  const room = maxKeyBytes - storageKeyBytes
  if (prefix.length <= room) return { _tag: "Right", prefix }
  const digest = createHash("sha256").update(prefix).digest("base64url")
  return { _tag: "Right", prefix: `${prefix.slice(0, room - digest.length - 1)}${digest}:` }
}

/**
 * The item key of a storage key under a prefix made by `keyPrefix`, or
 * `undefined` when the key is not one Memcached can take. Storage keys are
 * digests, but the store is public API: a key that could split a protocol
 * line must never reach the socket.
 *
 * @internal
 */
export const itemKey = (prefix: string, key: string): string | undefined =>
  key.length > 0 && safeKeyCharacters.test(key) && prefix.length + key.length <= maxKeyBytes
    ? prefix + key
    : undefined

/**
 * The cause's message of a store error for a key `itemKey` refused.
 *
 * @internal
 */
export const unsafeKeyMessage = "not a storage key: it holds characters Memcached keys cannot"

/**
 * The cause's message of a store error for an item `decode` refused: another
 * program's value under the key is never misread as a session.
 *
 * @internal
 */
export const foreignItemMessage = "the item under this key is not an effect-session record"

/**
 * The native expiry of a record, in Memcached's terms: relative seconds when
 * at most 30 days away, an absolute Unix time otherwise (a relative count over
 * 30 days would be read as a date in January 1970 and the item would expire at
 * once). It is rounded up and given one more second, because Memcached's clock
 * ticks in whole seconds and may otherwise drop an item up to a second before
 * its `expiresAt`. A deadline already passed still gets a short life: `load`
 * hides the record, and the item must not be immortal (exptime 0).
 *
 * @internal
 */
export const exptime = (expiresAt: number, now: number): number => {
  const seconds = Math.max(1, Math.ceil((expiresAt - now) / 1000)) + 1
  return seconds <= maxRelativeSeconds ? seconds : Math.ceil(expiresAt / 1000) + 1
}

// The value's first byte; a later layout gets another, and an old reader
// refuses it instead of misreading it.
const format = 1
const headerBytes = 1 + 1 + 8 + 8 + 4

/**
 * The stored value: a format byte, a flags byte (bit 0: a principal is
 * present), the version and `expiresAt` as big-endian float64, the principal's
 * UTF-8 length as uint32 and its bytes, then the session data as is.
 *
 * @internal
 */
export const encode = (record: MemcachedRecord): Buffer => {
  const principal = record.principal === undefined ? undefined : Buffer.from(record.principal, "utf8")
  const principalBytes = principal?.length ?? 0
  const buffer = Buffer.allocUnsafe(headerBytes + principalBytes + record.data.length)
  buffer.writeUInt8(format, 0)
  buffer.writeUInt8(principal === undefined ? 0 : 1, 1)
  buffer.writeDoubleBE(record.version, 2)
  buffer.writeDoubleBE(record.expiresAt, 10)
  buffer.writeUInt32BE(principalBytes, 18)
  if (principal !== undefined) principal.copy(buffer, headerBytes)
  buffer.set(record.data, headerBytes + principalBytes)
  return buffer
}

/**
 * Reads a stored value back, or `undefined` when it is not one written by
 * `encode` (another program's item under the same key, a truncated value).
 *
 * @internal
 */
export const decode = (value: unknown): MemcachedRecord | undefined => {
  if (!Buffer.isBuffer(value) || value.length < headerBytes || value.readUInt8(0) !== format) return undefined
  const flags = value.readUInt8(1)
  const version = value.readDoubleBE(2)
  const expiresAt = value.readDoubleBE(10)
  const principalBytes = value.readUInt32BE(18)
  if (
    flags > 1 || !Number.isSafeInteger(version) || !Number.isFinite(expiresAt) ||
    headerBytes + principalBytes > value.length || (flags === 0 && principalBytes !== 0)
  ) {
    return undefined
  }
  const principal = flags === 1 ? value.toString("utf8", headerBytes, headerBytes + principalBytes) : undefined
  // a copy: the client may reuse the memory of the buffer it read into
  const data = new Uint8Array(value.subarray(headerBytes + principalBytes))
  return { data, version, expiresAt, principal }
}

const utf8 = new TextDecoder()

/**
 * A write of a record that is text (the Effect 4 line's), as the value
 * carries it: the text's UTF-8 bytes are the data, so that either line reads
 * what the other wrote.
 *
 * @internal
 */
export const textWrite = (
  text: string,
  expiresAt: number,
  principal: string | undefined
): Omit<MemcachedRecord, "version"> => ({ data: Buffer.from(text, "utf8"), expiresAt, principal })

/**
 * A record read back as text (see `textWrite`), without its principal,
 * which each line carries in its own optional type.
 *
 * @internal
 */
export const textOf = (
  record: MemcachedRecord
): { readonly text: string; readonly version: number; readonly expiresAt: number } => ({
  text: utf8.decode(record.data),
  version: record.version,
  expiresAt: record.expiresAt
})

/**
 * What a storage command (`add`, `cas`, `delete`) answered.
 *
 * @internal
 */
export type StorageReply = "STORED" | "NOT_STORED" | "EXISTS" | "NOT_FOUND"

/**
 * The negative reply a rejected storage command carries, or `undefined` when
 * the rejection is a failure (connection, timeout, server error): the client
 * rejects a conditional command that did not store with an Error whose
 * message is the reply.
 *
 * @internal
 */
export const negativeReply = (error: unknown): StorageReply | undefined =>
  error instanceof Error &&
    (error.message === "NOT_STORED" || error.message === "EXISTS" || error.message === "NOT_FOUND")
    ? error.message
    : undefined

/**
 * What a storage command answered, from the client's promise of it: STORED
 * when it resolves, the negative reply when it rejects with one (a value for
 * the conditional operations); any other rejection stays a rejection.
 *
 * @internal
 */
export const storageReply = (command: Promise<unknown>): Promise<StorageReply> =>
  command.then(
    (): StorageReply => "STORED",
    (error: unknown) => {
      const reply = negativeReply(error)
      if (reply === undefined) throw error
      return reply
    }
  )

/**
 * What the client's `gets` resolves to on a hit; a miss resolves to
 * `undefined`, whatever the client's declared type says.
 *
 * @internal
 */
export interface GetsReply {
  readonly value: unknown
  readonly casUniq: string | number
}

/**
 * What a `gets` read: nothing (a miss), the record with its compare-and-set
 * token, or `"Foreign"` for a value `decode` refused (a store error,
 * `foreignItemMessage`).
 *
 * @internal
 */
export const readGets = (response: GetsReply | undefined): Gotten<MemcachedRecord> | undefined | "Foreign" => {
  if (response === undefined) return undefined
  const record = decode(response.value)
  return record === undefined ? "Foreign" : { record, casUniq: response.casUniq }
}

/**
 * A compare-and-set that loses to a write leaving the version as it was (a
 * touch, a replaced expired record) is retried; every lost round means another
 * writer made progress, so this bound is only a safety valve.
 *
 * @internal
 */
export const maxRounds = 100

/**
 * The cause's message of a store error after `maxRounds` lost rounds.
 *
 * @internal
 */
export const contentionMessage = `the item kept changing during ${maxRounds} compare-and-set rounds`

/**
 * The record read with `gets`, when it is live for the application at `now`:
 * an item can outlive its `expiresAt` (native expiry is rounded up, and the
 * application's clock rules).
 *
 * @internal
 */
export const liveRecord = <R extends { readonly expiresAt: number }>(
  stored: R | undefined,
  now: number
): R | undefined =>
  stored !== undefined && stored.expiresAt > now ? stored : undefined

/**
 * A record as `gets` read it, with the compare-and-set token a `cas` of the
 * item must present.
 *
 * @internal
 */
export interface Gotten<R extends { readonly version: number; readonly expiresAt: number }> {
  readonly record: R
  readonly casUniq: string | number
}

/**
 * What `insert` does after `add` did not store, given what `gets` read then:
 * add again when the item is gone since (removed, evicted), give up with
 * "Exists" when it is live, replace it with a `cas` of what was read when it
 * is expired — so that a concurrent writer who got there first still wins.
 *
 * @internal
 */
export const afterRefusedAdd = <G extends Gotten<{ readonly version: number; readonly expiresAt: number }>>(
  stored: G | undefined,
  now: number
): { readonly _tag: "AddAgain" } | { readonly _tag: "Exists" } | { readonly _tag: "Replace"; readonly stored: G } =>
  stored === undefined
    ? { _tag: "AddAgain" }
    : stored.record.expiresAt > now
    ? { _tag: "Exists" }
    : { _tag: "Replace", stored }

/**
 * What `update` does given what `gets` read: a conflict when the record is
 * gone or expired ("Missing") or at another version ("VersionMismatch"),
 * else a `cas` of what was read, writing the next version.
 *
 * @internal
 */
export const updateStep = <G extends Gotten<{ readonly version: number; readonly expiresAt: number }>>(
  stored: G | undefined,
  expectedVersion: number,
  now: number
):
  | { readonly _tag: "Conflict"; readonly reason: "Missing" | "VersionMismatch" }
  | { readonly _tag: "Write"; readonly stored: G; readonly version: number } =>
  stored === undefined || stored.record.expiresAt <= now
    ? { _tag: "Conflict", reason: "Missing" }
    : stored.record.version !== expectedVersion
    ? { _tag: "Conflict", reason: "VersionMismatch" }
    : { _tag: "Write", stored, version: expectedVersion + 1 }

/**
 * A command an operation asks the shell to send for its item: `gets`, or a
 * storage command writing a record (the shell adds the exptime of the
 * record's `expiresAt` at the time it sends it).
 *
 * @internal
 */
export type Command =
  | { readonly _tag: "Gets" }
  | { readonly _tag: "Add"; readonly record: MemcachedRecord }
  | { readonly _tag: "Cas"; readonly record: MemcachedRecord; readonly casUniq: string | number }

/**
 * What the shell hands back to the operation: what `gets` read (a record
 * decoded from the value, or `undefined` on a miss) with the time after the
 * read, or what a storage command answered.
 *
 * @internal
 */
export type Reply =
  | { readonly _tag: "Read"; readonly stored: Gotten<MemcachedRecord> | undefined; readonly now: number }
  | { readonly _tag: "Written"; readonly reply: StorageReply }

/**
 * How an operation ended: with its value, a conflict for the caller, or the
 * contention of `maxRounds` lost rounds (a store error, `contentionMessage`).
 *
 * @internal
 */
export type Outcome<A> =
  | { readonly _tag: "Done"; readonly value: A }
  | { readonly _tag: "Conflict"; readonly reason: "Exists" | "Missing" | "VersionMismatch" }
  | { readonly _tag: "Contention" }

/**
 * A conditional operation as a conversation with the server: it yields the
 * commands to send, is resumed with their replies, and returns how it ended.
 * The shell's loop (send, resume) is all the Effect glue it needs.
 *
 * @internal
 */
export type Operation<A> = Generator<Command, Outcome<A>, Reply>

const read = function*(): Generator<Command, Extract<Reply, { _tag: "Read" }>, Reply> {
  const reply = yield { _tag: "Gets" }
  if (reply._tag !== "Read") throw new TypeError("a gets was answered with a storage reply")
  return reply
}

const written = function*(command: Command): Generator<Command, StorageReply, Reply> {
  const reply = yield command
  if (reply._tag !== "Written") throw new TypeError("a storage command was answered with a read")
  return reply.reply
}

/**
 * `insert`: `add` stores only when no item exists; after a refused `add`,
 * `afterRefusedAdd` says what the item read then calls for.
 *
 * @internal
 */
export const insertOperation = function*(record: MemcachedRecord): Operation<void> {
  for (let round = 0; round < maxRounds; round++) {
    if ((yield* written({ _tag: "Add", record })) === "STORED") return { _tag: "Done", value: undefined }
    const { now, stored } = yield* read()
    const next = afterRefusedAdd(stored, now)
    if (next._tag === "Exists") return { _tag: "Conflict", reason: "Exists" }
    if (next._tag === "Replace" && (yield* written({ _tag: "Cas", record, casUniq: next.stored.casUniq })) === "STORED") {
      return { _tag: "Done", value: undefined }
    }
  }
  return { _tag: "Contention" }
}

/**
 * `update`: `gets`, `updateStep`, then `cas` of the next version. A `cas`
 * that loses (EXISTS: written since the `gets`, perhaps only touched;
 * NOT_FOUND: removed) starts another round, whose read says which.
 *
 * @internal
 */
export const updateOperation = function*(
  write: Omit<MemcachedRecord, "version">,
  expectedVersion: number
): Operation<number> {
  for (let round = 0; round < maxRounds; round++) {
    const { now, stored } = yield* read()
    const step = updateStep(stored, expectedVersion, now)
    if (step._tag === "Conflict") return step
    const record = { ...write, version: step.version }
    if ((yield* written({ _tag: "Cas", record, casUniq: step.stored.casUniq })) === "STORED") {
      return { _tag: "Done", value: step.version }
    }
  }
  return { _tag: "Contention" }
}

/**
 * `touch`: not Memcached's `touch`, which would move only the native expiry
 * (while liveness is judged by the `expiresAt` inside the value) and would
 * extend an item already expired for the application. The live record read
 * is written back with `cas` and the new expiry: both expiries move at once,
 * and an update landing in between is not lost.
 *
 * @internal
 */
export const touchOperation = function*(expiresAt: number): Operation<boolean> {
  for (let round = 0; round < maxRounds; round++) {
    const { now, stored } = yield* read()
    if (stored === undefined || liveRecord(stored.record, now) === undefined) return { _tag: "Done", value: false }
    const record = { ...stored.record, expiresAt }
    if ((yield* written({ _tag: "Cas", record, casUniq: stored.casUniq })) === "STORED") {
      return { _tag: "Done", value: true }
    }
  }
  return { _tag: "Contention" }
}
