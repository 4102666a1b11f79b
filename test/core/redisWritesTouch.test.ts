/**
 * The core's decision after a touch script (`src/core/redisWrites.ts`),
 * which the Effect 3 line acts on without a conflict branch: a touch never
 * meets one.
 */
import { describe, expect, it } from "vitest"
import type { Settled } from "../../src/core/redisWrites.js"
import { afterTouch } from "../../src/core/redisWrites.js"

describe("afterTouch", () => {
  it("an extended record without a principal: true, nothing to raise", () => {
    expect(afterTouch(1)).toEqual({ _tag: "Done", value: true, raise: undefined })
  })

  it("no live record: false", () => {
    expect(afterTouch(0)).toEqual({ _tag: "Done", value: false, raise: undefined })
  })

  it("an extended record with a principal: true, and the principal raised", () => {
    expect(afterTouch([1, "alice"])).toEqual({ _tag: "Done", value: true, raise: "alice" })
  })

  it("any other reply is malformed, never a conflict", () => {
    for (const reply of [2, "OK", [0, "alice"], [1, 2], null]) {
      const decision: Settled<boolean> = afterTouch(reply)
      expect(decision._tag).toBe("Malformed")
    }
  })
})
