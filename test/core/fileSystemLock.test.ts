/**
 * The file-system store's lock wait against a caller that gives up, made
 * deterministic by a `FileOps` that holds the lock file's exclusive create
 * until the test lets it go: whatever the caller's signal aborted, nothing is
 * written and no lock of its own is left behind.
 */
import * as NFS from "node:fs"
import * as NOS from "node:os"
import * as NPath from "node:path"
import { afterEach, describe, expect, it } from "vitest"
import * as Directory from "../../src/core/fileSystemStore.js"

const key = "AbCdEfGh" + "x".repeat(34) + "_"
const minute = 60_000
const encoder = new TextEncoder()
const decoder = new TextDecoder()

const directories: Array<string> = []
afterEach(() => {
  for (const directory of directories.splice(0)) NFS.rmSync(directory, { recursive: true, force: true })
})

/** The node file operations, each exclusive create of a `.lock` file held until `release` once `hold` was called. */
const gated = () => {
  let creates = 0
  const waiting: Array<{ readonly n: number; readonly resolve: () => void }> = []
  let release!: () => void
  const released = new Promise<void>((resolve) => release = resolve)
  let holding = false
  const fs: Directory.FileOps = {
    ...Directory.nodeFileOps,
    writeFile: async (path, data, options) => {
      if (holding && options.exclusive && path.endsWith(".lock")) {
        creates++
        for (const w of waiting) if (w.n === creates) w.resolve()
        await released
      }
      return Directory.nodeFileOps.writeFile(path, data, options)
    }
  }
  return {
    fs,
    hold: () => holding = true,
    /** Resolves once the `n`-th held create has begun. */
    reached: (n: number) => creates >= n ? Promise.resolve() : new Promise<void>((resolve) => waiting.push({ n, resolve })),
    release: () => release()
  }
}

const setup = async () => {
  const directory = NFS.mkdtempSync(NPath.join(NOS.tmpdir(), "session-lock-"))
  directories.push(directory)
  const { fs, hold, reached, release } = gated()
  const store = await Directory.open(
    Directory.settings({ directory, lockTimeout: 30_000, cleanupInterval: 3_600_000 }, (n: number) => n),
    fs
  )
  const warnings: Array<string> = []
  const call = (signal?: AbortSignal): Directory.Call => ({ now: Date.now, warn: (w) => warnings.push(w), signal })
  const write = (text: string): Directory.Write => ({
    data: encoder.encode(text),
    expiresAt: Date.now() + minute,
    principal: undefined
  })
  await store.insert(key, write("x"), call())
  hold()
  return { store, reached, release, call, write, warnings, lock: NPath.join(directory, `${key}.lock`) }
}

const text = async (store: Directory.FileSystemStore, call: Directory.Call) => {
  const record = await store.load(key, call)
  return record === undefined ? undefined : decoder.decode(record.data)
}

describe("a write waiting for another process's lock", () => {
  it("takes the lock when its holder releases it, and writes", async () => {
    const { call, lock, reached, release, store, write } = await setup()
    NFS.writeFileSync(lock, "another process")
    const update = store.update(key, write("y"), 1, call(new AbortController().signal))
    await reached(1)
    NFS.rmSync(lock)
    release()
    expect(await update).toBe(2)
    expect(await text(store, call())).toBe("y")
    expect(NFS.existsSync(lock)).toBe(false)
  })

  it("given up while its create is under way and the holder releases the lock meanwhile, writes nothing and gives the lock back", async () => {
    const { call, lock, reached, release, store, warnings, write } = await setup()
    NFS.writeFileSync(lock, "another process")
    const controller = new AbortController()
    const update = store.update(key, write("y"), 1, call(controller.signal))
    await reached(1)
    controller.abort()
    NFS.rmSync(lock)
    release()
    await expect(update).rejects.toMatchObject({ _tag: "Cancelled" })
    expect(await text(store, call())).toBe("x")
    expect(NFS.existsSync(lock)).toBe(false)
    expect(warnings).toEqual([])
  })

  it("given up while the lock is still held, stops, writes nothing and leaves the holder's lock alone", async () => {
    const { call, lock, reached, release, store, write } = await setup()
    NFS.writeFileSync(lock, "another process")
    const controller = new AbortController()
    const update = store.update(key, write("y"), 1, call(controller.signal))
    await reached(1)
    controller.abort()
    release()
    await expect(update).rejects.toMatchObject({ _tag: "Cancelled" })
    expect(await text(store, call())).toBe("x")
    expect(NFS.readFileSync(lock, "utf8")).toBe("another process")
  })
})
