// After scripts/setup.sh the README's commands run as written: every executable of package.json
// "bin" is on PATH (scripts/install-bin.sh) and answers --help.
import test from "ava";
import { execFileSync, spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";

const bins = Object.keys((JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as { bin: Record<string, string> }).bin);

for (const name of bins) {
  test(`${name} is on PATH after setup and answers --help`, (t) => {
    const where = spawnSync("sh", ["-c", `command -v ${name}`], { encoding: "utf8" });
    t.is(where.status, 0, `${name} is not on PATH: run bash scripts/setup.sh (scripts/install-bin.sh)`);
    if (where.status !== 0) return;
    const help = execFileSync(name, ["--help"], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"], timeout: 30_000 });
    t.regex(help, new RegExp(`^${name}[: ]`, "m"), `${name} --help names the command`);
  });
}
