/**
 * One deadline for many calls that share a timeout, on one wall-clock timer.
 *
 * A store's commands all get the same timeout, so their deadlines come in the
 * order they are sent: the calls in flight form a queue whose head expires
 * first. One timer, armed for the head, replaces the timer per command that
 * a client's own command timeout (or a `setTimeout` around each promise)
 * costs: a timer object, a timer-list insert and its removal on every round
 * trip of every request. A call that ends is marked, and dropped from the
 * head as soon as every call before it has ended too; replies usually come
 * in the order the commands were sent, so the queue holds little more than
 * the calls in flight.
 *
 * On a monotonic clock (`performance.now()`), not Effect's `Clock`: the
 * deadline bounds real I/O and must fire even when a `TestClock` drives the
 * application's time, and a wall-clock jump must not move it.
 *
 * @internal
 */
export class Deadlines {
  private head: Pending | undefined
  private tail: Pending | undefined
  private timer: ReturnType<typeof setTimeout> | undefined

  constructor(readonly millis: number) {}

  /**
   * Registers a call; `expire` runs if it has not ended `millis` from now
   * (`closed` false), or when the deadlines are closed before it ends
   * (`closed` true). Returns the handle `end` takes.
   */
  start(expire: (closed: boolean) => void): Pending {
    const pending = new Pending(performance.now() + this.millis, expire)
    if (this.tail === undefined) {
      this.head = this.tail = pending
    } else {
      this.tail.next = pending
      this.tail = pending
    }
    if (this.timer === undefined) this.arm(this.millis)
    return pending
  }

  /**
   * Ends a call. Returns false when it had already expired, in which case
   * its outcome is to be ignored.
   */
  end(pending: Pending): boolean {
    if (pending.state !== running) return false
    pending.state = ended
    this.dropEnded()
    return true
  }

  /**
   * Stops the timer and expires every call still running, so that nothing
   * waits on a store that is gone.
   */
  close(): void {
    if (this.timer !== undefined) clearTimeout(this.timer)
    this.timer = undefined
    let pending = this.head
    this.head = this.tail = undefined
    while (pending !== undefined) {
      if (pending.state === running) {
        pending.state = timedOut
        pending.expire(true)
      }
      pending = pending.next
    }
  }

  private dropEnded(): void {
    let head = this.head
    while (head !== undefined && head.state !== running) head = head.next
    this.head = head
    if (head === undefined) this.tail = undefined
  }

  private arm(delay: number): void {
    const timer = setTimeout(this.sweep, Math.max(1, delay))
    // a pending call does not keep the process alive; its connection does
    timer.unref?.()
    this.timer = timer
  }

  private readonly sweep = (): void => {
    this.timer = undefined
    const now = performance.now()
    this.dropEnded()
    while (this.head !== undefined && this.head.deadline <= now) {
      const expired = this.head
      expired.state = timedOut
      this.dropEnded()
      expired.expire(false)
    }
    if (this.head !== undefined) this.arm(this.head.deadline - now)
  }
}

const running = 0
const ended = 1
const timedOut = 2

/** @internal */
export class Pending {
  state: typeof running | typeof ended | typeof timedOut = running
  next: Pending | undefined = undefined
  constructor(readonly deadline: number, readonly expire: (closed: boolean) => void) {}
}
