/**
 * Lanes, without Effect: the saves of one process to one storage key take
 * turns in the key's lane, and each leaves the next what it stored. A lane
 * exists only while someone is in it — a save waiting or running, or a
 * request that loaded the session and may save it — so nothing is kept for
 * a key once its last user is gone. Each Effect line brings its own lock.
 *
 * @internal
 */

/**
 * The lane of one key.
 *
 * @internal
 */
export interface Lane<Lock, Last> {
  readonly lock: Lock
  /** Users waiting in or holding the lane. */
  users: number
  /** What the last save in the lane left stored (see `save.ts`'s `handoffFrom`). */
  last: Last | undefined
}

/**
 * The lanes of one store in this process.
 *
 * @internal
 */
export class Lanes<Lock, Last> {
  constructor(private readonly makeLock: () => Lock) {}
  private readonly byKey = new Map<string, Lane<Lock, Last>>()

  /**
   * One more user of the lane of `key` (made if there is none); `release`
   * (idempotent) ends its use, and the lane with its last user.
   */
  join(key: string): { readonly lane: Lane<Lock, Last>; readonly release: () => void } {
    let lane = this.byKey.get(key)
    if (lane === undefined) this.byKey.set(key, lane = { lock: this.makeLock(), users: 0, last: undefined })
    const held = lane
    held.users++
    let released = false
    return {
      lane: held,
      release: () => {
        if (released) return
        released = true
        if (--held.users === 0 && this.byKey.get(key) === held) this.byKey.delete(key)
      }
    }
  }

  /** How many keys have a lane (nothing is kept once its users are gone). */
  get size(): number {
    return this.byKey.size
  }
}
