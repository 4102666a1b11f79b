# Sourced by bench/interleave.sh and bench/instructions.sh: bundles
# bench/session-app.ts over each revision's src/ (and, with WORKTREE=1, the
# working tree's) into "$work/<name>/app.mjs", <name> the short revision, with
# a "+" per repetition (a revision named twice runs twice, as a control). A
# directory that holds a src/ (a tree changed by hand, to measure one piece)
# is built from that src/, named by the directory's name.
#
#   build_apps "$work" rev|dir...  sets `names`, the builds in order
# (run from the repository's root)
build_apps() {
  local work=$1 root rev name
  shift
  root=$(pwd)
  names=()
  build_app() { # build_app <name> <rev|worktree>
    local dir="$work/$1"
    mkdir -p "$dir/bench"
    if [ "$2" = worktree ]; then
      cp -r src "$dir/src"
    elif [ -d "$2/src" ]; then
      cp -r "$2/src" "$dir/src"
    else
      git archive "$2" src | tar -x -C "$dir"
    fi
    cp bench/session-app.ts "$dir/bench/"
    ln -s "$root/node_modules" "$dir/node_modules"
    node_modules/.bin/esbuild "$dir/bench/session-app.ts" --bundle --packages=external --platform=node \
      --format=esm --outfile="$dir/app.mjs" --log-level=error
    names+=("$1")
  }
  for rev in "$@"; do
    if [ -d "$rev/src" ]; then name=$(basename "$rev"); else name=$(git rev-parse --short "$rev"); fi
    while [ -e "$work/$name" ]; do name="$name+"; done
    build_app "$name" "$rev"
  done
  if [ "${WORKTREE:-}" = 1 ]; then build_app worktree worktree; fi
}
