/**
 * The MongoDB store's protocol as data and pure functions: the collection's
 * indexes, the filter and update of every operation, the check a principal
 * passes before it reaches a filter, and the reading of a document back into
 * a record. The store shell hands these objects to the driver.
 *
 * One document per session: `_id` is the storage key (every lookup goes
 * through the `_id` index); `data` (Binary), `version`, `expiresAt` (a Date);
 * `principal` only when the session is bound to one (a sparse index).
 *
 * @internal
 */

/**
 * A session record as a document carries it; `principal` is `undefined` for
 * an anonymous session (the shells turn it into their own optional type).
 *
 * @internal
 */
export interface MongoRecord {
  readonly data: Uint8Array
  readonly version: number
  readonly expiresAt: number
  readonly principal: string | undefined
}

/**
 * What a write stores: the record without its version.
 *
 * @internal
 */
export interface MongoWrite {
  readonly data: Uint8Array
  readonly expiresAt: number
  readonly principal: string | undefined
}

/**
 * The options of a MongoDB store, as both lines' `MongoStore` take them:
 * either `url` (a client the layer opens and closes with its scope) or
 * `client` (one the layer never closes). `Client` and `ClientOptions` are the
 * driver's `MongoClient` and `MongoClientOptions` (parameters, so that the
 * core does not import the driver).
 *
 * @internal
 */
export interface MongoOptions<Client, ClientOptions> {
  /**
   * A connection string (`mongodb://…` or `mongodb+srv://…`). The layer opens
   * the client and closes it with its scope. Give either `url` or `client`.
   */
  readonly url?: string | undefined
  /** Driver options for the client the layer opens from `url` (timeouts, `appName`, TLS…). */
  readonly clientOptions?: ClientOptions | undefined
  /**
   * A connected (or lazily connecting) client to use. The layer never closes
   * it. Writes must be acknowledged (the default write concern): `update`
   * needs the matched count.
   */
  readonly client?: Client | undefined
  /** Default: the database named in the connection string, else the driver's default (`test`). */
  readonly database?: string | undefined
  /** Default `"effect_sessions"`. */
  readonly collection?: string | undefined
}

/**
 * A session's document, as both lines write it; `Binary` is the driver's
 * BSON `Binary`, what `data` is read back as.
 *
 * @internal
 */
export interface MongoDocument<Binary> {
  readonly _id: string
  /** The record's bytes: written as a Uint8Array, which BSON stores as Binary; read back as `Binary`. */
  readonly data: Binary | Uint8Array
  readonly version: number
  readonly expiresAt: Date
  /** Only when the session is bound to one. */
  readonly principal?: string
}

/**
 * Why the layer cannot open a client: it was given neither `url` nor `client`.
 *
 * @internal
 */
export const noUrlOrClient = "MongoStore needs a `url` or a `client`"

/**
 * The default collection.
 *
 * @internal
 */
export const defaultCollection = "effect_sessions"

/**
 * The indexes the layer creates when it starts. A TTL index on `expiresAt`
 * (`expireAfterSeconds: 0`) collects expired documents — about once a minute,
 * possibly later, which is why every read and conditional write also checks
 * `expiresAt` itself. The principal index is sparse: anonymous sessions, the
 * most, stay out of it. Creating them is idempotent; an index of the same
 * name with other options fails the layer.
 *
 * @internal
 */
export const indexSpecs = [
  { key: { expiresAt: 1 as const }, name: "effect_session_expiresAt_ttl", expireAfterSeconds: 0 },
  { key: { principal: 1 as const }, name: "effect_session_principal", sparse: true }
]

/**
 * The document of a session live at `now`.
 *
 * @internal
 */
export const liveFilter = (key: string, now: number) => ({ _id: key, expiresAt: { $gt: new Date(now) } })

/**
 * The document of a session only when it is expired at `now`: `insert`
 * upserts with it, so that it rewrites an expired document, or finds none
 * and inserts — and a live one makes the insert collide on `_id` (E11000:
 * "Exists").
 *
 * @internal
 */
export const expiredFilter = (key: string, now: number) => ({ _id: key, expiresAt: { $lte: new Date(now) } })

/**
 * The compare-and-set of `update`: the live document at the expected version.
 *
 * @internal
 */
export const versionFilter = (key: string, expectedVersion: number, now: number) => ({
  _id: key,
  version: expectedVersion,
  expiresAt: { $gt: new Date(now) }
})

/**
 * The live sessions of a principal. `$eq` compares even an object as a value
 * to equal, never as an operator; `isStringPrincipal` has refused one
 * before anyway.
 *
 * @internal
 */
export const principalFilter = (principal: string, now: number) => ({
  principal: { $eq: principal },
  expiresAt: { $gt: new Date(now) }
})

/**
 * The projection of a read that only needs to know the document exists.
 *
 * @internal
 */
export const idOnly = { projection: { _id: 1 as const } }

/**
 * The update writing a whole record at `version`. `data` is written as a
 * Uint8Array, which BSON stores as Binary; an anonymous write removes a
 * previous principal.
 *
 * @internal
 */
export const writeUpdate = (write: MongoWrite, version: number) => {
  const fields = { data: write.data, version, expiresAt: new Date(write.expiresAt) }
  return write.principal !== undefined
    ? { $set: { ...fields, principal: write.principal } }
    : { $set: fields, $unset: { principal: "" as const } }
}

/**
 * The update of `touch`: the expiry only; the version stays.
 *
 * @internal
 */
export const touchUpdate = (expiresAt: number) => ({ $set: { expiresAt: new Date(expiresAt) } })

/**
 * Whether a principal may go into a filter or a document. The types say a principal is a string, but an application that
 * forwards unvalidated JSON can hand over an object: `{ "$ne": null }` in a
 * filter's `principal` would be an operator matching every user's sessions.
 * So it is checked before any command is built.
 *
 * @internal
 */
export const isStringPrincipal = (principal: unknown): principal is string => typeof principal === "string"

/**
 * E11000: an insert met an existing `_id`. Read from the error's code, not its
 * class, so that a client from another copy of the driver is understood too.
 *
 * @internal
 */
export const isDuplicateKey = (error: unknown): boolean =>
  typeof error === "object" && error !== null && "code" in error && error.code === 11000

const has = <K extends string>(value: unknown, key: K): value is { readonly [k in K]: unknown } =>
  typeof value === "object" && value !== null && key in value

/**
 * The bytes of a stored `data`: a Binary (duck-typed, like `isDuplicateKey`),
 * or a Uint8Array — a Buffer comes back when the client was built with
 * `promoteBuffers`. A copy, so that the record does not hold the driver's
 * memory.
 *
 * @internal
 */
export const bytes = (data: unknown): Uint8Array | undefined => {
  if (data instanceof Uint8Array) return new Uint8Array(data)
  if (
    has(data, "_bsontype") && data._bsontype === "Binary" &&
    has(data, "buffer") && data.buffer instanceof Uint8Array &&
    has(data, "length") && typeof data.length === "function"
  ) {
    return new Uint8Array(data.buffer.subarray(0, Number(data.length())))
  }
  return undefined
}

/**
 * The record a document holds, or `undefined` when it is not one this store
 * wrote (`data` bytes, a numeric `version`, a Date `expiresAt`).
 *
 * @internal
 */
export const recordOfDocument = (document: unknown): MongoRecord | undefined => {
  if (!has(document, "data") || !has(document, "version") || !has(document, "expiresAt")) return undefined
  const data = bytes(document.data)
  const { expiresAt, version } = document
  if (data === undefined || typeof version !== "number" || !(expiresAt instanceof Date)) return undefined
  const principal = has(document, "principal") && typeof document.principal === "string"
    ? document.principal
    : undefined
  return { data, version, expiresAt: expiresAt.getTime(), principal }
}

/**
 * The message of a document `recordOfDocument` refused.
 *
 * @internal
 */
export const unreadableDocument = "the stored document is not an effect-session record"

/**
 * The message of a write without an acknowledgement (write concern `w: 0`):
 * without the matched count there is no way to tell a lost compare-and-set
 * from a won one.
 *
 * @internal
 */
export const unacknowledgedWrite = "the write was not acknowledged (write concern w: 0)"

/**
 * Why a lost `update` lost, from the read made after it: the session is live
 * (another version won) or not (gone or expired).
 *
 * @internal
 */
export const lostUpdateReason = (live: boolean): "VersionMismatch" | "Missing" =>
  live ? "VersionMismatch" : "Missing"
