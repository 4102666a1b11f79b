/**
 * The store contract. A store keeps opaque bytes under a `StorageKey` with a
 * version and an expiry; `update` is a compare-and-set on the version, atomic
 * in the backend. See `docs/concepts.md` and DESIGN §4.
 *
 * @since 1.0.0
 */
import { Chunk, Clock, Context, Effect, Exit, FiberRef, HashMap, Option, Tracer } from "effect"
import type { SessionConflict, SessionStoreError } from "./SessionError.js"
import type { StorageKey } from "./SessionId.js"
import { plainWrite } from "./internal/text.js"

/**
 * What a store returns from `load`.
 *
 * @since 1.0.0
 * @category models
 */
export interface SessionRecord {
  readonly data: Uint8Array
  /** 1 after `insert`, +1 for every successful `update`. `touch` leaves it. */
  readonly version: number
  /** Epoch milliseconds, on the application's `Clock`. */
  readonly expiresAt: number
  readonly principal: Option.Option<string>
  /**
   * The same data as text, when the store read it as text (`data` is then
   * exactly its UTF-8 encoding, and may be made when first read: read it as
   * a property rather than copying the record with a spread): the session
   * decodes it without decoding `data`. Optional: a store that reads bytes
   * leaves it out.
   */
  readonly text?: string | undefined
}

/**
 * What `insert` and `update` write.
 *
 * @since 1.0.0
 * @category models
 */
export interface SessionWrite {
  readonly data: Uint8Array
  readonly expiresAt: number
  readonly principal: Option.Option<string>
  /**
   * The same data as text, when it is UTF-8 text (what the session
   * middleware writes always is): `data` is exactly its UTF-8 encoding. A
   * store that sends strings uses it instead of decoding `data` (and says
   * so with `make`'s `readsText`); one that stores bytes ignores it. A
   * write's `data` may be made when first read: a store built with `make`
   * gets it as an own property.
   */
  readonly text?: string | undefined
}

/**
 * The operations every store implements.
 *
 * - `load` never returns a record whose `expiresAt` is at or before `Clock`'s now.
 * - `insert` fails with `SessionConflict("Exists")` when a live record is
 *   stored under the key; it replaces an expired one. The new version is 1.
 * - `update` writes only if the stored live record has `expectedVersion`, and
 *   returns the new version; otherwise `SessionConflict("VersionMismatch")`,
 *   or `SessionConflict("Missing")` when there is no live record.
 * - `touch` sets the expiry of a live record (data and version unchanged) and
 *   says whether there was one; it never creates a record.
 * - `remove` is idempotent.
 *
 * @since 1.0.0
 * @category models
 */
export interface SessionStoreOperations {
  readonly load: (key: StorageKey) => Effect.Effect<Option.Option<SessionRecord>, SessionStoreError>
  readonly insert: (key: StorageKey, write: SessionWrite) => Effect.Effect<void, SessionConflict | SessionStoreError>
  readonly update: (
    key: StorageKey,
    write: SessionWrite,
    expectedVersion: number
  ) => Effect.Effect<number, SessionConflict | SessionStoreError>
  readonly touch: (key: StorageKey, expiresAt: number) => Effect.Effect<boolean, SessionStoreError>
  readonly remove: (key: StorageKey) => Effect.Effect<void, SessionStoreError>
}

/**
 * @since 1.0.0
 * @category tags
 */
export class SessionStore extends Context.Tag("effect-session/SessionStore")<
  SessionStore,
  SessionStoreOperations & { readonly name: string }
>() {}

/**
 * Listing and revoking the sessions of a principal (the value passed to
 * `login`). Provided only by stores that can do it; a program that needs it
 * does not compile against a store that cannot.
 *
 * @since 1.0.0
 * @category models
 */
export interface SessionIndexOperations {
  /** Storage keys of the live sessions of a principal. */
  readonly keys: (principal: string) => Effect.Effect<ReadonlyArray<StorageKey>, SessionStoreError>
  /** Removes every session of a principal; returns how many were live. */
  readonly removeAll: (principal: string) => Effect.Effect<number, SessionStoreError>
}

/**
 * @since 1.0.0
 * @category tags
 */
export class SessionIndex extends Context.Tag("effect-session/SessionIndex")<
  SessionIndex,
  SessionIndexOperations
>() {}

/**
 * Builds the `SessionStore` service from a backend's operations, running each
 * in a span (`effect-session.load`, `.insert`, …) that carries the store name
 * and a short prefix of the storage key — never the id.
 *
 * @since 1.0.0
 * @category constructors
 */
export const make = (
  name: string,
  operations: SessionStoreOperations,
  options?: {
    /**
     * The backend's `insert` and `update` use a write's `text` when it has
     * one, and read its `data` only when it has none. Writes then reach it
     * as they are; otherwise every write reaches it with its bytes as an own
     * property.
     */
    readonly readsText?: boolean | undefined
  }
): SessionStore["Type"] => {
  const traced = <A, E>(span: string, key: StorageKey, operation: Effect.Effect<A, E>): Effect.Effect<A, E> =>
    withStoreSpan(span, name, key, operation)
  const prepare = options?.readsText === true ? (write: SessionWrite) => write : plainWrite
  return {
    name,
    load: (key) => traced("effect-session.load", key, operations.load(key)),
    insert: (key, write) => traced("effect-session.insert", key, operations.insert(key, prepare(write))),
    update: (key, write, expectedVersion) =>
      traced("effect-session.update", key, operations.update(key, prepare(write), expectedVersion)),
    touch: (key, expiresAt) => traced("effect-session.touch", key, operations.touch(key, expiresAt)),
    remove: (key) => traced("effect-session.remove", key, operations.remove(key))
  }
}

/**
 * Runs a store operation in a span: what `Effect.useSpan` does (the span is
 * created with the tracer, parent, links and annotations of the calling
 * fiber, and ended with the operation's exit), in two steps instead of
 * about ten, since every request runs one or two of these.
 *
 * The span is ended by the operation's success and failure handlers. An
 * interruption skips those, so the span is also registered to end with the
 * fiber: an interrupted operation's span ends, as interrupted, when its
 * fiber does (which an interruption leads to); it never stays open.
 *
 * Not a parent of the operation's own effects (an operation is one round
 * trip with nothing inside to trace); no stack trace (it would cost an Error
 * per call, and the caller's span already locates the request). Not made at
 * all when tracing is disabled or with Effect's default tracer, which
 * reports spans nowhere (see `defaultTracer`).
 */
const withStoreSpan = <A, E>(
  spanName: string,
  store: string,
  key: StorageKey,
  operation: Effect.Effect<A, E>
): Effect.Effect<A, E> =>
  Effect.withFiberRuntime<A, E>((fiber) => {
    if (!fiber.getFiberRef(FiberRef.currentTracerEnabled) || fiber.currentTracer === defaultTracer()) {
      return operation
    }
    const clock = Context.get(fiber.currentDefaultServices, Clock.Clock)
    const timing = fiber.getFiberRef(FiberRef.currentTracerTimingEnabled)
    const links = fiber.getFiberRef(FiberRef.currentTracerSpanLinks)
    const span = fiber.currentTracer.span(
      spanName,
      propagatedParent(Context.getOption(fiber.currentContext, Tracer.ParentSpan)),
      Context.empty(),
      Chunk.isEmpty(links) ? [] : Chunk.toReadonlyArray(links),
      timing ? clock.unsafeCurrentTimeNanos() : zero,
      "internal"
    )
    HashMap.forEach(fiber.getFiberRef(FiberRef.currentTracerSpanAnnotations), (value, name) => span.attribute(name, value))
    span.attribute("effect-session.store", store)
    span.attribute("effect-session.key", key.slice(0, 8))
    const end = (exit: Exit.Exit<unknown, unknown>) => {
      if (span.status._tag !== "Ended") span.end(timing ? clock.unsafeCurrentTimeNanos() : zero, exit)
    }
    // reached only when the handlers below were skipped: an interruption
    const interrupted = () => end(Exit.interrupt(fiber.id()))
    fiber.addObserver(interrupted)
    return Effect.matchCauseEffect(operation, {
      onFailure: (cause) => {
        fiber.removeObserver(interrupted)
        end(Exit.failCause(cause))
        return Effect.failCause(cause)
      },
      onSuccess: (value) => {
        fiber.removeObserver(interrupted)
        end(Exit.succeed(value))
        return Effect.succeed(value)
      }
    })
  })

const zero = BigInt(0)

// Effect's default tracer, used when the application installs none, keeps
// each span in memory and reports it nowhere: a store span, which is no
// one's parent, is unobservable with it (unlike the caller's spans, which
// may parent other spans), so none is made. With any other tracer
// (OpenTelemetry, a test's recorder) every operation gets its span.
let nativeTracer: Tracer.Tracer | undefined
const defaultTracer = (): Tracer.Tracer => nativeTracer ??= Effect.runSync(Effect.tracer)

// The parent a new span gets, as Effect's own spans do: the nearest enclosing
// span that does not disable propagation.
const propagatedParent = (span: Option.Option<Tracer.AnySpan>): Option.Option<Tracer.AnySpan> => {
  let current = span
  while (Option.isSome(current) && Context.get(current.value.context, Tracer.DisablePropagation)) {
    current = current.value._tag === "Span" ? current.value.parent : Option.none()
  }
  return current
}

/**
 * Builds the `SessionIndex` service, with spans like `make`.
 *
 * @since 1.0.0
 * @category constructors
 */
export const makeIndex = (name: string, operations: SessionIndexOperations): SessionIndex["Type"] => ({
  keys: (principal) =>
    Effect.withSpan(operations.keys(principal), "effect-session.keys", {
      captureStackTrace: false,
      attributes: { "effect-session.store": name }
    }),
  removeAll: (principal) =>
    Effect.withSpan(operations.removeAll(principal), "effect-session.removeAll", {
      captureStackTrace: false,
      attributes: { "effect-session.store": name }
    })
})
