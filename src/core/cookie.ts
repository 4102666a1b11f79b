/**
 * The session cookie's rules, without Effect: which attribute sets a browser
 * drops, and the headers a response that sets the cookie must carry so that
 * a shared cache never hands it to another user.
 *
 * @internal
 */

/**
 * The attributes of the session cookie that the rules look at.
 *
 * @internal
 */
export interface CookieAttributes {
  readonly name: string
  readonly secure: boolean
  readonly path: string
  readonly domain?: string | undefined
  readonly sameSite: "lax" | "strict" | "none"
}

/**
 * Why browsers would drop a cookie with these attributes, or `undefined`
 * when they keep it: the `__Host-` and `__Secure-` name prefixes bind the
 * attributes, and `SameSite=None` needs `Secure`. Checked when a middleware
 * is built, so a misconfiguration fails at startup rather than silently.
 *
 * @internal
 */
export const cookieAttributesProblem = (cookie: CookieAttributes): string | undefined => {
  if (cookie.name.startsWith("__Host-") && (!cookie.secure || cookie.path !== "/" || cookie.domain !== undefined)) {
    return `a cookie named "${cookie.name}" must be Secure, have Path=/ and no Domain (browsers drop it otherwise)`
  }
  if (cookie.name.startsWith("__Secure-") && !cookie.secure) {
    return `a cookie named "${cookie.name}" must be Secure (browsers drop it otherwise)`
  }
  if (cookie.sameSite === "none" && !cookie.secure) return "SameSite=None requires Secure (browsers drop it otherwise)"
  return undefined
}

const directiveName = (directive: string): string => directive.split("=", 1)[0].trim().toLowerCase()

/**
 * The `Cache-Control` a response that sets or expires the session cookie
 * must carry, given the one the app set, or `undefined` when it may stay:
 * `private` when there is none; `public` and `s-maxage` give way to
 * `private`; `private` or `no-store` already there keep the header as it is.
 *
 * @internal
 */
export const privateCacheControl = (current: string | undefined): string | undefined => {
  // (most responses have none: no splitting, no arrays)
  if (current === undefined) return "private"
  const directives = current.split(",").map((d) => d.trim()).filter((d) => d.length > 0)
  if (directives.length === 0) return "private"
  if (directives.some((d) => ["private", "no-store"].includes(directiveName(d)))) return undefined
  const shared = new Set(["public", "s-maxage"])
  return ["private", ...directives.filter((d) => !shared.has(directiveName(d)))].join(", ")
}

/**
 * The `Vary` of a response that depends on the session, given the app's, or
 * `undefined` when it already varies on `Cookie` (or on everything).
 *
 * @internal
 */
export const varyOnCookie = (current: string | undefined): string | undefined => {
  if (current === undefined) return "Cookie"
  const values = current.split(",").map((v) => v.trim().toLowerCase()).filter((v) => v.length > 0)
  if (values.length === 0) return "Cookie"
  return values.includes("cookie") || values.includes("*") ? undefined : `${current}, Cookie`
}
