/**
 * A store on MongoDB through the official `mongodb` driver. One document per
 * session in one collection:
 *
 * - `_id`: the storage key, so every lookup goes through the `_id` index;
 * - `data` (Binary), `version`, `expiresAt` (a Date);
 * - `principal`, only when the session is bound to one (sparse index).
 *
 * A TTL index on `expiresAt` (`expireAfterSeconds: 0`) collects expired
 * documents; it runs about once a minute and may lag further, so every read
 * and conditional write checks `expiresAt` against `Clock` itself. Indexes are
 * created when the layer starts. See `docs/stores/mongodb.md`.
 *
 * @since 1.0.0
 */
import type { ConfigError, Scope } from "effect"
import { Config, Effect, Layer, Option, Predicate } from "effect"
import type { Binary, Collection, Db, MongoClientOptions, UpdateFilter, UpdateResult } from "mongodb"
import { MongoClient } from "mongodb"
import { storeAndIndex } from "./internal/layer.js"
import { notAString } from "./internal/principal.js"
import type { StoreOperation } from "./SessionError.js"
import { SessionConflict, SessionStoreError } from "./SessionError.js"
import * as SessionId from "./SessionId.js"
import * as SessionStore from "./SessionStore.js"

/**
 * @since 1.0.0
 * @category models
 */
export interface Options {
  /**
   * A connection string (`mongodb://…` or `mongodb+srv://…`). The layer opens
   * the client and closes it with its scope. Give either `url` or `client`.
   */
  readonly url?: string | undefined
  /** Driver options for the client the layer opens from `url`. */
  readonly clientOptions?: MongoClientOptions | undefined
  /**
   * A connected (or lazily connecting) client to use. The layer never closes
   * it. Writes must be acknowledged (the default write concern): `update`
   * needs the matched count.
   */
  readonly client?: MongoClient | undefined
  /** Default: the database named in the connection string, else the driver's default (`test`). */
  readonly database?: string | undefined
  /** Default `"effect_sessions"`. */
  readonly collection?: string | undefined
}

/**
 * The stored document.
 *
 * @since 1.0.0
 * @category models
 */
export interface SessionDocument {
  readonly _id: string
  /** Written as a Uint8Array, which BSON stores as Binary; read back as `Binary`. */
  readonly data: Binary | Uint8Array
  readonly version: number
  readonly expiresAt: Date
  readonly principal?: string
}

const name = "mongodb"

const fail = (operation: StoreOperation, cause: unknown) => new SessionStoreError({ store: name, operation, cause })

/**
 * E11000: an insert met an existing `_id`. Read from the error's code, not its
 * class, so that a client from another copy of the driver is understood too.
 */
const isDuplicateKey = (error: unknown): boolean => Predicate.hasProperty(error, "code") && error.code === 11000

// Duck-typed for the same reason; a Buffer comes back when the client was
// built with `promoteBuffers`.
const bytes = (data: unknown): Uint8Array | undefined => {
  if (data instanceof Uint8Array) return new Uint8Array(data)
  if (
    Predicate.hasProperty(data, "_bsontype") && data._bsontype === "Binary" &&
    Predicate.hasProperty(data, "buffer") && data.buffer instanceof Uint8Array &&
    Predicate.hasProperty(data, "length") && typeof data.length === "function"
  ) {
    return new Uint8Array(data.buffer.subarray(0, Number(data.length())))
  }
  return undefined
}

const toRecord = (document: SessionDocument): SessionStore.SessionRecord | undefined => {
  const data = bytes(document.data)
  if (data === undefined || typeof document.version !== "number" || !(document.expiresAt instanceof Date)) {
    return undefined
  }
  return {
    data,
    version: document.version,
    expiresAt: document.expiresAt.getTime(),
    principal: typeof document.principal === "string" ? Option.some(document.principal) : Option.none()
  }
}

const writeUpdate = (write: SessionStore.SessionWrite, version: number): UpdateFilter<SessionDocument> => {
  const fields = { data: write.data, version, expiresAt: new Date(write.expiresAt) }
  return Option.isSome(write.principal)
    ? { $set: { ...fields, principal: write.principal.value } }
    : { $set: fields, $unset: { principal: "" } }
}

// The types say a principal is a string, but an application that forwards
// unvalidated JSON can hand over an object: `{ "$ne": null }` in a filter's
// `principal` would be an operator matching every user's sessions. So the
// value is checked here, before any command is built, and filters compare it
// with `$eq`, which treats even an object as a value to equal, never as an
// operator.
const checkPrincipal = (operation: StoreOperation, principal: unknown): Effect.Effect<void, SessionStoreError> =>
  typeof principal === "string" ? Effect.void : Effect.fail(notAString(name, operation, principal))

const checkWrite = (operation: StoreOperation, write: SessionStore.SessionWrite): Effect.Effect<void, SessionStoreError> =>
  Option.isSome(write.principal) ? checkPrincipal(operation, write.principal.value) : Effect.void

const byPrincipal = (principal: string, t: number) => ({
  principal: { $eq: principal },
  expiresAt: { $gt: new Date(t) }
})

/**
 * @since 1.0.0
 * @category constructors
 */
export const make = Effect.fnUntraced(function*(options: Options): Effect.fn.Return<
  { readonly store: SessionStore.SessionStore["Type"]; readonly index: SessionStore.SessionIndex["Type"] },
  SessionStoreError,
  Scope.Scope
> {
  const client: MongoClient = options.client ?? (yield* Effect.acquireRelease(
    Effect.tryPromise({
      try: () => {
        if (options.url === undefined) throw new Error("MongoStore needs a `url` or a `client`")
        return new MongoClient(options.url, options.clientOptions).connect()
      },
      catch: (cause) => fail("setup", cause)
    }),
    (client) =>
      Effect.tryPromise(() => client.close()).pipe(
        Effect.catchAll((error) => Effect.logWarning("mongodb store: closing the client failed", error))
      )
  ))
  const db: Db = client.db(options.database)
  const collection: Collection<SessionDocument> = db.collection<SessionDocument>(
    options.collection ?? "effect_sessions"
  )

  // Idempotent: creating an index that exists with the same keys and options
  // is a no-op. One with the same name but other options fails the layer.
  yield* Effect.tryPromise({
    try: () =>
      collection.createIndexes([
        { key: { expiresAt: 1 }, name: "effect_session_expiresAt_ttl", expireAfterSeconds: 0 },
        // sparse: anonymous sessions, the most, stay out of it
        { key: { principal: 1 }, name: "effect_session_principal", sparse: true }
      ]),
    catch: (cause) => fail("setup", cause)
  })

  const now = Effect.clockWith((clock) => clock.currentTimeMillis)

  const attempt = <A>(operation: StoreOperation, run: () => Promise<A>): Effect.Effect<A, SessionStoreError> =>
    Effect.tryPromise({ try: run, catch: (cause) => fail(operation, cause) })

  // Without an acknowledgement there is no matched count, and no way to tell
  // a lost compare-and-set from a won one.
  const acknowledged = (operation: StoreOperation, result: UpdateResult<SessionDocument>) =>
    result.acknowledged
      ? Effect.succeed(result)
      : Effect.fail(fail(operation, new Error("the write was not acknowledged (write concern w: 0)")))

  const unreadable = (operation: StoreOperation) =>
    fail(operation, new Error("the stored document is not an effect-session record"))

  const store = SessionStore.make(name, {
    load: (key) =>
      Effect.gen(function*() {
        const t = yield* now
        const document = yield* attempt("load", () => collection.findOne({ _id: key, expiresAt: { $gt: new Date(t) } }))
        if (document === null) return Option.none()
        const record = toRecord(document)
        if (record === undefined) return yield* unreadable("load")
        return Option.some(record)
      }),

    // One atomic upsert: it matches only an expired document under the key
    // (and rewrites it), or finds none and inserts. A live document makes the
    // insert half collide on `_id`: E11000 means "Exists".
    insert: (key, write) =>
      Effect.gen(function*() {
        yield* checkWrite("insert", write)
        const t = yield* now
        const outcome = yield* attempt("insert", () =>
          collection.updateOne({ _id: key, expiresAt: { $lte: new Date(t) } }, writeUpdate(write, 1), { upsert: true })
            .then(
              (result) => result,
              (error: unknown) => {
                if (isDuplicateKey(error)) return "exists" as const
                throw error
              }
            ))
        if (outcome === "exists") return yield* new SessionConflict({ reason: "Exists" })
        yield* acknowledged("insert", outcome)
      }),

    update: (key, write, expectedVersion) =>
      Effect.gen(function*() {
        yield* checkWrite("update", write)
        const t = yield* now
        const version = expectedVersion + 1
        const result = yield* Effect.flatMap(
          attempt("update", () =>
            collection.updateOne(
              { _id: key, version: expectedVersion, expiresAt: { $gt: new Date(t) } },
              writeUpdate(write, version)
            )),
          (result) => acknowledged("update", result)
        )
        if (result.matchedCount === 1) return version
        // Lost: only now is it worth a read, to say why.
        const live = yield* attempt("update", () =>
          collection.findOne(
            { _id: key, expiresAt: { $gt: new Date(t) } },
            { projection: { _id: 1 } }
          ))
        return yield* new SessionConflict({ reason: live === null ? "Missing" : "VersionMismatch" })
      }),

    touch: (key, expiresAt) =>
      Effect.gen(function*() {
        const t = yield* now
        const result = yield* Effect.flatMap(
          attempt("touch", () =>
            collection.updateOne(
              { _id: key, expiresAt: { $gt: new Date(t) } },
              { $set: { expiresAt: new Date(expiresAt) } }
            )),
          (result) => acknowledged("touch", result)
        )
        return result.matchedCount === 1
      }),

    remove: (key) => Effect.asVoid(attempt("remove", () => collection.deleteOne({ _id: key })))
  })

  const index = SessionStore.makeIndex(name, {
    keys: (principal) =>
      Effect.gen(function*() {
        yield* checkPrincipal("keys", principal)
        const t = yield* now
        const documents = yield* attempt("keys", () =>
          collection.find(byPrincipal(principal, t), { projection: { _id: 1 } }).toArray())
        return documents.map((document) => SessionId.unsafeStorageKey(document._id))
      }),

    // Only live sessions are counted and removed; expired ones are already
    // invisible and the TTL monitor collects them.
    removeAll: (principal) =>
      Effect.gen(function*() {
        yield* checkPrincipal("removeAll", principal)
        const t = yield* now
        const result = yield* attempt("removeAll", () => collection.deleteMany(byPrincipal(principal, t)))
        return result.deletedCount
      })
  })

  return { store, index }
})

/**
 * The store and its principal index, alive for the layer's scope. Fails with
 * `SessionStoreError` when the server cannot be reached or the indexes
 * cannot be created.
 *
 * @example
 * ```ts
 * import * as MongoStore from "effect-session/MongoStore"
 *
 * const StoreLive = MongoStore.layer({ url: "mongodb://127.0.0.1:27017", database: "app" })
 * ```
 *
 * @since 1.0.0
 * @category layers
 */
export const layer = (
  options: Options
): Layer.Layer<SessionStore.SessionStore | SessionStore.SessionIndex, SessionStoreError> =>
  storeAndIndex(make(options))

/**
 * The store with its options read from `Config`.
 *
 * @example
 * ```ts
 * import { Config } from "effect"
 * import * as MongoStore from "effect-session/MongoStore"
 *
 * const StoreLive = MongoStore.layerConfig({
 *   url: Config.string("MONGODB_URL"),
 *   database: Config.withDefault(Config.string("MONGODB_DATABASE"), "app")
 * })
 * ```
 *
 * @since 1.0.0
 * @category layers
 */
export const layerConfig = (
  options: Config.Config.Wrap<Options>
): Layer.Layer<SessionStore.SessionStore | SessionStore.SessionIndex, SessionStoreError | ConfigError.ConfigError> =>
  Layer.unwrapEffect(Effect.map(Config.unwrap(options), layer))
