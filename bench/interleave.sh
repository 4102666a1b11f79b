#!/usr/bin/env bash
# Builds bench/session-app.ts over each revision's src/ and runs them side
# by side in one process (bench/interleave.ts, whose header says why and what
# it prints).
#
#   bash bench/interleave.sh [rev ...]     default: 349455e (before the wave) and HEAD
#
# ROUTES, ROUNDS, BATCH, WARMUP, PROCESSES: see bench/interleave.ts. A revision given
# twice runs twice, as a control (named with a trailing "+"). WORKTREE=1 also runs
# the working tree's src/ (uncommitted changes). CORE (default 1): the core
# the process is pinned to. NODE_FLAGS: default pins V8's seeds and runs the GC
# on the main thread, as bench/inprocess-ab.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
revs=("$@")
[ ${#revs[@]} -eq 0 ] && revs=(349455e HEAD)
flags=${NODE_FLAGS:---hash-seed=1 --random-seed=1 --single-threaded-gc}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

args=()
build() { # build <name> <rev|worktree>
  local dir="$work/$1"
  mkdir -p "$dir/bench"
  if [ "$2" = worktree ]; then cp -r src "$dir/src"; else git archive "$2" src | tar -x -C "$dir"; fi
  cp bench/session-app.ts "$dir/bench/"
  ln -s "$root/node_modules" "$dir/node_modules"
  node_modules/.bin/esbuild "$dir/bench/session-app.ts" --bundle --packages=external --platform=node \
    --format=esm --outfile="$dir/app.mjs" --log-level=error
  args+=("$1=$dir/app.mjs")
}
for rev in "${revs[@]}"; do
  name=$(git rev-parse --short "$rev")
  # a revision named twice runs twice (a control: the method's own spread)
  while [ -e "$work/$name" ]; do name="$name+"; done
  build "$name" "$rev"
done
if [ "${WORKTREE:-}" = 1 ]; then build worktree worktree; fi
node_modules/.bin/esbuild bench/interleave.ts --platform=node --format=esm --outfile="$work/interleave.mjs" --log-level=error
# shellcheck disable=SC2086
taskset -c "${CORE:-1}" node $flags "$work/interleave.mjs" "${args[@]}"
