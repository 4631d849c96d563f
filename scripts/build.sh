#!/usr/bin/env bash
# Bundles the daemons into dist/ with esbuild (our own code in one module; npm packages stay
# external). The hot path runs from the bundle: through tsx, every call across a module boundary
# goes through an export getter, which cost the worker 15-50% of its packet rate. The engine is
# bundled so that no daemon compiles TypeScript when it starts (the systemd units run bin/*.js);
# mipctl and mip46-lab run their TypeScript through tsx directly.
set -euo pipefail
cd "$(dirname "$0")/.."
# The home agents and the privileged-VM agent carry the same hot path, so they are bundled too.
for entry in dataplane/worker/main.ts:mip46-dataplane homeagent/main.ts:mip46-home-agent clients/agent/main.ts:mip46-agent services/engine/main.ts:mip46-engine; do
  npx esbuild "${entry%%:*}" --bundle --platform=node --format=esm --target=node20 \
    --packages=external --sourcemap --log-level=warning --outfile="dist/${entry##*:}.mjs"
done
