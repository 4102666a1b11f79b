/**
 * The core's cookie rules (src/core/cookie.ts), added for the Effect 4
 * shell: plain functions, tested without Effect.
 */
import { describe, expect, it } from "vitest"
import { cookieAttributesProblem, privateCacheControl, varyOnCookie } from "../../src/core/cookie.js"

const cookie = { name: "session", secure: true, path: "/", sameSite: "lax" } as const

describe("cookieAttributesProblem", () => {
  it("accepts the defaults and plain HTTP without a prefix", () => {
    expect(cookieAttributesProblem(cookie)).toBeUndefined()
    expect(cookieAttributesProblem({ ...cookie, secure: false })).toBeUndefined()
  })
  it("refuses what browsers drop: __Host- without Secure, Path=/ or with a Domain; __Secure- without Secure; SameSite=None without Secure", () => {
    expect(cookieAttributesProblem({ ...cookie, name: "__Host-s", secure: false })).toMatch(/must be Secure/)
    expect(cookieAttributesProblem({ ...cookie, name: "__Host-s", path: "/app" })).toMatch(/Path=\//)
    expect(cookieAttributesProblem({ ...cookie, name: "__Host-s", domain: "example.com" })).toMatch(/no Domain/)
    expect(cookieAttributesProblem({ ...cookie, name: "__Host-s" })).toBeUndefined()
    expect(cookieAttributesProblem({ ...cookie, name: "__Secure-s", secure: false })).toMatch(/must be Secure/)
    expect(cookieAttributesProblem({ ...cookie, sameSite: "none", secure: false })).toMatch(/SameSite=None requires Secure/)
  })
})

describe("privateCacheControl", () => {
  it("adds private when the app set nothing", () => {
    expect(privateCacheControl(undefined)).toBe("private")
    expect(privateCacheControl(" ")).toBe("private")
  })
  it("replaces public and s-maxage, keeps the other directives", () => {
    expect(privateCacheControl("public, max-age=60, s-maxage=600")).toBe("private, max-age=60")
    expect(privateCacheControl("max-age=60")).toBe("private, max-age=60")
  })
  it("leaves a header that keeps shared caches out already", () => {
    expect(privateCacheControl("no-store")).toBeUndefined()
    expect(privateCacheControl("Private, max-age=5")).toBeUndefined()
  })
})

describe("varyOnCookie", () => {
  it("adds Cookie, once", () => {
    expect(varyOnCookie(undefined)).toBe("Cookie")
    expect(varyOnCookie("Accept-Encoding")).toBe("Accept-Encoding, Cookie")
    expect(varyOnCookie("accept-encoding, cookie")).toBeUndefined()
    expect(varyOnCookie("*")).toBeUndefined()
  })
})
