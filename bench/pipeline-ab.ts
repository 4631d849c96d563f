// A/B of the forwarding pipeline alone, in one process: the Forwarder of another commit (A, the
// base) against the one in this checkout (B), on the same frames, in alternating rounds. No I/O,
// no namespaces: what a change to dataplane/forward, translate, tunnel or packet costs or saves,
// apart from the capture and send that bench/dataplane.ts measures with them.
//
//   node --import tsx bench/pipeline-ab.ts [--base REV] [--head REV] [--rounds 21] [--frames 100000] [--only translate-4to6,...]
//
// --base defaults to HEAD (so that B − A is what the uncommitted changes do); --head, when given,
// takes B from that commit instead of this checkout's files. `--base HEAD` with no changes is an
// A/A run: the spread it shows is the noise of the method on this machine.
// Each side is bundled with esbuild as scripts/build.sh bundles the worker (one module, so that a
// call across our files costs what it costs in dist/). A round runs every case on both sides, in
// an order that alternates, and the ratio printed is B's rate over A's, per round; the median is
// the figure and the spread of the middle half of the rounds (25th–75th percentile) is the noise.
// Both sides must emit the same frames for every case (IPv4 Identification aside): a case whose
// outputs differ is reported as such, since a speed-up that changes the output is no speed-up.
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import { build } from "esbuild";
import { parseIPv4, parseIPv6 } from "../lib/net/address.js";
import { buildEthernetFrame, ETHERTYPE, parseMac } from "../dataplane/packet/ethernet.js";
import { buildIPv4Packet } from "../dataplane/packet/ipv4.js";
import { buildIPv6Packet } from "../dataplane/packet/ipv6.js";
import { buildUdp4, buildUdp6 } from "../dataplane/packet/udp.js";

const { values: args } = parseArgs({
  options: { base: { type: "string", default: "HEAD" }, head: { type: "string" }, rounds: { type: "string", default: "21" }, frames: { type: "string", default: "100000" }, only: { type: "string" } },
});
const ROUNDS = Math.max(3, Number(args.rounds));
const FRAMES = Math.max(1000, Number(args.frames));
const ROOT = fileURLToPath(new URL("..", import.meta.url));

interface ForwarderLike {
  replaceRules(table: { revision: bigint; rules: readonly unknown[] }): void;
  processBatch(ingressIf: number, frames: readonly Uint8Array[], count: number, emit: (ifIndex: number, frame: Uint8Array) => void, now?: number, packets?: readonly Uint8Array[]): void;
  counters: { actions: Record<string, number>; drops: Record<string, number> };
}
type ForwarderClass = new (config: unknown, now?: number) => ForwarderLike;

// ---- the frames: the example table's lab (dataplane/offline/example-table.json)
const v4 = (t: string) => parseIPv4(t, "bench").bytes;
const v6 = (t: string) => parseIPv6(t, "bench").bytes;
const OUR4 = parseMac("02:00:00:00:04:01");
const OUR6 = parseMac("02:00:00:00:06:01");
const R1 = parseMac("02:00:00:00:04:10");
const VMA6 = parseMac("02:00:00:00:06:21");
const GW6 = parseMac("02:00:00:00:06:aa");
const payload = new Uint8Array(18).fill(0x6d);
const udp4 = (src: string, dst: string, data = payload) => buildUdp4({ src: v4(src), dst: v4(dst), srcPort: 40000, dstPort: 9 }, data);
/** A payload that makes the frame 1514 bytes (a 1500-byte IP packet) under `headers` bytes of IP and UDP headers. */
const fill1500 = (headers: number) => new Uint8Array(1500 - headers).fill(0x6d);
const udp6 = (src: string, dst: string) => buildUdp6({ src: v6(src), dst: v6(dst), srcPort: 40000, dstPort: 9 }, payload);
const in4 = (src: string, dst: string, protocol: number, inner: Uint8Array) => buildIPv4Packet({ src: v4(src), dst: v4(dst), protocol, ttl: 64 }, inner);
const in6 = (src: string, dst: string, nextHeader: number, inner: Uint8Array) => buildIPv6Packet({ src: v6(src), dst: v6(dst), nextHeader, hopLimit: 64 }, inner);

interface Case { name: string; ingress: number; frame: Uint8Array }
const CASES: Case[] = [
  // RFC 7915 §4: to the EAM of VM b (198.51.100.20 ↔ 2001:db8:1::50).
  { name: "translate-4to6", ingress: 1, frame: buildEthernetFrame(OUR4, R1, ETHERTYPE.IPV4, udp4("203.0.113.5", "198.51.100.20")) },
  // RFC 7915 §5: from VM b to 203.0.113.5 under the RFC 6052 prefix.
  { name: "translate-6to4", ingress: 2, frame: buildEthernetFrame(OUR6, GW6, ETHERTYPE.IPV6, udp6("2001:db8:1::50", "2001:db8:64::cb00:7105")) },
  // Flow 3.1 j: r1's IPv4-in-IPv4 to the care-of 198.51.100.10, out as IPv4-in-IPv6 to the VM's host.
  { name: "reencap-4in4-4in6", ingress: 1, frame: buildEthernetFrame(OUR4, R1, ETHERTYPE.IPV4, in4("192.0.2.10", "198.51.100.10", 4, udp4("203.0.113.5", "192.0.2.1"))) },
  // RFC 4213 §3.6: the VM's host's IPv4-in-IPv6, decapsulated and routed.
  { name: "decap-4in6", ingress: 2, frame: buildEthernetFrame(OUR6, VMA6, ETHERTYPE.IPV6, in6("2001:db8:1::c000:201", "2001:db8:1::fe", 4, udp4("192.0.2.1", "203.0.113.9"))) },
  // RFC 2003 §3: r1's IPv4-in-IPv4 to our address, decapsulated and routed.
  { name: "decap-4in4", ingress: 1, frame: buildEthernetFrame(OUR4, R1, ETHERTYPE.IPV4, in4("192.0.2.10", "192.0.2.254", 4, udp4("192.0.2.1", "203.0.113.9"))) },
  // The same two at 1500 bytes, DF clear: too big once translated (RFC 7915 §4.1, IPv6 fragments of
  // lowest-ipv6-mtu) or re-encapsulated (the inner packet cut into fragments, each in its own tunnel
  // packet, tunnel/encapsulate.ts): the fragmentation paths, two frames out per frame in.
  { name: "translate-4to6@1500", ingress: 1, frame: buildEthernetFrame(OUR4, R1, ETHERTYPE.IPV4, udp4("203.0.113.5", "198.51.100.20", fill1500(28))) },
  { name: "reencap-4in4-4in6@1500", ingress: 1, frame: buildEthernetFrame(OUR4, R1, ETHERTYPE.IPV4, in4("192.0.2.10", "198.51.100.10", 4, udp4("203.0.113.5", "192.0.2.1", fill1500(48)))) },
  // RFC 8200 / RFC 4443: plain IPv6 routing.
  { name: "route-6", ingress: 2, frame: buildEthernetFrame(OUR6, GW6, ETHERTYPE.IPV6, udp6("2001:db8:1::10", "2001:db8:2::9")) },
].filter((c) => !args.only || args.only.split(",").includes(c.name));
if (CASES.length === 0) throw new Error(`--only ${args.only}: no such case`);

// ---- the two sides
const work = mkdtempSync(join(tmpdir(), "mip46-ab-"));
// The bundles go under this checkout's node_modules, so that their npm imports resolve here.
const out = join(ROOT, "node_modules", ".cache", "mip46-ab");
mkdirSync(out, { recursive: true });

async function side(label: string, tree: string): Promise<{ Forwarder: ForwarderClass; table: { worker: unknown; rules: unknown[] } }> {
  const file = join(out, `${label}-${process.pid}.mjs`);
  await build({ entryPoints: [join(tree, "dataplane/forward/index.ts")], bundle: true, platform: "node", format: "esm", target: "node20", packages: "external", logLevel: "warning", outfile: file });
  const mod = (await import(pathToFileURL(file).href)) as { Forwarder: ForwarderClass };
  rmSync(file);
  const table = JSON.parse(readFileSync(join(tree, "dataplane/offline/example-table.json"), "utf8")) as { worker: unknown; rules: unknown[] };
  return { Forwarder: mod.Forwarder, table };
}

const rev = (r: string) => execFileSync("git", ["-C", ROOT, "rev-parse", "--short", r], { encoding: "utf8" }).trim();
/** The pipeline's folders (dataplane/, lib/) of a commit, in a folder of their own. */
function checkout(r: string, name: string): string {
  const tree = join(work, name);
  mkdirSync(tree);
  execFileSync("bash", ["-c", `git -C '${ROOT}' archive '${r}' dataplane lib | tar -x -C '${tree}'`]);
  return tree;
}
const baseRev = rev(args.base!);
const headRev = rev(args.head ?? "HEAD");
const dirty = args.head === undefined && execFileSync("git", ["-C", ROOT, "status", "--porcelain", "--", "dataplane", "lib"], { encoding: "utf8" }).trim() !== "";
const A = await side("base", checkout(baseRev, "base"));
const B = await side("head", args.head === undefined ? ROOT : checkout(headRev, "head"));
rmSync(work, { recursive: true, force: true });

function forwarder(s: typeof A): ForwarderLike {
  const f = new s.Forwarder(structuredClone(s.table.worker), 0);
  f.replaceRules({ revision: 1n, rules: structuredClone(s.table.rules) });
  return f;
}

// ---- correctness: both sides emit the same frames for each case
/** The frames one frame of the case makes, with an IPv4 header's Identification and checksum zeroed. */
function outputs(f: ForwarderLike, c: Case): string[] {
  const seen: string[] = [];
  f.processBatch(c.ingress, [c.frame.slice()], 1, (ifIndex, frame) => {
    const copy = frame.slice();
    const type = (copy[12] << 8) | copy[13];
    // The Identification counters differ between two forwarders that have sent different counts.
    if (type === 0x0800) copy.fill(0, 18, 20), copy.fill(0, 24, 26);
    seen.push(`${ifIndex}:${Buffer.from(copy).toString("hex")}`);
  }, 1);
  return seen;
}

const fa = forwarder(A);
const fb = forwarder(B);
const verdicts = new Map<string, string>();
for (const c of CASES) {
  const a = outputs(fa, c);
  const b = outputs(fb, c);
  verdicts.set(c.name, a.length === 0 ? "A sends nothing" : b.length === 0 ? "B sends nothing" : a.join() === b.join() ? (a.length > 1 ? `same (${a.length} frames out)` : "same") : "DIFFERENT");
}

// ---- speed: rounds, alternating which side runs first
const BATCH = 64;
function rate(f: ForwarderLike, c: Case): number {
  const frames = Array.from({ length: BATCH }, () => c.frame.slice());
  // Each frame's view past its Ethernet header, as the ring backend hands them with the batch
  // (FrameBatchHandler); a side from before 2026-12-06 takes no such argument and ignores it.
  const packets = frames.map((f) => f.subarray(14));
  let sent = 0;
  const emit = () => { sent++; };
  const t0 = process.hrtime.bigint();
  for (let done = 0; done < FRAMES; done += BATCH) f.processBatch(c.ingress, frames, BATCH, emit, 1, packets);
  const ns = Number(process.hrtime.bigint() - t0);
  if (sent === 0) throw new Error(`${c.name}: nothing sent`);
  return (FRAMES / ns) * 1e6; // kpps
}

const ratios = new Map<string, number[]>(CASES.map((c) => [c.name, []]));
const rates = new Map<string, { a: number[]; b: number[] }>(CASES.map((c) => [c.name, { a: [], b: [] }]));
// Warm-up: both sides' code optimised before the first round counts.
for (const c of CASES) rate(fa, c), rate(fb, c);
for (let round = 0; round < ROUNDS; round++) {
  for (const c of CASES) {
    let ra: number, rb: number;
    if (round % 2 === 0) ra = rate(fa, c), rb = rate(fb, c);
    else rb = rate(fb, c), ra = rate(fa, c);
    ratios.get(c.name)!.push(rb / ra);
    rates.get(c.name)!.a.push(ra);
    rates.get(c.name)!.b.push(rb);
  }
}

const q = (xs: number[], p: number) => [...xs].sort((x, y) => x - y)[Math.min(xs.length - 1, Math.floor(p * xs.length))];
console.log(`A = ${baseRev} (--base), B = ${headRev}${dirty ? " + uncommitted changes" : ""}; ${ROUNDS} rounds of ${FRAMES} frames per case and side, batches of ${BATCH}`);
console.log("| case | A kpps (median) | B kpps (median) | B / A (median) | B / A (25th–75th) | output |");
console.log("|---|---:|---:|---:|---|---|");
for (const c of CASES) {
  const r = ratios.get(c.name)!;
  const k = rates.get(c.name)!;
  console.log(`| ${c.name} | ${q(k.a, 0.5).toFixed(0)} | ${q(k.b, 0.5).toFixed(0)} | ${q(r, 0.5).toFixed(3)} | ${q(r, 0.25).toFixed(3)}–${q(r, 0.75).toFixed(3)} | ${verdicts.get(c.name)} |`);
}
