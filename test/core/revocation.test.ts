/**
 * The revocation marker (src/core/revocation.ts and its record format in
 * record.ts): its key, its text, storing it, and the decision that undoes a
 * login racing `revokeAll`.
 */
import { createHash } from "node:crypto"
import { describe, expect, it } from "vitest"
import { idPattern, storageKeyFunction } from "../../src/core/ids.js"
import { readRevocation, readTombstone, revocationText } from "../../src/core/record.js"
import * as Revocation from "../../src/core/revocation.js"

const t = 1_700_000_000_000
const bytes = (text: string) => new TextEncoder().encode(text)

describe("the marker's key", () => {
  it("is a storage key: 43 base64url characters, one per principal", () => {
    const key = Revocation.markerKey("alice")
    expect(key).toMatch(idPattern)
    expect(Revocation.markerKey("alice")).toBe(key)
    expect(Revocation.markerKey("alice ")).not.toBe(key)
    expect(Revocation.markerKey("bob")).not.toBe(key)
  })

  it("is in a domain of its own: not the storage key of the principal taken as an id, nor its plain digest", () => {
    const principal = "a".repeat(43)
    expect(Revocation.markerKey(principal)).not.toBe(storageKeyFunction()(principal))
    expect(Revocation.markerKey(principal)).not.toBe(createHash("sha256").update(principal).digest("base64url"))
    expect(Revocation.markerKey(principal)).toBe(
      createHash("sha256").update(`effect-session/revoked\u0000${principal}`).digest("base64url")
    )
  })
})

describe("the marker's text", () => {
  it("is {\"v\":1,\"revoked\":<ms>}, read back from text or bytes", () => {
    expect(revocationText(t)).toBe(`{"v":1,"revoked":${t}}`)
    expect(readRevocation({ text: revocationText(t) })).toBe(t)
    expect(readRevocation({ data: bytes(revocationText(t)) })).toBe(t)
  })

  it("is not a tombstone, and a session or a tombstone is not a marker", () => {
    expect(readTombstone({ text: revocationText(t), data: new Uint8Array() })).toBeUndefined()
    for (
      const text of [
        `{"v":1,"tombstone":null}`,
        `{"v":1,"data":{"revoked":1},"createdAt":1,"absoluteExpiresAt":2,"principal":"p"}`,
        `{"v":2,"revoked":${t}}`,
        `{"v":1,"revoked":"${t}"}`,
        `{"v":1,"revoked":${t}`,
        `{"v":1,"revoked":${t}${" ".repeat(100)}}`,
        ""
      ]
    ) {
      expect(readRevocation({ text }), text).toBeUndefined()
      expect(readRevocation({ data: bytes(text) }), text).toBeUndefined()
    }
  })
})

describe("storing the marker (nextMarkerStep)", () => {
  const marker = (revokedAt: number, version = 4) => ({ version, text: revocationText(revokedAt) })

  it("inserts one when none is stored, kept for the horizon", () => {
    expect(Revocation.nextMarkerStep(undefined, t)).toEqual({
      _tag: "Insert",
      record: { text: revocationText(t), expiresAt: t + Revocation.markerHorizonMillis }
    })
    expect(Revocation.markerHorizonMillis).toBe(24 * 60 * 60 * 1000)
  })

  it("replaces an earlier one by a compare-and-set on its version", () => {
    expect(Revocation.nextMarkerStep(marker(t - 1), t)).toEqual({
      _tag: "Update",
      version: 4,
      record: { text: revocationText(t), expiresAt: t + Revocation.markerHorizonMillis }
    })
  })

  it("keeps one as late or later", () => {
    expect(Revocation.nextMarkerStep(marker(t), t)).toEqual({ _tag: "Done" })
    expect(Revocation.nextMarkerStep(marker(t + 5), t)).toEqual({ _tag: "Done" })
  })

  it("replaces a record under its key that is not a marker", () => {
    expect(Revocation.nextMarkerStep({ version: 2, data: bytes("junk") }, t)).toMatchObject({ _tag: "Update", version: 2 })
  })
})

describe("a login racing revokeAll", () => {
  it("is checked only when it binds the session to another principal than the record it replaced", () => {
    expect(Revocation.checksLogin(null, "p")).toBe(true)
    expect(Revocation.checksLogin("q", "p")).toBe(true)
    expect(Revocation.checksLogin("p", "p")).toBe(false)
    expect(Revocation.checksLogin(null, null)).toBe(false)
    expect(Revocation.checksLogin("p", null)).toBe(false)
  })

  it("is undone when the marker is as late as its request's start", () => {
    const marker = { text: revocationText(t) }
    expect(Revocation.undoLogin(marker, t - 1)).toBe(true)
    expect(Revocation.undoLogin(marker, t)).toBe(true)
    expect(Revocation.undoLogin({ data: bytes(revocationText(t)) }, t)).toBe(true)
  })

  it("after its save: the new id's record removed and the cookie expired, or the answer kept", () => {
    const set = { _tag: "Set", id: "N".repeat(43), expiresAt: t + 1000 } as const
    const marker = { text: revocationText(t) }
    expect(Revocation.afterLoginSave(set, marker, t)).toEqual({ remove: set.id, cookie: { _tag: "Expire" } })
    expect(Revocation.afterLoginSave(set, marker, t + 1)).toBeUndefined()
    expect(Revocation.afterLoginSave(set, undefined, t)).toBeUndefined()
    // a move undone by a logout stored nothing new: nothing to remove
    expect(Revocation.afterLoginSave({ _tag: "None" }, marker, t)).toBeUndefined()
  })

  it("is kept when its request started after the revocation, or there is no marker", () => {
    expect(Revocation.undoLogin({ text: revocationText(t) }, t + 1)).toBe(false)
    expect(Revocation.undoLogin(undefined, t)).toBe(false)
    expect(Revocation.undoLogin({ text: "junk" }, t)).toBe(false)
  })
})

describe("the login guard's decisions", () => {
  const session = (principal: string | null, startedAt: number | undefined) => ({
    store: undefined,
    config: { storageKey: (id: never) => id },
    state: { principal },
    startedAt
  })

  it("checks a save that binds the session to a new principal, on a store with an index", () => {
    expect(Revocation.loginCheck(session("alice", t), null)).toEqual({ principal: "alice", startedAt: t })
    expect(Revocation.loginCheck(session("alice", t), "bob")).toEqual({ principal: "alice", startedAt: t })
  })

  it("checks nothing when the principal stays, is cleared, or the store keeps no index", () => {
    expect(Revocation.loginCheck(session("alice", t), "alice")).toBeUndefined()
    expect(Revocation.loginCheck(session(null, t), "alice")).toBeUndefined()
    expect(Revocation.loginCheck(session("alice", undefined), null)).toBeUndefined()
  })

  it("reads the principal's marker only when the save set a new cookie (a new record, which it can undo)", () => {
    const check = { principal: "alice", startedAt: t }
    expect(Revocation.markerToRead(check, { _tag: "Set", id: "x", expiresAt: t + 1 })).toBe(Revocation.markerKey("alice"))
    expect(Revocation.markerToRead(check, { _tag: "None" })).toBeUndefined()
    expect(Revocation.markerToRead(check, { _tag: "Expire" })).toBeUndefined()
  })
})
