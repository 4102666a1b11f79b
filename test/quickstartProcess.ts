/**
 * The quickstart as a user runs it: a child process started like `npm start`
 * (shared by the quickstart and start-up tests).
 */
import { type ChildProcess, spawn } from "node:child_process"
import { createServer } from "node:net"
import { join } from "node:path"

const root = join(import.meta.dirname, "..")

/** A loopback port that was free a moment ago (closed before it is returned). */
export const freePort = (): Promise<number> =>
  new Promise((resolve, reject) => {
    const server = createServer()
    server.once("error", reject)
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as { port: number }
      server.close(() => resolve(port))
    })
  })

export interface Process {
  readonly url: string
  readonly child: ChildProcess
  readonly output: () => string
  readonly exited: () => boolean
  readonly stop: () => Promise<void>
}

/**
 * What to run: a file of this repository under tsx, or an npm script of a
 * package (the Effect 4 line's `npm start`).
 */
export type Program = string | { readonly npm: string; readonly cwd: string }

const nameOf = (program: Program): string => typeof program === "string" ? program : `npm ${program.npm}`

/** Spawns an example (default: the quickstart) on `port`, without waiting for it. */
export const spawnExample = (
  env: Record<string, string>,
  port: number,
  program: Program = "examples/quickstart.ts"
): Process => {
  const options: { env: NodeJS.ProcessEnv; stdio: ["ignore", "pipe", "pipe"] } = {
    env: { ...process.env, ...env, PORT: String(port) },
    stdio: ["ignore", "pipe", "pipe"]
  }
  // npm runs a shell that runs tsx that runs node: in a process group of its
  // own, stopping the group stops the server too
  const child = typeof program === "string"
    ? spawn(process.execPath, ["--import", "tsx", program], { ...options, cwd: root })
    : spawn("npm", ["run", program.npm], { ...options, cwd: program.cwd, detached: true })
  let output = ""
  child.stdout!.on("data", (chunk) => output += chunk)
  child.stderr!.on("data", (chunk) => output += chunk)
  const exited = () => child.exitCode !== null || child.signalCode !== null
  const stop = () =>
    new Promise<void>((resolve) => {
      if (exited()) return resolve()
      child.once("exit", () => resolve())
      if (typeof program === "string") child.kill("SIGTERM")
      else process.kill(-child.pid!, "SIGTERM")
    })
  return { url: `http://127.0.0.1:${port}`, child, output: () => output, exited, stop }
}

/** The port was taken between `freePort` closing it and the example binding it. */
export class PortTaken extends Error {}

const launch = async (env: Record<string, string>, port: number, program?: Program): Promise<Process> => {
  const running = spawnExample(env, port, program)
  const name = nameOf(program ?? "quickstart")
  const deadline = Date.now() + 60_000
  while (!/Listening on/.test(running.output())) {
    if (running.exited()) {
      if (/EADDRINUSE/.test(running.output())) throw new PortTaken(`port ${port} was taken:\n${running.output()}`)
      throw new Error(`${name} exited (${running.child.exitCode}):\n${running.output()}`)
    }
    if (Date.now() > deadline) {
      await running.stop()
      throw new Error(`${name} did not start within 60 s:\n${running.output()}`)
    }
    await new Promise((r) => setTimeout(r, 100))
  }
  return running
}

/**
 * Starts an example on a free port and waits until it listens. The examples
 * take their port from `PORT` (no 0 for "any"), so a port is chosen, closed
 * and handed over: test files running in parallel may take it meanwhile, and
 * then another is tried.
 */
export const start = async (env: Record<string, string>, program?: Program): Promise<Process> => {
  for (let attempt = 1;; attempt++) {
    try {
      return await launch(env, await freePort(), program)
    } catch (error) {
      if (!(error instanceof PortTaken) || attempt === 5) throw error
    }
  }
}

/** What became of one request sent while an example starts. */
export interface Probe {
  /** ms after the spawn when the request was sent */
  readonly sentAt: number
  readonly outcome: "refused" | "hung" | `answered ${number}` | `failed: ${string}`
}

// A well-formed id nobody issued: every probe loads from the store.
const unknownSession = `session=${"A".repeat(43)}`

const probe = async (url: string, sentAt: number, budgetMs: number): Promise<Probe> => {
  try {
    const res = await fetch(url, { headers: { cookie: unknownSession }, signal: AbortSignal.timeout(budgetMs) })
    await res.text()
    return { sentAt, outcome: `answered ${res.status}` }
  } catch (error) {
    if (error instanceof DOMException && error.name === "TimeoutError") return { sentAt, outcome: "hung" }
    const code = (error as { cause?: { code?: string } }).cause?.code
    return code === "ECONNREFUSED" ? { sentAt, outcome: "refused" } : { sentAt, outcome: `failed: ${String(code ?? error)}` }
  }
}

/**
 * Spawns an example and sends it a request every 50 ms from the spawn (each
 * with `budgetMs` to be answered) until it has listened for 1.5 s or exited,
 * then waits for every request to settle (shared by both lines' start-up tests).
 */
export const probeStartup = async (env: Record<string, string>, budgetMs: number, program?: Program) => {
  const port = await freePort()
  const running = spawnExample(env, port, program)
  const spawnedAt = performance.now()
  const probes: Array<Promise<Probe>> = []
  let listeningAt: number | undefined
  try {
    while (performance.now() - spawnedAt < 90_000) {
      probes.push(probe(`${running.url}/`, Math.round(performance.now() - spawnedAt), budgetMs))
      await new Promise((r) => setTimeout(r, 50))
      if (listeningAt === undefined && /Listening on/.test(running.output())) listeningAt = performance.now()
      if (running.exited() || (listeningAt !== undefined && performance.now() - listeningAt > 1_500)) break
    }
    const exited = running.exited()
    return { results: await Promise.all(probes), output: running.output(), exited }
  } finally {
    await running.stop()
  }
}

/** One request with an optional cookie header (both lines' HttpApi example tests). */
export const call = async (url: string, init: RequestInit & { readonly cookie?: string | undefined } = {}) => {
  const headers = new Headers(init.headers)
  if (init.cookie !== undefined) headers.set("cookie", init.cookie)
  const res = await fetch(url, { ...init, headers })
  const body = await res.text()
  return { status: res.status, body, setCookie: res.headers.getSetCookie() }
}

/** A JSON POST with an optional cookie header. */
export const postJson = (url: string, body: unknown, cookie?: string) =>
  call(url, { method: "POST", body: JSON.stringify(body), headers: { "content-type": "application/json" }, cookie })

export const get = async (url: string, cookie?: string) => {
  const res = await fetch(url, { redirect: "manual", headers: cookie ? { cookie } : {} })
  return { status: res.status, body: await res.text(), headers: res.headers, setCookie: res.headers.getSetCookie() }
}

export const sessionCookie = (setCookie: ReadonlyArray<string>) => {
  const line = setCookie.find((l) => l.startsWith("session="))
  return line === undefined ? undefined : line.split(";")[0]
}

/** The part of a test runner's `expect` the walk-through uses. */
export type Expect = (actual: unknown) => {
  readonly toBe: (expected: unknown) => void
  readonly toEqual: (expected: unknown) => void
  readonly toMatch: (expected: RegExp) => void
  readonly toBeDefined: () => void
  readonly not: { readonly toBe: (expected: unknown) => void }
}

/**
 * The quickstart's behaviour as Flask-Session's seed program shows it: the
 * contract both Effect lines' quickstarts meet. `expect` is the calling test
 * runner's own (each line runs its own vitest).
 */
export const walkThrough = async (url: string, expect: Expect) => {
  const anonymous = await get(`${url}/`)
  expect(anonymous.status).toBe(200)
  expect(anonymous.body).toBe(`You are not logged in. <a href="/login">Login</a>`)
  expect(anonymous.setCookie).toEqual([])

  const login = await get(`${url}/login`)
  expect(login.status).toBe(302)
  expect(login.headers.get("location")).toBe("/")
  const cookie = sessionCookie(login.setCookie)
  expect(cookie).toMatch(/^session=[A-Za-z0-9_-]{43}$/)
  expect(login.setCookie[0]).toMatch(/HttpOnly/)

  const hello = await get(`${url}/`, cookie)
  expect(hello.body).toBe(`Hello, testuser! <a href="/logout">Logout</a>`)
  expect(hello.headers.get("vary")).toBe("Cookie")

  const malformed = await get(`${url}/`, "session=../../etc/passwd")
  expect(malformed.status).toBe(200)
  expect(malformed.body).toBe(`You are not logged in. <a href="/login">Login</a>`)

  const relogin = await get(`${url}/login`, cookie)
  const rotated = sessionCookie(relogin.setCookie)
  expect(rotated).toBeDefined()
  expect(rotated).not.toBe(cookie)
  expect((await get(`${url}/`, cookie)).body).toMatch(/^You are not logged in/)

  const logout = await get(`${url}/logout`, rotated)
  expect(logout.status).toBe(302)
  expect(logout.setCookie.some((l) => l.startsWith("session=;") && /Max-Age=0/.test(l))).toBe(true)
  expect((await get(`${url}/`, rotated)).body).toBe(`You are not logged in. <a href="/login">Login</a>`)
  return rotated
}
