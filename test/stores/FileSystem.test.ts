import { NodeContext } from "@effect/platform-node"
import { afterAll, describe, expect, it } from "@effect/vitest"
import { Config, ConfigProvider, Context, Effect, Either, Exit, Fiber, Layer, Option, TestClock } from "effect"
import { spawn } from "node:child_process"
import * as NFS from "node:fs"
import * as OS from "node:os"
import * as NPath from "node:path"
import { performance } from "node:perf_hooks"
import { fileURLToPath } from "node:url"
import * as FileSystemStore from "../../src/FileSystemStore.js"
import { SessionConflict, SessionStoreError } from "../../src/SessionError.js"
import * as SessionId from "../../src/SessionId.js"
import type { StorageKey } from "../../src/SessionId.js"
import { SessionIndex, SessionStore } from "../../src/SessionStore.js"
import * as StoreConformance from "../../src/StoreConformance.js"
import { eventually, expectEndedAtTimeout, expectEndedBeforeTimeout } from "../utils/timing.js"

const root = NFS.mkdtempSync(NPath.join(OS.tmpdir(), "effect-session-fs-"))
afterAll(() => NFS.rmSync(root, { recursive: true, force: true }))

let counter = 0
const freshDirectory = () => NPath.join(root, `store-${++counter}`)

const storeLayer = (options: FileSystemStore.Options) =>
  FileSystemStore.layer(options).pipe(Layer.provide(NodeContext.layer))

/** The store of a layer built in the test's scope (so its sweep fiber runs until the test ends). */
const storeIn = (options: FileSystemStore.Options) =>
  Effect.map(Layer.build(storeLayer(options)), Context.get(SessionStore))

const key = (): StorageKey => SessionId.storageKey(SessionId.unsafeGenerate())
const lockOf = (directory: string, k: StorageKey) => NPath.join(directory, `${k}.lock`)

// The store's own index directories (principal markers, expiry buckets):
// left out where a test looks at the session, temp and lock files.
const indexDirectories = new Set(["principals", "expiry"])
const filesIn = (directory: string) => NFS.readdirSync(directory).filter((entry) => !indexDirectories.has(entry)).sort()
const text = (s: string) => new TextEncoder().encode(s)
const read = (bytes: Uint8Array) => new TextDecoder().decode(bytes)
const write = (data: string, expiresAt: number, principal?: string) => ({
  data: text(data),
  expiresAt,
  principal: Option.fromNullable(principal)
})
const now = Effect.clockWith((clock) => clock.currentTimeMillis)
const syncToWallClock = Effect.suspend(() => TestClock.setTime(Date.now()))

const setMtime = (file: string, millisAgo: number) => {
  const at = new Date(Date.now() - millisAgo)
  NFS.utimesSync(file, at, at)
}

describe("FileSystemStore", () => {
  // The 50-fiber compare-and-set check does some 2,500 file reads; on a
  // loaded machine that takes longer than vitest's default timeout.
  const checkTimeout = 120_000

  describe("conformance", () => {
    const directory = freshDirectory()
    for (const check of StoreConformance.checks(storeLayer({ directory }))) {
      it.effect(check.name, () => check.run, checkTimeout)
    }
    for (const check of StoreConformance.indexChecks(storeLayer({ directory }))) {
      it.effect(check.name, () => check.run, checkTimeout)
    }
  })

  describe("conformance without fsync", () => {
    const directory = freshDirectory()
    for (const check of StoreConformance.checks(storeLayer({ directory, fsync: false }))) {
      it.effect(check.name, () => check.run, checkTimeout)
    }
  })

  it.effect("creates the directory (and parents) with mode 0700 and session files with mode 0600", () =>
    Effect.gen(function*() {
      const directory = NPath.join(freshDirectory(), "nested", "sessions")
      const k = key()
      yield* Effect.provide(
        Effect.flatMap(SessionStore, (store) => store.insert(k, write("x", Date.now() + 60_000))),
        storeLayer({ directory })
      )
      expect(NFS.statSync(directory).mode & 0o777).toBe(0o700)
      expect(NFS.statSync(NPath.join(directory, "principals")).mode & 0o777).toBe(0o700)
      expect(NFS.statSync(NPath.join(directory, k)).mode & 0o777).toBe(0o600)
      // the lock was released and no temp file is left behind
      expect(filesIn(directory)).toEqual([k])
    }))

  it.scopedLive("layerConfig reads the options from Config, and each one arrives", () =>
    Effect.gen(function*() {
      const directory = freshDirectory()
      const k = key()
      const lockTimeout = 300
      const layer = FileSystemStore.layerConfig({
        directory: Config.string("SESSION_DIR"),
        lockTimeout: Config.duration("SESSION_LOCK_TIMEOUT")
      }).pipe(
        Layer.provide(NodeContext.layer),
        Layer.provide(Layer.setConfigProvider(ConfigProvider.fromMap(
          new Map([["SESSION_DIR", directory], ["SESSION_LOCK_TIMEOUT", `${lockTimeout} millis`]])
        )))
      )
      const store = Context.get(yield* Layer.build(layer), SessionStore)
      yield* store.insert(k, write("x", Date.now() + 60_000))
      expect(NFS.existsSync(NPath.join(directory, k))).toBe(true)
      // a lock held by another process: the write gives up at the configured
      // lockTimeout, well before the 5 s default
      NFS.writeFileSync(lockOf(directory, k), "another process")
      const started = performance.now()
      const error = yield* Effect.flip(store.update(k, write("y", Date.now() + 60_000), 1))
      expect(error.message).toMatch(/still held/)
      expectEndedAtTimeout(performance.now() - started, lockTimeout, 2_000)
    }))

  it.effect("building the layer fails with SessionStoreError (setup) when the directory cannot be created", () =>
    Effect.gen(function*() {
      const file = NPath.join(freshDirectory() + "-file")
      NFS.writeFileSync(file, "not a directory")
      const layer = storeLayer({ directory: NPath.join(file, "sessions") })
      const error = yield* Effect.flip(Effect.provide(SessionStore, layer))
      expect(error).toBeInstanceOf(SessionStoreError)
      expect(error.operation).toBe("setup")
    }))

  it.scoped("rejects keys that are not 43 base64url characters before touching the file system", () =>
    Effect.gen(function*() {
      const base = freshDirectory()
      const directory = NPath.join(base, "a", "sessions")
      NFS.mkdirSync(NPath.join(base, "a"), { recursive: true })
      const outside = NPath.join(base, "a", "secret")
      NFS.writeFileSync(outside, "do not touch")
      const store = yield* storeIn({ directory })
      const before = {
        inside: NFS.readdirSync(directory).sort(),
        parent: NFS.readdirSync(NPath.join(base, "a")).sort()
      }
      const hostile = [
        "../../etc/passwd",
        "../secret",
        "../" + "A".repeat(40), // 43 characters, but not base64url
        "principals",
        "",
        "A".repeat(42) + "/",
        "A".repeat(44),
        "A".repeat(42) + "\u0000",
        "/" + "A".repeat(42)
      ] as Array<StorageKey>
      const t = yield* now
      for (const bad of hostile) {
        const outcomes: Array<Either.Either<unknown, unknown>> = [
          yield* Effect.either(store.load(bad)),
          yield* Effect.either(store.insert(bad, write("evil", t + 60_000))),
          yield* Effect.either(store.update(bad, write("evil", t + 60_000), 1)),
          yield* Effect.either(store.touch(bad, t + 60_000)),
          yield* Effect.either(store.remove(bad))
        ]
        for (const outcome of outcomes) {
          expect(Either.isLeft(outcome)).toBe(true)
          if (Either.isLeft(outcome)) {
            expect(outcome.left).toBeInstanceOf(SessionStoreError)
            expect((outcome.left as SessionStoreError).message).toMatch(/43 base64url/)
          }
        }
      }
      expect(NFS.readdirSync(directory).sort()).toEqual(before.inside)
      expect(NFS.readdirSync(NPath.join(base, "a")).sort()).toEqual(before.parent)
      expect(NFS.readFileSync(outside, "utf8")).toBe("do not touch")
    }).pipe(Effect.provide(NodeContext.layer)))

  it.effect("records, versions and the index survive a fresh layer over the same directory", () =>
    Effect.gen(function*() {
      yield* syncToWallClock
      const directory = freshDirectory()
      const k = key()
      const t = yield* now
      const data = new Uint8Array(300).map((_, i) => 255 - (i % 256))
      yield* Effect.provide(
        Effect.gen(function*() {
          const store = yield* SessionStore
          yield* store.insert(k, { data: text("first"), expiresAt: t + 60_000, principal: Option.some("alice") })
          yield* store.update(k, { data, expiresAt: t + 120_000, principal: Option.some("alice") }, 1)
        }),
        storeLayer({ directory })
      )
      yield* Effect.provide(
        Effect.gen(function*() {
          const store = yield* SessionStore
          const index = yield* SessionIndex
          const record = Option.getOrThrow(yield* store.load(k))
          expect(record.version).toBe(2)
          expect(record.expiresAt).toBe(t + 120_000)
          expect(Option.getOrUndefined(record.principal)).toBe("alice")
          expect([...record.data]).toEqual([...data])
          expect(yield* index.keys("alice")).toEqual([k])
          expect(yield* store.update(k, write("third", t + 120_000, "alice"), 2)).toBe(3)
          yield* Effect.flip(store.update(k, write("stale", t + 120_000, "alice"), 2)).pipe(
            Effect.map((e) => expect(e).toEqual(new SessionConflict({ reason: "VersionMismatch" })))
          )
        }),
        storeLayer({ directory })
      )
    }))

  it.scoped("an unreadable session file is a SessionStoreError, and remove still deletes it", () =>
    Effect.gen(function*() {
      const directory = freshDirectory()
      const store = yield* storeIn({ directory })
      const k = key()
      NFS.writeFileSync(NPath.join(directory, k), "garbage that is not a session file")
      const loaded = yield* Effect.flip(store.load(k))
      expect(loaded).toBeInstanceOf(SessionStoreError)
      expect(loaded.operation).toBe("load")
      yield* store.remove(k)
      expect(NFS.existsSync(NPath.join(directory, k))).toBe(false)
      expect(Option.isNone(yield* store.load(k))).toBe(true)
    }))

  it.scoped("an unreadable session marked for a principal is not listed, and revoking removes it", () =>
    Effect.gen(function*() {
      const directory = freshDirectory()
      const { index, store } = yield* FileSystemStore.make({ directory })
      const t = yield* now
      const [good, broken] = [key(), key()]
      yield* store.insert(good, write("g", t + 60_000, "frank"))
      yield* store.insert(broken, write("b", t + 60_000, "frank"))
      NFS.writeFileSync(NPath.join(directory, broken), new Uint8Array([0x45, 0x53, 0x53, 0x01, 0xff]))
      expect(yield* index.keys("frank")).toEqual([good])
      expect(yield* index.removeAll("frank")).toBe(1)
      expect(filesIn(directory)).toEqual([])
    }).pipe(Effect.provide(NodeContext.layer)))

  it.scoped("the sweep fiber removes expired sessions, their markers, old temp files and stale locks", () =>
    Effect.gen(function*() {
      yield* syncToWallClock
      const directory = freshDirectory()
      const store = yield* storeIn({ directory, cleanupInterval: "1 minute" })
      const t = yield* now
      const expired = [key(), key(), key()]
      for (const k of expired) yield* store.insert(k, write("short", t + 1_000, "carol"))
      const kept = key()
      yield* store.insert(kept, write("long", t + 60 * 60_000, "carol"))
      const oldTemp = NPath.join(directory, `.${key()}.crashed.tmp`)
      const freshTemp = NPath.join(directory, `.${key()}.writing.tmp`)
      NFS.writeFileSync(oldTemp, "partial")
      setMtime(oldTemp, 2 * 60 * 60_000)
      NFS.writeFileSync(freshTemp, "partial")
      const staleLock = NPath.join(directory, `${key()}.lock`)
      NFS.writeFileSync(staleLock, "dead process")
      setMtime(staleLock, 60 * 60_000)
      const markers = NPath.join(directory, "principals", NFS.readdirSync(NPath.join(directory, "principals"))[0]!)
      expect(NFS.readdirSync(markers).sort()).toEqual([...expired, kept].sort())

      yield* TestClock.adjust("3 minutes")
      // The sweep deletes an expired session under its lock, so the session
      // file and its marker are gone a moment before the lock file is: the
      // sweep is over only when no lock file is left either.
      // (polled on the real clock: the sweep does real I/O after TestClock wakes it)
      const swept = yield* eventually(() =>
        expired.every((k) => !NFS.existsSync(NPath.join(directory, k))) && !NFS.existsSync(oldTemp) &&
        NFS.readdirSync(directory).every((entry) => !entry.endsWith(".lock")) &&
        NFS.readdirSync(markers).length === 1, 5_000)
      expect(swept).toBe(true)
      expect(NFS.existsSync(NPath.join(directory, kept))).toBe(true)
      expect(NFS.existsSync(freshTemp)).toBe(true)
      expect(NFS.readdirSync(markers)).toEqual([kept])
      expect(filesIn(directory)).toEqual([kept, NPath.basename(freshTemp)].sort())
      expect(read(Option.getOrThrow(yield* store.load(kept)).data)).toBe("long")
    }))

  it.scoped("sweep removes unreadable files; removeAll removes markers whose session is gone or moved", () =>
    Effect.gen(function*() {
      yield* syncToWallClock
      const directory = freshDirectory()
      const { index, store, sweep } = yield* FileSystemStore.make({ directory, cleanupInterval: "1 hour" })
      const t = yield* now
      const corrupt = key()
      NFS.writeFileSync(NPath.join(directory, corrupt), "ESS")
      const moved = key()
      yield* store.insert(moved, write("m", t + 60_000, "dave"))
      const daveDir = NFS.readdirSync(NPath.join(directory, "principals"))[0]!
      // a marker left by a process that crashed between writing it and the session file
      const orphan = key()
      NFS.writeFileSync(NPath.join(directory, "principals", daveDir, orphan), "")
      // a marker left by a crash after a session moved to another principal
      yield* store.update(moved, write("m", t + 60_000, "erin"), 1)
      NFS.writeFileSync(NPath.join(directory, "principals", daveDir, moved), "")

      expect(yield* index.keys("dave")).toEqual([])
      expect(yield* sweep).toBe(0)
      expect(NFS.existsSync(NPath.join(directory, corrupt))).toBe(false)
      // stale markers are dropped by removeAll (the sweep reads no principal's markers),
      // and the principal's directory with the last of them
      expect(yield* index.removeAll("dave")).toBe(0)
      expect(NFS.existsSync(NPath.join(directory, "principals", daveDir))).toBe(false)
      expect(yield* index.keys("erin")).toEqual([moved])

      yield* store.insert(orphan, write("o", t + 1_000))
      // the sweep visits the minutes that ended: a session goes within a minute of its expiry,
      // by when the moved session (a minute's expiry) has expired too
      yield* TestClock.adjust("2 minutes")
      expect(yield* sweep).toBe(2)
      expect(NFS.existsSync(NPath.join(directory, orphan))).toBe(false)
    }).pipe(Effect.provide(NodeContext.layer)))

  describe("lock files", () => {

    it.scopedLive("a lock held by another process makes writes wait, then fail with SessionStoreError after lockTimeout", () =>
      Effect.gen(function*() {
        const directory = freshDirectory()
        const lockTimeout = 300
        const store = yield* storeIn({ directory, lockTimeout })
        const k = key()
        const t = yield* now
        yield* store.insert(k, write("v1", t + 60_000))
        NFS.writeFileSync(lockOf(directory, k), "another process")
        const started = performance.now()
        const error = yield* Effect.flip(store.update(k, write("v2", t + 60_000), 1))
        expectEndedAtTimeout(performance.now() - started, lockTimeout, 2_000)
        expect(error).toBeInstanceOf(SessionStoreError)
        expect((error as SessionStoreError).operation).toBe("update")
        expect(error.message).toMatch(/still held/)
        // a fresh lock is never broken, and nothing was written
        expect(NFS.readFileSync(lockOf(directory, k), "utf8")).toBe("another process")
        expect(read(Option.getOrThrow(yield* store.load(k)).data)).toBe("v1")
        // load needs no lock
        expect(Option.isSome(yield* store.load(k))).toBe(true)
      }))

    it.scopedLive("a write waiting on a lock proceeds once the holder releases it", () =>
      Effect.gen(function*() {
        const directory = freshDirectory()
        const store = yield* storeIn({ directory })
        const k = key()
        const t = yield* now
        yield* store.insert(k, write("v1", t + 60_000))
        NFS.writeFileSync(lockOf(directory, k), "another process")
        const fiber = yield* Effect.fork(store.update(k, write("v2", t + 60_000), 1))
        yield* Effect.sleep("150 millis")
        expect(fiber.unsafePoll()).toBeNull()
        NFS.rmSync(lockOf(directory, k))
        expect(yield* Fiber.join(fiber)).toBe(2)
        expect(NFS.existsSync(lockOf(directory, k))).toBe(false)
      }))

    it.scopedLive("a stale lock is broken, even by several stores racing for it, and no increment is lost", () =>
      Effect.gen(function*() {
        const directory = freshDirectory()
        const k = key()
        const t = yield* now
        // separate layers have separate in-process mutexes: they contend only on the lock file, like processes
        const stores = yield* Effect.forEach(
          Array.from({ length: 4 }),
          () => storeIn({ directory, lockStaleAfter: "2 seconds" })
        )
        yield* stores[0]!.insert(k, write("0", t + 60_000))
        NFS.writeFileSync(lockOf(directory, k), "crashed process")
        setMtime(lockOf(directory, k), 30_000)
        const perStore = 25
        yield* Effect.forEach(stores, (store) =>
          Effect.gen(function*() {
            for (let i = 0; i < perStore; i++) {
              yield* Effect.gen(function*() {
                const record = Option.getOrThrow(yield* store.load(k))
                yield* store.update(k, write(String(Number(read(record.data)) + 1), t + 60_000), record.version)
              }).pipe(Effect.retry({ while: (e) => e instanceof SessionConflict && e.reason === "VersionMismatch" }))
            }
          }), { concurrency: "unbounded", discard: true })
        const record = Option.getOrThrow(yield* stores[0]!.load(k))
        expect(read(record.data)).toBe(String(4 * perStore))
        expect(record.version).toBe(4 * perStore + 1)
        expect(filesIn(directory)).toEqual([k])
      }))

    it.scopedLive("a stale breaker file left by a crash mid-break does not block recovery", () =>
      Effect.gen(function*() {
        const directory = freshDirectory()
        const store = yield* storeIn({ directory, lockTimeout: "2 seconds" })
        const k = key()
        const t = yield* now
        yield* store.insert(k, write("v1", t + 60_000))
        NFS.writeFileSync(lockOf(directory, k), "crashed holder")
        setMtime(lockOf(directory, k), 60_000)
        NFS.writeFileSync(lockOf(directory, k) + ".break", "crashed breaker")
        setMtime(lockOf(directory, k) + ".break", 60_000)
        expect(yield* store.update(k, write("v2", t + 60_000), 1)).toBe(2)
        expect(filesIn(directory)).toEqual([k])
      }))

    it.scopedLive("interrupting a write that waits for a lock leaves no lock behind", () =>
      Effect.gen(function*() {
        const directory = freshDirectory()
        const store = yield* storeIn({ directory })
        const k = key()
        const t = yield* now
        yield* store.insert(k, write("v1", t + 60_000))
        NFS.writeFileSync(lockOf(directory, k), "another process")
        const fiber = yield* Effect.fork(store.update(k, write("v2", t + 60_000), 1))
        yield* Effect.sleep("100 millis")
        const started = performance.now()
        const exit = yield* Fiber.interrupt(fiber)
        // interrupted while waiting, well before lockTimeout (default 5 s) would end the wait
        expectEndedBeforeTimeout(performance.now() - started, 5_000)
        expect(Exit.isInterrupted(exit)).toBe(true)
        expect(NFS.readFileSync(lockOf(directory, k), "utf8")).toBe("another process")
        NFS.rmSync(lockOf(directory, k))
        expect(yield* store.update(k, write("v2", t + 60_000), 1)).toBe(2)
      }))
  })

  describe("across processes", () => {
    const fixture = fileURLToPath(new URL("./fixtures/fs-increment.ts", import.meta.url))

    interface ChildReport {
      readonly startedAt: number
      readonly finishedAt: number
      readonly conflicts: number
    }

    const runChildren = (directory: string, k: StorageKey, children: number, increments: number) =>
      Effect.promise(() => {
        const procs = Array.from({ length: children }, () =>
          spawn(process.execPath, ["--import", "tsx", fixture, directory, k, String(increments)], {
            stdio: ["pipe", "pipe", "pipe"]
          }))
        const outputs = procs.map((proc) => {
          let stdout = ""
          let stderr = ""
          let onReady: () => void = () => {}
          const ready = new Promise<void>((resolve) => (onReady = resolve))
          proc.stdout.on("data", (chunk) => {
            stdout += String(chunk)
            if (stdout.includes("ready\n")) onReady()
          })
          proc.stderr.on("data", (chunk) => (stderr += String(chunk)))
          const exited = new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) =>
            proc.on("exit", (code) => {
              onReady()
              resolve({ code, stdout, stderr })
            })
          )
          return { ready, exited }
        })
        return Promise.all(outputs.map((o) => o.ready)).then(() => {
          for (const proc of procs) proc.stdin.write("go\n")
          return Promise.all(outputs.map((o) => o.exited))
        })
      })

    it.live("concurrent read-modify-CAS increments from 4 processes lose nothing, with a stale lock to break first", () =>
      Effect.gen(function*() {
        const directory = freshDirectory()
        const k = key()
        const children = 4
        const increments = 50
        yield* Effect.provide(
          Effect.flatMap(SessionStore, (store) => store.insert(k, write("0", Date.now() + 10 * 60_000))),
          storeLayer({ directory })
        )
        NFS.writeFileSync(NPath.join(directory, `${k}.lock`), "a process that crashed")
        setMtime(NPath.join(directory, `${k}.lock`), 60_000)

        const results = yield* runChildren(directory, k, children, increments)
        for (const result of results) {
          expect(result.stderr, result.stderr).toBe("")
          expect(result.code).toBe(0)
        }
        const reports = results.map((r) => JSON.parse(r.stdout.split("\n").filter(Boolean).at(-1)!) as ChildReport)
        // the processes really ran at the same time
        const lastStart = Math.max(...reports.map((r) => r.startedAt))
        const firstFinish = Math.min(...reports.map((r) => r.finishedAt))
        expect(lastStart).toBeLessThan(firstFinish)
        const conflicts = reports.reduce((n, r) => n + r.conflicts, 0)
        const elapsed = Math.max(...reports.map((r) => r.finishedAt)) - Math.min(...reports.map((r) => r.startedAt))
        console.log(
          `[FileSystemStore] ${children} processes x ${increments} increments: ${conflicts} CAS conflicts retried, ${elapsed} ms`
        )

        const record = yield* Effect.provide(
          Effect.flatMap(SessionStore, (store) => store.load(k)),
          storeLayer({ directory })
        )
        expect(read(Option.getOrThrow(record).data)).toBe(String(children * increments))
        expect(Option.getOrThrow(record).version).toBe(children * increments + 1)
        expect(filesIn(directory)).toEqual([k])
      }), 120_000)
  })
})
