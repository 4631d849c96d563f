// After scripts/setup.sh the README's commands run as written: every executable of package.json
// "bin" is on PATH (scripts/install-bin.sh) and answers --help and --version; the daemons check a
// configuration with --check and start nothing.
import test from "ava";
import { execFileSync, spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const bins = Object.keys((JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as { bin: Record<string, string> }).bin);

for (const name of bins) {
  test(`${name} is on PATH after setup and answers --help and --version`, (t) => {
    const where = spawnSync("sh", ["-c", `command -v ${name}`], { encoding: "utf8" });
    t.is(where.status, 0, `${name} is not on PATH: run bash scripts/setup.sh (scripts/install-bin.sh)`);
    if (where.status !== 0) return;
    const help = execFileSync(name, ["--help"], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"], timeout: 30_000 });
    t.regex(help, new RegExp(`^${name}[: ]`, "m"), `${name} --help names the command`);
    const version = execFileSync(name, ["--version"], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"], timeout: 30_000 });
    t.regex(version, new RegExp(`^${name} \\d+\\.\\d+\\.\\d+ \\(commit ([0-9a-f]{12}|unknown), node v\\d+`), `${name} --version: ${version}`);
  });
}

const CHECKS = [
  { name: "mip46-engine", good: "deploy/examples/engine.yaml", bad: "pool: { prefix: 192.0.2.0 }\n", field: /pool\.prefix/ },
  { name: "mip46-dataplane", good: "deploy/examples/dataplane.yaml", bad: "workerId: w\ninterfaces: []\ncolour: blue\n", field: /interfaces|colour/ },
];
for (const c of CHECKS) {
  test(`${c.name} --check accepts the example configuration and refuses a bad one, naming the field, starting nothing`, (t) => {
    const ok = spawnSync(c.name, ["--check", "--config", c.good], { encoding: "utf8", timeout: 30_000 });
    t.is(ok.status, 0, ok.stderr);
    t.is(ok.stdout, `configuration OK: ${c.good}\n`);
    const dir = mkdtempSync(join(tmpdir(), "m46-check-"));
    t.teardown(() => rmSync(dir, { recursive: true, force: true }));
    writeFileSync(join(dir, "bad.yaml"), c.bad);
    const bad = spawnSync(c.name, ["--check", "--config", join(dir, "bad.yaml")], { encoding: "utf8", timeout: 30_000 });
    t.is(bad.status, 1);
    t.is(bad.stdout, "");
    const line = JSON.parse(bad.stderr.trim().split("\n").at(-1)!) as { msg: string; error: string };
    t.is(line.msg, "configuration refused");
    t.regex(line.error, c.field);
  });
}

test("an unknown MIP46_LOG_LEVEL stops a daemon at once with exit 2, naming the choices", (t) => {
  const r = spawnSync("mip46-engine", ["--check", "--config", "deploy/examples/engine.yaml"], { encoding: "utf8", timeout: 30_000, env: { ...process.env, MIP46_LOG_LEVEL: "loud" } });
  t.is(r.status, 2);
  t.is(r.stdout, "");
  t.is(r.stderr, "mip46-engine: MIP46_LOG_LEVEL: 'loud' is not a log level (debug, info, warn or error)\n");
});

test("a daemon's stderr holds JSON lines only: grpc-js's own message goes through its log, and a failed start is one clear line", (t) => {
  const dir = mkdtempSync(join(tmpdir(), "m46-json-"));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  // 203.0.113.77 is on no interface here: the bind fails, and grpc-js logs why.
  const r = spawnSync("mip46-engine", ["--config", "deploy/examples/engine.yaml", "--listen", "203.0.113.77:1", "--store", join(dir, "e.db"), "--metrics-listen", "127.0.0.1:0"], { encoding: "utf8", timeout: 60_000 });
  t.is(r.status, 1);
  const lines = r.stderr.trim().split("\n");
  for (const l of lines) t.notThrows(() => JSON.parse(l), `not a JSON line: ${l}`);
  const records = lines.map((l) => JSON.parse(l) as { msg: string; message?: string; error?: string });
  t.true(records.some((x) => x.msg === "grpc-js" && /No address added/.test(x.message ?? "")), "grpc-js's line, as a record");
  const last = records.at(-1)!;
  t.is(last.msg, "engine could not start");
  t.is(last.error, "listen: 203.0.113.77:1 is not an address of this machine", "naming the key and the value (EADDRNOTAVAIL)");
});
