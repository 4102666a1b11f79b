/**
 * Lanes, without Effect: the saves of one process to one storage key take
 * turns in the key's lane, and each leaves the next what it stored. A lane
 * exists only while a save of its key waits or runs; what the last one
 * stored is kept a second longer (`handoverKeptFor`), then nothing is kept
 * for the key. A lane's `Turn` is its lock: taken at once when free, in the
 * order asked otherwise.
 *
 * @internal
 */
import { handoffFrom } from "./save.js"

/**
 * What the last save in a lane left: the session it stored, with the
 * session definition (the middleware) that wrote it — another definition's
 * save cannot start from data of another schema —, or that it ended the
 * session.
 *
 * @internal
 */
export type LaneLast<S> = { readonly definition: unknown; readonly session: S } | "Ended"

/**
 * The session a save of `definition` that loaded `loadedVersion` should
 * start from: what the previous save in the lane left when it is newer
 * (`handoffFrom`), `"Ended"` when a save before it ended the session.
 *
 * @internal
 */
export const handoff = <S extends { readonly version: number }>(
  last: LaneLast<S> | undefined,
  definition: unknown,
  loadedVersion: number
): S | "Ended" | undefined => {
  if (last === "Ended") return "Ended"
  return last === undefined || last.definition !== definition ? undefined : handoffFrom(last.session, loadedVersion)
}

/**
 * The turn of a lane: one save at a time, the others in the order they
 * asked. Taking a free turn is synchronous (no runtime step in either
 * shell, where an Effect semaphore costs several on every write); a save
 * that must wait gives a `wake` callback, called once the turn is its own.
 * The shells wrap `wait` in their own callback effect, whose interruption
 * runs the returned `cancel`.
 *
 * @internal
 */
export class Turn {
  private held = false
  // (a Set keeps the order of insertion: the first waiter is the oldest;
  // made on the first wait, as most turns never have one)
  private waiting: Set<() => void> | undefined

  /** Takes the turn if it is free; `true` when it is now the caller's. */
  tryTake(): boolean {
    if (this.held) return false
    this.held = true
    return true
  }

  /**
   * Waits for the turn: `wake` is called (once) when it is the waiter's,
   * which then holds it. `cancel` ends the wait; when the turn was already
   * handed to the waiter, it is passed on (the waiter gives it up unused).
   */
  wait(wake: () => void): { readonly cancel: () => void } {
    let handed = false
    const waiter = () => {
      handed = true
      wake()
    }
    const waiting = this.waiting ??= new Set()
    waiting.add(waiter)
    return {
      cancel: () => {
        if (waiting.delete(waiter)) return
        if (handed) {
          handed = false
          this.release()
        }
      }
    }
  }

  /** Gives the turn up: to the oldest waiter, or free. */
  release(): void {
    if (this.waiting !== undefined) {
      for (const next of this.waiting) {
        this.waiting.delete(next)
        next()
        return
      }
    }
    this.held = false
  }

  /** Whether someone holds the turn (for tests). */
  get isHeld(): boolean {
    return this.held
  }
}

/**
 * The lane of one key.
 *
 * @internal
 */
export interface Lane<Lock, Last, Waiting = unknown> {
  readonly lock: Lock
  /** Users waiting in or holding the lane. */
  users: number
  /** What the last save in the lane left stored (see `save.ts`'s `handoffFrom`). */
  last: Last | undefined
  /** Updates waiting to be written together (group commit, see `save.ts`). */
  readonly updates: UpdateQueue<Waiting>
}

/**
 * How long what the last save of a key left stays to be handed over once
 * its lane is empty, and how many keys' hand-overs are kept at most.
 *
 * @internal
 */
export const handoverKeptFor = 1000
/** @internal */
export const handoversKeptAtMost = 10_000

/** A lane, with when its last user left (kept for its hand-over meanwhile). */
interface Kept<Lock, Last, Waiting> extends Lane<Lock, Last, Waiting> {
  idleSince: number
}

/**
 * The lanes of one store in this process.
 *
 * A request that loaded a session does not join its lane until it saves:
 * what the last save of the key left is kept for `handoverKeptFor` ms after
 * its lane empties, so that a save which ended between a request's load and
 * its save still hands its result over (the request's compare-and-set is
 * not lost to it). Joining from the load did the same with no time bound,
 * but every reading request then had to leave the lane at its end, and the
 * cleanup registered for that cost a read more than the rest of the lane
 * (docs/performance.md, issue 16). A request slower than that bound loses
 * its compare-and-set and replays over a reload instead: slower, not wrong.
 *
 * An empty lane that has something to hand over stays in the table, idle,
 * and the next save of its key takes it up again: a save of a key written a
 * moment ago changes no table. A `Map` whose entries come and go one at a
 * time reallocates its storage (a call into V8's runtime) whenever a delete
 * empties it: about 1 µs per delete, timed in the app (docs/performance.md,
 * "A table that empties").
 * Idle lanes are dropped by a sweep at most once per `handoverKeptFor` (those
 * idle that long), and at once beyond `handoversKeptAtMost` (the oldest
 * lanes first).
 *
 * @internal
 */
export class Lanes<Lock, Last, Waiting = unknown> {
  constructor(
    private readonly makeLock: () => Lock,
    private readonly now: () => number = Date.now
  ) {}
  /** Lanes with users, and idle lanes kept for their hand-over (in the order made). */
  private readonly byKey = new Map<string, Kept<Lock, Last, Waiting>>()
  /** How many lanes of `byKey` are idle (checked against the bound on every leave). */
  private idle = 0
  private sweptAt = 0

  /**
   * One more user of the lane of `key` (made if there is none, or taken up
   * again from idle with what its last save left, if recent); `release`
   * (idempotent) ends its use, and the lane's with its last user.
   */
  join(key: string): { readonly lane: Lane<Lock, Last, Waiting>; readonly release: () => void } {
    let lane = this.byKey.get(key)
    if (lane === undefined) {
      this.byKey.set(key, lane = { lock: this.makeLock(), users: 0, last: undefined, updates: new UpdateQueue(), idleSince: 0 })
    } else if (lane.users === 0) {
      this.idle--
      if (this.now() - lane.idleSince >= handoverKeptFor) lane.last = undefined
    }
    const held = lane
    held.users++
    let released = false
    return {
      lane: held,
      release: () => {
        if (released) return
        released = true
        if (--held.users === 0) this.leave(key, held)
      }
    }
  }

  /** The last user of `lane` left: kept idle when it has something to hand over. */
  private leave(key: string, lane: Kept<Lock, Last, Waiting>): void {
    if (lane.last === undefined) {
      this.byKey.delete(key)
      return
    }
    const now = this.now()
    lane.idleSince = now
    this.idle++
    if (this.idle > handoversKeptAtMost || now - this.sweptAt >= handoverKeptFor) this.sweep(now)
  }

  /** Drops idle lanes: those idle for `handoverKeptFor`, then the oldest beyond `handoversKeptAtMost`. */
  private sweep(now: number): void {
    const expired = now - this.sweptAt >= handoverKeptFor
    if (expired) this.sweptAt = now
    for (const [key, lane] of this.byKey) {
      if (this.idle <= handoversKeptAtMost && !expired) return
      if (lane.users === 0 && (this.idle > handoversKeptAtMost || now - lane.idleSince >= handoverKeptFor)) {
        this.byKey.delete(key)
        this.idle--
      }
    }
  }

  /** How many keys' hand-overs are kept (for tests). */
  get keptHandovers(): number {
    const now = this.now()
    let kept = 0
    for (const lane of this.byKey.values()) {
      if (lane.users === 0 && now - lane.idleSince < handoverKeptFor) kept++
    }
    return kept
  }

  /** How many keys have a lane with users (for tests: nothing is kept once its users are gone, but a hand-over). */
  get size(): number {
    let used = 0
    for (const lane of this.byKey.values()) if (lane.users > 0) used++
    return used
  }
}

/**
 * The updates of one lane waiting to be written (group commit): one writer
 * at a time takes them group by group, so a burst of writes to one session
 * costs a few round trips instead of one each. The queue says when a writer
 * must start and when it stops; running the writer is the shell's.
 *
 * @internal
 */
export class UpdateQueue<U> {
  private waiting: Array<U> = []
  private writing = false

  /**
   * Queues `update`. `true` when no writer runs: the caller must start one
   * (the queue counts it as running from now on).
   */
  enqueue(update: U): boolean {
    this.waiting.push(update)
    if (this.writing) return false
    return this.writing = true
  }

  /**
   * The next group to write: the first waiting update and those right after
   * it that `sameGroup` accepts with it (updates of one session definition;
   * another definition's data cannot be replayed over it). `undefined` when
   * none waits, and the writer stops — checked and given up in one step, so
   * an update queued after this starts a writer of its own.
   */
  nextGroup(sameGroup: (first: U, other: U) => boolean): Array<U> | undefined {
    if (this.waiting.length === 0) {
      this.writing = false
      return undefined
    }
    const first = this.waiting[0]
    let size = 1
    while (size < this.waiting.length && sameGroup(first, this.waiting[size])) size++
    if (size < this.waiting.length) return this.waiting.splice(0, size)
    // all of them (most often the one update): the array itself, a new one for the next
    const group = this.waiting
    this.waiting = []
    return group
  }

  /**
   * Every update still waiting, the writer stopped: it ended without
   * finishing (a defect, an interruption), and they must not wait forever.
   */
  abandon(): Array<U> {
    this.writing = false
    const waiting = this.waiting
    this.waiting = []
    return waiting
  }

  /** How many updates wait. */
  get size(): number {
    return this.waiting.length
  }
}
