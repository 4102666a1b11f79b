/**
 * Revisions of the Effect 3 line side by side, in alternating batches (issue
 * 16's "not worse than before"): `bench/session-app.ts` bundled over each
 * revision's `src/` runs in a process of its own (its own heap and JIT state,
 * as alone), and this driver has them serve batches of requests in turn, one
 * process at a time, the order rotated every round. A machine whose speed
 * drifts over seconds (this project's shared 2-core machines move by 1.5–3×
 * between runs of one build) slows every build's batch of a round alike, so
 * the ratio of two builds' batches in one round holds where the ratio of
 * separate runs does not.
 *
 *   bash bench/interleave.sh [rev ...]      (default 349455e HEAD; builds, then runs this)
 *
 * Prints each build's median µs per request per route and the median over
 * rounds of each build's batch over the first build's batch of the same round.
 * Settings: ROUTES (default "/get /incr /plain"), ROUNDS (default 200),
 * BATCH (requests per batch, default 500), WARMUP (requests per process and
 * route first, default 5000), PROCESSES (processes per build, default 1: with
 * more, a build's batch of a round is the median of its processes', and each
 * build's line also says how far apart its processes' medians were).
 *
 * With REDIS_URL set, each build runs on its own `RedisStore` on that server
 * (keys under a prefix of its own) and answers in CPU µs (user + system) per
 * request instead of elapsed µs, which a request spends mostly waiting for
 * Redis.
 *
 * Run as a child (`--serve FILE`), it loads that bundle and answers the
 * driver's `{ route, n }` with the µs per request of `n` requests.
 */
import { fork } from "node:child_process"
import type { ChildProcess } from "node:child_process"
import { pathToFileURL } from "node:url"

type Send = (path: string, cookie: string | undefined) => Promise<unknown>

const serve = async (file: string) => {
  const module = await import(pathToFileURL(file).href) as { setup: () => Promise<{ send: Send; cookie: string }> }
  const { cookie, send } = await module.setup()
  // on Redis a request waits for its round trips: the process's CPU time
  // (user + system) is what the build costs; in memory, the elapsed time
  const redis = process.env.REDIS_URL !== undefined && process.env.REDIS_URL !== ""
  const cpu = () => {
    const { system, user } = process.cpuUsage()
    return user + system
  }
  process.on("message", async ({ n, route }: { route: string; n: number }) => {
    const start = process.hrtime.bigint()
    const startCpu = cpu()
    for (let i = 0; i < n; i++) await send(route, cookie)
    process.send!((redis ? cpu() - startCpu : Number(process.hrtime.bigint() - start) / 1000) / n)
  })
  process.send!("ready")
}

const median = (xs: ReadonlyArray<number>) => {
  const s = [...xs].sort((a, b) => a - b)
  const m = s.length >> 1
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2
}

const drive = async () => {
  const routes = (process.env.ROUTES ?? "/get /incr /plain").split(" ").filter((r) => r.length > 0)
  const rounds = Number(process.env.ROUNDS ?? 200)
  const batch = Number(process.env.BATCH ?? 500)
  const warmup = Number(process.env.WARMUP ?? 5000)
  const processes = Number(process.env.PROCESSES ?? 1)
  // each build in PROCESSES processes of its own: one process's JIT and heap
  // decisions (its "luck") move it by a few percent against another process
  // of the same build, which one process per build cannot tell from the code
  const builds = process.argv.slice(2).map((arg) => {
    const [name, file] = arg.split("=")
    const children = Array.from({ length: processes }, () =>
      fork(process.argv[1]!, ["--serve", file!], { execArgv: process.execArgv }))
    return { name: name!, children }
  })
  const all = builds.flatMap(({ children }, build) => children.map((child, index) => ({ build, index, child })))
  const next = (child: ChildProcess) => new Promise<unknown>((resolve, reject) => {
    const ended = (code: number | null) => reject(new Error(`a build's process ended (${code})`))
    child.once("exit", ended)
    child.once("message", (message) => {
      child.off("exit", ended)
      resolve(message)
    })
  })
  const time = async (child: ChildProcess, route: string, n: number) => {
    const answer = next(child)
    child.send({ route, n })
    return await answer as number
  }
  await Promise.all(all.map(({ child }) => next(child)))
  for (const route of routes) for (const { child } of all) await time(child, route, warmup)
  console.log(
    `${builds.length} builds` + (processes > 1 ? ` in ${processes} processes each` : "") +
      `, ${rounds} rounds of ${batch} requests per process and route (after ${warmup} of warm-up), one at a time`
  )
  for (const route of routes) {
    // per build, per round: the median of its processes' batches (one
    // process whose JIT luck was bad moves its build's figure the least)
    const perBuild = builds.map(() => [] as Array<number>)
    const perProcess = all.map(() => [] as Array<number>)
    for (let round = 0; round < rounds; round++) {
      const times = builds.map(() => [] as Array<number>)
      for (let k = 0; k < all.length; k++) {
        const j = (k + round) % all.length
        const us = await time(all[j]!.child, route, batch)
        times[all[j]!.build]!.push(us)
        perProcess[j]!.push(us)
      }
      times.forEach((xs, i) => perBuild[i]!.push(median(xs)))
    }
    const line = builds.map(({ name }, i) => {
      const paired = perBuild[i]!.map((us, round) => us / perBuild[0]![round]!)
      const spread = processes === 1 ? "" : (() => {
        const medians = all.flatMap(({ build }, j) => build === i ? [median(perProcess[j]!)] : [])
        return ` [processes ${(Math.max(...medians) / Math.min(...medians)).toFixed(3)}x apart]`
      })()
      return `${name} ${median(perBuild[i]!).toFixed(1)} µs` + (i === 0 ? "" : ` (${median(paired).toFixed(3)}x)`) + spread
    })
    console.log(`${route.padEnd(7)} ${line.join("   ")}`)
  }
  for (const { child } of all) child.kill()
}

const run = process.argv[2] === "--serve" ? serve(process.argv[3]!) : drive()
run.catch((error) => {
  console.error(error)
  process.exit(1)
})
