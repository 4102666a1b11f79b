#!/usr/bin/env bash
# The Effect 4 line's checks: a clean install from the lockfile, the type
# check, the type tests (tstyche, dtslint/), the tests, and the build, packed
# as npm would publish it and loaded from the tarball (scripts/check-packed.sh),
# all on the Node 22 the package pins (npm scripts put node_modules/.bin, where
# the `node` dev dependency lives, first on PATH).
set -euo pipefail
cd "$(dirname "$0")"
npm ci --no-audit --no-fund
npm run typecheck
npm run test:types
npm test
npm run build
bash scripts/check-packed.sh
