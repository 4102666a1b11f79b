/**
 * A store on MongoDB through the official `mongodb` driver: the Effect 4
 * glue over the core's MongoDB requests (`src/core/mongo.ts`: the indexes,
 * the filter and update of every operation, the reading of a document), so
 * both lines keep the same documents and read each other's.
 *
 * One document per session, `_id` the storage key; a TTL index on
 * `expiresAt` collects expired documents (about once a minute, possibly
 * later, so every read and conditional write also checks `expiresAt` against
 * `Clock`), and a sparse index on `principal` serves `SessionIndex`. The
 * indexes are created when the layer starts. See `docs/stores/mongodb.md`.
 *
 * ```ts
 * import * as MongoStore from "effect-session/MongoStore"
 *
 * const StoreLive = MongoStore.layer({ url: "mongodb://127.0.0.1:27017", database: "app" })
 * ```
 *
 * @since 2.0.0
 */
import type { Scope } from "effect"
import { Clock, Config, Effect, Layer, Option } from "effect"
import type { Binary, Collection, MongoClientOptions, UpdateResult } from "mongodb"
import { MongoClient } from "mongodb"
import * as Core from "../../src/core/mongo.js"
import { principalProblem } from "../../src/core/principal.js"
import { storeAndIndex } from "./internal/layer.js"
import type { StoreOperation } from "./SessionError.js"
import { SessionConflict, SessionStoreError } from "./SessionError.js"
import * as SessionId from "./SessionId.js"
import * as SessionStore from "./SessionStore.js"

/**
 * Either `url` (a client the layer opens and closes with its scope) or
 * `client` (one the layer never closes).
 *
 * @since 2.0.0
 * @category models
 */
export interface Options extends Core.MongoOptions<MongoClient, MongoClientOptions> {}

/**
 * A session's document, as both lines write it.
 *
 * @since 2.0.0
 * @category models
 */
export interface SessionDocument extends Core.MongoDocument<Binary> {}

const name = "mongodb"

const failure = (operation: StoreOperation, cause: unknown) => new SessionStoreError({ store: name, operation, cause })

const send = <A>(operation: StoreOperation, request: () => Promise<A>): Effect.Effect<A, SessionStoreError> =>
  Effect.tryPromise({ try: request, catch: (cause) => failure(operation, cause) })

// a principal reaches a filter or a document only as a string: an object
// from unchecked JSON would be an operator (`{ "$ne": null }`)
const checked = (operation: StoreOperation, principal: unknown): Effect.Effect<string, SessionStoreError> => {
  const problem = principalProblem(principal)
  return problem === undefined && Core.isStringPrincipal(principal)
    ? Effect.succeed(principal)
    : Effect.fail(failure(operation, new TypeError(problem)))
}

const encoder = new TextEncoder()
const decoder = new TextDecoder()

const writeOf = (operation: StoreOperation, write: SessionStore.SessionWrite): Effect.Effect<Core.MongoWrite, SessionStoreError> =>
  Effect.map(
    Option.isSome(write.principal) ? checked(operation, write.principal.value) : Effect.succeed(undefined),
    (principal) => ({ data: encoder.encode(write.text), expiresAt: write.expiresAt, principal })
  )

// the matched count of a write; unacknowledged (w: 0), there is none
const matched = (operation: StoreOperation, result: UpdateResult<SessionDocument>) =>
  result.acknowledged ? Effect.succeed(result.matchedCount) : Effect.fail(failure(operation, new Error(Core.unacknowledgedWrite)))

/**
 * The store and its index over one collection, for the scope: a client the
 * layer opens from `url` is closed when the scope closes. Fails with
 * `SessionStoreError` (operation `setup`) when the server cannot be reached
 * (within the driver's `serverSelectionTimeoutMS`) or the indexes cannot be
 * created.
 *
 * @since 2.0.0
 * @category constructors
 */
export const make = Effect.fnUntraced(function*(options: Options): Effect.fn.Return<
  { readonly store: SessionStore.SessionStore["Service"]; readonly index: SessionStore.SessionIndex["Service"] },
  SessionStoreError,
  Scope.Scope
> {
  const client = options.client ?? (yield* connect(options))
  const collection: Collection<SessionDocument> = client.db(options.database).collection<SessionDocument>(
    options.collection ?? Core.defaultCollection
  )
  yield* send("setup", () => collection.createIndexes(Core.indexSpecs))

  const store = SessionStore.make(name, {
    load: (key) =>
      Effect.gen(function*() {
        const t = yield* Clock.currentTimeMillis
        const document = yield* send("load", () => collection.findOne(Core.liveFilter(key, t)))
        if (document === null) return Option.none()
        const record = Core.recordOfDocument(document)
        if (record === undefined) return yield* Effect.fail(failure("load", new Error(Core.unreadableDocument)))
        const { data, expiresAt, principal, version } = record
        return Option.some({ text: decoder.decode(data), version, expiresAt, principal: Option.fromUndefinedOr(principal) })
      }),

    // one upsert over an expired document or none; a live one collides on _id
    insert: (key, write) =>
      Effect.gen(function*() {
        const update = Core.writeUpdate(yield* writeOf("insert", write), 1)
        const t = yield* Clock.currentTimeMillis
        const result = yield* send("insert", () =>
          collection.updateOne(Core.expiredFilter(key, t), update, { upsert: true }).catch((error: unknown) => {
            if (Core.isDuplicateKey(error)) return undefined
            throw error
          }))
        if (result === undefined) return yield* Effect.fail(new SessionConflict({ reason: "Exists" }))
        yield* matched("insert", result)
      }),

    update: (key, write, expectedVersion) =>
      Effect.gen(function*() {
        const update = Core.writeUpdate(yield* writeOf("update", write), expectedVersion + 1)
        const t = yield* Clock.currentTimeMillis
        const result = yield* send("update", () => collection.updateOne(Core.versionFilter(key, expectedVersion, t), update))
        if ((yield* matched("update", result)) === 1) return expectedVersion + 1
        // lost: only now is a read worth it, to say why
        const live = yield* send("update", () => collection.findOne(Core.liveFilter(key, t), Core.idOnly))
        return yield* Effect.fail(new SessionConflict({ reason: Core.lostUpdateReason(live !== null) }))
      }),

    touch: (key, expiresAt) =>
      Effect.flatMap(Clock.currentTimeMillis, (t) =>
        Effect.flatMap(
          send("touch", () => collection.updateOne(Core.liveFilter(key, t), Core.touchUpdate(expiresAt))),
          (result) => Effect.map(matched("touch", result), (count) => count === 1)
        )),

    remove: (key) => Effect.asVoid(send("remove", () => collection.deleteOne({ _id: key })))
  })

  const index = SessionStore.makeIndex(name, {
    keys: (principal) =>
      Effect.gen(function*() {
        const filter = Core.principalFilter(yield* checked("keys", principal), yield* Clock.currentTimeMillis)
        const documents = yield* send("keys", () => collection.find(filter, Core.idOnly).toArray())
        return documents.map((document) => SessionId.storageKeyUnsafe(document._id))
      }),
    // live sessions only: expired ones are invisible already, and the TTL
    // monitor collects them
    removeAll: (principal) =>
      Effect.gen(function*() {
        const filter = Core.principalFilter(yield* checked("removeAll", principal), yield* Clock.currentTimeMillis)
        return (yield* send("removeAll", () => collection.deleteMany(filter))).deletedCount
      })
  })

  return { store, index }
})

// the client is closed with the scope even when connecting failed: the
// driver keeps its monitors until then
const connect = (options: Options): Effect.Effect<MongoClient, SessionStoreError, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.try({
      try: () => {
        if (options.url === undefined) throw new Error(Core.noUrlOrClient)
        return new MongoClient(options.url, options.clientOptions)
      },
      catch: (cause) => failure("setup", cause)
    }),
    (client) =>
      Effect.catchCause(
        Effect.tryPromise(() => client.close()),
        (cause) => Effect.logWarning(`${name} store: closing the client failed`, cause)
      )
  ).pipe(Effect.tap((client) => send("setup", () => client.connect())))

/**
 * The store and its principal index, alive for the layer's scope.
 *
 * @since 2.0.0
 * @category layers
 */
export const layer = (
  options: Options
): Layer.Layer<SessionStore.SessionStore | SessionStore.SessionIndex, SessionStoreError> =>
  storeAndIndex(make(options))

/**
 * The store with its options read from `Config`.
 *
 * ```ts
 * import { Config } from "effect"
 * import * as MongoStore from "effect-session/MongoStore"
 *
 * const StoreLive = MongoStore.layerConfig({
 *   url: Config.String("MONGODB_URL"),
 *   database: Config.withDefault(Config.String("MONGODB_DATABASE"), "app")
 * })
 * ```
 *
 * @since 2.0.0
 * @category layers
 */
export const layerConfig = (
  options: Config.Wrap<Options>
): Layer.Layer<SessionStore.SessionStore | SessionStore.SessionIndex, SessionStoreError | Config.ConfigError> =>
  Layer.unwrap(Effect.map(Config.unwrap(options), layer))
