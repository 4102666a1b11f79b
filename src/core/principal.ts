/**
 * Principals: the account a session is bound to by `login`.
 *
 * @internal
 */

/**
 * The longest principal, in UTF-16 code units: what every store holds
 * exactly (the SQL stores keep it in a 255-character column).
 *
 * @internal
 */
export const maxPrincipalLength = 255

/**
 * Why a value cannot be a principal, or `undefined` when it can: a string of
 * 1 to `maxPrincipalLength` code units. Anything else — an object from
 * unchecked JSON, an array — is refused before any store sees it.
 *
 * @internal
 */
export const principalProblem = (principal: unknown): string | undefined => {
  if (typeof principal === "string" && principal.length > 0 && principal.length <= maxPrincipalLength) return undefined
  const what = typeof principal !== "string"
    ? `a ${principal === null ? "null" : Array.isArray(principal) ? "array" : typeof principal}`
    : principal.length === 0
    ? "an empty string"
    : `${principal.length} characters long`
  return `a principal must be a string of 1 to ${maxPrincipalLength} characters; got ${what}`
}
