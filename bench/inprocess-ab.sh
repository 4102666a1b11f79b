#!/usr/bin/env bash
# The Effect 3 line against an earlier revision of itself, in process (issue 16's
# "not worse than before"): today's bench/micro.ts bundled over each revision's
# src/, the builds run one after another in rounds, each run a fresh process
# pinned to one core. Prints every run, then each build's median per route.
#
#   bash bench/inprocess-ab.sh [rev ...]        default: 349455e (before the wave) and HEAD
#
# Settings, by environment variable:
#   ROUTES    routes to run                    default "/get /incr /plain"
#   ROUNDS    runs of each build per route     default 9
#   REQUESTS  measured requests per run        default 20000 (after micro.ts's 2,000 of warm-up)
#   CORE      the core the runs are pinned to  default 1
#   NODE_FLAGS  extra node flags; default pins V8's hash and random seeds and runs
#             the GC on the main thread, which takes out most of the variance
#             between runs (add --no-allocation-site-pretenuring to see the runtime
#             work without V8's pretenuring decisions, docs/performance.md)
#   WORKTREE=1  also run the working tree's src/ (uncommitted changes), as "worktree"
#
# Requests go through HttpApp.toHandled (micro.ts DIRECT=1), on a synchronous
# in-memory store: no sockets, no Redis, no web Response per request.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
revs=("$@")
[ ${#revs[@]} -eq 0 ] && revs=(349455e HEAD)
routes=${ROUTES:-/get /incr /plain}
rounds=${ROUNDS:-9}
requests=${REQUESTS:-20000}
core=${CORE:-1}
flags=${NODE_FLAGS:---hash-seed=1 --random-seed=1 --single-threaded-gc}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

build() { # build <name> <rev|worktree>
  local dir="$work/$1"
  mkdir -p "$dir/bench"
  if [ "$2" = worktree ]; then cp -r src "$dir/src"; else git archive "$2" src | tar -x -C "$dir"; fi
  cp bench/micro.ts bench/session-app.ts "$dir/bench/"
  ln -s "$root/node_modules" "$dir/node_modules"
  node_modules/.bin/esbuild "$dir/bench/micro.ts" --bundle --packages=external --platform=node \
    --format=esm --outfile="$dir/micro.mjs" --log-level=error
}

names=()
for rev in "${revs[@]}"; do
  name=$(git rev-parse --short "$rev")
  build "$name" "$rev"
  names+=("$name")
done
if [ "${WORKTREE:-}" = 1 ]; then build worktree worktree; names+=(worktree); fi

results="$work/results"
: > "$results"
for round in $(seq "$rounds"); do
  for route in $routes; do
    for name in "${names[@]}"; do
      # /plain prints the app without middleware too; the session's line is the last
      # shellcheck disable=SC2086
      us=$(cd "$work/$name" && DIRECT=1 ONLY=$route taskset -c "$core" node $flags micro.mjs "$requests" \
        | grep effect-session | tail -1 | grep -oE '[0-9.]+ µs' | cut -d' ' -f1)
      echo "round $round  $route  $name  $us µs/req"
      echo "$route $name $us" >> "$results"
    done
  done
done

echo
echo "median µs per request over $rounds runs of $requests requests (node $flags):"
node -e '
const rows = require("fs").readFileSync(process.argv[1], "utf8").trim().split("\n").map((l) => l.split(" "))
const names = process.argv.slice(2)
const routes = [...new Set(rows.map((r) => r[0]))]
const median = (xs) => { const s = [...xs].sort((a, b) => a - b); const m = s.length >> 1; return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2 }
console.log(["route", ...names, ...names.slice(1).map((n) => `${n}/${names[0]}`)].join("\t"))
for (const route of routes) {
  const med = names.map((n) => median(rows.filter((r) => r[0] === route && r[1] === n).map((r) => Number(r[2]))))
  console.log([route, ...med.map((m) => m.toFixed(1)), ...med.slice(1).map((m) => (m / med[0]).toFixed(2) + "x")].join("\t"))
}
// the same ratios paired: each run over the first build'"'"'s run of its round
// (the builds of one round run back to back), then the median of those; steadier
// than the ratio of medians when the machine'"'"'s speed drifts between rounds
console.log("\npaired: median over rounds of each build'"'"'s run / the first build'"'"'s run in the same round")
for (const route of routes) {
  const runs = names.map((n) => rows.filter((r) => r[0] === route && r[1] === n).map((r) => Number(r[2])))
  const paired = runs.slice(1).map((xs) => median(xs.map((x, i) => x / runs[0][i])))
  console.log([route, ...paired.map((p, i) => `${names[i + 1]}/${names[0]} ${p.toFixed(3)}x`)].join("\t"))
}' "$results" "${names[@]}"
