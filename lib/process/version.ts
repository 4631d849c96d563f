// What every executable answers to --version, and the labels of mip46_build_info: the package's
// version and, where the code runs from a git checkout, its commit.
import { execFileSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

export interface BuildInfo { version: string; commit: string; node: string }

let cached: BuildInfo | undefined;

/**
 * The package root: the nearest folder above this module (or the bundle in dist/) with our
 * package.json; where the checkout's files (proto/, package.json) are, from sources or a bundle.
 */
export function packageRoot(): string | undefined {
  for (let dir = dirname(fileURLToPath(import.meta.url)); ; dir = dirname(dir)) {
    const p = join(dir, "package.json");
    if (existsSync(p) && (JSON.parse(readFileSync(p, "utf8")) as { name?: string }).name === "mip46") return dir;
    if (dirname(dir) === dir) return undefined;
  }
}

export function buildInfo(): BuildInfo {
  if (cached) return cached;
  const root = packageRoot();
  let version = "unknown", commit = "unknown";
  if (root) {
    version = (JSON.parse(readFileSync(join(root, "package.json"), "utf8")) as { version: string }).version;
    try {
      commit = execFileSync("git", ["-C", root, "rev-parse", "--short=12", "HEAD"], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"], timeout: 2000 }).trim();
    } catch { /* not a checkout, or no git */ }
  }
  return (cached = { version, commit, node: process.version });
}

/** "mipctl 0.1.0 (commit 0123456789ab, node v20.20.2)" */
export function versionLine(name: string): string {
  const b = buildInfo();
  return `${name} ${b.version} (commit ${b.commit}, node ${b.node})`;
}
