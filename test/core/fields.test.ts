/**
 * The rule `Session.Tag` holds a session's fields to (src/core/fields.ts):
 * the words both lines refuse a required field with. The type error is
 * tested by each line's type tests, the exception by its session tests.
 */
import { describe, expect, it } from "vitest"
import * as SessionFields from "../../src/core/fields.js"

describe("the fields rule", () => {
  it("says what to change", () => {
    expect(SessionFields.fieldsRule).toBe("every session field must be optional or have a default")
  })

  it("names the session whose empty data does not decode, and the rule", () => {
    expect(SessionFields.emptyDoesNotDecode("app/Session")).toBe(
      "effect-session: app/Session: every session field must be optional or have a default; {} does not decode:"
    )
  })
})
