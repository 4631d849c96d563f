// A rule snapshot at cloud scale (issue 12 §3, "Scale"): N bindings, half IPv4 VMs away in the
// IPv6 network (flow 3.1) and half IPv6 VMs away in the IPv4 network (flow 3.2), compiled by the
// engine's rule compiler, sent as the engine sends a snapshot (EngineMessage chunks of
// SNAPSHOT_CHUNK rules, protobuf-encoded), then decoded and applied in a worker process of its
// own (bench/snapshot-worker.ts, bundled as the worker is): to one Forwarder (workers: 1), or
// kept by the main thread and applied in N forwarding threads (workers: N, the table's path of
// runThreadedWorker without the rings). Prints the time of each step and the worker process's
// RSS after a full GC, with the worker's goals (applied in ≤ 1 s, RSS ≤ 200 MB).
// IPv4 addresses come from 10.0.0.0/8 (100,000 VMs need four addresses each in IPv4, more than the
// documentation ranges and RFC 2544's 198.18.0.0/15 hold), IPv6 from 2001:db8::/32; nothing here
// is sent: the bench opens no interface.
//
//   node --import tsx bench/snapshot.ts [--bindings 100000] [--threads 1,2] [--repeat 1] [--idle-seconds 10]
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import type { ForwarderConfig } from "../dataplane/forward/index.js";
import { EngineMessage } from "../gen/mip46/v1/dataplane.js";
import type { Rule } from "../lib/rules/rules.js";
import { inDependencyOrder, ruleToMessage } from "../lib/rules/wire.js";
import { bindingRules } from "../services/rules/compile.js";
import { SNAPSHOT_CHUNK } from "../services/rules/push.js";
import type { BindingRecord } from "../services/store/store.js";

const { values: args } = parseArgs({ options: { bindings: { type: "string", default: "100000" }, threads: { type: "string", default: "1,2" }, repeat: { type: "string", default: "1" }, "idle-seconds": { type: "string", default: "10" } } });
const N = Number(args.bindings);
if (!(N > 0 && N <= 2_000_000)) throw new Error("--bindings: 1 to 2000000");
const THREADS = args.threads.split(",").map(Number);
if (!THREADS.every((n) => Number.isInteger(n) && n >= 1 && n <= 64)) throw new Error("--threads: a list of 1 to 64");
const REPEAT = Number(args.repeat);
const IDLE = Number(args["idle-seconds"]);

/** Address i of the /12 10.(16·block).0.0: homes, pool care-of, translated and host addresses apart. */
const v4 = (block: number, i: number) => `10.${block * 16 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}`;
// Canonical text (RFC 5952), as the engine stores addresses (lib/net/address.ts).
const hex = (i: number) => (i >> 16 ? `${(i >> 16).toString(16)}:${(i & 0xffff).toString(16)}` : (i & 0xffff).toString(16));

function bindings(): BindingRecord[] {
  const out: BindingRecord[] = [];
  for (let i = 0; i < N; i++) {
    const ipv4Vm = i % 2 === 0;
    // Each VM has its own home, care-of and translated addresses; an IPv6 VM's IPv4 care-of
    // address is its host's (the privileged VM's), shared by that host's VMs.
    const j = i >> 1;
    out.push({
      vmId: `vm-${i}`, hostId: `h-${i % 1000}`, migrationId: `m-${i}`, updatedAtMs: 0,
      homeAddress: ipv4Vm ? v4(0, j) : `2001:db8:1:1::${hex(j)}`,
      homeAgent: ipv4Vm ? "192.0.2.10" : "2001:db8:1::10",
      careOfIPv4: ipv4Vm ? v4(1, j) : v4(3, i % 1000),
      careOfIPv6: ipv4Vm ? `2001:db8:3:1::${hex(j)}` : `2001:db8:2:1::${hex(j)}`,
      translatedIPv4: ipv4Vm ? "" : v4(2, j),
      translatedIPv6: "",
    });
  }
  return out;
}

function ms(t0: number): string {
  return (performance.now() - t0).toFixed(0);
}

const config = (JSON.parse(readFileSync(new URL("../dataplane/offline/example-table.json", import.meta.url), "utf8")) as { worker: ForwarderConfig }).worker;

let t = performance.now();
const rules: Rule[] = [{ key: "config/translation-prefix", kind: "translation-prefix", prefix: "2001:db8:64::/96" }];
for (const b of bindings()) rules.push(...bindingRules(b));
const compileMs = ms(t);

t = performance.now();
const ordered = inDependencyOrder(rules);
const wire: Uint8Array[] = [];
for (let i = 0; i < ordered.length; i += SNAPSHOT_CHUNK) {
  wire.push(EngineMessage.encode({ message: { $case: "snapshotRules", value: { rules: ordered.slice(i, i + SNAPSHOT_CHUNK).map(ruleToMessage) } } }).finish());
}
const encodeMs = ms(t);
const wireBytes = wire.reduce((n, w) => n + w.length, 0);

// The chunks as the worker receives them, each with its length, for the worker process.
const dir = mkdtempSync(join(tmpdir(), "mip46-snapshot-"));
const chunksFile = join(dir, "chunks");
const configFile = join(dir, "config.json");
const framed = Buffer.alloc(wireBytes + 4 * wire.length);
let at = 0;
for (const w of wire) {
  framed.writeUInt32BE(w.length, at);
  framed.set(w, at + 4);
  at += 4 + w.length;
}
writeFileSync(chunksFile, framed);
writeFileSync(configFile, JSON.stringify(config));
// Bundled as scripts/build.sh bundles the worker (the worker runs from dist/), next to it so that its packages resolve.
const bundle = new URL("../dist/bench-snapshot-worker.mjs", import.meta.url).pathname;
execFileSync("npx", ["esbuild", new URL("./snapshot-worker.ts", import.meta.url).pathname, "--bundle", "--platform=node", "--format=esm", "--target=node20", "--packages=external", "--log-level=warning", `--outfile=${bundle}`], { stdio: "inherit" });

interface Run { threads: number; rules: number; decodeMs: number; keepMs: number; threadMs: number[]; appliedMs: number; cpuMs: number; rssBeforeMiB: number; rssMiB: number; rssIdleMiB: number; mainHeapMiB: number; threadHeapMiB: number[] }
const runs: Run[] = [];
for (let r = 0; r < REPEAT; r++) {
  for (const threads of THREADS) {
    runs.push(JSON.parse(execFileSync(process.execPath, ["--expose-gc", bundle, chunksFile, configFile, String(threads), String(IDLE)], { encoding: "utf8", stdio: ["ignore", "pipe", "inherit"] })) as Run);
  }
}
rmSync(dir, { recursive: true });

const f = (n: number) => n.toFixed(0);
process.stdout.write([
  `# rule snapshot of ${N} bindings (${runs[0].rules} rules, ${(wireBytes / 2 ** 20).toFixed(0)} MiB on the wire), ${new Date().toISOString()}`,
  `engine: compile the rules ${compileMs} ms, order and encode the snapshot ${encodeMs} ms`,
  "",
  `| worker threads | decode ms | main thread keeps ms | each thread applies ms | **applied ms** (goal ≤ 1000) | × goal | CPU ms (all threads) | RSS MiB just after | **RSS MiB after ${IDLE} s idle** (goal ≤ 200 MB = 191 MiB) | × goal | RSS before the table MiB | heap MiB: main / each thread |`,
  "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
  ...runs.map((r) => `| ${r.threads} | ${f(r.decodeMs)} | ${r.threads === 1 ? "" : f(r.keepMs)} | ${r.threads === 1 ? f(r.appliedMs - r.decodeMs) : r.threadMs.map(f).join(" / ")} | **${f(r.appliedMs)}** | ${(r.appliedMs / 1000).toFixed(2)} | ${f(r.cpuMs)} | ${r.rssMiB} | **${r.rssIdleMiB}** | ${(r.rssIdleMiB / (200e6 / 2 ** 20)).toFixed(2)} | ${r.rssBeforeMiB} | ${r.mainHeapMiB}${r.threads === 1 ? "" : " / " + r.threadHeapMiB.join(" / ")} |`),
  "",
].join("\n"));
