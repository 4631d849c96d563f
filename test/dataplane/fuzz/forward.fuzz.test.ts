// Fuzzing the forwarding pipeline: 100,000+ random and mutated frames (seeded, deterministic)
// through Forwarder.processFrame with a table holding every rule kind (the engine's example table
// plus `encapsulate` rules of the four tunnel kinds, the hypervisor host's side). Nothing may throw (an
// exception inside the pipeline is counted as drops["internal-error"]), and every emitted frame
// must be well formed by our codec: IPv4 header checksum valid and total length equal to the
// frame, IPv6 payload length consistent, and, when the input had valid checksums, UDP/TCP/ICMP
// checksums valid. Failing inputs are written to crashers/ (and replayed first on later runs).
import test from "ava";
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Forwarder } from "../../../dataplane/forward/index.js";
import { parseOfflineTable } from "../../../dataplane/offline/index.js";
import { parseMac } from "../../../dataplane/packet/ethernet.js";
import { scapyBuild } from "../../helpers/scapy.js";
import { decodeWithTshark } from "../../helpers/tshark.js";
import { exampleTable, SCAPY_PRELUDE } from "../offline/harness.js";
import { frameProblem, repair } from "./wellformed.js";

const ITERATIONS = 120_000;
const SEED = 0x6d697034;
const CRASHERS = new URL("./crashers/", import.meta.url).pathname;

/** mulberry32: small, fast, deterministic. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// Valid seed frames of every kind the pipeline handles, built by scapy.
const SEEDS: [ingress: number, expr: string][] = [
  [1, "e4(R1M)/IP(src='192.0.2.10', dst='192.0.2.254')/IP(src='192.0.2.1', dst='203.0.113.9')/UDP(sport=1, dport=2)/P"],
  [1, "e4(R1M)/IP(src='192.0.2.10', dst='198.51.100.10')/IP(src='203.0.113.5', dst='192.0.2.1')/UDP(sport=1000, dport=2000)/P"],
  [1, "e4(R1M)/IP(src='192.0.2.10', dst='198.51.100.10', tos=3)/IP(src='203.0.113.5', dst='192.0.2.1', flags='DF', tos=1)/TCP(sport=1, dport=2)/Raw(b'q'*1400)"],
  [1, "e4(VMB4)/IP(src='192.0.2.100', dst='192.0.2.254')/IPv6(src='2001:db8:1::50', dst='2001:db8:2::9')/UDP(sport=1, dport=2)/P"],
  [1, "e4(VMB4)/IP(src='192.0.2.100', dst='192.0.2.254')/IPv6(src='2001:db8:1::50', dst='2001:db8:64::cb00:7105')/ICMPv6EchoRequest(data=P)"],
  [1, "e4()/IP(src='203.0.113.5', dst='198.51.100.20')/UDP(sport=1000, dport=2000)/P"],
  [1, "e4()/IP(src='203.0.113.5', dst='198.51.100.20')/UDP(sport=1000, dport=2000, chksum=0)/P"],
  [1, "e4()/IP(src='203.0.113.5', dst='198.51.100.20', options=[IPOption_RR(routers=['192.0.2.9'])])/TCP(sport=1000, dport=80, flags='PA')/P"],
  [1, "e4()/IP(src='203.0.113.5', dst='198.51.100.20')/ICMP(type=8, id=9, seq=3)/P"],
  [1, "e4()/IP(src='203.0.113.5', dst='198.51.100.20')/ICMP(type=3, code=3)/IP(src='198.51.100.20', dst='203.0.113.5')/UDP(sport=5000, dport=4000)/P"],
  [1, "e4()/IP(src='203.0.113.5', dst='198.51.100.20')/ICMP(type=3, code=4, nexthopmtu=1200)/IP(src='198.51.100.20', dst='203.0.113.5')/TCP(sport=5000, dport=4000)"],
  [1, "e4()/IP(src='203.0.113.5', dst='198.51.100.20')/ICMP(type=11, code=0)/IP(src='198.51.100.20', dst='203.0.113.5')/ICMP(type=8)/P"],
  [1, "e4()/IP(src='203.0.113.5', dst='198.51.100.20', id=0x1234, flags='MF', proto=17)/Raw(b'z'*48)"],
  [1, "e4()/IP(src='203.0.113.5', dst='198.51.100.20', id=0x1234, frag=6, proto=17)/Raw(b'z'*60)"],
  [1, "e4()/IP(src='203.0.113.5', dst='198.51.100.20', flags='DF')/UDP(sport=1, dport=2)/Raw(b'b'*1462)"],
  [1, "e4()/IP(src='203.0.113.5', dst='198.51.100.20')/UDP(sport=1, dport=2)/Raw(b'b'*1462)"],
  [1, "e4()/IP(src='192.0.2.1', dst='203.0.113.9', ttl=1)/UDP(sport=1, dport=2)/P"],
  [1, "e4()/IP(src='192.0.2.1', dst='203.0.113.9')/UDP(sport=1, dport=2)/P"],
  [1, "e4()/IP(src='192.0.2.1', dst='192.0.2.254')/ICMP(id=7, seq=1)/P"],
  [1, "Ether(dst='ff:ff:ff:ff:ff:ff', src=R1M)/ARP(op=1, hwsrc=R1M, psrc='192.0.2.10', pdst='198.51.100.10')"],
  [1, "Ether(dst=V4, src='02:00:00:00:04:33')/ARP(op=2, hwsrc='02:00:00:00:04:33', psrc='192.0.2.33', hwdst=V4, pdst='192.0.2.254')"],
  [1, "Ether(dst=V4, src=GW4)/Dot1Q(vlan=5)/IP(src='192.0.2.1', dst='203.0.113.9')/UDP()/P"],
  [2, "e6(R2M)/IPv6(src='2001:db8:1::10', dst='2001:db8:1::fe')/IPv6(src='2001:db8:1::10', dst='2001:db8:2::9')/UDP(sport=1, dport=2)/P"],
  [2, "e6(R2M)/IPv6(src='2001:db8:1::10', dst='2001:db8:3::c000:264')/IPv6(src='2001:db8:2::9', dst='2001:db8:1::50')/UDP(sport=1, dport=2)/P"],
  [2, "e6(R2M)/IPv6(src='2001:db8:1::10', dst='2001:db8:3::c000:264')/IPv6ExtHdrDestOpt(options=[HBHOptUnknown(otype=4, optlen=1, optdata=b'\\x01')])/IPv6(src='2001:db8:2::9', dst='2001:db8:1::50')/UDP(sport=1, dport=2)/P"],
  [2, "e6(COA6M)/IPv6(src='2001:db8:1::c000:201', dst='2001:db8:1::fe')/IP(src='192.0.2.1', dst='203.0.113.9')/UDP(sport=1, dport=2)/P"],
  [2, "e6()/IPv6(src='2001:db8:2::9', dst='2001:db8:3::c000:264')/TCP(sport=1, dport=2, flags='S')"],
  [2, "e6()/IPv6(src='2001:db8:2::9', dst='2001:db8:3::c000:264')/UDP(sport=1, dport=2)/Raw(b'd'*1442)"],
  [2, "e6(VMB6)/IPv6(src='2001:db8:1::50', dst='2001:db8:64::cb00:7105')/UDP(sport=2000, dport=1000)/P"],
  [2, "e6(VMB6)/IPv6(src='2001:db8:1::50', dst='2001:db8:64::cb00:7105')/IPv6ExtHdrHopByHop()/TCP(sport=80, dport=1000)/P"],
  [2, "e6(VMB6)/IPv6(src='2001:db8:1::50', dst='2001:db8:64::cb00:7105')/ICMPv6EchoReply(id=9, seq=3, data=P)"],
  [2, "e6(VMB6)/IPv6(src='2001:db8:1::50', dst='2001:db8:64::cb00:7105')/ICMPv6PacketTooBig(mtu=1400)/IPv6(src='2001:db8:64::cb00:7105', dst='2001:db8:1::50')/UDP(sport=4000, dport=5000)/P"],
  [2, "e6()/IPv6(src='2001:db8:2::1', dst='2001:db8:64::cb00:7105')/ICMPv6TimeExceeded(code=0)/IPv6(src='2001:db8:64::cb00:7105', dst='2001:db8:1::50')/UDP()/P"],
  [2, "e6()/IPv6(src='2001:db8:2::1', dst='2001:db8:64::cb00:7105')/ICMPv6ParamProblem(code=0, ptr=6)/IPv6(src='2001:db8:64::cb00:7105', dst='2001:db8:1::50')/UDP()/P"],
  [2, "e6(VMB6)/IPv6(src='2001:db8:1::50', dst='2001:db8:64::cb00:7105', nh=44)/IPv6ExtHdrFragment(nh=17, offset=0, m=1, id=0xabcd1234)/Raw(b'f'*48)"],
  [2, "e6(VMB6)/IPv6(src='2001:db8:1::50', dst='2001:db8:64::cb00:7105', nh=44)/IPv6ExtHdrFragment(nh=17, offset=6, m=0, id=0xabcd1234)/Raw(b'f'*60)"],
  [2, "e6(VMB6)/IPv6(src='2001:db8:1::50', dst='2001:db8:64::cb00:7105')/IPv6ExtHdrRouting(addresses=['2001:db8:1::9'], segleft=1)/UDP()/P"],
  [2, "e6(VMB6)/IPv6(src='2001:db8:1::50', dst='2001:db8:64::cb00:7105')/UDP(sport=1, dport=2)/Raw(b'e'*1400)"],
  [2, "e6(R2M)/IPv6(src='2001:db8:1::10', dst='2001:db8:2::9', hlim=1)/UDP()/P"],
  [2, "e6(R2M)/IPv6(src='2001:db8:1::10', dst='2001:db8:ff::1')/UDP()/P"],
  [2, "e6(R2M)/IPv6(src='2001:db8:1::10', dst='2001:db8:1::fe')/ICMPv6EchoRequest(id=1, seq=2, data=P)"],
  [2, "Ether(dst='33:33:ff:00:00:fe', src=R2M)/IPv6(src='2001:db8:1::10', dst='ff02::1:ff00:fe', hlim=255)/ICMPv6ND_NS(tgt='2001:db8:1::fe')/ICMPv6NDOptSrcLLAddr(lladdr=R2M)"],
  [2, "Ether(dst='33:33:ff:00:00:fe', src=R2M)/IPv6(src='::', dst='ff02::1:ff00:fe', hlim=255)/ICMPv6ND_NS(tgt='2001:db8:1::fe')"],
  [2, "Ether(dst=V6, src='02:00:00:00:06:77')/IPv6(src='2001:db8:1::77', dst='2001:db8:1::fe', hlim=255)/ICMPv6ND_NA(R=0, S=1, O=1, tgt='2001:db8:1::77')/ICMPv6NDOptDstLLAddr(lladdr='02:00:00:00:06:77')"],
  // Sources that ENCAP_RULES hold: wrapped, too big (DF → ICMP, no DF → inner fragments), TTL spent.
  [1, "e4()/IP(src='192.0.2.77', dst='203.0.113.9', tos=0x03)/UDP(sport=1, dport=2)/P"],
  [1, "e4()/IP(src='192.0.2.77', dst='203.0.113.9', flags='DF')/UDP(sport=1, dport=2)/Raw(b'g'*1460)"],
  [1, "e4()/IP(src='192.0.2.70', dst='203.0.113.9')/UDP(sport=1, dport=2)/Raw(b'h'*1470)"],
  [1, "e4()/IP(src='192.0.2.70', dst='203.0.113.9', ttl=1)/TCP(sport=1, dport=2)/P"],
  [2, "e6()/IPv6(src='2001:db8:1::77', dst='2001:db8:2::9')/UDP(sport=1, dport=2)/P"],
  [2, "e6()/IPv6(src='2001:db8:1::77', dst='2001:db8:2::9')/UDP(sport=1, dport=2)/Raw(b'i'*1460)"],
  [2, "e6()/IPv6(src='2001:db8:1::78', dst='2001:db8:2::9')/IPv6ExtHdrDestOpt(options=[HBHOptUnknown(otype=4, optlen=1, optdata=b'\\x01')])/IPv6(src='2001:db8:1::78', dst='2001:db8:2::9')/UDP(sport=1, dport=2)/P"],
  [2, "e6()/IPv6(src='2001:db8:1::78', dst='2001:db8:2::9', hlim=1)/UDP(sport=1, dport=2)/P"],
];

/** One `encapsulate` rule per tunnel kind, for sources the example table leaves to routing. */
const ENCAP_RULES = [
  { key: "fuzz/encap-4in6", kind: "encapsulate", tunnel: "4in6", remote: "2001:db8:2::77", innerSource: "192.0.2.77" },
  { key: "fuzz/encap-4in4", kind: "encapsulate", tunnel: "4in4", remote: "192.0.2.10", innerSource: "192.0.2.64/27", innerDestination: "203.0.113.0/24" },
  { key: "fuzz/encap-6in4", kind: "encapsulate", tunnel: "6in4", remote: "192.0.2.10", innerSource: "2001:db8:1::77", innerDestination: "2001:db8:2::/48" },
  { key: "fuzz/encap-6in6", kind: "encapsulate", tunnel: "6in6", remote: "2001:db8:1::10", innerSource: "2001:db8:1::78" },
];

/** An IPv4 fragment or an IPv6 packet with a Fragment header right after the fixed header. */
function isFragment(frame: Uint8Array): boolean {
  const type = (frame[12] << 8) | frame[13];
  if (type === 0x0800) return (((frame[20] << 8) | frame[21]) & 0x3fff) !== 0;
  return type === 0x86dd && frame[20] === 44;
}

/**
 * An ICMP or ICMPv6 error (right after the fixed header): the packet it quotes is the fuzzer's,
 * passed on; the exact-output cases check the errors we build with tshark.
 */
function isIcmpError(frame: Uint8Array): boolean {
  const type = (frame[12] << 8) | frame[13];
  if (type === 0x0800) return frame[23] === 1 && [3, 4, 5, 11, 12].includes(frame[14 + ((frame[14] & 15) << 2)]);
  return type === 0x86dd && frame[20] === 58 && frame[54] < 128;
}

/** Protocols whose headers the pipeline checks or writes (transport, tunnels, IPv6 extension headers). */
const CHECKED_PROTOCOLS = new Set([1, 4, 6, 17, 41, 58, 0, 43, 44, 60]);

/**
 * The innermost IP packet (through IP-in-IP) carries a protocol the pipeline neither checks nor
 * writes (RSVP, GRE, ...): tshark's remarks about it are about the fuzzer's bytes, passed on as
 * routers do.
 */
function carriesUncheckedProtocol(frame: Uint8Array): boolean {
  const type = (frame[12] << 8) | frame[13];
  let off = 14;
  let version = type === 0x0800 ? 4 : type === 0x86dd ? 6 : 0;
  for (let depth = 0; depth < 3 && off < frame.length; depth++) {
    const proto = version === 4 ? frame[off + 9] : version === 6 ? frame[off + 6] : -1;
    if (proto < 0 || !CHECKED_PROTOCOLS.has(proto)) return proto >= 0;
    if (proto !== 4 && proto !== 41) return false;
    off += version === 4 ? (frame[off] & 15) << 2 : 40;
    version = proto === 4 ? 4 : 6;
  }
  return false;
}

const INTERESTING = [0, 1, 2, 4, 6, 17, 41, 44, 58, 60, 0x40, 0x45, 0x60, 0x7f, 0x80, 0xfe, 0xff];

function mutate(seed: Uint8Array, rnd: () => number, all: readonly Uint8Array[]): Uint8Array {
  let f = Uint8Array.from(seed);
  const ops = 1 + Math.floor(rnd() * 3);
  for (let k = 0; k < ops; k++) {
    const pick = (n: number): number => Math.floor(rnd() * n);
    const near = (): number => (rnd() < 0.7 ? 12 + pick(Math.min(f.length, 110)) : pick(f.length));
    switch (pick(8)) {
      case 0: // flip bits
        for (let i = 0, n = 1 + pick(4); i < n && f.length > 0; i++) f[near() % f.length] ^= 1 << pick(8);
        break;
      case 1: // truncate
        f = f.slice(0, pick(f.length + 1));
        break;
      case 2: { // extend
        const g = new Uint8Array(f.length + 1 + pick(64));
        g.set(f);
        for (let i = f.length; i < g.length; i++) g[i] = pick(256);
        f = g;
        break;
      }
      case 3: { // corrupt a length field (IPv4 total length / IHL, IPv6 payload length, inner ones, UDP length)
        const fields = [14, 16, 17, 18, 19, 34, 36, 37, 38, 39, 54, 58, 59, 60, 61, 62, 63, 64, 65];
        const at = fields[pick(fields.length)];
        if (at < f.length) f[at] = rnd() < 0.5 ? INTERESTING[pick(INTERESTING.length)] : (f[at] + (rnd() < 0.5 ? 1 : -1)) & 0xff;
        break;
      }
      case 4: // interesting byte
        if (f.length > 0) f[near() % f.length] = INTERESTING[pick(INTERESTING.length)];
        break;
      case 5: { // splice with another seed
        const other = all[pick(all.length)];
        const cut = pick(Math.min(f.length, other.length) + 1);
        const g = new Uint8Array(cut + other.length - cut);
        g.set(f.subarray(0, cut));
        g.set(other.subarray(cut), cut);
        f = g;
        break;
      }
      case 6: { // random frame for one of our MACs
        const len = 14 + pick(200);
        f = new Uint8Array(len);
        for (let i = 0; i < len; i++) f[i] = pick(256);
        f.set(seed.subarray(0, 6), 0);
        const types = [0x0800, 0x86dd, 0x0806];
        const t = types[pick(3)];
        f[12] = t >> 8;
        f[13] = t & 0xff;
        if (t === 0x0800 && len > 14) f[14] = 0x45;
        if (t === 0x86dd && len > 14) f[14] = 0x60;
        break;
      }
      default: // random byte
        if (f.length > 0) f[pick(f.length)] = pick(256);
    }
  }
  return f;
}

test("fuzz: 120,000 random and mutated frames; nothing throws, every emitted frame is well formed", (t) => {
  const seeds = scapyBuild(SEEDS.map(([, e]) => e), SCAPY_PRELUDE);
  const tableJson = exampleTable();
  (tableJson.rules as unknown[]).push(...ENCAP_RULES);
  const table = parseOfflineTable(tableJson);
  const withNeighbours = new Forwarder(table.worker, 0, { fallbackNeighbourMac: parseMac("02:00:00:00:ff:ff") });
  withNeighbours.replaceRules({ revision: table.revision, rules: table.rules });
  // The second one has no static neighbours: every next hop is resolved, so ARP/NDP, queues and timers run.
  const resolving = new Forwarder({ ...table.worker, neighbours: [], neighbourTimers: { retransMs: 50, reachableMs: 500, delayMs: 100, staleExpiryMs: 2000, queueLength: 3, maxEntries: 64 } }, 0);
  resolving.replaceRules({ revision: table.revision, rules: table.rules });

  const failures: { input: Uint8Array; ingress: number; problem: string }[] = [];
  let transportRequired = false;
  let current: { input: Uint8Array; ingress: number } = { input: new Uint8Array(0), ingress: 0 };
  let emitted = 0;
  // A sample of what came out of inputs with valid checksums also goes to tshark.
  const sample: Uint8Array[] = [];
  const check = (_ifIndex: number, frame: Uint8Array): void => {
    emitted++;
    if (transportRequired && emitted % 17 === 0 && sample.length < 3000) sample.push(frame.slice());
    const p = frameProblem(frame, transportRequired);
    if (p !== undefined && failures.length < 20) failures.push({ ...current, problem: `${p}; out ${Buffer.from(frame).toString("hex")}` });
  };

  // Replay kept crashers first.
  const replay: { ingress: number; input: Uint8Array }[] = [];
  mkdirSync(CRASHERS, { recursive: true });
  for (const name of readdirSync(CRASHERS).filter((n) => n.endsWith(".hex"))) {
    const [ingress, hexText] = readFileSync(join(CRASHERS, name), "utf8").trim().split(/\s+/);
    replay.push({ ingress: Number(ingress), input: Uint8Array.from(Buffer.from(hexText, "hex")) });
  }

  const rnd = prng(SEED);
  let now = 0;
  const total = replay.length + ITERATIONS;
  for (let i = 0; i < total; i++) {
    let ingress: number;
    let input: Uint8Array;
    let repaired = false;
    if (i < replay.length) {
      ({ ingress, input } = replay[i]);
    } else {
      const s = Math.floor(rnd() * seeds.length);
      ingress = rnd() < 0.9 ? SEEDS[s][0] : 3 - SEEDS[s][0];
      input = i % 10 === 0 ? Uint8Array.from(seeds[s]) : mutate(seeds[s], rnd, seeds);
      if (rnd() < 0.6) {
        repair(input);
        repaired = true;
      }
    }
    current = { input: Uint8Array.from(input), ingress };
    const before = withNeighbours.counters.drops["internal-error"] + resolving.counters.drops["internal-error"];
    transportRequired = repaired;
    withNeighbours.processFrame(ingress, input.slice(), check, now);
    // Frames flushed from a neighbour queue may come from earlier, unrepaired inputs.
    transportRequired = false;
    resolving.processFrame(ingress, input.slice(), check, now);
    if (withNeighbours.counters.drops["internal-error"] + resolving.counters.drops["internal-error"] !== before && failures.length < 20) {
      failures.push({ ...current, problem: "exception inside processFrame" });
    }
    if (i % 97 === 0) {
      now += 37;
      resolving.tick(now, check);
    }
  }

  for (const f of failures) {
    const name = `crash-${Buffer.from(f.input.subarray(0, 64)).toString("hex").slice(0, 16)}-${f.input.length}.hex`;
    writeFileSync(join(CRASHERS, name), `${f.ingress} ${Buffer.from(f.input).toString("hex")}\n`);
  }
  t.log(`${total} frames in, ${emitted} frames out; neighbour cache ${JSON.stringify(resolving.neighbours.stats())}`);
  t.deepEqual(failures.map((f) => f.problem), []);
  // tshark double-checks the headers we wrote. What it may rightly find deeper down is the
  // fuzzer's garbage passed on as routers do: packets quoted inside ICMP errors, lengths inside
  // fragments, application payloads (a UDP packet to port 53 that is not DNS, a TCP reset), and
  // "duplicate address" across unrelated frames; checksums that our codec verified above
  // (tshark then only reports the quoted ones).
  const shark = decodeWithTshark(sample);
  const passedOn = new Set<number>();
  for (const p of shark.problems) {
    const app = /\[Malformed Packet: ([^\]]+)\]/.exec(p.message)?.[1];
    if (app !== undefined && !["IPv4", "IPv6", "UDP", "TCP", "ICMP", "ICMPv6", "ARP", "ETH"].includes(app)) passedOn.add(p.frame);
    if (isFragment(sample[p.frame - 1]) || isIcmpError(sample[p.frame - 1]) || carriesUncheckedProtocol(sample[p.frame - 1])) passedOn.add(p.frame);
  }
  const headerProblems = shark.problems.filter((p) => !passedOn.has(p.frame) && !/^Bad checksum|^Duplicate IP address|^Connection reset|^Malformed Packet \(Exception occurred\)$/.test(p.message));
  t.log(`tshark: ${sample.length} frames decoded, ${shark.problems.length - headerProblems.length} notes about passed-on content`);
  t.deepEqual(headerProblems.map((p) => `${p.message}: ${Buffer.from(sample[p.frame - 1]).toString("hex")}`), []);
  t.true(emitted > 10_000);
  t.true(withNeighbours.counters.actions["translate-4to6"] > 0 && withNeighbours.counters.actions["translate-6to4"] > 0);
  t.true(withNeighbours.counters.actions["reencap-4in4-4in6"] > 0 && withNeighbours.counters.actions["reencap-6in6-6in4"] > 0);
  t.true(withNeighbours.counters.actions.decap > 0 && withNeighbours.counters.actions["encap-6in4"] > 0);
  t.true(withNeighbours.counters.actions["encap-4in6"] > 0 && withNeighbours.counters.actions["encap-4in4"] > 0 && withNeighbours.counters.actions["encap-6in6"] > 0);
});
