/**
 * Settings every bench server shares, read from the environment the driver
 * (`bench/run.ts`) sets. Every server keeps its sessions under its own key
 * prefix on the same private Redis, with the same idle lifetime.
 */

const required = (name: string): string => {
  const value = process.env[name]
  if (value === undefined || value === "") {
    throw new Error(`bench server: environment variable ${name} is not set (start the servers through bench/run.ts)`)
  }
  return value
}

/** Loopback port the HTTP server listens on. */
export const port = Number(required("PORT"))

/** `redis://127.0.0.1:<port>` of the bench's private Redis. */
export const redisUrl = required("REDIS_URL")

/** Idle lifetime of a session, the same for every server: 14 days (effect-session's default). */
export const idleTimeoutMs = 14 * 24 * 60 * 60 * 1000

/** Cookie name used by every server. */
export const cookieName = "session"

/** Signing secret for the servers whose library signs cookies (express-session, @fastify/session). */
export const cookieSecret = "bench-only-secret-bench-only-secret-0123456789"

/** The string the setup route stores and `/get` returns. */
export const storedValue = "hello"
