/**
 * Reads the callgrind profiles of `bench/instructions.sh`, in two ways.
 *
 *   node instructions-functions.mjs split PROFILE N
 *
 * prints one profile's instructions per request (N requests): in all, in
 * V8's garbage collector, in its compilers, and the rest (the request's own
 * work), the split the script reports; it is made here, once, for both uses.
 *
 * Where two builds' instructions per request differ, function by function:
 * `bench/instructions.sh` with `FUNCTIONS=n` runs each build under callgrind
 * with V8's `--perf-basic-prof` (V8 writes the address range and name of
 * every piece of code it compiles to a map file), then runs this:
 *
 *   node instructions-functions.mjs WORK ROUTE N TOP NAME...
 *
 * For each profile `WORK/NAME-ROUTE-i.callgrind` it reads callgrind's
 * per-function counts (`callgrind_annotate`): V8's builtins, its runtime and
 * libc by their symbols, JIT code, which callgrind knows only by address, by
 * the name the map file `WORK/NAME-ROUTE-i.map` gives that address (the
 * function, its file and its tier: `*` optimized, `^` baseline, `~`
 * interpreted). The bundled app's functions lose their line numbers, which
 * differ between builds. A build's count for a function is its mean over the
 * repetitions, per request. It prints, for each build after the first, the
 * TOP functions whose count differs most from the first build's, with the
 * garbage collector and the compilers left out (as the rest is in
 * instructions.sh).
 */
import { execFileSync } from "node:child_process"
import { existsSync, readFileSync } from "node:fs"

// V8's garbage collector, its evacuation and pretenuring visitors included
const garbageCollector =
  /Scaveng|MarkCompact|Marking|Sweeper|Sweep|Evacuat|MinorMC|Heap::|GCTracer|RememberedSet|PagedSpace|MemoryAllocator|MemoryChunk|RecordMigratedSlot|LiveObjectRange|BodyDescriptor|PretenuringHandler|ShouldBePromoted|IterateObjectCache/
// V8's compilers (its JSON and regular expression engines are the request's work)
const compilers =
  /compiler::|Compiler|maglev::|turboshaft::|internal::Parser|ParserBase|PreParser|Deoptimizer|BytecodeGenerator|CodeGenerator|RegisterAllocator|Zone::/
const requestsOwn = /JsonParser|RegExp/

/** What a function of a profile is: the garbage collector's, a compiler's, or the request's own work. */
const kindOf = (name: string): "gc" | "compiler" | "rest" =>
  garbageCollector.test(name) ? "gc" : !requestsOwn.test(name) && compilers.test(name) ? "compiler" : "rest"

/** callgrind_annotate's lines of a profile: each function's name and instructions, and the total. */
const annotate = (profile: string): { readonly total: number; readonly functions: Array<[string, number]> } => {
  const annotated = execFileSync("callgrind_annotate", ["--threshold=100", profile], { maxBuffer: 1 << 28 }).toString()
  let total = 0
  const functions: Array<[string, number]> = []
  for (const line of annotated.split("\n")) {
    const match = /^\s*([0-9,]+) \([^)]*\)\s+(.*)$/.exec(line)
    if (match === null) continue
    const count = Number(match[1].replace(/,/g, ""))
    if (match[2].includes("PROGRAM TOTALS")) total = count
    // (a function's line names its object: `file:function [object]`)
    else if (/:.*\[/.test(match[2])) functions.push([match[2], count])
  }
  return { total, functions }
}

const args = process.argv.slice(2)
if (args[0] === "split") {
  const [profile, nArg] = args.slice(1)
  const n = Number(nArg ?? 2000)
  const { functions, total } = annotate(profile)
  let gc = 0
  let compiler = 0
  for (const [name, count] of functions) {
    const kind = kindOf(name)
    if (kind === "gc") gc += count
    else if (kind === "compiler") compiler += count
  }
  console.log([total, gc, compiler, total - gc - compiler].map((count) => (count / n).toFixed(0)).join(" "))
  process.exit(0)
}

const [work, route, nArg, topArg, ...names] = args
if (work === undefined || route === undefined || names.length < 2) {
  console.error("usage: instructions-functions.mjs WORK ROUTE N TOP NAME NAME...  (see bench/instructions.sh)")
  process.exit(2)
}
const n = Number(nArg ?? 2000)
const top = Number(topArg ?? 30)

interface CodeRange {
  readonly start: number
  readonly end: number
  readonly name: string
}

/** The map file's code ranges, sorted by start. */
const readMap = (file: string): Array<CodeRange> =>
  readFileSync(file, "utf8").split("\n").flatMap((line) => {
    const match = /^([0-9a-f]+) ([0-9a-f]+) (.*)$/.exec(line)
    if (match === null) return []
    const start = parseInt(match[1], 16)
    return [{ start, end: start + parseInt(match[2], 16), name: match[3] }]
  }).sort((a, b) => a.start - b.start)

const nameAt = (ranges: ReadonlyArray<CodeRange>, address: number): string | undefined => {
  let low = 0
  let high = ranges.length - 1
  let found = -1
  while (low <= high) {
    const middle = (low + high) >> 1
    if (ranges[middle].start <= address) {
      found = middle
      low = middle + 1
    } else {
      high = middle - 1
    }
  }
  return found >= 0 && address < ranges[found].end ? ranges[found].name : undefined
}

/** A function's name as both builds can share it. */
const normalize = (name: string): string =>
  name
    .replace(/^(JS|Builtin|Handler|RegExp):/, "")
    .replace(/file:\/\/\S*\/node_modules\//, "")
    .replace(/file:\/\/\S*\/(app|instructions)\.mjs:\d+:\d+/, "$1.mjs")
    .replace(/^\?\?\?:/, "")
    .replace(/\(v8::internal::Isolate.*$/, "")
    .replace(/ \[\/[^\]]*\]$/, "")
    .slice(0, 110)

/** One profile's instructions by function, for the whole window. */
const byFunction = (profile: string, map: string): Map<string, number> => {
  const ranges = existsSync(map) ? readMap(map) : []
  const counts = new Map<string, number>()
  for (const [symbol, count] of annotate(profile).functions) {
    if (kindOf(symbol) !== "rest") continue
    const address = /^\?\?\?:0x([0-9a-f]+) \[\?\?\?\]/.exec(symbol)
    const name = normalize(address === null ? symbol : nameAt(ranges, parseInt(address[1], 16)) ?? "(JIT code no map names)")
    counts.set(name, (counts.get(name) ?? 0) + count)
  }
  return counts
}

/** A build's instructions per request by function: the mean over its repetitions. */
const build = (name: string): Map<string, number> => {
  const mean = new Map<string, number>()
  let runs = 0
  for (let i = 1; existsSync(`${work}/${name}-${route}-${i}.callgrind`); i++) {
    runs++
    for (const [fn, count] of byFunction(`${work}/${name}-${route}-${i}.callgrind`, `${work}/${name}-${route}-${i}.map`)) {
      mean.set(fn, (mean.get(fn) ?? 0) + count)
    }
  }
  for (const [fn, count] of mean) mean.set(fn, count / runs / n)
  return mean
}

const total = (counts: Map<string, number>): number => [...counts.values()].reduce((a, b) => a + b, 0)
const first = build(names[0])
for (const name of names.slice(1)) {
  const other = build(name)
  console.log(
    `/${route}: ${name} against ${names[0]}, instructions per request by function (the rest: ${total(first).toFixed(0)} → ${
      total(other).toFixed(0)
    })`
  )
  const rows = [...new Set([...first.keys(), ...other.keys()])]
    .map((fn) => ({ fn, before: first.get(fn) ?? 0, after: other.get(fn) ?? 0 }))
    .sort((a, b) => Math.abs(b.after - b.before) - Math.abs(a.after - a.before))
    .slice(0, top)
  for (const { after, before, fn } of rows) {
    console.log(`${(after - before).toFixed(0).padStart(8)} ${before.toFixed(0).padStart(8)} ${after.toFixed(0).padStart(8)}  ${fn}`)
  }
}
