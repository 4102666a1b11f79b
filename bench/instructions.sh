#!/usr/bin/env bash
# Instructions per request of each revision's build of bench/session-app.ts,
# counted by Valgrind's callgrind (bench/instructions.ts says how): a count
# the machine's speed does not move, for comparisons that time cannot settle
# on a noisy machine (docs/performance.md, "The context put back only where
# it must be").
#
#   bash bench/instructions.sh [rev|dir ...]   default: 349455e (before the wave) and HEAD
#                                            (a dir holding a src/: that tree, see build-apps.sh)
#
# Per route and build it prints instructions per request: in all, in V8's
# garbage collector, in V8's compilers (its JSON and regular expression
# engines are the request's work), and the rest (the request's own work: JIT
# code, builtins, the runtime), with the rest's ratio to the first build.
# A window that holds a major GC or a tier-up compilation counts it, which is
# why the rest is shown apart; REPEAT=n runs each n times and shows the
# median. A major GC's marking also costs the request's own code (its write
# barrier: about 9k more in the rest per request of a 2,000-request window
# that holds one), and whether a window holds one is chance: N=8000 spreads
# it over more requests. Settings: ROUTES (default "/get /incr /plain"), WARMUP (default
# 10000), N (counted requests, default 2000), REPEAT (default 1), JOBS
# (processes at once, default 2), WORKTREE=1 (the working tree's src/ too),
# NODE_FLAGS (node flags added to the fixed ones, e.g. --no-memory-reducer:
# without it V8 may start a full collection on a timer, which under
# valgrind's slowness lands in some windows and not others),
# FUNCTIONS=n (then, per route, the n functions whose instructions per
# request differ most between the first build and each other one: V8 names
# its JIT code for it with --perf-basic-prof, see
# bench/instructions-functions.ts).
# Needs valgrind (Debian `valgrind`); a build's three routes take about 2
# minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v valgrind >/dev/null || { echo "instructions.sh: valgrind is not installed (apt-get install -y valgrind)" >&2; exit 1; }
revs=("$@")
[ ${#revs[@]} -eq 0 ] && revs=(349455e HEAD)
routes=${ROUTES:-/get /incr /plain}
warmup=${WARMUP:-10000}
n=${N:-2000}
repeat=${REPEAT:-1}
jobs=${JOBS:-2}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# shellcheck source=bench/build-apps.sh
. bench/build-apps.sh
build_apps "$work" "${revs[@]}"
node_modules/.bin/esbuild bench/instructions.ts --platform=node --format=esm --outfile="$work/instructions.mjs" --log-level=error
# reads the profiles: the split below, and FUNCTIONS's table
node_modules/.bin/esbuild bench/instructions-functions.ts --platform=node --format=esm --outfile="$work/functions.mjs" --log-level=error
functions=${FUNCTIONS:-0}
perf=()
if [ "$functions" != 0 ]; then perf=(--perf-basic-prof); fi

# one valgrind run per build, route and repetition, JOBS at a time
runs=()
for route in $routes; do
  for name in "${names[@]}"; do
    for ((i = 1; i <= repeat; i++)); do runs+=("$name ${route#/} $route $i"); done
  done
done
printf '%s\n' "${runs[@]}" | xargs -P "$jobs" -L 1 bash -c '
  out="$0/$1-$2-$4.callgrind"
  # (in the work directory: with --perf-basic-prof V8 also writes a log file where it runs)
  cd "$0"
  valgrind --tool=callgrind --instr-atstart=no --smc-check=all-non-file --callgrind-out-file="$out" \
    node '"${perf[*]} ${NODE_FLAGS:-}"' --single-threaded --hash-seed=1 --random-seed=1 "$0/instructions.mjs" "$0/$1/app.mjs" "$3" '"$warmup $n"' \
    >"$out.log" 2>&1 || { echo "instructions.sh: the run of $1 $3 failed:" >&2; tail -5 "$out.log" >&2; exit 255; }
  # V8 writes its map of JIT code to /tmp/perf-<pid>.map; it is kept with the profile
  pid=$(sed -n "s/^pid: //p" "$out" | head -1)
  if [ -n "$pid" ] && [ -f "/tmp/perf-$pid.map" ]; then mv "/tmp/perf-$pid.map" "${out%.callgrind}.map"; fi
' "$work"

# split each profile: the garbage collector, the compilers, the rest
split() { # split <profile> -> "total gc compiler rest" per request
  node "$work/functions.mjs" split "$1" "$n"
}
median() { sort -n | awk '{ a[NR] = $1 } END { print (NR % 2 ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2) }'; }

echo "instructions per request (thousands): all / garbage collector / compilers / rest; $n requests after $warmup, median of $repeat"
for route in $routes; do
  line="${route}"
  first=""
  for name in "${names[@]}"; do
    rows=$(for ((i = 1; i <= repeat; i++)); do split "$work/$name-${route#/}-$i.callgrind"; done)
    total=$(awk '{ print $1 }' <<<"$rows" | median)
    gc=$(awk '{ print $2 }' <<<"$rows" | median)
    comp=$(awk '{ print $3 }' <<<"$rows" | median)
    rest=$(awk '{ print $4 }' <<<"$rows" | median)
    [ -z "$first" ] && first=$rest
    ratio=$(awk -v a="$rest" -v b="$first" 'BEGIN { printf "%.3f", a / b }')
    line="$line   $name $(awk -v t="$total" -v g="$gc" -v c="$comp" -v r="$rest" 'BEGIN { printf "%.0f / %.0f / %.0f / %.0f", t / 1000, g / 1000, c / 1000, r / 1000 }') (rest ${ratio}x)"
  done
  echo "$line"
done
if [ "$functions" != 0 ]; then
  for route in $routes; do
    echo
    node "$work/functions.mjs" "$work" "${route#/}" "$n" "$functions" "${names[@]}"
  done
fi
