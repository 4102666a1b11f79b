/**
 * What a store's own tests write and read with: storage keys of fresh ids,
 * the writes a store takes, and the clock set to the wall clock's time, so
 * that expiries a server keeps by its own clock agree with the TestClock's.
 */
import { Effect, Option } from "effect"
import { TestClock } from "effect/testing"
import * as Ids from "../../../src/core/ids.js"
import type { StorageKey } from "../../src/SessionId.js"
import type { SessionWrite } from "../../src/SessionStore.js"

const unpeppered = Ids.storageKeyFunction()

/** The storage key of an id, without a pepper (as the stores' layers get keys by default). */
export const storageKey = (id: string): StorageKey => unpeppered(id) as StorageKey

/** The storage key of an id no other test uses. */
export const freshKey = (): StorageKey => storageKey(Ids.generateId())

/** A write of `text` until `expiresAt`, bound to `principal` when one is given. */
export const write = (text: string, expiresAt: number, principal?: string): SessionWrite => ({
  text,
  expiresAt,
  principal: Option.fromUndefinedOr(principal)
})

/** Moves the TestClock to the wall clock's time. */
export const wallClock = Effect.suspend(() => TestClock.setTime(Date.now()))

/** The time on the Clock of the test, in epoch milliseconds. */
export const now = Effect.clockWith((clock) => clock.currentTimeMillis)
