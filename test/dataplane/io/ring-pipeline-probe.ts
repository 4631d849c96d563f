// Run inside a namespace with veth pairs ra <-> rb and rc <-> rd: seeded mutations of frames of
// every kind the pipeline handles are sent from ra (the IPv4 side, ingress 1) and rc (the IPv6
// side, ingress 2). One Forwarder takes them as the ring hands them over (views into a ring that
// is reused); a second takes copies of the same frames, one at a time. Their outputs must be the
// same bytes: a pipeline that kept a view past its batch (a packet held for a neighbour) would
// send what a later frame left in the ring. Prints one JSON line.
import { readFileSync } from "node:fs";
import { Forwarder, type ForwarderConfig } from "../../../dataplane/forward/index.js";
import { buildArpReplyFrame } from "../../../dataplane/packet/arp.js";
import { buildEthernetFrame, ETHERTYPE, parseMac } from "../../../dataplane/packet/ethernet.js";
import { buildIPv4Packet } from "../../../dataplane/packet/ipv4.js";
import { buildIPv6Packet } from "../../../dataplane/packet/ipv6.js";
import { buildUdp4, buildUdp6 } from "../../../dataplane/packet/udp.js";
import { loadRingAddon, RingIo } from "../../../dataplane/io/ring.js";
import { parseIPv4, parseIPv6 } from "../../../lib/net/address.js";
import { seededRandom } from "../../../lib/random.js";
import type { Rule } from "../../../lib/rules/rules.js";

const table = JSON.parse(readFileSync(new URL("../../../dataplane/offline/example-table.json", import.meta.url), "utf8")) as { worker: ForwarderConfig; rules: Rule[] };
const v4 = (t: string) => parseIPv4(t, "probe").bytes;
const v6 = (t: string) => parseIPv6(t, "probe").bytes;
const MAC4 = parseMac("02:00:00:00:04:01");
const MAC6 = parseMac("02:00:00:00:06:01");
const GW4 = parseMac("02:00:00:00:04:aa");
const GW6 = parseMac("02:00:00:00:06:aa");
const P = new TextEncoder().encode("ring-views-".repeat(4));
const e4 = (p: Uint8Array) => buildEthernetFrame(MAC4, GW4, ETHERTYPE.IPV4, p);
const e6 = (p: Uint8Array) => buildEthernetFrame(MAC6, GW6, ETHERTYPE.IPV6, p);
const udp4 = (s: string, d: string, ttl = 64) => buildUdp4({ src: v4(s), dst: v4(d), srcPort: 1000, dstPort: 2000, ttl }, P);
const udp6 = (s: string, d: string) => buildUdp6({ src: v6(s), dst: v6(d), srcPort: 1000, dstPort: 2000, hopLimit: 64 }, P);

// Ingress 1 (IPv4 side) and 2 (IPv6 side) seeds: translation both ways, 4in4 from r1 for a pool
// address, 4in6 from a care-of address, routing, TTL spent, and a packet for an on-link neighbour
// the worker must resolve first (held until the ARP reply that comes later in the stream).
const SEEDS4 = [
  e4(udp4("203.0.113.5", "198.51.100.20")),
  e4(buildIPv4Packet({ src: v4("192.0.2.10"), dst: v4("198.51.100.10"), protocol: 4, ttl: 64 }, udp4("203.0.113.5", "192.0.2.1"))),
  e4(udp4("192.0.2.1", "203.0.113.9")),
  e4(udp4("192.0.2.1", "203.0.113.9", 1)),
  e4(udp4("203.0.113.5", "192.0.2.77")),
];
const SEEDS6 = [
  e6(udp6("2001:db8:2::9", "2001:db8:64::cb00:7105")),
  e6(buildIPv6Packet({ src: v6("2001:db8:1::c000:201"), dst: v6("2001:db8:1::fe"), nextHeader: 4, hopLimit: 64 }, udp4("192.0.2.1", "203.0.113.9"))),
  e6(udp6("2001:db8:1::10", "2001:db8:2::9")),
];

function mutated(seeds: Uint8Array[], n: number, rnd: () => number): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (let i = 0; i < n; i++) {
    const f = seeds[Math.floor(rnd() * seeds.length)].slice();
    // A third unchanged; the rest with 1-4 bytes changed past the Ethernet header, some cut short.
    if (rnd() > 1 / 3) {
      for (let k = 1 + Math.floor(rnd() * 4); k > 0; k--) f[14 + Math.floor(rnd() * (f.length - 14))] = Math.floor(rnd() * 256);
      if (rnd() < 0.2) { out.push(f.subarray(0, 14 + Math.floor(rnd() * (f.length - 14)))); continue; }
    }
    out.push(f);
  }
  return out;
}

const lib = loadRingAddon();
if (!lib) throw new Error("addon not built");
const io = new RingIo(lib);
const NOW = 1_000;
const viewsFw = new Forwarder(table.worker, NOW);
const copiesFw = new Forwarder(table.worker, NOW);
for (const f of [viewsFw, copiesFw]) f.replaceRules({ revision: 1n, rules: table.rules });
const fromViews: string[] = [];
const fromCopies: string[] = [];
const record = (into: string[]) => (ifIndex: number, frame: Uint8Array) => into.push(`${ifIndex}:${Buffer.from(frame).toString("hex")}`);
let received = 0;
let batches = 0;

const senders = { 1: io.open("ra", { mtu: 1500, bufferBytes: 4 << 20 }), 2: io.open("rc", { mtu: 1500, bufferBytes: 4 << 20 }) };
const receivers = { 1: io.open("rb", { mtu: 1500, bufferBytes: 4 << 20 }), 2: io.open("rd", { mtu: 1500, bufferBytes: 4 << 20 }) };
for (const s of Object.values(senders)) s.start(() => {});
for (const [ingress, port] of Object.entries(receivers)) {
  const ifIndex = Number(ingress);
  port.start((frames) => {
    received += frames.length;
    batches++;
    // The copies first (before the views' pipeline may write into the ring), one at a time.
    for (const f of frames) copiesFw.processFrame(ifIndex, f.slice(), record(fromCopies), NOW);
    viewsFw.processBatch(ifIndex, frames, frames.length, record(fromViews), NOW);
  });
}

const rnd = seededRandom(0x72696e67);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
let sent = 0;
for (const [ingress, seeds] of [[1, SEEDS4], [2, SEEDS6]] as const) {
  const frames = mutated(seeds, 3000, rnd);
  // The ARP reply that lets the held packet for 192.0.2.77 go, in the middle of the IPv4 stream.
  if (ingress === 1) frames.splice(1500, 0, buildArpReplyFrame(parseMac("02:00:00:00:04:77"), v4("192.0.2.77"), MAC4, v4("192.0.2.254")));
  for (let i = 0; i < frames.length; i += 64) {
    for (const f of frames.slice(i, i + 64)) if (f.length >= 14 && senders[ingress].send(f)) sent++;
    senders[ingress].flushSends!();
    await sleep(2);
  }
  await sleep(200);
}
let firstDifference = -1;
for (let i = 0; i < Math.max(fromViews.length, fromCopies.length); i++) if (fromViews[i] !== fromCopies[i]) { firstDifference = i; break; }
process.stdout.write(JSON.stringify({
  sent, received, batches, emitted: fromViews.length,
  // Frames sent to 192.0.2.77's MAC: the held packets, let go by the ARP reply.
  toResolvedNeighbour: fromViews.filter((f) => f.startsWith("1:020000000477")).length, emittedFromCopies: fromCopies.length, firstDifference,
  internalErrors: viewsFw.counters.drops["internal-error"] ?? 0, drops: receivers[1].stats().captureDrops + receivers[2].stats().captureDrops,
}) + "\n");
for (const p of [...Object.values(senders), ...Object.values(receivers)]) p.close();
