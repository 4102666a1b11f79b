/**
 * What a person sees when a session fails: `SessionError.respond` answers
 * each error with its status over real HTTP and logs what failed, and a
 * store error's message carries the backend's own words (issue 13, item 5).
 */
import { HttpRouter, HttpServerResponse } from "@effect/platform"
import type { SqlError } from "@effect/sql"
import { SqlClient } from "@effect/sql"
import { SqliteClient } from "@effect/sql-sqlite-node"
import type { HttpServerError } from "@effect/platform"
import { describe, expect, it } from "@effect/vitest"
import { Data, Effect, Layer, Logger, Schema } from "effect"
import { connect } from "node:net"
import * as Session from "../src/Session.js"
import * as SessionError from "../src/SessionError.js"
import * as SqlStore from "../src/SqlStore.js"
import { freePort } from "./quickstartProcess.js"
import { makeBrowser, serve } from "./utils/http.js"

class AppSession extends Session.Tag<AppSession>()("test/SessionErrorSession", {
  note: Schema.optional(Schema.String)
}) {}

class Teapot extends Data.TaggedError("Teapot") {}

const table = "respond_sessions"

const router = HttpRouter.empty.pipe(
  HttpRouter.get("/read", Effect.map(AppSession.get("note"), (note) => HttpServerResponse.text(note ?? "none"))),
  HttpRouter.get("/big", Effect.as(AppSession.set("note", "x".repeat(2_000)), HttpServerResponse.text("saved"))),
  HttpRouter.get("/break-store", Effect.as(Effect.flatMap(SqlClient.SqlClient, (sql) => sql.unsafe(`DROP TABLE ${table}`)), HttpServerResponse.text("dropped"))),
  HttpRouter.get("/conflict", Effect.fail(new SessionError.SessionConflict({ reason: "VersionMismatch" }))),
  HttpRouter.get("/encode", Effect.fail(new SessionError.SessionEncodeError({ cause: new Error("not an integer") }))),
  HttpRouter.get("/teapot", Effect.fail(new Teapot()))
)

// The one-liner: session errors become responses, and `Teapot` stays in the
// error channel, typed, for the app's own handler.
const responded = router.pipe(
  AppSession.middleware({ cookie: { secure: false }, maxSize: 1_024 }),
  SessionError.respond
)
// (checked by `npm run typecheck`) every session error is handled, the app's own remain
type Remaining = Effect.Effect.Error<typeof responded>
type Expected = Teapot | SqlError.SqlError | HttpServerError.RouteNotFound
const exactlyTheAppsOwn: [Remaining] extends [Expected] ? [Expected] extends [Remaining] ? true : false : false = true
const app = responded.pipe(Effect.catchTag("Teapot", () => HttpServerResponse.text("teapot", { status: 418 })))

const logs: Array<string> = []
const captureLogs = Logger.replace(
  Logger.defaultLogger,
  Logger.make(({ logLevel, message }) => logs.push(`${logLevel.label} ${Array.isArray(message) ? message.join(" ") : String(message)}`))
)

const sqlite = SqliteClient.layer({ filename: ":memory:" })
const TestLive = serve(app).pipe(
  Layer.provide(SqlStore.layer({ table })),
  Layer.provideMerge(sqlite),
  Layer.provide(captureLogs)
)

describe("SessionError.respond", () => {
  it.effect("answers each session error with its status, logs what failed, and passes other errors on", () =>
    Effect.gen(function*() {
      expect(exactlyTheAppsOwn).toBe(true)
      const browser = yield* makeBrowser
      const tooLarge = yield* browser.get("/big")
      expect([tooLarge.status, tooLarge.body]).toEqual([413, "Session too large"])
      expect(logs).toContainEqual(expect.stringMatching(/^WARN session data encodes to \d+ bytes, over the limit of 1024 bytes$/))

      const conflict = yield* browser.get("/conflict")
      expect([conflict.status, conflict.headers["retry-after"], conflict.body]).toEqual([503, "1", "Session busy, try again"])

      const encode = yield* browser.get("/encode")
      expect([encode.status, encode.body]).toEqual([500, "Internal Server Error"])
      expect(logs).toContain("ERROR session data does not match its schema: not an integer")

      const teapot = yield* browser.get("/teapot")
      expect(teapot.status).toBe(418)

      // the store goes down: a load fails, the response says 503 and only
      // that, the log says which store, which operation and what SQLite said
      expect((yield* browser.get("/break-store")).body).toBe("dropped")
      const down = yield* browser.get("/read", { cookie: `session=${"A".repeat(43)}` })
      expect([down.status, down.body]).toEqual([503, "Session store unavailable"])
      expect(logs).toContainEqual(expect.stringMatching(
        new RegExp(`^ERROR sql store: load failed: .*: no such table: ${table} \\(SQLITE_ERROR\\)$`)
      ))
    }).pipe(Effect.provide(TestLive)))
})

describe("SessionStoreError.message", () => {
  it.effect("names the store, the operation and each message of the cause chain, outermost first", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const cause = yield* Effect.flip(sql.unsafe("SELECT * FROM missing_table"))
      const error = new SessionError.SessionStoreError({ store: "sql", operation: "load", cause })
      // the SQL client's own message first, then the driver's, with its code
      expect(error.message).toBe("sql store: load failed: Failed to prepare statement: no such table: missing_table (SQLITE_ERROR)")
    }).pipe(Effect.provide(sqlite)))

  it.effect("a refused connection: Node's message already has its code, which is not repeated", () =>
    Effect.gen(function*() {
      const port = yield* Effect.promise(freePort)
      const cause = yield* Effect.async<Error>((resume) => {
        connect(port, "127.0.0.1").once("error", (error) => resume(Effect.succeed(error)))
      })
      const error = new SessionError.SessionStoreError({
        store: "redis",
        operation: "load",
        cause: new Error("not connected", { cause })
      })
      expect(error.message).toBe(`redis store: load failed: not connected: connect ECONNREFUSED 127.0.0.1:${port}`)
    }))

  it("a connection error for several addresses lists each; a cause that is its own cause ends", () => {
    const refused = (address: string) => Object.assign(new Error(`connect ECONNREFUSED ${address}`), { code: "ECONNREFUSED" })
    const several = Object.assign(new AggregateError([refused("::1:6390"), refused("127.0.0.1:6390")], ""), {
      code: "ECONNREFUSED"
    })
    expect(new SessionError.SessionStoreError({ store: "redis", operation: "touch", cause: several }).message).toBe(
      "redis store: touch failed: connect ECONNREFUSED ::1:6390; connect ECONNREFUSED 127.0.0.1:6390"
    )
    const loop: Error & { cause?: unknown } = new Error("wedged")
    loop.cause = loop
    expect(new SessionError.SessionStoreError({ store: "x", operation: "insert", cause: loop }).message).toBe(
      "x store: insert failed: wedged"
    )
    const timeout = Object.assign(new Error(""), { code: "ETIMEDOUT" })
    expect(new SessionError.SessionStoreError({ store: "x", operation: "update", cause: timeout }).message).toBe(
      "x store: update failed: ETIMEDOUT"
    )
  })
})
