#!/usr/bin/env node
// Runs the bundled privileged-VM agent (scripts/build.sh): it carries the data-plane worker's hot path.
import { existsSync } from "node:fs";
const bundle = new URL("../dist/mip46-agent.mjs", import.meta.url);
if (!existsSync(bundle)) {
  process.stderr.write("mip46-agent: dist/mip46-agent.mjs is missing; run 'npm run build' (scripts/build.sh)\n");
  process.exit(1);
}
process.setSourceMapsEnabled?.(true);
await import(bundle.href);
