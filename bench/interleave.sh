#!/usr/bin/env bash
# Builds bench/session-app.ts over each revision's src/ and runs them side
# by side in one process (bench/interleave.ts, whose header says why and what
# it prints).
#
#   bash bench/interleave.sh [rev|dir ...]   default: 349455e (before the wave) and HEAD
#                                          (a dir holding a src/: that tree, see build-apps.sh)
#
# ROUTES, ROUNDS, BATCH, WARMUP, PROCESSES: see bench/interleave.ts. A revision given
# twice runs twice, as a control (named with a trailing "+"). WORKTREE=1 also runs
# the working tree's src/ (uncommitted changes). CORE (default 1): the core
# the process is pinned to. NODE_FLAGS: default pins V8's seeds and runs the GC
# on the main thread, as bench/inprocess-ab.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
revs=("$@")
[ ${#revs[@]} -eq 0 ] && revs=(349455e HEAD)
flags=${NODE_FLAGS:---hash-seed=1 --random-seed=1 --single-threaded-gc}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# shellcheck source=bench/build-apps.sh
. bench/build-apps.sh
build_apps "$work" "${revs[@]}"
args=()
for name in "${names[@]}"; do args+=("$name=$work/$name/app.mjs"); done
node_modules/.bin/esbuild bench/interleave.ts --platform=node --format=esm --outfile="$work/interleave.mjs" --log-level=error
# shellcheck disable=SC2086
taskset -c "${CORE:-1}" node $flags "$work/interleave.mjs" "${args[@]}"
