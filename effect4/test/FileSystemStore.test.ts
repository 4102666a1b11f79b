/**
 * The file store on a temporary directory: the conformance checks, what is
 * specific to files (maxSessions, the sweep's expiry index, principal
 * directories, locks), and two store instances on one directory as two
 * processes would share it, over HTTP through the session middleware.
 */
import { afterAll, describe, expect, it } from "@effect/vitest"
import { Config, ConfigProvider, Context, Effect, Fiber, Layer, Logger, Option, Schema } from "effect"
import { TestClock } from "effect/testing"
import { HttpRouter, HttpServerResponse } from "effect/http"
import * as NFS from "node:fs"
import * as OS from "node:os"
import * as NPath from "node:path"
import * as Ids from "../../src/core/ids.js"
import * as FileSystemStore from "../src/FileSystemStore.js"
import * as Session from "../src/Session.js"
import { SessionConflict, SessionStoreError } from "../src/SessionError.js"
import type { StorageKey } from "../src/SessionId.js"
import { SessionStore } from "../src/SessionStore.js"
import * as StoreConformance from "../src/StoreConformance.js"
import { get, serve, sessionCookie } from "./utils/server.js"

const root = NFS.mkdtempSync(NPath.join(OS.tmpdir(), "e4fs_"))
afterAll(() => NFS.rmSync(root, { recursive: true, force: true }))

let counter = 0
const freshDirectory = () => NPath.join(root, `store-${++counter}`)

const storageKey = Ids.storageKeyFunction()
const key = (): StorageKey => storageKey(Ids.generateId()) as StorageKey
const write = (text: string, expiresAt: number, principal?: string) => ({
  text,
  expiresAt,
  principal: Option.fromUndefinedOr(principal)
})
const minute = 60_000
const now = Effect.clockWith((clock) => clock.currentTimeMillis)
const sessionFiles = (directory: string) => NFS.readdirSync(directory).filter((n) => /^[\w-]{43}$/.test(n)).sort()
const principalDirectories = (directory: string) =>
  NFS.readdirSync(NPath.join(directory, "principals")).filter((n) => !n.endsWith(".lock"))

class Counter extends Session.Tag<Counter>()("test/FileCounter", {
  count: Schema.Int.pipe(Schema.withDecodingDefault(Effect.succeed(0)))
}) {}

describe("FileSystemStore", () => {
  // the 50-fiber compare-and-set check does some 2,500 file reads and locks
  const checkTimeout = 120_000

  describe("conformance", () => {
    const StoreLive = FileSystemStore.layer({ directory: freshDirectory() })
    for (const check of StoreConformance.checks(StoreLive)) it.effect(check.name, () => check.run, checkTimeout)
    for (const check of StoreConformance.indexChecks(StoreLive)) it.effect(check.name, () => check.run, checkTimeout)
  })

  it.effect("creates the directory (and parents) with mode 0700 and session files with mode 0600, leaving no lock or temp file", () =>
    Effect.gen(function*() {
      const directory = NPath.join(freshDirectory(), "nested", "sessions")
      const { store } = yield* FileSystemStore.make({ directory })
      const k = key()
      yield* store.insert(k, write("x", (yield* now) + minute))
      expect(NFS.statSync(directory).mode & 0o777).toBe(0o700)
      expect(NFS.statSync(NPath.join(directory, "principals")).mode & 0o777).toBe(0o700)
      expect(NFS.statSync(NPath.join(directory, k)).mode & 0o777).toBe(0o600)
      expect(NFS.readdirSync(directory).sort()).toEqual([k, "expiry", "principals"].sort())
      expect(yield* store.load(k)).toEqual(Option.some({ text: "x", version: 1, expiresAt: (yield* now) + minute, principal: Option.none() }))
    }))

  it.effect("building the layer fails with SessionStoreError (setup) when the directory cannot be created", () =>
    Effect.gen(function*() {
      const file = `${freshDirectory()}-file`
      NFS.writeFileSync(file, "not a directory")
      const error = yield* Effect.flip(Effect.provide(Effect.service(SessionStore), FileSystemStore.layer({ directory: NPath.join(file, "sessions") })))
      expect(error).toBeInstanceOf(SessionStoreError)
      expect(error.message).toMatch(/^filesystem store: setup failed/)
    }))

  it.effect("refuses keys that are not 43 base64url characters before touching the file system", () =>
    Effect.gen(function*() {
      const base = freshDirectory()
      const directory = NPath.join(base, "sessions")
      const { store } = yield* FileSystemStore.make({ directory })
      NFS.writeFileSync(NPath.join(base, "secret"), "do not touch")
      for (const hostile of ["../secret", "..", "a".repeat(42), `${"a".repeat(42)}/`]) {
        const error = yield* Effect.flip(store.remove(hostile as StorageKey))
        expect(error.message).toMatch(/not 43 base64url characters/)
        expect(Option.isNone(yield* Effect.orElseSucceed(store.load(hostile as StorageKey), () => Option.none()))).toBe(true)
      }
      expect(NFS.readFileSync(NPath.join(base, "secret"), "utf8")).toBe("do not touch")
    }))

  it.live("layerConfig reads its options from Config: a lock held by another process fails a write after lockTimeout", () =>
    Effect.gen(function*() {
      const directory = freshDirectory()
      const layer = FileSystemStore.layerConfig({
        directory: Config.String("SESSION_DIR"),
        lockTimeout: Config.Duration("SESSION_LOCK_TIMEOUT")
      }).pipe(Layer.provide(ConfigProvider.layer(ConfigProvider.fromUnknown({
        SESSION_DIR: directory,
        SESSION_LOCK_TIMEOUT: "200 millis"
      }))))
      const store = Context.get(yield* Layer.build(layer), SessionStore)
      const k = key()
      yield* store.insert(k, write("x", Date.now() + minute))
      expect(NFS.existsSync(NPath.join(directory, k))).toBe(true)
      NFS.writeFileSync(NPath.join(directory, `${k}.lock`), "another process")
      const error = yield* Effect.flip(store.update(k, write("y", Date.now() + minute), 1))
      expect(error.message).toMatch(/still held by another process after \d+ ms/)
      // the message names the key by its prefix only
      expect(error.message).not.toContain(k)
      // released by its holder, the lock is free again
      NFS.rmSync(NPath.join(directory, `${k}.lock`))
      expect(yield* store.update(k, write("y", Date.now() + minute), 1)).toBe(2)
    }))

  it.live("interrupting a write that waits for a lock stops the wait and leaves no lock of its own behind", () =>
    Effect.gen(function*() {
      const directory = freshDirectory()
      const { store } = yield* FileSystemStore.make({ directory, lockTimeout: "30 seconds" })
      const k = key()
      yield* store.insert(k, write("x", Date.now() + minute))
      const lock = NPath.join(directory, `${k}.lock`)
      NFS.writeFileSync(lock, "another process")
      const waiting = yield* Effect.forkChild(store.update(k, write("y", Date.now() + minute), 1))
      yield* Effect.sleep("100 millis")
      yield* Fiber.interrupt(waiting)
      NFS.rmSync(lock)
      yield* Effect.sleep("100 millis")
      expect(NFS.existsSync(lock)).toBe(false)
      expect(Option.map(yield* store.load(k), (r) => r.text)).toEqual(Option.some("x"))
    }))

  it.effect("errors and logs name a session by the first 8 characters of its key, never the whole key", () => {
    const lines: Array<string> = []
    const logger = Logger.make(({ cause, message }) => lines.push(`${String(message)} ${String(cause)}`))
    return Effect.gen(function*() {
      const directory = freshDirectory()
      const { store, sweep } = yield* FileSystemStore.make({ directory, lockTimeout: "100 millis", cleanupInterval: "1 hour" })
      const t = yield* now
      const [corrupt, swept, held, directoryInPlace] = [key(), key(), key(), key()]
      const errors: Array<SessionStoreError | SessionConflict> = []
      // unreadable files: load fails, remove and the sweep log them
      NFS.writeFileSync(NPath.join(directory, corrupt), "not a session")
      NFS.writeFileSync(NPath.join(directory, swept), "not a session either")
      errors.push(yield* Effect.flip(store.load(corrupt)))
      yield* store.remove(corrupt)
      // a lock held by another process
      yield* store.insert(held, write("x", t + 10 * minute))
      NFS.writeFileSync(NPath.join(directory, `${held}.lock`), "another process")
      errors.push(yield* Effect.flip(store.update(held, write("y", t + 10 * minute), 1)))
      // a system error, whose message may name the path
      NFS.mkdirSync(NPath.join(directory, directoryInPlace))
      errors.push(yield* Effect.flip(store.load(directoryInPlace)))
      NFS.rmSync(NPath.join(directory, `${held}.lock`))
      yield* sweep

      expect(errors.map((e) => e.message)).toEqual([
        expect.stringMatching(/not readable/),
        expect.stringMatching(/still held/),
        expect.stringMatching(/EISDIR|directory/i)
      ])
      expect(errors[0]!.message).toContain(corrupt.slice(0, 8))
      expect(errors[1]!.message).toContain(held.slice(0, 8))
      // the sweep removed the unreadable file, and said which one
      expect(NFS.existsSync(NPath.join(directory, swept))).toBe(false)
      expect(lines.some((line) => line.includes(swept.slice(0, 8)))).toBe(true)
      expect(lines.some((line) => line.includes(corrupt.slice(0, 8)))).toBe(true)
      for (const text of [...errors.map((e) => e.message), ...errors.map((e) => JSON.stringify(e)), ...lines]) {
        for (const k of [corrupt, swept, held, directoryInPlace]) expect(text).not.toContain(k)
      }
    }).pipe(Effect.provide(Logger.layer([logger])))
  })

  it.effect("maxSessions refuses sessions without a principal from 90%, any session at the cap, with a clear error", () =>
    Effect.gen(function*() {
      const directory = freshDirectory()
      const { index, store } = yield* FileSystemStore.make({ directory, maxSessions: 10, fsync: false })
      const expiresAt = (yield* now) + 10 * minute
      const anonymous = Array.from({ length: 9 }, key)
      for (const k of anonymous) yield* store.insert(k, write("a", expiresAt))
      const refused = yield* Effect.flip(store.insert(key(), write("a", expiresAt)))
      expect(refused).toBeInstanceOf(SessionStoreError)
      expect(refused.message).toMatch(/holds 9 sessions; sessions without a principal are refused from 90% of maxSessions \(10\)/)
      // a login still gets in
      const alice = key()
      yield* store.insert(alice, write("a", expiresAt, "alice"))
      expect(yield* index.keys("alice")).toEqual([alice])
      const full = yield* Effect.flip(store.insert(key(), write("b", expiresAt, "bob")))
      expect(full.message).toMatch(/holds 10 sessions, maxSessions is 10/)
      // updates of stored sessions are not inserts: they go through at the cap
      expect(yield* store.update(anonymous[0]!, write("a2", expiresAt), 1)).toBe(2)
      // removals make room again
      yield* store.remove(anonymous[0]!)
      yield* store.remove(anonymous[1]!)
      yield* store.insert(key(), write("c", expiresAt))
      expect(sessionFiles(directory)).toHaveLength(9)
      // a second store starting on the directory counts what is there
      const second = yield* FileSystemStore.make({ directory, maxSessions: 9, fsync: false })
      expect((yield* Effect.flip(second.store.insert(key(), write("d", expiresAt, "dora")))).message).toMatch(/holds 9 sessions/)
    }))

  it.effect("the sweep reads only the sessions filed under ended minutes of the expiry index, never the live ones", () =>
    Effect.gen(function*() {
      const directory = freshDirectory()
      const { store, sweep } = yield* FileSystemStore.make({ directory, fsync: false, cleanupInterval: "1 hour" })
      const t = yield* now
      const live = Array.from({ length: 50 }, key)
      const expiring = Array.from({ length: 10 }, key)
      for (const k of live) yield* store.insert(k, write("live", t + 60 * minute))
      for (const k of expiring) yield* store.insert(k, write("short", t + minute, "erin"))
      // the first sweep lists the directory once (and finds it indexed)
      expect(yield* sweep).toBe(0)
      expect(NFS.existsSync(NPath.join(directory, "expiry", ".indexed"))).toBe(true)
      // live sessions made unreadable: a sweep that read one would delete it
      for (const k of live) NFS.writeFileSync(NPath.join(directory, k), "garbage")
      yield* TestClock.adjust("3 minutes")
      expect(yield* sweep).toBe(10)
      expect(sessionFiles(directory)).toEqual([...live].sort())
      // the expired sessions' markers and principal directory went with them
      expect(principalDirectories(directory)).toEqual([])
      // a later sweep removes the minute's directory it emptied
      yield* TestClock.adjust("2 minutes")
      yield* sweep
      const t2 = yield* now
      expect(NFS.readdirSync(NPath.join(directory, "expiry")).filter((n) => Number(n) * minute < t2 - minute)).toEqual([])
    }))

  it.effect("a principal's directory goes with its last session: remove, logout, removeAll and the sweep", () =>
    Effect.gen(function*() {
      const directory = freshDirectory()
      const { index, store, sweep } = yield* FileSystemStore.make({ directory, fsync: false, cleanupInterval: "1 hour" })
      const expiresAt = (yield* now) + 10 * minute
      const [a, b, c, d, e] = [key(), key(), key(), key(), key()]
      yield* store.insert(a, write("x", expiresAt, "ann"))
      expect(principalDirectories(directory)).toHaveLength(1)
      yield* store.remove(a)
      expect(principalDirectories(directory)).toEqual([])
      // logout: the session stays, without its principal
      yield* store.insert(b, write("x", expiresAt, "ben"))
      yield* store.update(b, write("x", expiresAt), 1)
      expect(principalDirectories(directory)).toEqual([])
      expect(yield* index.keys("ben")).toEqual([])
      yield* store.insert(c, write("x", expiresAt, "cat"))
      yield* store.insert(d, write("x", expiresAt, "cat"))
      expect(yield* index.removeAll("cat")).toBe(2)
      expect(principalDirectories(directory)).toEqual([])
      yield* store.insert(e, write("x", (yield* now) + minute, "dan"))
      yield* TestClock.adjust("3 minutes")
      expect(yield* sweep).toBe(1)
      expect(principalDirectories(directory)).toEqual([])
      expect(sessionFiles(directory)).toEqual([b])
    }))

  it.live("two stores on one directory, as two processes: of racing updates exactly one wins, each time", () =>
    Effect.gen(function*() {
      const directory = freshDirectory()
      const first = yield* FileSystemStore.make({ directory })
      const second = yield* FileSystemStore.make({ directory })
      const expiresAt = Date.now() + 10 * minute
      for (let round = 0; round < 20; round++) {
        const k = key()
        yield* first.store.insert(k, write("0", expiresAt))
        const outcomes = yield* Effect.all(
          [first, second, first, second].map(({ store }, i) => Effect.result(store.update(k, write(`w${i}`, expiresAt), 1))),
          { concurrency: "unbounded" }
        )
        const winners = outcomes.filter((o) => o._tag === "Success")
        expect(winners).toHaveLength(1)
        for (const lost of outcomes.filter((o) => o._tag === "Failure")) {
          expect(lost.failure).toBeInstanceOf(SessionConflict)
          expect((lost.failure as SessionConflict).reason).toBe("VersionMismatch")
        }
        const stored = yield* second.store.load(k)
        expect(Option.map(stored, (r) => r.version)).toEqual(Option.some(2))
      }
    }))

  it.live("200 concurrent increments of one session over HTTP, served by two stores on one directory, all count", () =>
    Effect.gen(function*() {
      const directory = freshDirectory()
      const server = () =>
        serve(
          HttpRouter.add(
            "GET",
            "/incr",
            Effect.andThen(
              Counter.update("count", (n) => n + 1),
              Effect.map(Counter.get("count"), (n) => HttpServerResponse.text(String(n)))
            )
          ).pipe(
            Layer.provide(Counter.middleware({ cookie: { secure: false } }).layer),
            Layer.provide(FileSystemStore.layer({ directory, fsync: false }))
          )
        )
      const [one, two] = [yield* server(), yield* server()]
      const cookie = sessionCookie(yield* get(`${one}/incr`))!
      expect(cookie).toMatch(/^session=[\w-]{43}$/)
      yield* Effect.forEach(
        Array.from({ length: 200 }, (_, i) => i % 2 === 0 ? one : two),
        (base) => get(`${base}/incr`, cookie),
        { concurrency: "unbounded" }
      )
      expect((yield* get(`${two}/incr`, cookie)).body).toBe("202")
      expect(sessionFiles(directory)).toHaveLength(1)
    }), 120_000)
})
