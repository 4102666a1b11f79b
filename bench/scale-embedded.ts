/**
 * Scale benchmark of the embedded stores: MemoryStore and FileSystemStore
 * called directly (no HTTP) with 1k, 10k and 100k live sessions (memory also
 * 1M), 10% of them bound to principals that have 10 sessions each, plus a
 * fixed number of sessions that expire, so that every size sweeps the same
 * number. Prints a Markdown table; figures are per operation, sequential
 * (one fiber), on whatever else the machine runs.
 *
 *   node --expose-gc --import tsx bench/scale-embedded.ts
 *
 * Settings, by environment variable:
 *   STORES=memory,filesystem   which stores (default both)
 *   SIZES=1000,10000,100000    live sessions per run (default; memory adds 1000000)
 *   EXPIRED=1000               sessions that expire before the sweep
 *   DIR=/some/dir              where FileSystemStore writes (default a temp directory, removed after)
 *   FSYNC=1                    FileSystemStore with fsync (default off: populating 100k sessions
 *                              with fsync takes far longer, and the figures are about scale)
 *   FLUSH=0                    measure without flushing the populate's writes first (to see
 *                              what the writeback does to the figures; see below)
 *
 * Method: populate (inserts, 16 at a time for files), then with the clock at
 * the insert time: `load` of 2,000 random live keys, `load` of 2,000 unknown
 * keys, `update` of 500 distinct anonymous sessions, `keys` 100 times over
 * the principals and `removeAll` of 10 principals (10 sessions each): the
 * same counts at every size. Then the clock moves 3 minutes (a TestClock:
 * the stores read time from `Clock`) and one sweep removes the expired
 * sessions. For memory, the heap per session (after gc, data and key
 * included) and the longest event-loop stall during the sweep (a 1 ms
 * interval timer's largest gap) are printed too.
 *
 * Two things keep the file store's figures about the store and not about
 * when they were taken. The populate's writes are flushed (`sync`) before
 * anything is measured: 100k sessions leave hundreds of MiB of dirty pages
 * that the kernel writes back over the next minute, and every operation
 * measured meanwhile shares the disk with that writeback, which 1k sessions
 * (4 MiB) never cause. And each figure is the median of 5 rounds, so that a
 * burst of other work on a shared machine moves one round, not the figure.
 * A first run at 1k, not printed, warms the JIT up, so the first size
 * printed is not the one that pays for compiling the code it measures.
 * Every size's directory is kept until all have run: on some file systems
 * creating a file costs more shortly after many were deleted (ext4 without a
 * journal does not reuse an inode freed in the last minute or more, and
 * steps over each one), so deleting one size's files would slow the next
 * size's writes.
 */
import { NodeContext } from "@effect/platform-node"
import type { Scope } from "effect"
import { Effect, Option, TestClock, TestContext } from "effect"
import { execFileSync } from "node:child_process"
import * as NFS from "node:fs"
import * as OS from "node:os"
import * as NPath from "node:path"
import * as FileSystemStore from "../src/FileSystemStore.js"
import { TextWrite } from "../src/internal/text.js"
import * as MemoryStore from "../src/MemoryStore.js"
import type { StorageKey } from "../src/SessionId.js"
import * as SessionId from "../src/SessionId.js"
import type { SessionIndex, SessionStore } from "../src/SessionStore.js"

const storesWanted = (process.env.STORES ?? "memory,filesystem").split(",")
const sizesSetting = process.env.SIZES?.split(",").map(Number)
const expiredCount = Number(process.env.EXPIRED ?? 1000)
const fsync = process.env.FSYNC === "1"
const flush = process.env.FLUSH !== "0"
const gc = (globalThis as { gc?: () => void }).gc

const minute = 60_000
const day = 24 * 60 * minute

interface Row {
  readonly store: string
  readonly live: number
  readonly populateSeconds: number
  readonly load: number
  readonly loadMissing: number
  readonly update: number
  readonly keys: number
  readonly removeAll: number
  readonly sweepMillis: number
  readonly swept: number
  readonly stallMillis?: number | undefined
  readonly heapPerSession?: number | undefined
}

const newKey = (): StorageKey => SessionId.storageKey(SessionId.unsafeGenerate())

// About 200 bytes of JSON, different for every session.
const sessionText = (i: number, key: string) =>
  JSON.stringify({ csrf: key.slice(0, 22), cart: [i % 97, i % 89, i % 83], theme: "dark", seen: i }).padEnd(200, " ")

const rounds = 5

// `count` calls split into `rounds` rounds; the median round's µs per call
const microsPer = <A, E, R>(count: number, run: (i: number) => Effect.Effect<A, E, R>) =>
  Effect.gen(function*() {
    const perRound = Math.ceil(count / rounds)
    const figures: Array<number> = []
    for (let from = 0; from < count; from += perRound) {
      const to = Math.min(count, from + perRound)
      const start = performance.now()
      for (let i = from; i < to; i++) yield* run(i)
      figures.push(((performance.now() - start) * 1000) / (to - from))
    }
    figures.sort((a, b) => a - b)
    return figures[Math.floor(figures.length / 2)]!
  })

// Writes the page cache back to disk and waits for it (see the method above).
const flushFileSystem = !flush ? Effect.void : Effect.sync(() => {
  try {
    execFileSync("sync")
  } catch {
    console.error("`sync` failed: figures may include the populate's writeback")
  }
})

const heapUsed = () => {
  gc?.()
  gc?.()
  return process.memoryUsage().heapUsed
}

const measure = (
  label: string,
  live: number,
  make: Effect.Effect<{
    readonly store: SessionStore["Type"]
    readonly index: SessionIndex["Type"]
    readonly sweep: Effect.Effect<number, unknown>
  }, unknown, NodeContext.NodeContext | Scope.Scope>,
  concurrency: number,
  probeStalls: boolean,
  afterPopulate: Effect.Effect<void> = Effect.void
) =>
  Effect.gen(function*() {
    yield* TestClock.setTime(Date.now())
    const { index, store, sweep } = yield* make
    // the first sweep of a new directory indexes it; here it is empty
    yield* sweep
    const t0 = yield* Effect.clockWith((clock) => clock.currentTimeMillis)
    const principals = Math.floor(live / 100)
    const heapBefore = probeStalls ? heapUsed() : 0
    // anonymous live sessions to load and update: all of them at 1k, about 2,000 at larger sizes
    const sample: Array<StorageKey> = []
    const sampleEvery = Math.max(1, Math.floor(live / 2000))
    const populateStart = performance.now()
    yield* Effect.forEach(
      Array.from({ length: live + expiredCount }, (_, i) => i),
      (i) => {
        const key = newKey()
        if (i < live && i % 10 !== 0 && (i + 1) % sampleEvery === 0) sample.push(key)
        // every tenth live session belongs to one of `principals` principals (10 sessions each)
        const principal = i < live && i % 10 === 0 ? Option.some(`user-${(i / 10) % principals}`) : Option.none()
        const expiresAt = i < live ? t0 + day : t0 + minute
        return store.insert(key, new TextWrite(sessionText(i, key), expiresAt, principal))
      },
      { concurrency, discard: true }
    )
    const populateSeconds = (performance.now() - populateStart) / 1000
    const heapPerSession = probeStalls ? (heapUsed() - heapBefore) / (live + expiredCount) : undefined
    yield* afterPopulate

    const pick = (i: number) => sample[(i * 7919) % sample.length]!
    const load = yield* microsPer(2000, (i) => store.load(pick(i)))
    const unknown = Array.from({ length: 2000 }, newKey)
    const loadMissing = yield* microsPer(2000, (i) => store.load(unknown[i]!))
    // a load and an update (the session's compare-and-set) of distinct sessions
    const update = yield* microsPer(Math.min(500, sample.length), (i) => {
      const key = sample[i]!
      return Effect.flatMap(store.load(key), (record) =>
        Option.isSome(record)
          ? store.update(key, new TextWrite(sessionText(i, key), t0 + day, record.value.principal), record.value.version)
          : Effect.void)
    })
    const keys = yield* microsPer(100, (i) => index.keys(`user-${i % principals}`))
    const removeAll = yield* microsPer(Math.min(10, principals), (i) => index.removeAll(`user-${principals - 1 - i}`))

    yield* TestClock.adjust("3 minutes")
    let stallMillis: number | undefined
    let timer: ReturnType<typeof setInterval> | undefined
    let lastTick = performance.now()
    if (probeStalls) {
      stallMillis = 0
      timer = setInterval(() => {
        const at = performance.now()
        stallMillis = Math.max(stallMillis!, at - lastTick)
        lastTick = at
      }, 1)
    }
    const sweepStart = performance.now()
    const swept = yield* sweep
    const sweepMillis = performance.now() - sweepStart
    if (timer !== undefined) {
      clearInterval(timer)
      // the stretch since the timer last ran counts too (all of a sweep that never yielded)
      stallMillis = Math.max(stallMillis!, performance.now() - Math.max(sweepStart, lastTick))
    }
    return {
      store: label,
      live,
      populateSeconds,
      load,
      loadMissing,
      update,
      keys,
      removeAll,
      sweepMillis,
      swept,
      stallMillis,
      heapPerSession
    } satisfies Row
  }).pipe(Effect.scoped, Effect.provide(TestContext.TestContext))

const fmt = (n: number | undefined, digits = 1) => n === undefined ? "–" : n.toFixed(digits)

const program = Effect.gen(function*() {
  const rows: Array<Row> = []
  const print = (row: Row) => {
    rows.push(row)
    console.error(`${row.store} ${row.live}: ${JSON.stringify(row)}`)
  }
  if (storesWanted.includes("memory")) {
    const memory = (live: number) =>
      measure(
        "memory",
        live,
        MemoryStore.make({ maxEntries: 10_000_000, maxBytes: 1e12, cleanupInterval: "1000 days" }),
        1,
        true
      )
    yield* memory(1_000)
    for (const live of sizesSetting ?? [1_000, 10_000, 100_000, 1_000_000]) print(yield* memory(live))
  }
  if (storesWanted.includes("filesystem")) {
    const base = process.env.DIR ?? NFS.mkdtempSync(NPath.join(OS.tmpdir(), "effect-session-scale-"))
    const directories: Array<string> = []
    try {
      const files = (live: number) =>
        Effect.suspend(() => {
          const directory = NPath.join(base, `fs-${live}-${Date.now()}`)
          directories.push(directory)
          return measure(
            "filesystem",
            live,
            FileSystemStore.make({ directory, fsync, cleanupInterval: "1000 days" }),
            16,
            false,
            flushFileSystem
          )
        })
      yield* files(1_000)
      for (const live of sizesSetting ?? [1_000, 10_000, 100_000]) print(yield* files(live))
    } finally {
      for (const directory of directories) NFS.rmSync(directory, { recursive: true, force: true })
      if (process.env.DIR === undefined) NFS.rmSync(base, { recursive: true, force: true })
    }
  }
  console.log(`load average ${OS.loadavg().map((l) => l.toFixed(1)).join(" ")}, ${OS.cpus().length} cores`)
  console.log(
    `| store | live sessions | populate s | load µs | missing load µs | update µs | keys µs (10 sessions) | removeAll µs (10 sessions) | sweep ms (${expiredCount} expired) | longest stall ms | heap B/session |`
  )
  console.log("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|")
  for (const r of rows) {
    console.log(
      `| ${r.store} | ${r.live.toLocaleString("en")} | ${fmt(r.populateSeconds)} | ${fmt(r.load)} | ${
        fmt(r.loadMissing)
      } | ${fmt(r.update)} | ${fmt(r.keys)} | ${fmt(r.removeAll)} | ${fmt(r.sweepMillis)} (${r.swept}) | ${
        fmt(r.stallMillis)
      } | ${fmt(r.heapPerSession, 0)} |`
    )
  }
}).pipe(Effect.provide(NodeContext.layer))

Effect.runPromise(program).catch((error) => {
  console.error(error)
  process.exit(1)
})
