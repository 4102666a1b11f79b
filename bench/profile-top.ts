/**
 * Prints the functions with the most self time in a V8 `.cpuprofile`
 * (written by `node --cpu-prof`, e.g. through `CPU_PROF=dir` of run.ts).
 *
 *   npx tsx bench/profile-top.ts DIR/effect-session/CPU.*.cpuprofile [count] [inclusive-filter]
 *   npx tsx bench/profile-top.ts --diff A.cpuprofile REQUESTS_A B.cpuprofile REQUESTS_B [count]
 *
 * (the largest file of a server's directory is its main thread). REQUESTS: the
 * measured requests of that server, from the run's JSON (`runs[].requests`).
 */
import { readFileSync } from "node:fs"

interface ProfileNode {
  readonly id: number
  readonly callFrame: { readonly functionName: string; readonly url: string; readonly lineNumber: number }
  readonly children?: ReadonlyArray<number>
}
interface Profile {
  readonly nodes: ReadonlyArray<ProfileNode>
  readonly samples: ReadonlyArray<number>
  readonly timeDeltas: ReadonlyArray<number>
}

const selfTimes = (path: string): Map<string, number> => {
  const profile = JSON.parse(readFileSync(path, "utf8")) as Profile
  const nodes = new Map(profile.nodes.map((node) => [node.id, node]))
  const self = new Map<string, number>()
  profile.samples.forEach((id, i) => {
    const frame = nodes.get(id)!.callFrame
    const where = frame.url.replace(/^file:\/\//, "").replace(/.*\/node_modules\//, "").replace(/.*\/\.build\//, "")
    const name = `${frame.functionName || "(anonymous)"}  ${where}${where ? `:${frame.lineNumber + 1}` : ""}`
    self.set(name, (self.get(name) ?? 0) + (profile.timeDeltas[i] ?? 0))
  })
  return self
}

// Diff mode: self time per request of two servers, function by function,
// sorted by how much more the first spends.
//   tsx bench/profile-top.ts --diff A.cpuprofile REQUESTS_A B.cpuprofile REQUESTS_B [count]
if (process.argv[2] === "--diff") {
  const [, fileA, requestsA, fileB, requestsB, countDiff] = process.argv.slice(2)
  if (fileA === undefined || fileB === undefined || requestsA === undefined || requestsB === undefined) {
    console.error("usage: tsx bench/profile-top.ts --diff A.cpuprofile REQUESTS_A B.cpuprofile REQUESTS_B [count]")
    process.exit(2)
  }
  const a = selfTimes(fileA)
  const b = selfTimes(fileB)
  const rows = [...new Set([...a.keys(), ...b.keys()])]
    .filter((name) => !name.startsWith("(idle)"))
    .map((name) => ({
      name,
      a: (a.get(name) ?? 0) / Number(requestsA),
      b: (b.get(name) ?? 0) / Number(requestsB)
    }))
    .sort((x, y) => (y.a - y.b) - (x.a - x.b))
  const total = (key: "a" | "b") => rows.reduce((sum, row) => sum + row[key], 0)
  console.log(`busy µs per request: A ${total("a").toFixed(0)}, B ${total("b").toFixed(0)} (setup and warm-up included)`)
  console.log("  A - B       A       B   function (µs of self time per request)")
  for (const row of rows.slice(0, Number(countDiff ?? 30))) {
    console.log(`${(row.a - row.b).toFixed(1).padStart(7)} ${row.a.toFixed(1).padStart(7)} ${row.b.toFixed(1).padStart(7)}   ${row.name}`)
  }
  process.exit(0)
}

const [file, countArg, inclusiveFilter] = process.argv.slice(2)
if (file === undefined) {
  console.error("usage: tsx bench/profile-top.ts FILE.cpuprofile [count] [inclusive-filter]")
  process.exit(2)
}
const profile = JSON.parse(readFileSync(file, "utf8")) as Profile
const nodes = new Map(profile.nodes.map((node) => [node.id, node]))
const selfMicros = new Map<string, number>()
let total = 0
profile.samples.forEach((id, i) => {
  const delta = profile.timeDeltas[i] ?? 0
  const frame = nodes.get(id)!.callFrame
  const where = frame.url.replace(/^file:\/\//, "").replace(/.*\/node_modules\//, "")
  const name = `${frame.functionName || "(anonymous)"}  ${where}${where ? `:${frame.lineNumber + 1}` : ""}`
  selfMicros.set(name, (selfMicros.get(name) ?? 0) + delta)
  total += delta
})
const idle = [...selfMicros].filter(([name]) => name.startsWith("(idle)")).reduce((a, [, t]) => a + t, 0)
console.log(`total ${(total / 1e6).toFixed(1)} s sampled, idle ${(100 * idle / total).toFixed(1)}%`)
const byPackage = new Map<string, number>()
for (const [name, micros] of selfMicros) {
  const where = name.split("  ")[1] ?? ""
  const pkg = where.startsWith("/") ? (where.includes("/src/") ? "effect-session src" : "bench / other") :
    where === "" ? name.split("  ")[0]! : where.split("/").slice(0, where.startsWith("@") ? 2 : 1).join("/")
  byPackage.set(pkg, (byPackage.get(pkg) ?? 0) + micros)
}
console.log("\nself time by package:")
for (const [pkg, micros] of [...byPackage].sort((a, b) => b[1] - a[1]).slice(0, 15)) {
  console.log(`${(100 * micros / total).toFixed(1).padStart(6)}%  ${pkg}`)
}
console.log("\ntop functions by self time:")
for (const [name, micros] of [...selfMicros].sort((a, b) => b[1] - a[1]).slice(0, Number(countArg ?? 30))) {
  console.log(`${(100 * micros / total).toFixed(1).padStart(6)}%  ${name}`)
}

// Inclusive time: a sample counts once for every distinct function on its
// stack. With a filter (a substring of the location, e.g. ".build/"), only
// matching functions are listed: where the time of the bench's own code goes.
const parents = new Map<number, number>()
for (const node of profile.nodes) for (const child of node.children ?? []) parents.set(child, node.id)
const label = (node: ProfileNode) => {
  const where = node.callFrame.url.replace(/^file:\/\//, "").replace(/.*\/node_modules\//, "")
  return `${node.callFrame.functionName || "(anonymous)"}  ${where}${where ? `:${node.callFrame.lineNumber + 1}` : ""}`
}
const inclusive = new Map<string, number>()
let busy = 0
profile.samples.forEach((id, i) => {
  const delta = profile.timeDeltas[i] ?? 0
  if (nodes.get(id)!.callFrame.functionName === "(idle)") return
  busy += delta
  const seen = new Set<string>()
  for (let current: number | undefined = id; current !== undefined; current = parents.get(current)) {
    const name = label(nodes.get(current)!)
    if (!seen.has(name)) {
      seen.add(name)
      inclusive.set(name, (inclusive.get(name) ?? 0) + delta)
    }
  }
})
console.log(`\ntop functions by inclusive time, % of busy time${inclusiveFilter ? ` (matching ${inclusiveFilter})` : ""}:`)
for (
  const [name, micros] of [...inclusive]
    .filter(([name]) => inclusiveFilter === undefined || name.includes(inclusiveFilter))
    .sort((a, b) => b[1] - a[1])
    .slice(0, Number(countArg ?? 30))
) {
  console.log(`${(100 * micros / busy).toFixed(1).padStart(6)}%  ${name}`)
}
