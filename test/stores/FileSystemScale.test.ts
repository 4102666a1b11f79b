import { FileSystem } from "@effect/platform"
import { NodeContext, NodeFileSystem, NodePath } from "@effect/platform-node"
import { afterAll, describe, expect, it } from "@effect/vitest"
import { Effect, Layer, Logger, Option, TestClock } from "effect"
import * as NFS from "node:fs"
import * as OS from "node:os"
import * as NPath from "node:path"
import * as FileSystemStore from "../../src/FileSystemStore.js"
import { SessionStoreError } from "../../src/SessionError.js"
import * as SessionId from "../../src/SessionId.js"
import type { StorageKey } from "../../src/SessionId.js"

const root = NFS.mkdtempSync(NPath.join(OS.tmpdir(), "effect-session-fs-scale-"))
afterAll(() => NFS.rmSync(root, { recursive: true, force: true }))

let counter = 0
const freshDirectory = () => NPath.join(root, `store-${++counter}`)

const key = (): StorageKey => SessionId.storageKey(SessionId.unsafeGenerate())
const write = (expiresAt: number, principal?: string) => ({
  data: new TextEncoder().encode("x"),
  expiresAt,
  principal: Option.fromNullable(principal)
})
const minute = 60_000
const principalDirectories = (directory: string) =>
  NFS.readdirSync(NPath.join(directory, "principals")).filter((n) => !n.endsWith(".lock"))

/** The Node file system, counting `readFile` calls. */
const countingFileSystem = (reads: { count: number }) =>
  Layer.merge(
    Layer.effect(
      FileSystem.FileSystem,
      Effect.map(FileSystem.FileSystem, (fs) => ({
        ...fs,
        readFile: (path: string) => {
          reads.count++
          return fs.readFile(path)
        }
      }))
    ).pipe(Layer.provide(NodeFileSystem.layer)),
    NodePath.layer
  )

describe("FileSystemStore maxSessions", () => {
  it.scoped("refuses anonymous sessions from 90% of the cap and any session at the cap, with a clear error", () =>
    Effect.gen(function*() {
      const directory = freshDirectory()
      const { index, store } = yield* FileSystemStore.make({ directory, maxSessions: 10, fsync: false })
      const anonymous = Array.from({ length: 9 }, key)
      for (const k of anonymous) yield* store.insert(k, write(10 * minute))
      const refused = yield* Effect.flip(store.insert(key(), write(10 * minute)))
      expect(refused).toBeInstanceOf(SessionStoreError)
      expect(refused.message).toMatch(/holds 9 sessions; sessions without a principal are refused from 90% of maxSessions \(10\)/)
      // a login still gets in
      const alice = key()
      yield* store.insert(alice, write(10 * minute, "alice"))
      expect(yield* index.keys("alice")).toEqual([alice])
      const full = yield* Effect.flip(store.insert(key(), write(10 * minute, "bob")))
      expect(full.message).toMatch(/holds 10 sessions, maxSessions is 10/)
      // updates of stored sessions are not inserts: they go through at the cap
      expect(yield* store.update(anonymous[0]!, write(10 * minute), 1)).toBe(2)
      // removals make room again
      yield* store.remove(anonymous[0]!)
      yield* store.remove(anonymous[1]!)
      yield* store.insert(key(), write(10 * minute))
      expect(NFS.readdirSync(directory).filter((n) => /^[\w-]{43}$/.test(n))).toHaveLength(9)
    }).pipe(Effect.provide(NodeContext.layer)))

  it.scoped("counts the sessions already in the directory when it starts, and what the sweep finds", () =>
    Effect.gen(function*() {
      const directory = freshDirectory()
      const first = yield* FileSystemStore.make({ directory, fsync: false })
      for (let i = 0; i < 5; i++) yield* first.store.insert(key(), write(10 * minute))
      const capped = yield* FileSystemStore.make({ directory, maxSessions: 5, fsync: false })
      expect((yield* Effect.flip(capped.store.insert(key(), write(10 * minute, "carol")))).message).toMatch(
        /holds 5 sessions/
      )
      // another process's removals are seen at the next sweep
      const names = NFS.readdirSync(directory).filter((n) => /^[\w-]{43}$/.test(n))
      yield* first.store.remove(names[0] as StorageKey)
      yield* capped.sweep
      yield* capped.store.insert(key(), write(10 * minute, "carol"))
    }).pipe(Effect.provide(NodeContext.layer)))
})

describe("FileSystemStore principal directories", () => {
  it.scoped("a principal's directory goes with its last session: remove, logout, removeAll and the sweep", () =>
    Effect.gen(function*() {
      const directory = freshDirectory()
      const { index, store, sweep } = yield* FileSystemStore.make({ directory, fsync: false, cleanupInterval: "1 hour" })
      const t = yield* Effect.clockWith((clock) => clock.currentTimeMillis)
      const [a1, a2, b1, c1, d1] = [key(), key(), key(), key(), key()]
      yield* store.insert(a1, write(t + 10 * minute, "alice"))
      yield* store.insert(a2, write(t + 10 * minute, "alice"))
      yield* store.insert(b1, write(t + 10 * minute, "bob"))
      yield* store.insert(c1, write(t + 10 * minute, "carol"))
      yield* store.insert(d1, write(t + 1_000, "dave"))
      expect(principalDirectories(directory)).toHaveLength(4)

      yield* store.remove(a1)
      expect(principalDirectories(directory)).toHaveLength(4) // alice still has a2
      yield* store.remove(a2)
      expect(principalDirectories(directory)).toHaveLength(3)
      // logout: the session stays, without a principal
      yield* store.update(b1, write(t + 10 * minute), 1)
      expect(principalDirectories(directory)).toHaveLength(2)
      expect(yield* index.removeAll("carol")).toBe(1)
      expect(principalDirectories(directory)).toHaveLength(1)
      yield* TestClock.adjust("3 minutes")
      expect(yield* sweep).toBe(1)
      expect(principalDirectories(directory)).toEqual([])
      // and comes back with the next login
      yield* store.insert(a1, write(t + 10 * minute, "alice"))
      expect(yield* index.keys("alice")).toEqual([a1])
    }).pipe(Effect.provide(NodeContext.layer)))
})

describe("FileSystemStore logs and errors", () => {
  it.scoped("name a session by the first 8 characters of its key, never the whole key", () => {
    const lines: Array<string> = []
    const logger = Logger.make(({ cause, message }) => lines.push(`${String(message)} ${String(cause)}`))
    return Effect.gen(function*() {
      const directory = freshDirectory()
      const { store, sweep } = yield* FileSystemStore.make({
        directory,
        lockTimeout: "100 millis",
        cleanupInterval: "1 hour"
      })
      const t = yield* Effect.clockWith((clock) => clock.currentTimeMillis)
      const [corrupt, swept, held, directoryInPlace] = [key(), key(), key(), key()]
      const errors: Array<string> = []
      // what a logger may print of an error: its message, or its fields as JSON
      const failures: Array<unknown> = []
      const record = (error: { readonly message: string }) => {
        failures.push(error)
        errors.push(error.message)
      }
      // an unreadable file: load fails, remove and the sweep log it
      NFS.writeFileSync(NPath.join(directory, corrupt), "not a session")
      NFS.writeFileSync(NPath.join(directory, swept), "not a session either")
      record(yield* Effect.flip(store.load(corrupt)))
      yield* store.remove(corrupt)
      // a lock held by another process
      yield* store.insert(held, write(t + 10 * minute))
      NFS.writeFileSync(NPath.join(directory, `${held}.lock`), "another process")
      record(yield* Effect.flip(store.update(held, write(t + 10 * minute), 1)))
      // a file system error, whose platform message names the path
      NFS.mkdirSync(NPath.join(directory, directoryInPlace))
      record(yield* Effect.flip(store.load(directoryInPlace)))
      // the sweep logs what it cannot read and goes on
      NFS.rmSync(NPath.join(directory, `${held}.lock`))
      yield* sweep

      expect(errors[0]).toMatch(/not readable/)
      expect(errors[1]).toMatch(/still held/)
      expect(errors[2]).toMatch(/EISDIR|directory/i)
      expect(NFS.existsSync(NPath.join(directory, swept))).toBe(false)
      const keys = [corrupt, swept, held, directoryInPlace]
      for (const k of [corrupt, swept, directoryInPlace]) {
        expect(lines.some((line) => line.includes(k.slice(0, 8)))).toBe(true)
      }
      for (const [k, text] of [[corrupt, errors[0]], [held, errors[1]], [directoryInPlace, errors[2]]] as const) {
        expect(text).toContain(k.slice(0, 8))
      }
      for (const text of [...errors, ...lines, ...failures.map((f) => JSON.stringify(f))]) {
        for (const k of keys) expect(text).not.toContain(k)
      }
    }).pipe(Effect.provide(Logger.replace(Logger.defaultLogger, logger)), Effect.provide(NodeContext.layer))
  })
})

describe("FileSystemStore sweep", () => {
  const sweepReads = (live: number, expired: number) =>
    Effect.gen(function*() {
      const reads = { count: 0 }
      const directory = freshDirectory()
      return yield* Effect.gen(function*() {
        const { store, sweep } = yield* FileSystemStore.make({ directory, fsync: false, cleanupInterval: "1 hour" })
        // the first sweep of a new directory indexes it (empty here)
        yield* sweep
        const t = yield* Effect.clockWith((clock) => clock.currentTimeMillis)
        yield* Effect.forEach(
          Array.from({ length: live }, (_, i) => write(t + 60 * minute, i % 10 === 0 ? `user-${i % 50}` : undefined)),
          (w) => store.insert(key(), w),
          { concurrency: 16, discard: true }
        )
        yield* Effect.forEach(
          Array.from({ length: expired }, (_, i) => write(t + minute, i % 10 === 0 ? `user-${i % 50}` : undefined)),
          (w) => store.insert(key(), w),
          { concurrency: 16, discard: true }
        )
        yield* TestClock.adjust("3 minutes")
        reads.count = 0
        const removed = yield* sweep
        const remaining = NFS.readdirSync(directory).filter((n) => /^[\w-]{43}$/.test(n)).length
        return { removed, reads: reads.count, remaining }
      }).pipe(Effect.provide(countingFileSystem(reads)))
    })

  it.scoped("reads the sessions that expired, not the live ones: the same reads with 500 or 5,000 live", () =>
    Effect.gen(function*() {
      const small = yield* sweepReads(500, 100)
      const large = yield* sweepReads(5_000, 100)
      expect(small).toEqual({ removed: 100, reads: small.reads, remaining: 500 })
      expect(large).toEqual({ removed: 100, reads: small.reads, remaining: 5_000 })
      // per expired session: its file, read under its lock, and the lock
      // file, read to check it is still this sweep's before it is released
      expect(small.reads).toBe(200)
    }), 120_000)

  it.scoped("a session touched before it expired is not swept, and filed under its new expiry", () =>
    Effect.gen(function*() {
      const directory = freshDirectory()
      const { store, sweep } = yield* FileSystemStore.make({ directory, fsync: false, cleanupInterval: "1 hour" })
      const t = yield* Effect.clockWith((clock) => clock.currentTimeMillis)
      const [touched, updated, left] = [key(), key(), key()]
      for (const k of [touched, updated, left]) yield* store.insert(k, write(t + minute, "erin"))
      yield* store.touch(touched, t + 30 * minute)
      yield* store.update(updated, write(t + 30 * minute, "erin"), 1)
      yield* TestClock.adjust("3 minutes")
      expect(yield* sweep).toBe(1)
      expect(Option.isSome(yield* store.load(touched))).toBe(true)
      expect(Option.isSome(yield* store.load(updated))).toBe(true)
      expect(Option.isNone(yield* store.load(left))).toBe(true)
      yield* TestClock.adjust("30 minutes")
      expect(yield* sweep).toBe(2)
      expect(NFS.readdirSync(directory).filter((n) => /^[\w-]{43}$/.test(n))).toEqual([])
      // the ended minutes' directories go too, a sweep after they emptied
      yield* TestClock.adjust("2 minutes")
      yield* sweep
      expect(NFS.readdirSync(NPath.join(directory, "expiry"))).toEqual([".indexed"])
      expect(principalDirectories(directory)).toEqual([])
    }).pipe(Effect.provide(NodeContext.layer)))

  it.scoped("a directory written without the expiry index is indexed by the first sweep, and swept by expiry after", () =>
    Effect.gen(function*() {
      const directory = freshDirectory()
      const t = yield* Effect.clockWith((clock) => clock.currentTimeMillis)
      const [short, long, expired] = [key(), key(), key()]
      yield* Effect.scoped(Effect.gen(function*() {
        const { store } = yield* FileSystemStore.make({ directory, fsync: false, cleanupInterval: "1 hour" })
        yield* store.insert(short, write(t + 5 * minute, "frank"))
        yield* store.insert(long, write(t + 60 * minute))
        yield* store.insert(expired, write(t + 1_000))
      }))
      // what an earlier version left: session files and markers, no index
      NFS.rmSync(NPath.join(directory, "expiry"), { recursive: true })
      const { index, store, sweep } = yield* FileSystemStore.make({ directory, fsync: false, cleanupInterval: "1 hour" })
      yield* TestClock.adjust("2 minutes")
      expect(yield* sweep).toBe(1)
      expect(NFS.existsSync(NPath.join(directory, "expiry", ".indexed"))).toBe(true)
      yield* TestClock.adjust("5 minutes")
      expect(yield* sweep).toBe(1)
      expect(Option.isNone(yield* store.load(short))).toBe(true)
      expect(yield* index.keys("frank")).toEqual([])
      expect(Option.isSome(yield* store.load(long))).toBe(true)
    }).pipe(Effect.provide(NodeContext.layer)))
})
