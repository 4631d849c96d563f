// A rule snapshot at cloud scale (issue 12 §3, "Scale"): N bindings, half IPv4 VMs away in the
// IPv6 network (flow 3.1) and half IPv6 VMs away in the IPv4 network (flow 3.2), compiled by the
// engine's rule compiler, sent as the engine sends a snapshot (EngineMessage chunks of
// SNAPSHOT_CHUNK rules, protobuf-encoded), decoded as the worker's sync client decodes them, and
// applied to a Forwarder with replaceRules. Prints the time of each step and the process's RSS
// after a full GC, with the worker's goals (applied in ≤ 1 s, RSS ≤ 200 MB).
// IPv4 addresses come from 10.0.0.0/8 (100,000 VMs need four addresses each in IPv4, more than the
// documentation ranges and RFC 2544's 198.18.0.0/15 hold), IPv6 from 2001:db8::/32; nothing here
// is sent: the bench runs in one process and opens no interface.
//
//   node --expose-gc --import tsx bench/snapshot.ts [--bindings 100000]
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { Forwarder, type ForwarderConfig } from "../dataplane/forward/index.js";
import { EngineMessage } from "../gen/mip46/v1/dataplane.js";
import type { Rule } from "../lib/rules/rules.js";
import { inDependencyOrder, ruleFromMessage, ruleToMessage } from "../lib/rules/wire.js";
import { bindingRules } from "../services/rules/compile.js";
import { SNAPSHOT_CHUNK } from "../services/rules/push.js";
import type { BindingRecord } from "../services/store/store.js";

const { values: args } = parseArgs({ options: { bindings: { type: "string", default: "100000" } } });
const N = Number(args.bindings);
if (!(N > 0 && N <= 2_000_000)) throw new Error("--bindings: 1 to 2000000");

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
const forwarder = new Forwarder(config, 0);
global.gc?.();
const rssBefore = process.memoryUsage().rss;

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

// The worker's side: decode every chunk, then apply the table. This is what "applied" means.
t = performance.now();
const received: Rule[] = [];
for (const w of wire) {
  const m = EngineMessage.decode(w).message;
  if (m?.$case === "snapshotRules") for (const r of m.value.rules) { const rule = ruleFromMessage(r); if (rule) received.push(rule); }
}
const decodeMs = ms(t);
t = performance.now();
forwarder.replaceRules({ revision: 1n, rules: received });
const replaceMs = ms(t);
wire.length = 0;
rules.length = 0;
ordered.length = 0;
global.gc?.();
const rss = process.memoryUsage().rss;
const heap = process.memoryUsage().heapUsed;
const applyMs = Number(decodeMs) + Number(replaceMs);

const mb = (n: number) => (n / 2 ** 20).toFixed(0);
process.stdout.write([
  `# rule snapshot of ${N} bindings (${received.length} rules, ${mb(wireBytes)} MiB on the wire), ${new Date().toISOString()}${global.gc ? "" : " (run with --expose-gc for RSS after a full GC)"}`,
  "| step | ms |",
  "|---|---:|",
  `| engine: compile the rules | ${compileMs} |`,
  `| engine: order and encode the snapshot | ${encodeMs} |`,
  `| worker: decode the snapshot | ${decodeMs} |`,
  `| worker: replaceRules | ${replaceMs} |`,
  `| **worker: applied (decode + replace), goal ≤ 1000** | **${applyMs}** |`,
  "",
  `worker RSS after the table: ${mb(rss)} MiB (goal ≤ 200; ${mb(rssBefore)} MiB before it; heap in use ${mb(heap)} MiB); the table still holds the decoded rules.`,
  "",
].join("\n"));
// Keep the forwarder (and its table) alive until RSS is read.
if (forwarder.currentRules().length !== received.length) throw new Error("the forwarder holds a different number of rules");
