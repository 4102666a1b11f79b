/**
 * What a session failure tells the client and the log, without Effect: the
 * status and body each error deserves (the body says only that much; the
 * message, which names the backend, is for the log), and the words of an
 * error's causes, which are what tell a person what to fix.
 *
 * @internal
 */

/**
 * The errors a request can fail with because of its session, by tag.
 *
 * @internal
 */
export type SessionFailureTag = "SessionStoreError" | "SessionConflict" | "SessionTooLarge" | "SessionEncodeError"

/**
 * The answer to a session failure: 503 when the store failed (the request
 * may succeed later), 503 with `Retry-After: 1` when concurrent writers kept
 * winning, 413 when the session would be over `maxSize`, 500 when a value
 * does not match the session schema (a bug in the app); and whether it is
 * logged as an error (the operator must act) or a warning.
 *
 * @internal
 */
export const failureAnswer = (tag: SessionFailureTag): {
  readonly status: number
  readonly body: string
  readonly headers: Readonly<Record<string, string>>
  readonly logAs: "error" | "warning"
} => {
  switch (tag) {
    case "SessionStoreError":
      return { status: 503, body: "Session store unavailable", headers: {}, logAs: "error" }
    case "SessionConflict":
      return { status: 503, body: "Session busy, try again", headers: { "retry-after": "1" }, logAs: "warning" }
    case "SessionTooLarge":
      return { status: 413, body: "Session too large", headers: {}, logAs: "warning" }
    case "SessionEncodeError":
      return { status: 500, body: "Internal Server Error", headers: {}, logAs: "error" }
  }
}

// drivers wrap once or twice; a cycle (an error that is its own cause) must not loop
const maxCauseDepth = 6

const messageOf = (cause: unknown): string | undefined => {
  if (cause instanceof AggregateError && cause.message === "" && cause.errors.length > 0) {
    // Node's connection errors for a host with several addresses
    return cause.errors.map((error) => messageOf(error) ?? String(error)).join("; ")
  }
  if (typeof cause === "object" && cause !== null && "message" in cause && typeof cause.message === "string") {
    const code = "code" in cause && (typeof cause.code === "string" || typeof cause.code === "number") ? String(cause.code) : undefined
    const text = cause.message.trim()
    if (code === undefined || text.includes(code)) return text === "" ? undefined : text
    return text === "" ? code : `${text} (${code})`
  }
  return cause === undefined || cause === null ? undefined : String(cause)
}

/**
 * The messages of an error and its causes, outermost first, a message
 * already contained in the one before it left out: a client's "Failed to
 * execute statement" is followed by the driver's own words.
 *
 * @internal
 */
export const describeCause = (cause: unknown): string => {
  const messages: Array<string> = []
  const seen = new Set<unknown>()
  let current = cause
  for (let depth = 0; depth < maxCauseDepth && current !== undefined && current !== null && !seen.has(current); depth++) {
    seen.add(current)
    const message = messageOf(current)
    if (message !== undefined && !(messages.at(-1)?.includes(message) ?? false)) messages.push(message)
    current = typeof current === "object" && "cause" in current ? current.cause : undefined
  }
  return messages.length === 0 ? String(cause) : messages.join(": ")
}

/**
 * What a lost conditional write says: which operation met what.
 *
 * @internal
 */
export const conflictMessage = (reason: "Exists" | "VersionMismatch" | "Missing"): string =>
  reason === "Exists"
    ? "insert: a live session is already stored under this key"
    : reason === "VersionMismatch"
    ? "update: the stored session has a newer version"
    : "update: no live session is stored under this key"
