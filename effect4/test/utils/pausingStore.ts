/**
 * A store wrapper for deterministic interleavings: it forwards every
 * operation of a real store and its index, and, once armed with `k`, holds
 * the k-th operation it receives until the test releases it. A test runs one
 * request up to its k-th store call, runs another request completely, then
 * lets the first one go on.
 *
 * Every function of the wrapped services is forwarded (whatever the store
 * contract holds), so operations added to the contract are paused too. Each
 * wrapper is a store object of its own, with its own lanes: two wrappers over
 * one inner store are two processes sharing a backend.
 */
import { Context, Deferred, Effect, Exit, Option } from "effect"
import { SessionIndex, SessionStore } from "../../src/SessionStore.js"

/** A store operation as the wrapper received it. */
export interface StoreCall {
  readonly operation: string
  readonly args: ReadonlyArray<unknown>
}

export interface Gate {
  /** Succeeds with the held call once the store has received its k-th call since `arm`. */
  readonly reached: Effect.Effect<StoreCall>
  /** Lets the held call through, and disarms: no later call is held. */
  readonly release: Effect.Effect<void>
}

export interface PausingStore {
  /** The wrapped store and index, as the session middleware and `revokeAll` use them. */
  readonly context: Context.Context<SessionStore | SessionIndex>
  /** The calls received since the last `arm`. */
  readonly calls: ReadonlyArray<StoreCall>
  /**
   * Counts calls from now on and holds the k-th one (1-based) until the
   * gate is released. A new `arm` replaces the previous gate (release that
   * one first if it holds a call).
   */
  readonly arm: (k: number) => Effect.Effect<Gate>
}

interface Armed {
  readonly k: number
  readonly reached: Deferred.Deferred<StoreCall>
  readonly released: Deferred.Deferred<void>
}

/** Every method of a service object, own or inherited. */
const methodNames = (service: object): ReadonlyArray<string> => {
  const names = new Set<string>()
  for (let o: object | null = service; o !== null && o !== Object.prototype; o = Object.getPrototypeOf(o)) {
    for (const name of Object.getOwnPropertyNames(o)) {
      if (name !== "constructor" && typeof (service as Record<string, unknown>)[name] === "function") names.add(name)
    }
  }
  return [...names]
}

/** Wraps a store and its index; several wrappers may share one inner store, like processes sharing a backend. */
export const make = (inner: Context.Context<SessionStore> | Context.Context<SessionStore | SessionIndex>): PausingStore => {
  let armed: Armed | undefined
  let calls: Array<StoreCall> = []
  const before = (call: StoreCall): Effect.Effect<void> =>
    Effect.suspend(() => {
      calls.push(call)
      const gate = armed
      if (gate === undefined || calls.length !== gate.k) return Effect.void
      // the test may run on, and release (disarm) the gate, before this returns
      Deferred.doneUnsafe(gate.reached, Exit.succeed(call))
      return Deferred.await(gate.released)
    })
  const wrap = <S extends object>(service: S): S => {
    const wrapped: Record<string, unknown> = { ...(service as Record<string, unknown>) }
    for (const name of methodNames(service)) {
      const method = (service as Record<string, (...args: Array<unknown>) => Effect.Effect<unknown, unknown>>)[name]
      wrapped[name] = (...args: Array<unknown>) =>
        Effect.andThen(before({ operation: name, args }), Effect.suspend(() => method.apply(service, args)))
    }
    return wrapped as S
  }
  const store = Context.make(SessionStore, wrap(Context.get(inner, SessionStore)))
  // without an index, a use of it fails as a missing service, as it does on that store
  const index = Context.getOption(inner as Context.Context<SessionStore | SessionIndex>, SessionIndex)
  const context = Option.isSome(index) ? Context.add(store, SessionIndex, wrap(index.value)) : store
  return {
    context: context as Context.Context<SessionStore | SessionIndex>,
    get calls() {
      return calls
    },
    arm: (k) =>
      Effect.gen(function*() {
        const gate: Armed = { k, reached: yield* Deferred.make<StoreCall>(), released: yield* Deferred.make<void>() }
        armed = gate
        calls = []
        return {
          reached: Deferred.await(gate.reached),
          release: Effect.suspend(() => {
            if (armed === gate) armed = undefined
            return Deferred.done(gate.released, Exit.void)
          }).pipe(Effect.asVoid)
        }
      })
  }
}
