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
import { Config, Effect, Layer, Option } from "effect"
import type { Binary, Collection, MongoClientOptions, UpdateResult } from "mongodb"
import { MongoClient } from "mongodb"
import * as Core from "./core/mongo.js"
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
export interface Options extends Core.MongoOptions<MongoClient, MongoClientOptions> {}

/**
 * The stored document.
 *
 * @since 1.0.0
 * @category models
 */
export interface SessionDocument extends Core.MongoDocument<Binary> {}

const name = "mongodb"

const fail = (operation: StoreOperation, cause: unknown) => new SessionStoreError({ store: name, operation, cause })

const attempt = <A>(operation: StoreOperation, run: () => Promise<A>): Effect.Effect<A, SessionStoreError> =>
  Effect.tryPromise({ try: run, catch: (cause) => fail(operation, cause) })

// An object where the types say string would be an operator in a filter
// (see `Core.isStringPrincipal`): refused before any command is built.
const checkPrincipal = (operation: StoreOperation, principal: unknown): Effect.Effect<void, SessionStoreError> =>
  Core.isStringPrincipal(principal) ? Effect.void : Effect.fail(notAString(name, operation, principal))

const writeOf = (operation: StoreOperation, write: SessionStore.SessionWrite) =>
  Effect.as(
    Option.isSome(write.principal) ? checkPrincipal(operation, write.principal.value) : Effect.void,
    { data: write.data, expiresAt: write.expiresAt, principal: Option.getOrUndefined(write.principal) }
  )

// The matched count of a write; without an acknowledgement there is none.
const matched = (operation: StoreOperation, result: UpdateResult<SessionDocument>) =>
  result.acknowledged
    ? Effect.succeed(result.matchedCount)
    : Effect.fail(fail(operation, new Error(Core.unacknowledgedWrite)))

const now = Effect.clockWith((clock) => clock.currentTimeMillis)

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
        if (options.url === undefined) throw new Error(Core.noUrlOrClient)
        return new MongoClient(options.url, options.clientOptions).connect()
      },
      catch: (cause) => fail("setup", cause)
    }),
    (client) =>
      Effect.tryPromise(() => client.close()).pipe(
        Effect.catchAll((error) => Effect.logWarning("mongodb store: closing the client failed", error))
      )
  ))
  const collection: Collection<SessionDocument> = client.db(options.database).collection<SessionDocument>(
    options.collection ?? Core.defaultCollection
  )
  yield* attempt("setup", () => collection.createIndexes(Core.indexSpecs))

  const store = SessionStore.make(name, {
    load: (key) =>
      Effect.gen(function*() {
        const t = yield* now
        const document = yield* attempt("load", () => collection.findOne(Core.liveFilter(key, t)))
        if (document === null) return Option.none()
        const record = Core.recordOfDocument(document)
        if (record === undefined) return yield* fail("load", new Error(Core.unreadableDocument))
        return Option.some({ ...record, principal: Option.fromNullable(record.principal) })
      }),

    // One atomic upsert over an expired document or none (`Core.expiredFilter`).
    insert: (key, write) =>
      Effect.gen(function*() {
        const update = Core.writeUpdate(yield* writeOf("insert", write), 1)
        const t = yield* now
        const outcome = yield* attempt("insert", () =>
          collection.updateOne(Core.expiredFilter(key, t), update, { upsert: true }).then(
            (result) => result,
            (error: unknown) => {
              if (Core.isDuplicateKey(error)) return "exists" as const
              throw error
            }
          ))
        if (outcome === "exists") return yield* new SessionConflict({ reason: "Exists" })
        yield* matched("insert", outcome)
      }),

    update: (key, write, expectedVersion) =>
      Effect.gen(function*() {
        const version = expectedVersion + 1
        const update = Core.writeUpdate(yield* writeOf("update", write), version)
        const t = yield* now
        const filter = Core.versionFilter(key, expectedVersion, t)
        const result = yield* attempt("update", () => collection.updateOne(filter, update))
        if ((yield* matched("update", result)) === 1) return version
        // Lost: only now is it worth a read, to say why.
        const live = yield* attempt("update", () => collection.findOne(Core.liveFilter(key, t), Core.idOnly))
        return yield* new SessionConflict({ reason: Core.lostUpdateReason(live !== null) })
      }),

    touch: (key, expiresAt) =>
      Effect.gen(function*() {
        const t = yield* now
        const result = yield* attempt("touch", () =>
          collection.updateOne(Core.liveFilter(key, t), Core.touchUpdate(expiresAt)))
        return (yield* matched("touch", result)) === 1
      }),

    remove: (key) => Effect.asVoid(attempt("remove", () => collection.deleteOne({ _id: key })))
  })

  const index = SessionStore.makeIndex(name, {
    keys: (principal) =>
      Effect.gen(function*() {
        yield* checkPrincipal("keys", principal)
        const t = yield* now
        const documents = yield* attempt("keys", () =>
          collection.find(Core.principalFilter(principal, t), Core.idOnly).toArray())
        return documents.map((document) => SessionId.unsafeStorageKey(document._id))
      }),

    // Only live sessions are counted and removed; expired ones are already
    // invisible and the TTL monitor collects them.
    removeAll: (principal) =>
      Effect.gen(function*() {
        yield* checkPrincipal("removeAll", principal)
        const t = yield* now
        const result = yield* attempt("removeAll", () => collection.deleteMany(Core.principalFilter(principal, t)))
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
