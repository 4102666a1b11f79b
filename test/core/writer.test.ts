/**
 * The core's writer (src/core/writer.ts) with no Effect at all: run against a
 * shell whose effects are async functions and whose store is a map, the
 * algorithm both lines share writes a burst of updates as groups, hands a
 * group's failure to each of its updates, drops the writes of a session
 * removed meanwhile, and undoes a move whose old session ended meanwhile.
 */
import { describe, expect, it } from "vitest"
import { RequestState } from "../../src/core/request.js"
import type * as Save from "../../src/core/save.js"
import * as Writer from "../../src/core/writer.js"

type Cause = { readonly _tag: "Fail"; readonly error: unknown } | { readonly _tag: "Die"; readonly defect: unknown }
type Exit<A> = { readonly _tag: "Success"; readonly value: A } | { readonly _tag: "Failure"; readonly cause: Cause }
type Run<A> = () => Promise<A>

class Failed {
  constructor(readonly cause: Cause) {}
}

interface Async extends Writer.EffectTypes {
  readonly effect: Run<this["A"]>
  readonly exit: Exit<this["A"]>
  readonly cause: Cause
}

const run = async <A>(self: Run<A>): Promise<Exit<A>> => {
  try {
    return { _tag: "Success", value: await self() }
  } catch (e) {
    return { _tag: "Failure", cause: e instanceof Failed ? e.cause : { _tag: "Die", defect: e } }
  }
}
const unwrap = <A>(exit: Exit<A>): A => {
  if (exit._tag === "Failure") throw new Failed(exit.cause)
  return exit.value
}

interface Stored {
  readonly version: number
  readonly text: string
  readonly expiresAt: number
}
interface Write {
  readonly text: string
  readonly expiresAt: number
}
type Store = {
  readonly records: Map<string, Stored>
  updates: number
  gate?: Promise<void> | undefined
  /** Every compare-and-set fails with this, while set (the store is down). */
  failure?: Cause | undefined
}
type Config = { readonly name: string }
type Data = { readonly n: number }

const t = 1_000_000
const timeouts = { idleMillis: 60_000, absoluteMillis: 600_000, touchAfterMillis: 6_000 }
const empty = { empty: { n: 0 }, make: () => ({ n: 0 }) }
const config: Config = { name: "test" }
const conflict = { _tag: "Fail", error: { _tag: "SessionConflict" } } as const

const shell: Writer.Shell<Async, Store, Config, unknown, Write> = {
  void: async () => {},
  succeed: (value) => async () => value,
  fail: (error) => async () => {
    throw new Failed({ _tag: "Fail", error })
  },
  failCause: (cause) => async () => {
    throw new Failed(cause)
  },
  sync: (f) => async () => f(),
  suspend: (f) => () => f()(),
  andThen: (first, second) => async () => {
    await first()
    return second()
  },
  as: (self, value) => async () => {
    await self()
    return value
  },
  map: (self, f) => async () => f(await self()),
  tapError: (self, f) => async () => {
    try {
      return await self()
    } catch (e) {
      if (e instanceof Failed && e.cause._tag === "Fail") await f(e.cause.error as never)()
      throw e
    }
  },
  flatMap: (self, f) => async () => f(await self())(),
  matchCause: (self, { onFailure, onSuccess }) => async () => {
    const exit = await run(self)
    return exit._tag === "Success" ? onSuccess(exit.value)() : onFailure(exit.cause)()
  },
  forEachDiscard: (items, f) => async () => {
    for (const item of items) await f(item)()
  },
  ensuring: (self, finalizer) => async () => {
    try {
      return await self()
    } finally {
      await finalizer()
    }
  },
  onExit: (self, f) => async () => {
    const exit = await run(self)
    await f(exit)()
    return unwrap(exit)
  },
  // (the function runs when the region is entered, as in both lines)
  uninterruptibleMask: (f) => () => f((self) => self)(),
  forkDetach: (self) => async () => {
    void run(self)
  },
  waitTurn: (turn) => () => new Promise<void>((resolve) => turn.wait(resolve)),
  deferred: <A>() => {
    let done!: (exit: Exit<A>) => void
    const outcome = new Promise<Exit<A>>((resolve) => done = resolve)
    return { await: async () => unwrap(await outcome), done }
  },
  die: (defect) => ({ _tag: "Die", defect }),
  fromExit: (exit) => async () => unwrap(exit),
  exitSucceed: (value) => ({ _tag: "Success", value }),
  exitFailCause: (cause) => ({ _tag: "Failure", cause }),
  exitFailure: (exit) => exit._tag === "Failure" ? exit : undefined,
  writeUpdate: (_config, store, base, data, _t, then, orElse) => async () => {
    await store.gate
    store.updates++
    if (store.failure !== undefined) return orElse(store.failure)()
    const write = { text: JSON.stringify(data), expiresAt: base.expiresAt + 1 }
    const stored = store.records.get(base.key)
    if (stored === undefined) return then("Missing", 0, write, false)()
    if (stored.version !== base.version) return then("VersionMismatch", 0, write, false)()
    store.records.set(base.key, { ...write, version: stored.version + 1 })
    return then("Written", stored.version + 1, write, false)()
  },
  writeTombstone: (store, key, record, version, then) => async () => {
    const stored = store.records.get(key)
    if (stored === undefined) return then("Missing")()
    if (stored.version !== version) return then("VersionMismatch")()
    store.records.set(key, { version: version + 1, text: record.text, expiresAt: record.expiresAt })
    return then("Written")()
  },
  encodeMove: (_config, state, base) => async () => ({ text: JSON.stringify(state.data), expiresAt: base.expiresAt }),
  insertFresh: (store, key, write) => async () => {
    store.records.set(key, { ...write, version: 1 })
  },
  update: (store, key, write, version) => async () => {
    const stored = store.records.get(key)
    if (stored?.version !== version) throw new Failed(conflict)
    store.records.set(key, { ...write, version: version + 1 })
    return version + 1
  },
  storageKey: (_config, id) => `key:${id}`,
  regenerated: async () => {},
  moveUndone: async () => {},
  loadState: () => async () => undefined,
  loadLive: () => async () => undefined,
  remove: (store, key) => async () => {
    store.records.delete(key)
  },
  replayBudget: () => async () => {},
  dropped: async () => ({ _tag: "Dropped" }) as const,
  loggedOut: async () => {},
  failureTag: (cause) => cause._tag === "Fail" ? (cause.error as { _tag?: string })._tag : undefined
}

const key = "key:stored"

/** A request that loaded version 1 of the stored session and counted one more. */
const incrementing = () => {
  const request = new RequestState<Data>(empty, timeouts)
  request.clientId = "stored"
  const loaded = {
    key,
    version: 1,
    expiresAt: t + 60_000,
    createdAt: t,
    absoluteExpiresAt: t + 600_000,
    principal: null,
    data: { n: 0 },
    text: "{\"n\":0}"
  }
  request.adopt({ loaded })
  request.record({ _tag: "Update", key: "n", f: (n) => n + 1 })
  return { request, loaded }
}

const storeWithSession = (): Store => ({ records: new Map([[key, { version: 1, text: "{\"n\":0}", expiresAt: t + 60_000 }]]), updates: 0 })

const update = (store: Store) => {
  const { loaded, request } = incrementing()
  return run(Writer.updateInGroup(shell, store, config, request, loaded, t))
}

/** Three updates at once: the store holds the first one's write until the other two have queued behind it. */
const threeAtOnce = async (store: Store) => {
  let open!: () => void
  store.gate = new Promise((resolve) => open = resolve)
  const outcomes = Promise.all([update(store), update(store), update(store)])
  await new Promise((resolve) => setTimeout(resolve, 10))
  store.gate = undefined
  open()
  return outcomes
}

describe("the core's writer", () => {
  it("writes the updates that queue behind a write as one group, over what the write stored", async () => {
    const store = storeWithSession()
    const exits = await threeAtOnce(store)
    expect(exits.map((exit) => exit._tag)).toEqual(["Success", "Success", "Success"])
    // the first alone, the two queued behind it together: two compare-and-sets
    expect(store.updates).toBe(2)
    expect(store.records.get(key)).toMatchObject({ version: 3, text: "{\"n\":3}" })
    // the writer that took the queued group over ends its use of the lane once it has handed out their outcomes
    await new Promise((resolve) => setTimeout(resolve, 0))
    expect(Writer.coordinatedKeys(store)).toBe(0)
  })

  it("fails every update of a group whose compare-and-set fails, and leaves the lane to the next write", async () => {
    const store = storeWithSession()
    const down = { _tag: "Fail", error: { _tag: "SessionStoreError" } } as const
    store.failure = down
    const exits = await threeAtOnce(store)
    // the first alone, the two queued behind it as one group: each handed the store's failure
    expect(exits).toEqual([0, 1, 2].map(() => ({ _tag: "Failure", cause: down })))
    expect(store.updates).toBe(2)
    await new Promise((resolve) => setTimeout(resolve, 0))
    expect(Writer.coordinatedKeys(store)).toBe(0)
    // the store is back: the next update is written
    store.failure = undefined
    expect(await update(store)).toMatchObject({ _tag: "Success" })
    expect(store.records.get(key)).toMatchObject({ version: 2, text: "{\"n\":1}" })
  })

  it("drops the writes of a session removed meanwhile, and leaves the cookie alone", async () => {
    const store = storeWithSession()
    store.records.delete(key)
    const exit = await update(store)
    expect(exit).toEqual({ _tag: "Success", value: { _tag: "None" } satisfies Save.CookieDecision })
    expect(store.records.size).toBe(0)
    expect(Writer.coordinatedKeys(store)).toBe(0)
  })

  it("undoes a move whose old session ended meanwhile: the new record is removed", async () => {
    const store = storeWithSession()
    const { loaded, request } = incrementing()
    request.regenerate()
    // a logout of another process removed the old record: the move's compare-and-set finds nothing
    store.records.delete(key)
    const exit = await run(Writer.withLane(shell, store, key, (lane) => Writer.rotate(shell, config, store, lane, request, loaded, t)))
    expect(exit).toEqual({ _tag: "Success", value: { _tag: "None" } })
    expect([...store.records.keys()]).toEqual([])
  })
})
