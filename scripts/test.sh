#!/usr/bin/env bash
# The test suite: ava in TAP form, summarised as "N passed, N failed".
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh
npx ava --tap "$@" 2>&1 | node scripts/tap-summary.mjs
