/**
 * The saves of one process to one session, written once for both shells:
 * the lanes in which they take turns, group commit (the updates waiting in a
 * lane written together, one compare-and-set a group, each update handed its
 * outcome), and the ending of a session with the sessions it moved to.
 *
 * The algorithm is written against `Shell`: the few effect operations it
 * needs and the store's side of a write, which each line supplies once. The
 * shell's effect type is opaque here (`Fx`); a call through the shell builds
 * the very effect the shell would build itself, so the indirection costs no
 * runtime step.
 *
 * @internal
 */
import * as Lanes from "./lanes.js"
import type { LoadedSession, RequestState } from "./request.js"
import * as Save from "./save.js"

/**
 * A shell's effect, exit and cause types, as a type lambda: `effect` is the
 * shell's effect of `A` failing with `E` (Effect's own `TypeLambda` trick:
 * the shell's types read `this["A"]` and `this["E"]`).
 *
 * @internal
 */
export interface EffectTypes {
  readonly A: unknown
  readonly E: unknown
  readonly effect: unknown
  readonly exit: unknown
  readonly cause: unknown
}

/** @internal */
export type Fx<F extends EffectTypes, A, E = never> = (F & { readonly A: A; readonly E: E })["effect"]

/** @internal */
export type Exit<F extends EffectTypes, A, E> = (F & { readonly A: A; readonly E: E })["exit"]

/** @internal */
export type Cause<F extends EffectTypes, E> = (F & { readonly E: E })["cause"]

/**
 * The effect operations the core's algorithm runs on, each one of the
 * shell's own (`Effect.matchCauseEffect`, `Effect.forkDaemon`…).
 *
 * @internal
 */
export interface Effects<F extends EffectTypes> {
  readonly void: Fx<F, void>
  readonly succeed: <A>(value: A) => Fx<F, A>
  readonly fail: <E>(error: E) => Fx<F, never, E>
  readonly failCause: <E>(cause: Cause<F, E>) => Fx<F, never, E>
  readonly sync: <A>(f: () => A) => Fx<F, A>
  readonly suspend: <A, E>(f: () => Fx<F, A, E>) => Fx<F, A, E>
  /** `first`, then `second` (`zipRight` / `andThen`). */
  readonly andThen: <E1, A, E2>(first: Fx<F, unknown, E1>, second: Fx<F, A, E2>) => Fx<F, A, E1 | E2>
  readonly as: <E, B>(self: Fx<F, unknown, E>, value: B) => Fx<F, B, E>
  readonly map: <A, E, B>(self: Fx<F, A, E>, f: (a: A) => B) => Fx<F, B, E>
  readonly tapError: <A, E, E2>(self: Fx<F, A, E>, f: (error: E) => Fx<F, unknown, E2>) => Fx<F, A, E | E2>
  readonly flatMap: <A, E, B, E2>(self: Fx<F, A, E>, f: (a: A) => Fx<F, B, E2>) => Fx<F, B, E | E2>
  readonly matchCause: <A, E, B, E2>(
    self: Fx<F, A, E>,
    options: { readonly onFailure: (cause: Cause<F, E>) => Fx<F, B, E2>; readonly onSuccess: (a: A) => Fx<F, B, E2> }
  ) => Fx<F, B, E2>
  readonly forEachDiscard: <A, E>(items: Iterable<A>, f: (a: A) => Fx<F, unknown, E>) => Fx<F, void, E>
  readonly ensuring: <A, E>(self: Fx<F, A, E>, finalizer: Fx<F, unknown>) => Fx<F, A, E>
  readonly onExit: <A, E>(self: Fx<F, A, E>, f: (exit: Exit<F, A, E>) => Fx<F, unknown>) => Fx<F, A, E>
  /** `f` runs when the region is entered (both lines' `uninterruptibleMask`): it may do the region's first work. */
  readonly uninterruptibleMask: <A, E>(
    f: (restore: <A2, E2>(self: Fx<F, A2, E2>) => Fx<F, A2, E2>) => Fx<F, A, E>
  ) => Fx<F, A, E>
  /** Runs `self` on a fiber of its own, which outlives the one that started it. */
  readonly forkDetach: (self: Fx<F, void>) => Fx<F, unknown>
  /** Waits for a turn someone holds: the shell's callback effect around `Turn.wait`, whose interruption runs its `cancel`. */
  readonly waitTurn: (turn: Lanes.Turn) => Fx<F, void>
  /** A waiter for one outcome: `await` until `done` is called with it. */
  readonly deferred: <A, E>() => { readonly await: Fx<F, A, E>; readonly done: (exit: Exit<F, A, E>) => void }
  readonly die: (defect: unknown) => Cause<F, never>
  /** An exit as the effect that ends the same way (in both lines an exit is one). */
  readonly fromExit: <A, E>(exit: Exit<F, A, E>) => Fx<F, A, E>
  readonly exitSucceed: <A>(value: A) => Exit<F, A, never>
  readonly exitFailCause: <E>(cause: Cause<F, E>) => Exit<F, never, E>
  /** `exit` when it is a failure, `undefined` when a success. */
  readonly exitFailure: <A, E>(exit: Exit<F, A, E>) => Exit<F, never, E> | undefined
}

/**
 * A shell: its effects, and its store's side of the writes (`S` the store,
 * `C` a session definition's config, `E` the session's errors, `W` a record
 * as it writes one).
 *
 * @internal
 */
export interface Shell<F extends EffectTypes, S, C, E, W extends Write> extends Effects<F> {
  /**
   * The update of `base` to the group's `data` at `t`: the shell encodes it,
   * the core's `updateRecord` plans the record (a tombstone when the data is
   * the empty session), and `then` goes on with the answer of its
   * compare-and-set on `base.version`, in that answer's step; an encoding
   * error or the store's failure (any cause but a conflict, which is an
   * answer) goes on with `orElse` instead, in the same way. The write needs
   * no handler around it: every way it ends is one of the two.
   */
  readonly writeUpdate: <A, B, E2>(
    config: C,
    store: S,
    base: LoadedSession<A>,
    data: A,
    t: number,
    then: (outcome: Save.CasOutcome, version: number, write: W, tombstone: boolean) => Fx<F, B, E2>,
    orElse: (cause: Cause<F, E>) => Fx<F, B, E2>
  ) => Fx<F, B, E2>
  /** A compare-and-set of the tombstone `record` over `version`, and `then` on its answer. */
  readonly writeTombstone: <B, E2>(
    store: S,
    key: string,
    record: Save.TombstoneRecord,
    version: number,
    then: (outcome: Save.CasOutcome) => Fx<F, B, E2>
  ) => Fx<F, B, E | E2>
  /**
   * The record of a session moved to a new id (`regenerate`, `login`): the
   * request's data and principal over `base`, its deadline the core's
   * `movedExpiry`. An error (too large, a schema refinement) fails the move.
   */
  readonly encodeMove: <A>(config: C, state: MoveState<A>, base: LoadedSession<A>, t: number) => Fx<F, W, E>
  /** Inserts under a fresh id: 256 random bits do not collide, so a conflict is a defect. */
  readonly insertFresh: (store: S, key: string, write: W) => Fx<F, void, E>
  /** A compare-and-set of `write` over `version`; a conflict is an error. */
  readonly update: (store: S, key: string, write: W, version: number) => Fx<F, number, E>
  /** The storage key of the session id `id`. */
  readonly storageKey: (config: C, id: string) => string
  /** Counts (and marks the span of) a move that happened. */
  readonly regenerated: Fx<F, void>
  /** Counts (and marks the span of) a move undone: the session ended meanwhile. */
  readonly moveUndone: Fx<F, void>
  /** The record under `key` as the ending of a session reads it (absent: `undefined`). */
  readonly loadState: (store: S, key: string) => Fx<F, Save.StoredState | undefined, E>
  /** The live session under `key`; dead, ended and undecodable ones are absent. */
  readonly loadLive: <A>(config: C, store: S, key: string) => Fx<F, LoadedSession<A> | undefined, E>
  readonly remove: (store: S, key: string) => Fx<F, void, E>
  /** The replays of one save over writers of other processes: each run waits its pause, or fails once the budget is spent. */
  readonly replayBudget: (config: C) => Fx<F, void, E>
  /** A group's writes dropped: the session was removed meanwhile. */
  readonly dropped: Fx<F, Save.GroupOutcome>
  /** Counts a logout that ended a session. */
  readonly loggedOut: Fx<F, void>
  /** The tag of a cause's typed failure, for the core to judge (`undefined`: a defect, an interruption). */
  readonly failureTag: (cause: Cause<F, E>) => string | undefined
}

/**
 * A record as the shell writes it; the core reads what it stores.
 *
 * @internal
 */
export interface Write {
  readonly text: string
  readonly expiresAt: number
}

/**
 * An update waiting in its lane to be written with the others.
 *
 * @internal
 */
export interface Waiting<C, X> extends Save.GroupMember<any> {
  /** The session definition's config (the middleware's). */
  readonly config: C
  /** Hands the update its outcome (the first one it is given). */
  readonly settle: (exit: X) => void
}

/**
 * One storage key's saves in this process (the core's lanes; its `Turn` is the lock).
 *
 * @internal
 */
export type Lane = Lanes.Lane<Lanes.Turn, Lanes.LaneLast<LoadedSession<any>>, Waiting<any, any>>

const lanesByStore = new WeakMap<object, Lanes.Lanes<Lanes.Turn, Lanes.LaneLast<LoadedSession<any>>, Waiting<any, any>>>()

/**
 * One more user of the lane of `key` in `store` (a save waiting or running:
 * the lane lives as long as one of them, and what the last save stored a
 * second longer, see `Lanes`); `release` (idempotent) ends it.
 *
 * @internal
 */
export const joinLane = (store: object, key: string): { readonly lane: Lane; readonly release: () => void } => {
  let lanes = lanesByStore.get(store)
  if (lanes === undefined) lanesByStore.set(store, lanes = new Lanes.Lanes(() => new Lanes.Turn()))
  return lanes.join(key)
}

/**
 * How many storage keys of `store` have saves waiting or running in this
 * process (for tests: nothing is kept once they are done).
 *
 * @internal
 */
export const coordinatedKeys = (store: object): number => lanesByStore.get(store)?.size ?? 0

/**
 * `self` in the lane's turn, taken at once when free; given up however `self` ends.
 *
 * @internal
 */
export const withTurn = <F extends EffectTypes, S, C, E, W extends Write, B, E2>(fx: Shell<F, S, C, E, W>, turn: Lanes.Turn, self: Fx<F, B, E2>): Fx<F, B, E2> =>
  fx.uninterruptibleMask((restore) => {
    const use = fx.ensuring(restore(self), fx.sync(() => turn.release()))
    return turn.tryTake() ? use : fx.andThen(restore(fx.waitTurn(turn)), use)
  })

/**
 * Runs `f` once the saves of this process to `key` that came first are done.
 *
 * @internal
 */
export const withLane = <F extends EffectTypes, S extends object, C, E, W extends Write, B, E2>(
  fx: Shell<F, S, C, E, W>,
  store: S,
  key: string,
  f: (lane: Lane) => Fx<F, B, E2>
): Fx<F, B, E2> =>
  fx.suspend(() => {
    const { lane, release } = joinLane(store, key)
    return fx.ensuring(withTurn(fx, lane.lock, fx.suspend(() => f(lane))), fx.sync(release))
  })

/**
 * Ends the session stored under `key`, `hops` moves away from where the
 * request started: runs the core's steps (`Save.nextEndStep`) against the
 * store — a compare-and-set to an ended tombstone (the logout always wins),
 * the session it had moved to, then the record itself.
 *
 * @internal
 */
export const endSession = <F extends EffectTypes, S extends object, C, E, W extends Write>(
  shell: Shell<F, S, C, E, W>,
  config: C,
  store: S,
  lane: Lane,
  key: string,
  known: Save.StoredState | undefined,
  t: number,
  hops: number
): Fx<F, void, E> => {
  lane.last = "Ended"
  const pause = shell.replayBudget(config)
  const run = (step: Save.EndStep): Fx<F, void, E> => {
    switch (step._tag) {
      case "Done":
        return shell.void
      case "Load":
        return shell.flatMap(shell.loadState(store, key), (state) => run(Save.nextEndStep({ _tag: "Loaded", state }, t, hops)))
      case "WriteTombstone": {
        const state = step.state
        return shell.writeTombstone(store, key, step.record, state.version, (outcome) => {
          const next = run(Save.nextEndStep({ _tag: "Wrote", outcome, state }, t, hops))
          return outcome === "Written" && hops === 0 ? shell.andThen(shell.loggedOut, next) : next
        })
      }
      case "Pause":
        return shell.flatMap(pause, () => run(Save.nextEndStep({ _tag: "Paused" }, t, hops)))
      case "EndMoved": {
        const movedTo = step.key
        return shell.flatMap(
          withLane(shell, store, movedTo, (next) => endSession(shell, config, store, next, movedTo, undefined, t, hops + 1)),
          () => run(Save.nextEndStep({ _tag: "EndedMoved" }, t, hops))
        )
      }
      case "Remove":
        return shell.remove(store, key)
    }
  }
  return run(Save.nextEndStep({ _tag: "Start", known }, t, hops))
}

/**
 * An encoding's answer to a question of the save plan: the answer, or the
 * error that encoding the data met.
 *
 * @internal
 */
export type Checked<E> = boolean | { readonly error: E }

/**
 * The request's session as its save runs: the core's request state, and
 * the shell's own steps for a touch, a new session's insert, an ending and
 * the check of a login against `revokeAll`.
 *
 * @internal
 */
export interface Saving<F extends EffectTypes, S, C, E, A> {
  readonly config: C
  readonly store: S
  readonly state: RequestState<A>
  /** Whether the request's data is what `loaded` stored (it encodes the data). */
  readonly unchanged: (loaded: LoadedSession<A>) => Checked<E>
  /** Whether the request's data is the empty session with no principal (it encodes the data). */
  readonly emptied: () => Checked<E>
  readonly touch: (loaded: LoadedSession<A>, t: number) => Fx<F, Save.CookieDecision, E>
  readonly insertNew: (t: number) => Fx<F, Save.CookieDecision, E>
  readonly endPrevious: (t: number) => Fx<F, void, E>
  /** `save` of a login or a move from a session of `from`, checked against a `revokeAll` begun meanwhile. */
  readonly guardLogin: (from: string | null, save: Fx<F, Save.CookieDecision, E>) => Fx<F, Save.CookieDecision, E>
}

const expireCookie: Save.CookieDecision = { _tag: "Expire" }

/**
 * Saves what the request did at `t`, as the core's plan says (`planSave`);
 * says what the response's cookie must do.
 *
 * @internal
 */
export const save = <F extends EffectTypes, S extends object, C, E, W extends Write, A>(
  shell: Shell<F, S, C, E, W>,
  session: Saving<F, S, C, E, A>,
  t: number
): Fx<F, Save.CookieDecision, E> => {
  const state = session.state
  // the plan asks for these only when it needs them (they encode the data);
  // an encoding failure fails the save
  let failure: { readonly error: E } | undefined
  const answer = (checked: Checked<E>): boolean => {
    if (typeof checked === "boolean") return checked
    failure = checked
    return false
  }
  const plan = state.plan((loaded) => answer(session.unchanged(loaded)), () => answer(session.emptied()))
  if (failure !== undefined) return shell.fail(failure.error)
  switch (plan._tag) {
    case "Nothing":
      return shell.succeed(noCookie)
    case "Touch":
      return session.touch(state.loaded!, t)
    case "Update":
      // written with the updates of this process to the session that wait with it (group commit)
      return updateInGroup(shell, session.store, session.config, state, state.loaded!, t)
    case "Rotate": {
      // regenerate / login: the data moves to a new id
      const loaded = state.loaded!
      return session.guardLogin(
        loaded.principal,
        withLane(shell, session.store, loaded.key, (lane) => rotate(shell, session.config, session.store, lane, state, loaded, t))
      )
    }
    case "New":
      // the stored session (and whatever it moved to meanwhile) ends first
      return shell.andThen(
        plan.end ? session.endPrevious(t) : shell.void,
        plan.insert ? session.guardLogin(null, session.insertNew(t)) : shell.succeed(plan.expireCookie ? expireCookie : noCookie)
      )
  }
}

/**
 * What a move needs of the request: its data, replayed over a newer
 * version, its principal and the id it moves to.
 *
 * @internal
 */
export type MoveState<A> = Pick<RequestState<A>, "data" | "principal" | "replayOver" | "targetId">

const noCookie: Save.CookieDecision = { _tag: "None" }

/**
 * Moves the session to a new id (regenerate, login): the new record is
 * inserted, then the old one is replaced by a tombstone pointing at it with a
 * compare-and-set on the version the request loaded; the core says what each
 * answer means (`Save.afterMove`). A concurrent write of the old session is
 * replayed into the new one; a concurrent logout or `revokeAll` of the old
 * session removes the new one again before the response is sent, so nothing
 * revoked lives on.
 *
 * @internal
 */
export const rotate = <F extends EffectTypes, S, C, E, W extends Write, A>(
  shell: Shell<F, S, C, E, W>,
  config: C,
  store: S,
  lane: Lane,
  state: MoveState<A>,
  previous: LoadedSession<A>,
  t: number
): Fx<F, Save.CookieDecision, E> => {
  const handed = Lanes.handoff(lane.last, config, previous.version)
  if (handed === "Ended") return shell.succeed(noCookie)
  if (handed !== undefined) state.data = state.replayOver(handed.data)
  const id = state.targetId()
  const newKey = shell.storageKey(config, id)
  const pause = shell.replayBudget(config)
  // ended meanwhile (a logout, `revokeAll`): the new id must not outlive it;
  // the cookie is left alone (the logout's response expired it, and the
  // browser may hold a newer one by now)
  const undo = (): Fx<F, Save.CookieDecision, E> => {
    lane.last = "Ended"
    return shell.andThen(shell.remove(store, newKey), shell.as(shell.moveUndone, noCookie))
  }
  const pointFrom = (base: LoadedSession<A>, moved: W, movedVersion: number): Fx<F, Save.CookieDecision, E> =>
    shell.writeTombstone(store, base.key, Save.tombstoneRecord(newKey, base.expiresAt, t), base.version, (outcome) => {
      const next = Save.afterMove(outcome)
      if (next === "Moved") {
        lane.last = "Ended"
        return shell.as(shell.regenerated, { _tag: "Set", id, expiresAt: moved.expiresAt } as const)
      }
      if (next === "Undo") return undo()
      return shell.flatMap(shell.andThen(pause, shell.loadLive<A>(config, store, base.key)), (fresh) => {
        if (fresh === undefined) return undo()
        state.data = state.replayOver(fresh.data)
        return shell.flatMap(shell.encodeMove(config, state, fresh, t), (moved) =>
          shell.flatMap(
            // only this request knows the new key: a conflict there is the store's fault
            shell.tapError(shell.update(store, newKey, moved, movedVersion), () => shell.remove(store, newKey)),
            (version) => pointFrom(fresh, moved, version)
          ))
      })
    })
  const base = handed ?? previous
  return shell.flatMap(
    shell.encodeMove(config, state, base, t),
    (moved) => shell.flatMap(shell.insertFresh(store, newKey, moved), () => pointFrom(base, moved, 1))
  )
}

// --- Group commit ------------------------------------------------------------

/** Updates of one session definition form a group: another's data cannot be replayed over it. */
const sameDefinition = (first: Waiting<unknown, unknown>, other: Waiting<unknown, unknown>): boolean =>
  first.config === other.config

/**
 * The updates of a group, written with one compare-and-set over the newest
 * data (the core's `groupStart`, `replayGroup`, `updateRecord`,
 * `afterUpdate`): replayed again over a concurrent writer's data (another
 * process) until the replay budget is spent. Goes on with `done` (the
 * group's outcome) or `failed` (why it could not be written) in the step
 * that decided it: a group written at the first try costs no runtime step
 * but its store call's.
 */
const writeGroup = <F extends EffectTypes, S, C, E, W extends Write, B, E2>(
  shell: Shell<F, S, C, E, W>,
  store: S,
  lane: Lane,
  group: ReadonlyArray<Waiting<C, unknown>>,
  done: (outcome: Save.GroupOutcome) => Fx<F, B, E2>,
  failed: (cause: Cause<F, E>) => Fx<F, B, E2>
): Fx<F, B, E2> => {
  const config = group[0].config
  // made at the first replay (most writes have none), then shared by the replays of the group
  let pause: Fx<F, void, E> | undefined
  const { base: newest, t } = Save.groupStart(group)
  const dropped = (): Fx<F, B, E2> => {
    // removed or expired meanwhile (a logout won the race): never recreate it
    lane.last = "Ended"
    return shell.flatMap(shell.dropped, done)
  }
  const attempt = (base: LoadedSession<unknown>): Fx<F, B, E2> => {
    const key = base.key
    const data = Save.replayGroup(group, base.data)
    return shell.writeUpdate(config, store, base, data, t, (outcome, version, write, tombstone): Fx<F, B, E2> => {
      const next = Save.afterUpdate(outcome, tombstone)
      switch (next) {
        case "Saved":
          lane.last = { definition: config, session: Save.savedSession(base, version, write.expiresAt, data, write.text) }
          return done(Save.groupOutcome(next, write.expiresAt))
        case "Ended":
          lane.last = "Ended"
          return shell.matchCause(shell.remove(store, key), {
            onFailure: failed,
            onSuccess: () => done(Save.groupOutcome(next, write.expiresAt))
          })
        case "Dropped":
          return dropped()
        case "Replay":
          return shell.matchCause(shell.andThen(pause ??= shell.replayBudget(config), shell.loadLive(config, store, key)), {
            onFailure: failed,
            onSuccess: (fresh) => fresh !== undefined ? attempt(fresh) : dropped()
          })
      }
    }, failed)
  }
  const handed = Lanes.handoff(lane.last, config, newest.version)
  return handed === "Ended" ? dropped() : attempt(handed ?? newest)
}

/**
 * Writes one group, hands each of its updates its outcome, and goes on with
 * `then` in the same step. A group whose data cannot be encoded is written
 * one update at a time, so that only the update at fault fails
 * (`Save.afterGroupFailure`). A defect of this code while handing out the
 * outcomes goes to `abandon`, which must leave nothing queued waiting.
 */
const writeAndSettle = <F extends EffectTypes, S, C, E, W extends Write, B, E2>(
  shell: Shell<F, S, C, E, W>,
  store: S,
  lane: Lane,
  group: ReadonlyArray<Waiting<C, Exit<F, Save.CookieDecision, E>>>,
  then: () => Fx<F, B, E2>,
  abandon: (cause: Cause<F, never>) => Fx<F, B, E2>
): Fx<F, B, E2> => {
  const settleAll = (exitOf: (member: Waiting<C, Exit<F, Save.CookieDecision, E>>) => Exit<F, Save.CookieDecision, E>): Fx<F, B, E2> => {
    try {
      for (const member of group) member.settle(exitOf(member))
    } catch (defect) {
      return abandon(shell.die(defect))
    }
    return then()
  }
  return writeGroup(
    shell,
    store,
    lane,
    group,
    (outcome) => settleAll((member) => shell.exitSucceed(Save.cookieAfterGroup(member, outcome))),
    (cause) => {
      if (Save.afterGroupFailure(group.length, shell.failureTag(cause)) === "OneAtATime") {
        const oneAtATime = shell.forEachDiscard(group, (member) =>
          writeGroup(
            shell,
            store,
            lane,
            [member],
            (outcome) => shell.sync(() => member.settle(shell.exitSucceed(Save.cookieAfterGroup(member, outcome)))),
            (alone) => shell.sync(() => member.settle(shell.exitFailCause(alone)))
          ))
        return shell.matchCause(oneAtATime, { onFailure: abandon, onSuccess: then })
      }
      return settleAll(() => shell.exitFailCause(cause))
    }
  )
}

/**
 * An update, written together with the updates of this process to the
 * same session that wait with it (group commit, the core's `UpdateQueue`
 * and group rules): the queued updates are written group by group, each
 * group with one compare-and-set (`writeAndSettle`). A burst of writes to
 * one session costs a few round trips instead of one each, and no
 * request's writes can be lost to another's.
 *
 * The request that finds no writer running writes its own group on its
 * own fiber (`writeInline`): an update with no other in the way costs no
 * fiber, no `Deferred` and no finalizer. The others wait for the writer.
 *
 * @internal
 */
export const updateInGroup = <F extends EffectTypes, S extends object, C, E, W extends Write, A>(
  shell: Shell<F, S, C, E, W>,
  store: S,
  config: C,
  request: Save.GroupMember<A>["request"],
  loaded: LoadedSession<A>,
  t: number
): Fx<F, Save.CookieDecision, E> =>
  // queued and written in one uninterruptible region, entered before
  // anything is queued: an update is not queued by a request interrupted
  // before it, and one queued is written (a queue whose writer never ran
  // would leave every later update of the session waiting); only the wait
  // for another request's writer can be interrupted
  shell.uninterruptibleMask((restore) => {
    const { lane, release } = joinLane(store, loaded.key)
    let outcome: Exit<F, Save.CookieDecision, E> | undefined
    let done: ((exit: Exit<F, Save.CookieDecision, E>) => void) | undefined
    const settle = (exit: Exit<F, Save.CookieDecision, E>) => {
      if (outcome !== undefined) return
      outcome = exit
      if (done !== undefined) done(exit)
    }
    // the lane is kept by the writer while updates wait (the queue's writer
    // takes this request's use of the lane over, and no update waits
    // without one), so a waiting request needs no finalizer of its own
    if (!lane.updates.enqueue({ config, request, loaded, t, settle })) {
      release()
      const deferred = shell.deferred<Save.CookieDecision, E>()
      done = deferred.done
      return restore(deferred.await)
    }
    return writeInline(shell, store, lane, release, () => outcome!)
  })

/**
 * The writer, on the fiber of the request that started it: takes the lane's
 * turn, writes the first group (this request's update, and those queued
 * behind it meanwhile), and leaves what queued during the write to a writer
 * fiber (`writeQueued`), so the request answers once its own write is done.
 * Runs in `updateInGroup`'s uninterruptible region, like the writer fiber it
 * replaces: a request interrupted here (a client gone) still writes its
 * update and those of the others in its group. `release` ends the request's
 * use of the lane (or hands it to the writer fiber).
 */
const writeInline = <F extends EffectTypes, S, C, E, W extends Write>(
  shell: Shell<F, S, C, E, W>,
  store: S,
  lane: Lane,
  release: () => void,
  outcome: () => Exit<F, Save.CookieDecision, E>
): Fx<F, Save.CookieDecision, E> => {
  const result = (): Fx<F, Save.CookieDecision, E> => shell.fromExit(outcome())
  // the turn ends: what queued during the write goes to a writer fiber
  const finish = (): Fx<F, Save.CookieDecision, E> => {
    lane.lock.release()
    const next = lane.updates.nextGroup(sameDefinition)
    if (next === undefined) {
      release()
      return result()
    }
    return shell.andThen(shell.forkDetach(writeQueued(shell, store, lane, release, next)), result())
  }
  const write = () => {
    const group = lane.updates.nextGroup(sameDefinition)!
    return writeAndSettle(shell, store, lane, group, finish, (cause) => {
      // a defect of this code: nothing queued may be left waiting
      for (const member of group) member.settle(shell.exitFailCause(cause))
      for (const member of lane.updates.abandon()) member.settle(shell.exitFailCause(cause))
      lane.lock.release()
      release()
      return result()
    })
  }
  // the turn is taken at once unless a move or a logout of this key runs
  return lane.lock.tryTake() ? write() : shell.andThen(shell.waitTurn(lane.lock), shell.suspend(write))
}

/**
 * A writer fiber: writes the updates queued in the lane, group after group
 * from `first`, until none is left (the core's `UpdateQueue`), in the lane's
 * turn. On its own fiber: an interrupted request (a client that went away)
 * does not stop the writes of the others.
 */
const writeQueued = <F extends EffectTypes, S, C, E, W extends Write>(
  shell: Shell<F, S, C, E, W>,
  store: S,
  lane: Lane,
  release: () => void,
  first: ReadonlyArray<Waiting<C, Exit<F, Save.CookieDecision, E>>>
): Fx<F, void> => {
  const from = (group: ReadonlyArray<Waiting<C, Exit<F, Save.CookieDecision, E>>> | undefined): Fx<F, void> =>
    group === undefined
      ? shell.void
      : writeAndSettle(shell, store, lane, group, () => from(lane.updates.nextGroup(sameDefinition)), shell.failCause)
  return shell.onExit(
    withTurn(shell, lane.lock, from(first)),
    // one finalizer for both: a defect or an interruption must not leave the
    // queued requests waiting, and the writer's use of the lane ends
    (exit) =>
      shell.sync(() => {
        const failure = shell.exitFailure(exit)
        if (failure !== undefined) {
          for (const member of first) member.settle(failure)
          for (const member of lane.updates.abandon()) member.settle(failure)
        }
        release()
      })
  )
}
