/**
 * Instructions per request of one build, under Valgrind's callgrind (issue
 * 16's "not worse than before" without the machine's speed in it): run by
 * `bench/instructions.sh`, which starts it as
 *
 *   valgrind --tool=callgrind --instr-atstart=no … node instructions.mjs APP ROUTE WARMUP N
 *
 * It loads `bench/session-app.ts` bundled over one revision (APP), sends
 * WARMUP requests of ROUTE uninstrumented (V8 compiles its hot code meanwhile),
 * then switches callgrind's instrumentation on (`callgrind_control -i on`,
 * answered while this process waits for it), sends N requests, switches it
 * off and exits: the profile callgrind writes at exit holds those N requests
 * (and the two control calls' few instructions). The script splits it by
 * function.
 */
import { execFile } from "node:child_process"
import { pathToFileURL } from "node:url"

type Send = (path: string, cookie: string | undefined) => Promise<unknown>

const [file, route, warmupArg, nArg] = process.argv.slice(2)
if (file === undefined || route === undefined) {
  console.error("usage: instructions.mjs APP ROUTE [WARMUP] [N]  (see bench/instructions.sh)")
  process.exit(2)
}
const warmup = Number(warmupArg ?? 10_000)
const n = Number(nArg ?? 2_000)

const instrumentation = (state: "on" | "off") =>
  new Promise<void>((resolve, reject) =>
    execFile("callgrind_control", ["-i", state, String(process.pid)], (error) => error === null ? resolve() : reject(error))
  )

const main = async () => {
  const module = await import(pathToFileURL(file).href) as { setup: () => Promise<{ send: Send; cookie: string }> }
  const { cookie, send } = await module.setup()
  for (let i = 0; i < warmup; i++) await send(route, cookie)
  await instrumentation("on")
  for (let i = 0; i < n; i++) await send(route, cookie)
  await instrumentation("off")
}

main().then(() => process.exit(0), (error) => {
  console.error(error)
  process.exit(1)
})
