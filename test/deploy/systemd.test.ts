// deploy/systemd/: every unit passes `systemd-analyze verify`, restarts on failure, runs as a
// dynamic user, and only the processes on the packet path get CAP_NET_RAW and CAP_NET_ADMIN.
import test from "ava";
import { execFile } from "node:child_process";
import { copyFileSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";

const run = promisify(execFile);
const DIR = "deploy/systemd";
const units = readdirSync(DIR).filter((f) => f.endsWith(".service"));

function directives(unit: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const line of readFileSync(join(DIR, unit), "utf8").split("\n")) {
    const m = /^([A-Za-z]+)=(.*)$/.exec(line);
    if (m) out.set(m[1], [...(out.get(m[1]) ?? []), m[2]]);
  }
  return out;
}

test("a unit for every process", (t) => {
  t.deepEqual(units.sort(), ["mip46-agent.service", "mip46-dataplane.service", "mip46-engine.service", "mip46-etcd.service", "mip46-home-agent@.service"]);
});

test("systemd-analyze verify accepts every unit (the template as r1 and r2)", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "mip46-units-"));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  for (const u of units) copyFileSync(join(DIR, u), join(dir, u));
  const names = units.flatMap((u) => (u.endsWith("@.service") ? ["r1", "r2"].map((i) => u.replace("@", `@${i}`)) : [u]));
  for (const name of names) {
    const { stdout, stderr } = await run("systemd-analyze", ["verify", "--man=no", join(dir, name)], { encoding: "utf8" });
    t.is(stdout + stderr, "", name);
  }
});

test("every mip46 daemon runs its bin/ wrapper (no TypeScript compiled at start) and reloads with SIGHUP, the worker by a takeover", (t) => {
  for (const u of units.filter((x) => x !== "mip46-etcd.service")) {
    const d = directives(u);
    t.regex(d.get("ExecStart")![0], /^\/usr\/bin\/node \/opt\/mip46\/bin\/mip46-[a-z-]+\.js /, u);
    if (u !== "mip46-dataplane.service") t.deepEqual(d.get("ExecReload"), ["/bin/kill -HUP $MAINPID"], u);
  }
  // The worker's reload is a takeover by a new process (dataplane/worker/takeover.ts), which
  // writes the PID file systemd reads again after the reload.
  const worker = directives("mip46-dataplane.service");
  t.deepEqual(worker.get("ExecReload"), [`${worker.get("ExecStart")![0]} --takeover --detach`]);
  const example = readFileSync("deploy/examples/dataplane.yaml", "utf8");
  t.true(example.includes(`pidFile: ${worker.get("PIDFile")![0]}`), "the example's takeover.pidFile is the unit's PIDFile=");
  t.true(worker.get("PIDFile")![0].startsWith(`/run/${worker.get("RuntimeDirectory")![0]}/`), "in the unit's RuntimeDirectory");
  // Each wrapper a unit runs loads a bundle from dist/, never the sources through tsx.
  for (const name of ["mip46-engine", "mip46-dataplane", "mip46-agent", "mip46-home-agent"]) {
    const wrapper = readFileSync(join(DIR, "../../bin", `${name}.js`), "utf8");
    t.regex(wrapper, new RegExp(`runBundle\\("${name}"\\)`), name);
  }
});

test("hardening: dynamic users, restart on failure, capabilities only on the packet path", (t) => {
  const packetPath = new Set(["mip46-dataplane.service", "mip46-home-agent@.service", "mip46-agent.service"]);
  for (const u of units) {
    const d = directives(u);
    t.deepEqual(d.get("Restart"), ["on-failure"], u);
    t.deepEqual(d.get("DynamicUser"), ["yes"], u);
    t.deepEqual(d.get("NoNewPrivileges"), ["yes"], u);
    t.deepEqual(d.get("ProtectSystem"), ["strict"], u);
    const caps = d.get("CapabilityBoundingSet");
    if (packetPath.has(u)) {
      t.deepEqual(caps, ["CAP_NET_RAW CAP_NET_ADMIN"], u);
      t.deepEqual(d.get("AmbientCapabilities"), ["CAP_NET_RAW CAP_NET_ADMIN"], u);
    } else {
      t.deepEqual(caps, [""], u);
      t.true((d.get("AmbientCapabilities") ?? []).every((c) => c === ""), u);
    }
  }
});

test("the certificates the units load are the ones deploy/README.md's lab-certs.sh recipe writes", async (t) => {
  // The recipe's lines, as the README gives them (each run in one directory here).
  const readme = readFileSync("deploy/README.md", "utf8");
  const lines = [...readme.matchAll(/^scripts\/lab-certs\.sh \/etc\/mip46\/tls ((?:\S+=\S+ ?)+)/gm)].map((m) => m[1].trim().split(/\s+/));
  t.true(lines.length >= 3, "the README names the units' certificates");
  const dir = mkdtempSync(join(tmpdir(), "m46-certs-"));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  for (const ids of lines) await run("bash", ["scripts/lab-certs.sh", dir, ...ids]);
  const written = new Set(readdirSync(dir));
  for (const unit of units) {
    for (const c of directives(unit).get("LoadCredential") ?? []) {
      const source = c.slice(c.indexOf(":") + 1);
      if (!source.startsWith("/etc/mip46/tls/")) continue;
      // The template's instance: r1, as the recipe writes it.
      const name = source.slice("/etc/mip46/tls/".length).replace("%i", "r1");
      t.true(written.has(name), `${unit} loads ${source}, which the recipe writes as ${name} (written: ${[...written].join(", ")})`);
    }
  }
});
