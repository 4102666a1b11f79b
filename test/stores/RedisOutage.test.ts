import { afterAll, beforeAll, expect, it } from "@effect/vitest"
import { Context, Effect, Either, Exit, Fiber, Layer, Option, Schedule, Scope } from "effect"
import { Redis } from "ioredis"
import { performance } from "node:perf_hooks"
import * as RedisStore from "../../src/RedisStore.js"
import { SessionStoreError } from "../../src/SessionError.js"
import * as SessionId from "../../src/SessionId.js"
import { SessionStore } from "../../src/SessionStore.js"
import { describeBackend } from "../utils/backend.js"
import {
  monitorCommands,
  type RedisServer,
  redisBinaries,
  removeDir,
  sleep,
  startRedisServer,
  startRedisServerOnFreePort,
  tempDir
} from "../utils/redisServer.js"
import { expectEndedAtTimeout, expectEndedBeforeTimeout, timeoutWindow } from "../utils/timing.js"

const host = "127.0.0.1"
const prefix = "outage:"
// acknowledged writes are on disk before the reply: they survive a SIGKILL
const persistent = ["--save", "", "--appendonly", "yes", "--appendfsync", "always"]

const binaries = redisBinaries()

const now = Effect.clockWith((clock) => clock.currentTimeMillis)
const freshKey = () => SessionId.storageKey(SessionId.unsafeGenerate())
const bytes = (s: string) => new TextEncoder().encode(s)
const text = (b: Uint8Array) => new TextDecoder().decode(b)

const timed = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.gen(function*() {
    const start = performance.now()
    const result = yield* Effect.either(effect)
    return { error: Either.getLeft(result) as Option.Option<unknown>, millis: performance.now() - start }
  })

describeBackend("RedisStore on a private redis-server", binaries, () => {
  const servers: Array<RedisServer> = []
  let dir = ""
  let port = 0

  beforeAll(async () => {
    dir = tempDir("redis")
    const server = await startRedisServerOnFreePort(dir, () => persistent)
    port = server.port
    servers.push(server)
  })

  afterAll(async () => {
    for (const server of servers) await server.stop("SIGKILL")
    if (dir !== "") removeDir(dir)
  })

  it.live("every store operation is one Redis command (counted with MONITOR)", () =>
    Effect.gen(function*() {
      const client = new Redis({ host, port })
      yield* Effect.addFinalizer(() => Effect.promise(() => client.quit()))
      const monitored = yield* monitorCommands(host, port)
      // round trips: the commands the store's client sent, not those its scripts ran
      const commandsOf = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
        Effect.map(monitored(effect), (commands) => commands.filter((command) => !command.startsWith("lua:")))

      const store = Context.get(yield* Layer.build(RedisStore.layer({ client, prefix })), SessionStore)
      const t = yield* now
      const write = (data: string, principal?: string) => ({
        data: bytes(data),
        expiresAt: t + 60_000,
        principal: Option.fromNullable(principal)
      })

      // a connection's first use of a script sends its text (EVAL); a
      // server that lost its script cache costs EVALSHA (NOSCRIPT) + EVAL
      yield* Effect.promise(() => client.script("FLUSH"))
      const cold = yield* commandsOf(store.insert(freshKey(), write("cold")))
      expect(cold).toEqual(["eval"])
      yield* Effect.promise(() => client.script("FLUSH"))
      const flushed = yield* commandsOf(store.insert(freshKey(), write("flushed")))
      expect(flushed).toEqual(["evalsha", "eval"])

      // warm: every script cached on the server, as it is in a running app
      const warm = freshKey()
      yield* store.insert(warm, write("w"))
      yield* store.update(warm, write("w", "bob"), 1)
      yield* store.touch(warm, t + 120_000)

      const key = freshKey()
      const anonymous = freshKey()
      yield* store.insert(anonymous, write("n"))
      const counts = {
        insert: yield* commandsOf(store.insert(key, write("a"))),
        insertWithPrincipal: yield* commandsOf(store.insert(freshKey(), write("p", "alice"))),
        load: yield* commandsOf(store.load(key)),
        update: yield* commandsOf(store.update(key, write("b", "alice"), 1)),
        touch: yield* commandsOf(store.touch(anonymous, t + 120_000)),
        // a touch that extends a principal's session past its index entry's
        // score raises that score as well (see the principal index in RedisStore)
        touchExtendingPrincipal: yield* commandsOf(store.touch(key, t + 120_000)),
        remove: yield* commandsOf(store.remove(key))
      }
      yield* Effect.log(`Redis commands per operation: ${JSON.stringify(counts)}`)
      expect(counts).toEqual({
        insert: ["evalsha"],
        insertWithPrincipal: ["evalsha"],
        load: ["get"],
        update: ["evalsha"],
        touch: ["evalsha"],
        touchExtendingPrincipal: ["evalsha", "evalsha"],
        remove: ["del"]
      })
      // what the index costs is counted in RedisScale.test.ts
    }).pipe(Effect.scoped))

  it.live("a server that stops answering fails operations at the command timeout", () =>
    Effect.gen(function*() {
      const timeout = 500
      const store = Context.get(
        yield* Layer.build(RedisStore.layer({ host, port, prefix, commandTimeout: timeout })),
        SessionStore
      )
      const key = freshKey()
      yield* store.insert(key, { data: bytes("kept"), expiresAt: (yield* now) + 600_000, principal: Option.none() })
      const pid = servers[0]!.process.pid!
      // the connection stays open, the server just never replies
      process.kill(pid, "SIGSTOP")
      const hung = yield* timed(store.load(key)).pipe(
        Effect.ensuring(Effect.sync(() => process.kill(pid, "SIGCONT")))
      )
      yield* Effect.log(`a hung server failed load after ${hung.millis.toFixed(1)} ms (commandTimeout ${timeout} ms)`)
      expect(Option.getOrThrow(hung.error)).toBeInstanceOf(SessionStoreError)
      expectEndedAtTimeout(hung.millis, timeout)
      const after = yield* store.load(key)
      expect(Option.map(after, (r) => text(r.data))).toEqual(Option.some("kept"))
    }).pipe(Effect.scoped))

  it.live("with a hung server, a waiting operation fails when the layer closes, and the close ends at the timeout", () =>
    Effect.gen(function*() {
      const commandTimeout = 3_000
      const scope = yield* Scope.make()
      const store = Context.get(
        yield* Layer.buildWithScope(RedisStore.layer({ host, port, prefix, commandTimeout }), scope),
        SessionStore
      )
      const pid = servers[0]!.process.pid!
      process.kill(pid, "SIGSTOP")
      const outcome = yield* Effect.gen(function*() {
        const waiting = yield* Effect.fork(timed(store.load(freshKey())))
        yield* Effect.sleep("100 millis")
        // the client's QUIT gets no reply either: the close gives up on it
        // at the command timeout instead of waiting forever
        const closing = yield* timed(Scope.close(scope, Exit.void))
        expectEndedAtTimeout(closing.millis, commandTimeout)
        return yield* Fiber.join(waiting)
      }).pipe(Effect.ensuring(Effect.sync(() => process.kill(pid, "SIGCONT"))))
      const error = Option.getOrThrow(outcome.error)
      expect(error).toBeInstanceOf(SessionStoreError)
      expect(String((error as SessionStoreError).cause)).toContain("closed before Redis answered")
      // at the close (after 100 ms), not at the deadline
      expectEndedBeforeTimeout(outcome.millis, commandTimeout)
    }))

  it.live("a Redis outage fails operations within the command timeout, and the same layer recovers", () =>
    Effect.gen(function*() {
      const timeout = 1000
      // a client passed in keeps ioredis' defaults: an offline queue that
      // holds commands while disconnected, here without any retry limit
      const own = new Redis({ host, port, maxRetriesPerRequest: null })
      // the application owns this client and its connection events
      own.on("error", () => {})
      yield* Effect.addFinalizer(() => Effect.sync(() => own.disconnect()))
      const created = Context.get(
        yield* Layer.build(RedisStore.layer({ host, port, prefix, commandTimeout: timeout })),
        SessionStore
      )
      const passed = Context.get(
        yield* Layer.build(RedisStore.layer({ client: own, prefix, commandTimeout: timeout })),
        SessionStore
      )

      const t = yield* now
      const a = freshKey()
      const b = freshKey()
      yield* created.insert(a, { data: bytes("written before the outage"), expiresAt: t + 600_000, principal: Option.none() })
      yield* passed.insert(b, { data: bytes("also written before"), expiresAt: t + 600_000, principal: Option.none() })

      yield* Effect.promise(() => servers[0]!.stop("SIGKILL"))

      const createdLoad = yield* timed(created.load(a))
      const passedLoad = yield* timed(passed.load(b))
      const createdInsert = yield* timed(
        created.insert(freshKey(), { data: bytes("x"), expiresAt: t + 60_000, principal: Option.none() })
      )
      const createdUpdate = yield* timed(
        created.update(a, { data: bytes("y"), expiresAt: t + 60_000, principal: Option.none() }, 1)
      )
      const createdTouch = yield* timed(created.touch(a, t + 60_000))
      yield* Effect.log(
        `during the outage: layer-created client load failed after ${createdLoad.millis.toFixed(1)} ms, ` +
          `passed-in client (offline queue on) load failed after ${passedLoad.millis.toFixed(1)} ms ` +
          `(commandTimeout ${timeout} ms)`
      )
      for (const [operation, { error, millis }] of [
        ["load", createdLoad],
        ["load", passedLoad],
        ["insert", createdInsert],
        ["update", createdUpdate],
        ["touch", createdTouch]
      ] as const) {
        expect(Option.isSome(error), `${operation} succeeded during the outage`).toBe(true)
        expect(Option.getOrThrow(error)).toBeInstanceOf(SessionStoreError)
        expect((Option.getOrThrow(error) as SessionStoreError).operation).toBe(operation)
        expect(millis, `${operation} took ${millis.toFixed(0)} ms`).toBeLessThan(timeoutWindow(timeout).max)
      }
      // the passed-in client queued the command: only the deadline ended it
      expectEndedAtTimeout(passedLoad.millis, timeout)
      expect(String(Option.getOrThrow(passedLoad.error))).toMatch(/did not answer within/)

      yield* Effect.promise(() => sleep(500))
      servers.push(yield* Effect.promise(() => startRedisServer(port, dir, persistent)))

      const reconnected = Schedule.intersect(Schedule.spaced("100 millis"), Schedule.recurs(150))
      const recoveredA = yield* created.load(a).pipe(Effect.retry(reconnected))
      const recoveredB = yield* passed.load(b).pipe(Effect.retry(reconnected))
      expect(Option.map(recoveredA, (r) => text(r.data))).toEqual(Option.some("written before the outage"))
      expect(Option.map(recoveredB, (r) => text(r.data))).toEqual(Option.some("also written before"))
      expect(yield* created.update(a, { data: bytes("after"), expiresAt: t + 600_000, principal: Option.none() }, 1))
        .toBe(2)
    }).pipe(Effect.scoped))
})
