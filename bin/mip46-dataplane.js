#!/usr/bin/env node
// Runs the bundled worker (scripts/build.sh, run by scripts/setup.sh and before the tests).
import { existsSync } from "node:fs";
const bundle = new URL("../dist/mip46-dataplane.mjs", import.meta.url);
if (!existsSync(bundle)) {
  process.stderr.write("mip46-dataplane: dist/mip46-dataplane.mjs is missing; run 'npm run build' (scripts/build.sh)\n");
  process.exit(1);
}
process.setSourceMapsEnabled?.(true);
await import(bundle.href);
