// Builds bench/ceiling/forward.c (the raw I/O ceiling) with cc, once per run.
import { execFileSync } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

let built: string | undefined;
export function ceilingBinary(): string {
  if (built) return built;
  const out = join(mkdtempSync(join(tmpdir(), "mip46-ceiling-")), "forward");
  execFileSync("cc", ["-O2", "-o", out, join(import.meta.dirname, "forward.c")], { stdio: "inherit" });
  return (built = out);
}
