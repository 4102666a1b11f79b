/**
 * The layer's own Redis client as the core opens and closes it
 * (`src/core/redisClient.ts`), over a stand-in for ioredis's class: the
 * options it is made with, the watch over its connection, the order of the
 * close, and the gathering of a busy client's commands into one write per
 * turn (`coalesceWrites`).
 */
import { EventEmitter } from "node:events"
import { describe, expect, it } from "vitest"
import { coalesceWrites, open } from "../../src/core/redisClient.js"

class FakeRedis extends EventEmitter {
  static made: Array<FakeRedis> = []
  readonly url: string | undefined
  readonly options: Record<string, unknown>
  status = "wait"
  readonly calls: Array<string> = []
  quitFails = false
  constructor(url: string | Record<string, unknown>, options?: Record<string, unknown>) {
    super()
    this.url = typeof url === "string" ? url : undefined
    this.options = typeof url === "string" ? options! : url
    FakeRedis.made.push(this)
  }
  defineCommand() {}
  connect() {
    return Promise.resolve()
  }
  quit() {
    this.calls.push(`quit (listeners: ${this.listenerCount("error")})`)
    return this.quitFails ? Promise.reject(new Error("timeout")) : Promise.resolve("OK")
  }
  disconnect() {
    this.calls.push("disconnect")
  }
}

type Logged = Array<[string, ...ReadonlyArray<unknown>]>

const opened = (options: { url?: string; db?: number }, logged: Logged = []) =>
  open(options, 250, FakeRedis, (level, ...message) => logged.push([level, ...message]))

describe("open", () => {
  it("makes the client from the URL when there is one, with the store's own options", () => {
    const { client } = opened({ url: "redis://127.0.0.1:6390", db: 2 })
    expect(client.url).toBe("redis://127.0.0.1:6390")
    expect(client.options).toEqual({ enableOfflineQueue: false, db: 2, commandTimeout: 250 })
    expect(opened({ db: 3 }).client.url).toBeUndefined()
  })

  it("refuses a URL of another scheme before making a client", () => {
    const before = FakeRedis.made.length
    expect(() => opened({ url: "http://127.0.0.1:6379" })).toThrow("not redis:// or rediss://")
    expect(FakeRedis.made.length).toBe(before)
  })

  it("watches the connection from the start: a lost connection is logged once and kept as the last error", () => {
    const logged: Logged = []
    const { client, lastError } = opened({}, logged)
    const lost = new Error("connect ECONNREFUSED")
    client.emit("error", lost)
    client.emit("error", new Error("again"))
    expect(lastError()?.message).toBe("again")
    expect(logged.map(([level]) => level)).toEqual(["Warn", "Debug"])
    client.emit("ready")
    expect(lastError()).toBeUndefined()
    expect(logged.at(-1)).toEqual(["Info", "redis store: connection restored"])
  })

  it("close ends the watch, then quits; a failed QUIT disconnects", async () => {
    const first = opened({})
    await first.close()
    expect(first.client.calls).toEqual(["quit (listeners: 0)"])
    const second = opened({})
    second.client.quitFails = true
    await second.close()
    expect(second.client.calls).toEqual(["quit (listeners: 0)", "disconnect"])
  })
})

/** A socket that records its corks and uncorks. */
class FakeSocket {
  constructor(readonly name: string, readonly log: Array<string>) {}
  cork() {
    this.log.push(`cork ${this.name}`)
  }
  uncork() {
    this.log.push(`uncork ${this.name}`)
  }
}

const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve))

describe("coalesceWrites", () => {
  it("corks a busy client's socket once per turn and uncorks it after the turn's callbacks", async () => {
    const log: Array<string> = []
    const client = { status: "ready", stream: new FakeSocket("a", log) }
    const beforeSend = coalesceWrites(client)
    beforeSend(true)
    beforeSend(true)
    beforeSend(true)
    expect(log).toEqual(["cork a"])
    // still corked after the microtasks of this turn
    await Promise.resolve()
    expect(log).toEqual(["cork a"])
    await nextTurn()
    expect(log).toEqual(["cork a", "uncork a"])
    beforeSend(true)
    await nextTurn()
    expect(log).toEqual(["cork a", "uncork a", "cork a", "uncork a"])
  })

  it("writes at once to an idle client, a client not ready, or one without a socket", async () => {
    const log: Array<string> = []
    const client: { status: string; stream: FakeSocket | undefined } = { status: "ready", stream: new FakeSocket("a", log) }
    const beforeSend = coalesceWrites(client)
    beforeSend(false)
    client.status = "reconnecting"
    beforeSend(true)
    client.status = "ready"
    client.stream = undefined
    beforeSend(true)
    await nextTurn()
    expect(log).toEqual([])
  })

  it("uncorks the socket it corked when the connection is replaced meanwhile, and corks the new one next", async () => {
    const log: Array<string> = []
    const client = { status: "ready", stream: new FakeSocket("old", log) }
    const beforeSend = coalesceWrites(client)
    beforeSend(true)
    client.stream = new FakeSocket("new", log)
    // the old socket is still held this turn: nothing corks the new one yet
    beforeSend(true)
    await nextTurn()
    beforeSend(true)
    await nextTurn()
    expect(log).toEqual(["cork old", "uncork old", "cork new", "uncork new"])
  })

  it("is what open gives the layer for its own client", async () => {
    const log: Array<string> = []
    const { beforeSend, client } = opened({})
    Object.assign(client, { status: "ready", stream: new FakeSocket("own", log) })
    beforeSend(true)
    await nextTurn()
    expect(log).toEqual(["cork own", "uncork own"])
  })
})
