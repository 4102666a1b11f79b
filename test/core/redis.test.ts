/**
 * The Redis protocol of the core (`src/core/redis.ts`), without a server and
 * without Effect: key layout, the script calls' keys and arguments, how each
 * reply is read (and refused when malformed), the index read plan, the
 * record format and what a rejected command says.
 */
import { Buffer } from "node:buffer"
import { describe, expect, it } from "vitest"
import * as Redis from "../../src/core/redis.js"

const key = "A".repeat(43)
const other = "B".repeat(43)

describe("core/redis key layout", () => {
  it("puts the prefix before the storage key and the principal index under prefix + principal:", () => {
    expect(Redis.recordKey("session:", key)).toBe(`session:${key}`)
    expect(Redis.principalIndexKey("app:", "alice")).toBe("app:principal:alice")
    expect(Redis.defaultPrefix).toBe("session:")
  })

  it("finds a hash tag only where Redis Cluster hashes one: a non-empty {…}", () => {
    expect(Redis.hasHashTag("session:")).toBe(false)
    expect(Redis.hasHashTag("{app}:")).toBe(true)
    expect(Redis.hasHashTag("a:{b}:c:")).toBe(true)
    expect(Redis.hasHashTag("{}:")).toBe(false)
    expect(Redis.hasHashTag("}{x}")).toBe(true)
    expect(Redis.hasHashTag("{:")).toBe(false)
    expect(Redis.hashTagMessage("{a}")).toContain("\"{a}\" contains a hash tag")
  })

  it("takes only storage keys as index members", () => {
    expect(Redis.isStorageKey(key)).toBe(true)
    expect(Redis.isStorageKey("A".repeat(42))).toBe(false)
    expect(Redis.isStorageKey(`${"A".repeat(42)}:`)).toBe(false)
  })
})

describe("core/redis expiry", () => {
  it("rounds the native TTL up, so Redis never drops a record the application still sees", () => {
    expect(Redis.ttlMillis(1_000.2, 0)).toBe(1_001)
    expect(Redis.ttlMillis(5_000, 4_000)).toBe(1_000)
    expect(Redis.ttlMillis(4_000, 5_000)).toBe(-1_000)
  })

  it("a record is live strictly before its expiry", () => {
    expect(Redis.isLive(1_000, 999)).toBe(true)
    expect(Redis.isLive(1_000, 1_000)).toBe(false)
  })

  it("the scripts write records with PX and prune a principal's index by score up to now", () => {
    expect(Redis.insertScript.lua).toContain("'PX', ttl")
    expect(Redis.insertScript.lua).toContain("if ttl <= 0 then")
    expect(Redis.touchScript.lua).toContain("'PX', ARGV[3]")
    expect(Redis.raiseScript.lua).toContain("redis.call('ZREMRANGEBYSCORE', key, '-inf', now)")
    expect(Redis.membersScript.lua).toContain("redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])")
  })
})

describe("core/redis script calls", () => {
  it("defines every script once, under a name of its own", () => {
    const scripts = Redis.sessionScripts()
    expect(scripts.map((script) => script.name)).toEqual([
      "effectSessionInsert",
      "effectSessionUpdate",
      "effectSessionTouch",
      "effectSessionRaise",
      "effectSessionMembers",
      "effectSessionCheck"
    ])
    // the scripts whose keys vary take their key count first
    expect(scripts.map((script) => script.numberOfKeys)).toEqual([undefined, undefined, 1, 1, 1, undefined])
  })

  it("an insert on a single node names the principal's index as its second key; on a cluster only the record", () => {
    const write = { expiresAt: 61_000.5, data: "{}", principal: "alice" }
    expect(Redis.writeCall("s:", false, key, 1_000, write)).toEqual({
      script: Redis.insertScript,
      keys: [`s:${key}`, "s:principal:alice"],
      args: ["1000 61000.5 60001", "{}", "alice", key]
    })
    expect(Redis.writeCall("s:", true, key, 1_000, write).keys).toEqual([`s:${key}`])
  })

  it("an update carries the expected version; without a principal there is no index argument", () => {
    const call = Redis.writeCall("s:", false, key, 1_000, { expiresAt: 2_000, data: "x", principal: undefined }, 7)
    expect(call).toEqual({ script: Redis.updateScript, keys: [`s:${key}`], args: ["1000 2000 1000 7", "x"] })
  })

  it("touch, raise and members calls", () => {
    expect(Redis.touchCall("s:", key, 1_000, 3_000.5)).toEqual({
      script: Redis.touchScript,
      keys: [`s:${key}`],
      args: ["1000", "3000.5", "2001"]
    })
    expect(Redis.raiseCall("s:", key, "bob", 3_000, 1_000)).toEqual({
      script: Redis.raiseScript,
      keys: ["s:principal:bob"],
      args: [key, "3000", "1000"]
    })
    expect(Redis.membersCall("s:", "bob", 1_000)).toEqual({
      script: Redis.membersScript,
      keys: ["s:principal:bob"],
      args: ["1000"]
    })
  })

  it("data goes as text when it is UTF-8, else as the same bytes", () => {
    expect(Redis.dataArgument(new TextEncoder().encode("{\"ü\":1}"))).toBe("{\"ü\":1}")
    const bytes = new Uint8Array([0xff, 0x00, 0xc3])
    const argument = Redis.dataArgument(bytes)
    expect(Buffer.isBuffer(argument)).toBe(true)
    expect([...(argument as Buffer)]).toEqual([0xff, 0x00, 0xc3])
  })
})

describe("core/redis replies", () => {
  it("insert: 1 written, 0 a live record exists; anything else is refused", () => {
    expect(Redis.readInsertReply(1)).toBe("inserted")
    expect(Redis.readInsertReply(0)).toBe("Exists")
    for (const reply of [2, "1", null, [1]]) expect(Redis.readInsertReply(reply)).toBeUndefined()
  })

  it("update: the new version and whether the index must learn of it, or the conflict", () => {
    expect(Redis.readUpdateReply([3, 1])).toEqual({ version: 3, indexed: true })
    expect(Redis.readUpdateReply([2, 0])).toEqual({ version: 2, indexed: false })
    expect(Redis.readUpdateReply([-1, 0])).toBe("Missing")
    expect(Redis.readUpdateReply([-2, 0])).toBe("VersionMismatch")
    for (const reply of [3, [3], [3, 1, 0], ["3", 1], [0, 0], [1.5, 0], null]) {
      expect(Redis.readUpdateReply(reply), JSON.stringify(reply)).toBeUndefined()
    }
  })

  it("touch: extended or not, and the principal to raise", () => {
    expect(Redis.readTouchReply(0)).toEqual({ extended: false, principal: undefined })
    expect(Redis.readTouchReply(1)).toEqual({ extended: true, principal: undefined })
    expect(Redis.readTouchReply([1, "alice"])).toEqual({ extended: true, principal: "alice" })
    for (const reply of [2, [0, "alice"], [1, 2], [1], "1"]) {
      expect(Redis.readTouchReply(reply), JSON.stringify(reply)).toBeUndefined()
    }
  })

  it("members: strings only; check flags: exactly the count asked for", () => {
    expect(Redis.readMembersReply([key, other])).toEqual([key, other])
    expect(Redis.readMembersReply([key, 1])).toBeUndefined()
    expect(Redis.readMembersReply("x")).toBeUndefined()
    expect(Redis.readIntegers([1, 0], 2)).toEqual([1, 0])
    expect(Redis.readIntegers([1, 0], 3)).toBeUndefined()
    expect(Redis.readIntegers([1, "0"], 2)).toBeUndefined()
    expect(Redis.unexpectedReply(Redis.describeReply({ a: 1 }))).toBe("unexpected reply from Redis: {\"a\":1}")
  })
})

describe("core/redis principal index reads", () => {
  const plan = (options: Partial<Parameters<typeof Redis.planIndexRead>[0]>) =>
    Redis.planIndexRead({ prefix: "s:", principal: "alice", now: 5, revoke: false, cluster: false, listed: [], ...options })
  const members = Array.from({ length: 1_201 }, (_, i) => i.toString().padStart(43, "k"))

  it("on a single node: batches of checkBatch records after the index, the prefix's length in bytes", () => {
    const single = plan({ prefix: "sé:", listed: [...members, "junk"] })
    expect(single.members).toEqual(members)
    const checks = single.groups.flat()
    expect(checks.map((check) => check.keys.length - 1)).toEqual([500, 500, 201])
    expect(checks[0]!.keys[0]).toBe("sé:principal:alice")
    expect(checks[0]!.keys[1]).toBe(`sé:${members[0]}`)
    expect(checks[0]!.args).toEqual(["alice", "5", "k", "4"])
    expect(checks.every((check) => check.script === Redis.checkScript)).toBe(true)
    // the scripts trimmed the index themselves: only what is not a storage key is left to remove
    expect(single.dropped(members.map(() => false))).toEqual(["junk"])
  })

  it("on a cluster: one check per record, sent checksInFlight at a time; the dead and the junk are removed after", () => {
    const cluster = plan({ cluster: true, listed: ["junk", ...members] })
    expect(cluster.groups.map((group) => group.length)).toEqual([1_000, 201])
    expect(cluster.groups[0]![0]).toEqual({ script: Redis.checkScript, keys: [`s:${members[0]}`], args: ["alice", "5", "k"] })
    const live = members.map((_, i) => i !== 1)
    expect(cluster.dropped(live)).toEqual(["junk", members[1]])
    const revoked = plan({ revoke: true, cluster: true, listed: members })
    expect(revoked.groups[0]![0]!.args[2]).toBe("r")
    expect(revoked.dropped(members.map(() => true))).toEqual(members)
  })

  it("reads each check's flags, and names a reply of the wrong shape", () => {
    const single = plan({ listed: [key, other] })
    const group = single.groups[0]!
    expect(single.readReplies(group, [[1, 0]])).toEqual([true, false])
    expect(single.readReplies(group, [[1]])).toBe("[1]")
    const cluster = plan({ cluster: true, listed: [key, other] })
    expect(cluster.readReplies(cluster.groups[0]!, [[0], [1]])).toEqual([false, true])
    expect(cluster.readReplies(cluster.groups[0]!, [[0], "OK"])).toBe("\"OK\"")
  })

  it("an empty index needs no check", () => {
    const empty = plan({ revoke: true })
    expect(empty.groups).toEqual([])
    expect(empty.dropped([])).toEqual([])
  })
})

describe("core/redis records", () => {
  it("reads version, expiry, principal and data; refuses what is not a record", () => {
    expect(Redis.parseRecord(Buffer.from("2:1000:5:alice{}"))).toEqual({
      version: 2,
      expiresAt: 1000,
      principal: "alice",
      data: new Uint8Array(Buffer.from("{}"))
    })
    expect(Redis.parseRecordText("1:1000:-:{}")).toEqual({ version: 1, expiresAt: 1000, principal: undefined, text: "{}" })
    for (const bad of ["", "1:1000", "0:1000:-:{}", "x:1000:-:{}", "1:x:-:{}", "1:1000:x:{}", "1:1000:9:ab"]) {
      expect(Redis.parseRecord(Buffer.from(bad)), bad).toBeUndefined()
    }
  })
})

describe("core/redis rejections", () => {
  it("says which server is not connected, with the last connection error's code", () => {
    const refused = Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:6390"), { code: "ECONNREFUSED" })
    const error = Redis.notConnectedError({ host: "127.0.0.1", port: 6390 }, refused)
    expect(error.message).toBe("not connected to 127.0.0.1:6390 (ECONNREFUSED)")
    expect(error.code).toBe("ECONNREFUSED")
    expect(Redis.notConnectedError({}, undefined).message).toBe("not connected to localhost:6379")
    expect(Redis.notConnectedError({ path: "/run/redis.sock" }, new Error("x")).message).toBe(
      "not connected to /run/redis.sock"
    )
    expect(Redis.notConnectedError("cluster", refused).message).toBe("not connected to the Redis Cluster (ECONNREFUSED)")
  })

  it("tells ioredis's timeout and its refusals while disconnected from a command's own error", () => {
    const offline = new Error("Stream isn't writeable and enableOfflineQueue options is false")
    expect(Redis.rejectionKind(new Error("Command timed out"), true)).toBe("timeout")
    expect(Redis.rejectionKind(offline, false)).toBe("refused")
    expect(Redis.rejectionKind(new Error("Connection is closed."), false)).toBe("refused")
    expect(Redis.rejectionKind(Object.assign(new Error("Reached…"), { name: "MaxRetriesPerRequestError" }), false))
      .toBe("refused")
    // connected again by the time it is read: reported as it is
    expect(Redis.rejectionKind(offline, true)).toBe("other")
    expect(Redis.rejectionKind(new Error("ERR wrong number of arguments"), false)).toBe("other")
    expect(Redis.rejectionKind("a string", false)).toBe("other")
  })

  it("fails the replies still waiting when closed, and nothing else", async () => {
    const waiting = new Redis.WaitingReplies()
    const answered = waiting.track(() => Promise.resolve("answered"))
    const failed = waiting.track(() => Promise.reject(new Error("its own error")))
    const hung = waiting.track(() => new Promise<string>(() => {}))
    await expect(answered).resolves.toBe("answered")
    await expect(failed).rejects.toThrow("its own error")
    waiting.close()
    await expect(hung).rejects.toThrow(Redis.layerClosed)
    // a client passed in outlives the layer: a later command is not refused
    await expect(waiting.track(() => Promise.resolve("later"))).resolves.toBe("later")
  })

  it("hands each call exactly one outcome: a reply that comes after the close is dropped", async () => {
    const waiting = new Redis.WaitingReplies()
    let answer!: (reply: string) => void
    const outcomes: Array<string> = []
    waiting.watch(
      () => new Promise<string>((resolve) => answer = resolve),
      (reply) => outcomes.push(`reply ${reply}`),
      (error) => outcomes.push(`error ${(error as Error).message}`)
    )
    waiting.close()
    answer("late")
    await new Promise((resolve) => setTimeout(resolve, 0))
    expect(outcomes).toEqual([`error ${Redis.layerClosed}`])
  })

  it("fails on close exactly the replies still waiting, whichever answered before (first, middle or last sent)", async () => {
    for (const answeredFirst of [[0], [1], [2], [0, 2], [1, 2], [0, 1, 2]]) {
      const waiting = new Redis.WaitingReplies()
      const answers: Array<(reply: string) => void> = []
      const outcomes = [0, 1, 2].map((i) =>
        waiting.track(() => new Promise<string>((resolve) => answers[i] = resolve)).then(
          (reply) => `reply ${reply}`,
          (error: Error) => `error ${error.message}`
        )
      )
      for (const i of answeredFirst) answers[i]!(String(i))
      await new Promise((resolve) => setTimeout(resolve, 0))
      waiting.close()
      for (const i of [0, 1, 2]) answers[i]!("late")
      expect(await Promise.all(outcomes)).toEqual(
        [0, 1, 2].map((i) => answeredFirst.includes(i) ? `reply ${i}` : `error ${Redis.layerClosed}`)
      )
    }
  })

  it("a send that throws rejects its reply with that error", async () => {
    const waiting = new Redis.WaitingReplies()
    await expect(waiting.track(() => {
      throw new Error("refused synchronously")
    })).rejects.toThrow("refused synchronously")
  })
  it("tells beforeSend, right before each command, whether replies are awaited", async () => {
    const told: Array<string> = []
    const waiting = new Redis.WaitingReplies((busy) => told.push(busy ? "busy" : "idle"))
    const answers: Array<(reply: string) => void> = []
    const send = () => {
      told.push("sent")
      return new Promise<string>((resolve) => answers.push(resolve))
    }
    const first = waiting.track(send)
    const second = waiting.track(send)
    answers[0]!("a")
    await first
    const third = waiting.track(send)
    answers[1]!("b")
    answers[2]!("c")
    await Promise.all([second, third])
    waiting.track(send)
    expect(told).toEqual(["idle", "sent", "busy", "sent", "busy", "sent", "idle", "sent"])
  })
})
