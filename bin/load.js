// What every bin/<name>.js does (package.json "bin"; scripts/install-bin.sh puts a wrapper per
// command on PATH): run the command's bundle from dist/, or its TypeScript through tsx.
import { existsSync } from "node:fs";

/** Runs dist/<name>.mjs (scripts/build.sh, run by scripts/setup.sh and before the tests). */
export async function runBundle(name) {
  const bundle = new URL(`../dist/${name}.mjs`, import.meta.url);
  if (!existsSync(bundle)) {
    process.stderr.write(`${name}: dist/${name}.mjs is missing; run 'npm run build' (scripts/build.sh)\n`);
    process.exit(1);
  }
  process.setSourceMapsEnabled?.(true);
  await import(bundle.href);
}

/** Runs a TypeScript entry point (a path from the checkout's root) through tsx; no build step. */
export async function runSource(path) {
  const { register } = await import("tsx/esm/api");
  register();
  await import(new URL(`../${path}`, import.meta.url).href);
}
