// The four tunnels, checked against scapy-built inputs and expected packets, and tshark.
import test from "ava";
import { parseIPv4 as parseIPv4Text, parseIPv6 as parseIPv6Text } from "../../../lib/net/address.js";
import { parseIPv4, setIPv4Checksum } from "../../../dataplane/packet/ipv4.js";
import { parseIPv6 } from "../../../dataplane/packet/ipv6.js";
import {
  decapsulate, encapsulate, reencapsulate, relayTunnelIcmpError, TUNNEL_REASONS, TunnelNode, TunnelPeerTable, type Tunnel, type TunnelKind, type TunnelResult,
} from "../../../dataplane/tunnel/index.js";
import { scapy, tsharkComplaints, tsharkFields } from "./external.js";

const a4 = (t: string) => parseIPv4Text(t, "test").bytes;
const a6 = (t: string) => parseIPv6Text(t, "test").bytes;

// The lab addresses of the paper (paper.md, address table).
const ENGINE4 = "198.51.100.1";
const ENGINE6 = "2001:db8:2::1";
const R1 = "192.0.2.2";
const R2 = "2001:db8:1::1";
const POOL = "198.51.100.2";
const COA6_31 = "2001:db8:1::c000:201"; // 2001:db8:1::192.0.2.1
const HOME4 = "192.0.2.1";
const COA6_32 = "2001:db8:3::c000:203"; // 2001:db8:3::192.0.2.3
const COA4_32 = "192.0.2.3";
const HOME6 = "2001:db8:1::2";
const CN4 = "203.0.113.10";
const CN6 = "2001:db8:c::10";

const UDP = "UDP(sport=40000, dport=40001)/Raw(b'mip46 tunnel test payload')";
// DSCP EF (46) with ECT(1) / ECT(0).
const IN4 = `IP(src='${CN4}', dst='${HOME4}', ttl=64, tos=0xb9, flags='DF', id=7)/${UDP}`;
const IN6 = `IPv6(src='${CN6}', dst='${HOME6}', hlim=64, tc=0xba)/${UDP}`;

const P = scapy({
  in4: IN4,
  in4ttl63: IN4.replace("ttl=64", "ttl=63"),
  in6: IN6,
  in6hlim63: IN6.replace("hlim=64", "hlim=63"),
  in4ttl1: IN4.replace("ttl=64", "ttl=1"),
  in6hlim1: IN6.replace("hlim=64", "hlim=1"),
  big4df: `IP(src='${CN4}', dst='${HOME4}', ttl=64, flags='DF')/UDP(sport=1, dport=2)/Raw(b'a'*1272)`, // 1300 bytes
  big4: `IP(src='${CN4}', dst='${HOME4}', ttl=64, id=99)/UDP(sport=1, dport=2)/Raw(bytes(range(256))*4 + b'b'*248)`, // 1300 bytes
  big6: `IPv6(src='${CN6}', dst='${HOME6}', hlim=64)/UDP(sport=1, dport=2)/Raw(b'c'*1552)`, // 1600 bytes
  mid6: `IPv6(src='${CN6}', dst='${HOME6}', hlim=64)/UDP(sport=1, dport=2)/Raw(b'd'*1232)`, // 1280 bytes
  // Flow 3.1 i: r1 tunnels the CN's packet to the pool address; j: expected output.
  r1to_pool: `IP(src='${R1}', dst='${POOL}', ttl=64, tos=0xb9, flags='DF')/IP(src='${CN4}', dst='${HOME4}', ttl=63, tos=0xb9, flags='DF', id=7)/${UDP}`,
  expect31j: `IPv6(src='${ENGINE6}', dst='${COA6_31}', hlim=64, tc=0xb9, fl=0, nh=4)/IP(src='${CN4}', dst='${HOME4}', ttl=62, tos=0xb9, flags='DF', id=7)/${UDP}`,
  // Flow 3.2 h: r2 tunnels to the VM's IPv6 care-of address; i: expected output.
  r2to_coa: `IPv6(src='${R2}', dst='${COA6_32}', hlim=64, tc=0xba)/IPv6(src='${CN6}', dst='${HOME6}', hlim=63, tc=0xba)/${UDP}`,
  expect32i: `IP(src='${ENGINE4}', dst='${COA4_32}', ttl=64, tos=0xba, flags=0, proto=41)/IPv6(src='${CN6}', dst='${HOME6}', hlim=62, tc=0xba)/${UDP}`,
  // Misfits.
  unknown4in4: `IP(src='192.0.2.99', dst='${ENGINE4}')/IP(src='${CN4}', dst='${HOME4}')/${UDP}`,
  r1sends6in4: `IP(src='${R1}', dst='${ENGINE4}')/IPv6(src='${CN6}', dst='${HOME6}')/${UDP}`,
  vmSpoofed: `IPv6(src='${COA6_31}', dst='${ENGINE6}')/IP(src='192.0.2.77', dst='${CN4}')/${UDP}`,
  vmGood: `IPv6(src='${COA6_31}', dst='${ENGINE6}')/IP(src='${HOME4}', dst='${CN4}')/${UDP}`,
  outerFragment: `IP(src='${R1}', dst='${ENGINE4}', flags='MF', proto=4)/IP(src='${CN4}', dst='${HOME4}')/${UDP}`,
  innerTruncated: `IP(src='${R1}', dst='${ENGINE4}', proto=4)/Raw(bytes(IP(src='${CN4}', dst='${HOME4}')/${UDP})[:30])`,
  limit0: `IPv6(src='${CN6}', dst='${HOME6}', hlim=64, nh=60)/IPv6ExtHdrDestOpt(nh=41, options=[HBHOptUnknown(otype=4, optdata=b'\\x00'), PadN(optdata=b'\\x00')])/IPv6(src='2001:db8:c::20', dst='${HOME6}')/${UDP}`,
  limit3: `IPv6(src='${CN6}', dst='${HOME6}', hlim=64, nh=60)/IPv6ExtHdrDestOpt(nh=41, options=[HBHOptUnknown(otype=4, optdata=b'\\x03'), PadN(optdata=b'\\x00')])/IPv6(src='2001:db8:c::20', dst='${HOME6}')/${UDP}`,
  // Errors from inside a tunnel about our own outer packets (RFC 2003 §4, RFC 2473 §8).
  ptbAbout4in6: `IPv6(src='2001:db8:5::1', dst='${ENGINE6}')/ICMPv6PacketTooBig(mtu=1400)/IPv6(src='${ENGINE6}', dst='${COA6_31}', nh=4)/IP(src='${CN4}', dst='${HOME4}', flags='DF')/${UDP}`,
  timeAbout6in4: `IP(src='192.0.2.254', dst='${ENGINE4}')/ICMP(type=11, code=0)/IP(src='${ENGINE4}', dst='${COA4_32}', proto=41)/IPv6(src='${CN6}', dst='${HOME6}')/${UDP}`,
  fragNeededAbout6in4: `IP(src='192.0.2.254', dst='${ENGINE4}')/ICMP(type=3, code=4, nexthopmtu=1300)/IP(src='${ENGINE4}', dst='${COA4_32}', proto=41)/IPv6(src='${CN6}', dst='${HOME6}')/${UDP}`,
  icmpNotOurs: `IP(src='192.0.2.254', dst='${ENGINE4}')/ICMP(type=11, code=0)/IP(src='192.0.2.77', dst='${COA4_32}', proto=41)/IPv6(src='${CN6}', dst='${HOME6}')/${UDP}`,
  ...ecnPackets(),
});

const ECN_NAMES = ["Not-ECT", "ECT(1)", "ECT(0)", "CE"];

function ecnPackets(): Record<string, string> {
  const r: Record<string, string> = {};
  for (let inner = 0; inner < 4; inner++) {
    for (let outer = 0; outer < 4; outer++) {
      r[`ecn4_${inner}_${outer}`] = `IP(src='${R1}', dst='${ENGINE4}', tos=${0x20 | outer})/IP(src='${CN4}', dst='${HOME4}', tos=${0x28 | inner})/${UDP}`;
      r[`ecn6_${inner}_${outer}`] = `IPv6(src='${R2}', dst='${ENGINE6}', tc=${0x20 | outer})/IPv6(src='${CN6}', dst='${HOME6}', tc=${0x28 | inner})/${UDP}`;
    }
  }
  return r;
}

function node(): TunnelNode {
  return new TunnelNode({ endpoints: [a4(ENGINE4), a6(ENGINE6)], icmpSource4: a4(ENGINE4), icmpSource6: a6(ENGINE6) });
}

function peers(): TunnelPeerTable {
  return new TunnelPeerTable([
    { address: a4(R1), innerFamilies: [4] },
    { address: a6(R2), innerFamilies: [6] },
    { address: a6(COA6_31), innerFamilies: [4], innerSources: [{ prefix: a4(HOME4), length: 32 }] },
    { address: a4(COA4_32), innerFamilies: [6], innerSources: [{ prefix: a6(HOME6), length: 128 }] },
  ]);
}

function forwarded(t: { fail(m: string): void }, r: TunnelResult): Uint8Array {
  if (r.action !== "forward") {
    t.fail(`expected forward, got ${JSON.stringify(r.action === "drop" || r.action === "icmp" ? r : { action: r.action })}`);
    return new Uint8Array();
  }
  return r.packet;
}

const out = new Uint8Array(2048);

/** Compare, allowing only the IPv4 identification and header checksum of an IPv4 header at `ipv4At` to differ. */
function sameExceptIdAndChecksum(actual: Uint8Array, expected: Uint8Array, ipv4At: number[]): string | undefined {
  if (actual.length !== expected.length) return `length ${actual.length} != ${expected.length}`;
  const free = new Set(ipv4At.flatMap((o) => [o + 4, o + 5, o + 10, o + 11]));
  for (let i = 0; i < actual.length; i++) {
    if (!free.has(i) && actual[i] !== expected[i]) return `byte ${i}: ${actual[i]} != ${expected[i]}`;
  }
  return undefined;
}

interface KindCase { kind: TunnelKind; rfc: string; local: string; remote: string; input: keyof typeof P; expected: keyof typeof P; protocol: number }
const KINDS: KindCase[] = [
  { kind: "4in4", rfc: "RFC 2003", local: ENGINE4, remote: R1, input: "in4", expected: "in4ttl63", protocol: 4 },
  { kind: "6in6", rfc: "RFC 2473", local: ENGINE6, remote: R2, input: "in6", expected: "in6hlim63", protocol: 41 },
  { kind: "4in6", rfc: "RFC 2473", local: ENGINE6, remote: COA6_31, input: "in4", expected: "in4ttl63", protocol: 4 },
  { kind: "6in4", rfc: "RFC 4213", local: ENGINE4, remote: COA4_32, input: "in6", expected: "in6hlim63", protocol: 41 },
];

for (const c of KINDS) {
  test(`${c.rfc} ${c.kind}: encapsulate → decapsulate round trip and outer header fields`, (t) => {
    const n = node();
    const outer4 = c.kind.endsWith("in4");
    const tunnel: Tunnel = { kind: c.kind, local: outer4 ? a4(c.local) : a6(c.local), remote: outer4 ? a4(c.remote) : a6(c.remote), mtu: 1500 };
    const input = Uint8Array.from(P[c.input]);
    const enc = Uint8Array.from(forwarded(t, encapsulate(tunnel, n, input, out)));
    t.deepEqual(input, Uint8Array.from(P[c.input]), "input is not modified");
    const overhead = outer4 ? 20 : 40;
    t.is(enc.length, overhead + input.length);
    t.deepEqual(Buffer.from(enc.subarray(overhead)), P[c.expected], "inner = input with TTL/hop limit − 1");
    const innerTos = c.input === "in4" ? 0xb9 : 0xba;
    if (outer4) {
      const h = parseIPv4(enc)!;
      t.true(h.checksumValid);
      t.is(h.protocol, c.protocol, "RFC 2003 §3.1 / RFC 4213 §3.5 protocol");
      t.is(h.ttl, 64, "RFC 2003 §3.1 default outer TTL");
      t.is(h.tos, innerTos, "DSCP copied, ECN copied (RFC 6040 §4.1 normal mode)");
      t.is(h.dontFragment, c.kind === "4in4", "DF copied from IPv4 inner (RFC 2003 §3.1); clear for 6in4 (RFC 4213 §3.2.1)");
      t.is(h.totalLength, enc.length);
      t.deepEqual(enc.subarray(12, 16), a4(c.local));
      t.deepEqual(enc.subarray(16, 20), a4(c.remote));
    } else {
      const h = parseIPv6(enc)!;
      t.is(h.nextHeader, c.protocol, "RFC 2473 §3.1 next header");
      t.is(h.hopLimit, 64, "RFC 2473 §6.3 default hop limit");
      t.is(h.trafficClass, innerTos, "RFC 2473 §6.4 traffic class, RFC 6040 §4.1");
      t.is(h.flowLabel, 0);
      t.is(h.payloadLength, input.length);
      t.deepEqual(enc.subarray(8, 24), a6(c.local));
      t.deepEqual(enc.subarray(24, 40), a6(c.remote));
    }
    // The far end sees this node as its peer.
    const far = new TunnelPeerTable([{ address: tunnel.local, innerFamilies: [c.input === "in4" ? 4 : 6] }]);
    const dec = forwarded(t, decapsulate(far, n, Uint8Array.from(enc), { forwarding: false }));
    t.deepEqual(Buffer.from(dec), P[c.expected]);
    t.deepEqual(tsharkComplaints([enc, dec]), []);
  });
}

test("paper flow 3.1 j (RFC 2003 → RFC 2473): 4in4 to a pool address leaves as 4in6 to the VM's IPv6 care-of address, scapy-exact", (t) => {
  const to: Tunnel = { kind: "4in6", local: a6(ENGINE6), remote: a6(COA6_31), mtu: 1500 };
  const r = forwarded(t, reencapsulate(peers(), node(), Uint8Array.from(P.r1to_pool), to, out));
  t.is(sameExceptIdAndChecksum(r, P.expect31j, []), undefined);
  t.deepEqual(tsharkComplaints([r]), []);
});

test("paper flow 3.2 i (RFC 2473 → RFC 4213): 6in6 to a care-of address in an assigned prefix leaves as 6in4, scapy-exact but for IPv4 id/checksum", (t) => {
  const to: Tunnel = { kind: "6in4", local: a4(ENGINE4), remote: a4(COA4_32), mtu: 1500 };
  const r = forwarded(t, reencapsulate(peers(), node(), Uint8Array.from(P.r2to_coa), to, out));
  t.is(sameExceptIdAndChecksum(r, P.expect32i, [0]), undefined);
  t.true(parseIPv4(r)!.checksumValid);
  t.deepEqual(tsharkComplaints([r]), []);
});

test("RFC 2003 §3.1: a TTL that would reach 0 is not encapsulated; ICMP Time Exceeded goes to the source", (t) => {
  const tunnel: Tunnel = { kind: "4in6", local: a6(ENGINE6), remote: a6(COA6_31), mtu: 1500 };
  const r = encapsulate(tunnel, node(), Uint8Array.from(P.in4ttl1), out);
  if (r.action !== "icmp") return t.fail(r.action);
  t.is(r.reason, "ttl-expired");
  const [f] = tsharkFields([r.packet], ["ip.src", "ip.dst", "icmp.type", "icmp.code"]);
  t.deepEqual(f, [ENGINE4, CN4, "11", "0"]);
  t.deepEqual(tsharkComplaints([r.packet]), []);
  // The quote starts with the invoking packet's header.
  t.deepEqual(Buffer.from(r.packet.subarray(28, 48)), P.in4ttl1.subarray(0, 20));
});

test("RFC 2473 §3.2: a hop limit that would reach 0 gets ICMPv6 Time Exceeded", (t) => {
  const tunnel: Tunnel = { kind: "6in4", local: a4(ENGINE4), remote: a4(COA4_32), mtu: 1500 };
  const r = encapsulate(tunnel, node(), Uint8Array.from(P.in6hlim1), out);
  if (r.action !== "icmp") return t.fail(r.action);
  const [f] = tsharkFields([r.packet], ["ipv6.src", "ipv6.dst", "icmpv6.type", "icmpv6.code"]);
  t.deepEqual(f, [ENGINE6, CN6, "3", "0"]);
  t.deepEqual(tsharkComplaints([r.packet]), []);
});

test("RFC 1191 / RFC 2473 §7.2(a): IPv4 with DF too big for the tunnel gets Fragmentation Needed with link MTU − 40", (t) => {
  const tunnel: Tunnel = { kind: "4in6", local: a6(ENGINE6), remote: a6(COA6_31), mtu: 1280 };
  t.is(P.big4df.length, 1300);
  const r = encapsulate(tunnel, node(), Uint8Array.from(P.big4df), out);
  if (r.action !== "icmp") return t.fail(r.action);
  t.is(r.reason, "too-big");
  const [f] = tsharkFields([r.packet], ["ip.dst", "icmp.type", "icmp.code", "icmp.mtu"]);
  t.deepEqual(f, [CN4, "3", "4", "1240"]);
  t.deepEqual(tsharkComplaints([r.packet]), []);
});

test("RFC 2003 §3.1 RFC 4213 §3.2: 4in4 Fragmentation Needed reports link MTU − 20", (t) => {
  const tunnel: Tunnel = { kind: "4in4", local: a4(ENGINE4), remote: a4(R1), mtu: 1300 };
  const r = encapsulate(tunnel, node(), Uint8Array.from(P.big4df), out);
  if (r.action !== "icmp") return t.fail(r.action);
  t.is((r.packet[26] << 8) | r.packet[27], 1280);
});

test("RFC 791 §3.2, RFC 4459 §3.4: IPv4 without DF too big is fragmented inside, each fragment its own tunnel packet", (t) => {
  const n = node();
  const tunnel: Tunnel = { kind: "4in6", local: a6(ENGINE6), remote: a6(COA6_31), mtu: 1280 };
  const r = encapsulate(tunnel, n, Uint8Array.from(P.big4), out);
  if (r.action !== "fragments") return t.fail(r.action);
  t.true(r.packets.length >= 2);
  const far = new TunnelPeerTable([{ address: a6(ENGINE6), innerFamilies: [4] }]);
  const payload: number[] = [];
  for (const p of r.packets) {
    t.true(p.length <= 1280);
    const inner = forwarded(t, decapsulate(far, n, Uint8Array.from(p), { forwarding: false }));
    const h = parseIPv4(inner)!;
    t.true(h.checksumValid);
    t.is(h.ttl, 63);
    t.is(h.identification, 99);
    t.is(h.fragmentOffset * 8, payload.length);
    payload.push(...inner.subarray(h.payloadOffset));
  }
  t.deepEqual(Buffer.from(payload), P.big4.subarray(20));
  t.deepEqual(tsharkComplaints(r.packets), []);
});

test("RFC 2473 §7.1 / RFC 4213 §3.2: IPv6 larger than 1280 and the tunnel MTU gets Packet Too Big with link MTU − 20", (t) => {
  const tunnel: Tunnel = { kind: "6in4", local: a4(ENGINE4), remote: a4(COA4_32), mtu: 1500 };
  const r = encapsulate(tunnel, node(), Uint8Array.from(P.big6), out);
  if (r.action !== "icmp") return t.fail(r.action);
  const [f] = tsharkFields([r.packet], ["ipv6.dst", "icmpv6.type", "icmpv6.mtu"]);
  t.deepEqual(f, [CN6, "2", "1480"]);
  t.deepEqual(tsharkComplaints([r.packet]), []);
});

test("RFC 2473 §7.1: Packet Too Big never reports less than 1280; a 1280-byte packet is sent as outer fragments", (t) => {
  const n = node();
  const tunnel: Tunnel = { kind: "6in6", local: a6(ENGINE6), remote: a6(R2), mtu: 1300 };
  const big = encapsulate(tunnel, n, Uint8Array.from(P.big6), out);
  if (big.action !== "icmp") return t.fail(big.action);
  t.deepEqual(tsharkFields([big.packet], ["icmpv6.mtu"])[0], ["1280"]);
  const mid = encapsulate(tunnel, n, Uint8Array.from(P.mid6), out);
  if (mid.action !== "fragments") return t.fail(mid.action);
  for (const p of mid.packets) t.true(p.length <= 1300);
  t.deepEqual(tsharkComplaints(mid.packets), []);
  // tshark reassembles the outer packet and finds the inner one whole.
  const fields = tsharkFields(mid.packets, ["udp.dstport"]);
  t.true(fields.some((f) => f[0] === "2"));
});

test("RFC 4213 §3.2.1: 6in4 sends a 1280-byte packet over a small IPv4 MTU as outer IPv4 fragments", (t) => {
  const tunnel: Tunnel = { kind: "6in4", local: a4(ENGINE4), remote: a4(COA4_32), mtu: 1000 };
  const r = encapsulate(tunnel, node(), Uint8Array.from(P.mid6), out);
  if (r.action !== "fragments") return t.fail(r.action);
  for (const p of r.packets) t.true(p.length <= 1000 && parseIPv4(p)!.checksumValid);
  t.deepEqual(tsharkComplaints(r.packets), []);
});

// RFC 6040 §4.2 Figure 4, written out independently of the code: [inner][outer], codepoints
// in the order Not-ECT, ECT(1), ECT(0), CE; "drop" is <drop>.
const FIGURE_4: Record<string, Record<string, string>> = {
  "Not-ECT": { "Not-ECT": "Not-ECT", "ECT(0)": "Not-ECT", "ECT(1)": "Not-ECT", CE: "drop" },
  "ECT(0)": { "Not-ECT": "ECT(0)", "ECT(0)": "ECT(0)", "ECT(1)": "ECT(1)", CE: "CE" },
  "ECT(1)": { "Not-ECT": "ECT(1)", "ECT(0)": "ECT(1)", "ECT(1)": "ECT(1)", CE: "CE" },
  CE: { "Not-ECT": "CE", "ECT(0)": "CE", "ECT(1)": "CE", CE: "CE" },
};

for (const fam of [4, 6] as const) {
  test(`RFC 6040 §4.2: decapsulation ECN table, IPv${fam} in IPv${fam}`, (t) => {
    const n = node();
    const table = peers();
    for (let inner = 0; inner < 4; inner++) {
      for (let outer = 0; outer < 4; outer++) {
        const want = FIGURE_4[ECN_NAMES[inner]][ECN_NAMES[outer]];
        const r = decapsulate(table, n, Uint8Array.from(P[`ecn${fam}_${inner}_${outer}` as keyof typeof P]), { forwarding: false });
        const label = `inner ${ECN_NAMES[inner]}, outer ${ECN_NAMES[outer]}`;
        if (want === "drop") {
          t.deepEqual(r, { action: "drop", reason: "ecn-drop" }, label);
          continue;
        }
        const p = forwarded(t, r);
        const tos = fam === 4 ? p[1] : ((p[0] & 0x0f) << 4) | (p[1] >> 4);
        t.is(ECN_NAMES[tos & 3], want, label);
        t.is(tos >> 2, 0x28 >> 2, `${label}: DSCP kept`);
        if (fam === 4) t.true(parseIPv4(p)!.checksumValid, `${label}: checksum updated`);
      }
    }
  });
}

test("RFC 2003 §7, RFC 4213 §3.6: decapsulation drops what does not come from a known peer with the configured family", (t) => {
  const n = node();
  t.deepEqual(decapsulate(peers(), n, Uint8Array.from(P.unknown4in4)), { action: "drop", reason: "unknown-peer" });
  t.deepEqual(decapsulate(peers(), n, Uint8Array.from(P.r1sends6in4)), { action: "drop", reason: "family-mismatch" });
  t.deepEqual(decapsulate(peers(), n, Uint8Array.from(P.outerFragment)), { action: "drop", reason: "outer-fragment" });
  t.deepEqual(decapsulate(peers(), n, Uint8Array.from(P.innerTruncated)), { action: "drop", reason: "inner-malformed" });
  t.deepEqual(decapsulate(peers(), n, Uint8Array.from(P.in4)), { action: "drop", reason: "not-tunnel" });
});

test("RFC 4213 §3.6: ingress filtering of the inner source per peer", (t) => {
  const n = node();
  t.deepEqual(decapsulate(peers(), n, Uint8Array.from(P.vmSpoofed)), { action: "drop", reason: "ingress-filter" });
  const p = forwarded(t, decapsulate(peers(), n, Uint8Array.from(P.vmGood)));
  t.is(parseIPv4(p)!.ttl, 63, "RFC 2003 §3.1: forwarding after decapsulation decrements the TTL");
  t.true(parseIPv4(p)!.checksumValid);
});

test("RFC 6324 §3: no loops — a packet for one of our tunnel endpoints, or a tunnel to one, is dropped", (t) => {
  const n = node();
  const toUs = Uint8Array.from(P.vmGood.subarray(40)); // IPv4 packet from HOME4 to CN4
  toUs.set(a4(ENGINE4), 16);
  setIPv4Checksum(toUs, 0);
  const tunnel: Tunnel = { kind: "4in4", local: a4(ENGINE4), remote: a4(R1), mtu: 1500 };
  t.deepEqual(encapsulate(tunnel, n, toUs, out), { action: "drop", reason: "loop" });
  const self: Tunnel = { kind: "4in6", local: a6(ENGINE6), remote: a6(ENGINE6), mtu: 1500 };
  t.deepEqual(encapsulate(self, n, Uint8Array.from(P.in4), out), { action: "drop", reason: "loop" });
  // Our own tunnel packet offered to the same tunnel again (RFC 2473 §4, recursion).
  const once = Uint8Array.from(forwarded(t, encapsulate(tunnel, new TunnelNode(), Uint8Array.from(P.in4), out)));
  t.deepEqual(encapsulate(tunnel, new TunnelNode(), once, out), { action: "drop", reason: "loop" });
});

test("RFC 2473 §4.1.1: Tunnel Encapsulation Limit 0 → Parameter Problem; otherwise our header carries limit − 1", (t) => {
  const n = node();
  const tunnel: Tunnel = { kind: "6in6", local: a6(ENGINE6), remote: a6(R2), mtu: 1500 };
  const r0 = encapsulate(tunnel, n, Uint8Array.from(P.limit0), out);
  if (r0.action !== "icmp") return t.fail(r0.action);
  t.is(r0.reason, "encapsulation-limit");
  t.deepEqual(tsharkFields([r0.packet], ["icmpv6.type", "icmpv6.code", "icmpv6.pointer"])[0], ["4", "0", "42"]);
  t.deepEqual(tsharkComplaints([r0.packet]), []);
  const r3 = forwarded(t, encapsulate(tunnel, n, Uint8Array.from(P.limit3), out));
  t.is(r3[6], 60);
  t.deepEqual([...r3.subarray(40, 48)], [41, 0, 4, 1, 2, 1, 1, 0]);
  t.deepEqual(tsharkComplaints([r3]), []);
  const far = new TunnelPeerTable([{ address: a6(ENGINE6), innerFamilies: [6] }]);
  const back = forwarded(t, decapsulate(far, n, Uint8Array.from(r3), { forwarding: false }));
  t.is(back.length, P.limit3.length);
});

test("the reasons are a fixed list of Prometheus-safe label values", (t) => {
  for (const r of TUNNEL_REASONS) t.regex(r, /^[a-z][a-z-]*$/);
  t.is(new Set(TUNNEL_REASONS).size, TUNNEL_REASONS.length);
});

test("RFC 2473 §8.3, RFC 2003 §5.1: Packet Too Big about our 4in6 packet → Fragmentation Needed to the source with MTU − 40", (t) => {
  const relay = relayTunnelIcmpError(node(), Uint8Array.from(P.ptbAbout4in6));
  t.is(relay.pathMtu, 1400);
  t.deepEqual(relay.remote, a6(COA6_31));
  const r = relay.result;
  if (r.action !== "icmp") return t.fail(r.action);
  t.deepEqual(tsharkFields([r.packet], ["ip.src", "ip.dst", "icmp.type", "icmp.code", "icmp.mtu"])[0], [ENGINE4, CN4, "3", "4", "1360"]);
  t.deepEqual(tsharkComplaints([r.packet]), []);
});

test("RFC 2473 §8.2: Time Exceeded about our 6in4 packet → ICMPv6 address unreachable to the source", (t) => {
  const relay = relayTunnelIcmpError(node(), Uint8Array.from(P.timeAbout6in4));
  const r = relay.result;
  if (r.action !== "icmp") return t.fail(r.action);
  t.is(r.reason, "tunnel-unreachable");
  t.deepEqual(tsharkFields([r.packet], ["ipv6.dst", "icmpv6.type", "icmpv6.code"])[0], [CN6, "1", "3"]);
  t.deepEqual(tsharkComplaints([r.packet]), []);
});

test("RFC 4213 §3.2: Fragmentation Needed about our 6in4 packet → Packet Too Big (at least 1280); errors about others' packets are not relayed", (t) => {
  const relay = relayTunnelIcmpError(node(), Uint8Array.from(P.fragNeededAbout6in4));
  t.is(relay.pathMtu, 1300);
  const r = relay.result;
  if (r.action !== "icmp") return t.fail(r.action);
  t.deepEqual(tsharkFields([r.packet], ["icmpv6.type", "icmpv6.mtu"])[0], ["2", "1280"]);
  t.deepEqual(relayTunnelIcmpError(node(), Uint8Array.from(P.icmpNotOurs)).result, { action: "drop", reason: "not-tunnel" });
});
