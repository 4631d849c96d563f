// Edge cases of the tunnel code that need no external decoder, and a robustness run.
import test from "ava";
import { parseIPv4 as parseIPv4Text, parseIPv6 as parseIPv6Text } from "../../../lib/net/address.js";
import { buildIcmp4Error } from "../../../dataplane/packet/icmp4.js";
import { buildIPv4Packet, parseIPv4, setIPv4Checksum } from "../../../dataplane/packet/ipv4.js";
import { parseIPv6 } from "../../../dataplane/packet/ipv6.js";
import { buildIPv6Packet } from "../../../dataplane/packet/ipv6.js";
import {
  AddressMap, decapsulate, encapsulate, encapsulatedLength, reencapsulate, TUNNEL_REASONS, TunnelNode, TunnelPeerTable, validateTunnel,
  type Tunnel, type TunnelResult,
} from "../../../dataplane/tunnel/index.js";

const a4 = (t: string) => parseIPv4Text(t, "test").bytes;
const a6 = (t: string) => parseIPv6Text(t, "test").bytes;
const payload = new TextEncoder().encode("0123456789abcdef");

function inner4(fields: Partial<{ ttl: number; tos: number; dst: string; src: string; df: boolean; protocol: number }> = {}): Uint8Array {
  return buildIPv4Packet({ src: a4(fields.src ?? "203.0.113.10"), dst: a4(fields.dst ?? "192.0.2.1"), ttl: fields.ttl ?? 64, tos: fields.tos ?? 0, protocol: fields.protocol ?? 17, dontFragment: fields.df ?? false }, payload);
}

const engine = () => new TunnelNode({ endpoints: [a4("198.51.100.1"), a6("2001:db8:2::1")], icmpSource4: a4("198.51.100.1"), icmpSource6: a6("2001:db8:2::1") });
const t4in4: Tunnel = { kind: "4in4", local: a4("198.51.100.1"), remote: a4("192.0.2.2"), mtu: 1500 };

test("RFC 2003 §3.1: a packet this node originates (forwarding false) keeps its TTL; TTL 0 is never encapsulated", (t) => {
  const out = new Uint8Array(200);
  const r = encapsulate(t4in4, engine(), inner4({ ttl: 1 }), out, { forwarding: false });
  if (r.action !== "forward") return t.fail(r.action);
  t.is(r.packet[20 + 8], 1);
  const zero = encapsulate(t4in4, engine(), inner4({ ttl: 0 }), out, { forwarding: false });
  t.is(zero.action, "icmp");
});

test("RFC 1812 §4.3.2.7: no ICMP error about an ICMP error; no error without a source address", (t) => {
  const out = new Uint8Array(400);
  const error = buildIcmp4Error(11, 0, 0, inner4(), a4("192.0.2.9"), a4("203.0.113.10"), 1);
  t.deepEqual(encapsulate(t4in4, engine(), error, out), { action: "drop", reason: "ttl-expired" });
  t.deepEqual(encapsulate(t4in4, new TunnelNode(), inner4({ ttl: 1 }), out), { action: "drop", reason: "ttl-expired" });
});

test("encapsulate refuses the wrong inner family, malformed inner packets and a short output buffer", (t) => {
  const six = buildIPv6Packet({ src: a6("2001:db8:c::10"), dst: a6("2001:db8:1::2"), nextHeader: 17, hopLimit: 64 }, payload);
  t.deepEqual(encapsulate(t4in4, engine(), six, new Uint8Array(200)), { action: "drop", reason: "family-mismatch" });
  const bad = inner4();
  bad[10] ^= 0xff; // header checksum
  t.deepEqual(encapsulate(t4in4, engine(), bad, new Uint8Array(200)), { action: "drop", reason: "inner-malformed" });
  t.deepEqual(encapsulate(t4in4, engine(), inner4().subarray(0, 30), new Uint8Array(200)), { action: "drop", reason: "inner-malformed" });
  t.deepEqual(encapsulate(t4in4, engine(), inner4(), new Uint8Array(30)), { action: "drop", reason: "buffer-too-small" });
  t.true(encapsulatedLength(t4in4, 36) >= 56);
});

test("RFC 6040 §4.2: a \"(!!!)\" combination is forwarded and flagged; re-encapsulation keeps the flag", (t) => {
  const peers = new TunnelPeerTable([{ address: a4("192.0.2.2"), innerFamilies: [4] }]);
  const tunnel = new Uint8Array(200);
  const enc = encapsulate({ ...t4in4, local: a4("192.0.2.2"), remote: a4("198.51.100.2") }, new TunnelNode(), inner4({ tos: 3 }), tunnel);
  if (enc.action !== "forward") return t.fail(enc.action);
  const p = Uint8Array.from(enc.packet);
  p[1] = (p[1] & 0xfc) | 1; // outer ECT(1) over inner CE: "(!!!)"
  p[10] = 0; p[11] = 0;
  setIPv4Checksum(p, 0);
  const r = decapsulate(peers, engine(), Uint8Array.from(p));
  t.like(r, { action: "forward", ecnUnexpected: true });
  const to: Tunnel = { kind: "4in6", local: a6("2001:db8:2::1"), remote: a6("2001:db8:1::c000:201"), mtu: 1500 };
  t.like(reencapsulate(peers, engine(), Uint8Array.from(p), to, new Uint8Array(300)), { action: "forward", ecnUnexpected: true });
});

test("RFC 8200 §5, RFC 2473 §6.7: validateTunnel rejects addresses of the wrong size and unusable MTUs", (t) => {
  t.notThrows(() => validateTunnel(t4in4));
  t.throws(() => validateTunnel({ ...t4in4, remote: a6("2001:db8::1") }), { instanceOf: RangeError });
  t.throws(() => validateTunnel({ kind: "6in6", local: a6("2001:db8::1"), remote: a6("2001:db8::2"), mtu: 1279 }), { instanceOf: RangeError });
  t.throws(() => validateTunnel({ ...t4in4, hopLimit: 0 }), { instanceOf: RangeError });
});

test("RFC 4213 §3.6 peer lookup: AddressMap keys IPv4 and IPv6 addresses read from inside a packet", (t) => {
  const m = new AddressMap<string>();
  m.set(a4("192.0.2.1"), "v4");
  m.set(a6("2001:db8::1"), "v6");
  m.set(a6("2001:db8::1:0:0:0"), "v6b"); // same XOR bucket pattern differs only by position
  const buf = new Uint8Array(40);
  buf.set(a6("2001:db8::1"), 8);
  buf.set(a4("192.0.2.1"), 30);
  t.is(m.get(buf, 8, 6), "v6");
  t.is(m.get(buf, 30, 4), "v4");
  t.true(m.delete(a6("2001:db8::1")));
  t.is(m.get(buf, 8, 6), undefined);
  t.is(m.size, 2);
});

// Robustness: random and mutated packets must never throw and must only give known reasons.
test("RFC 1812 §5.2.2 (malformed packets are discarded, never fatal): 20,000 random and mutated packets through decapsulate / encapsulate / reencapsulate", (t) => {
  let seed = 12345;
  const rand = () => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32;
  const n = engine();
  const peers = new TunnelPeerTable([{ address: a4("192.0.2.2"), innerFamilies: [4, 6] }, { address: a6("2001:db8:1::1"), innerFamilies: [4, 6] }]);
  const to: Tunnel = { kind: "6in4", local: a4("198.51.100.1"), remote: a4("192.0.2.3"), mtu: 576 };
  const to4: Tunnel = { kind: "4in6", local: a6("2001:db8:2::1"), remote: a6("2001:db8:1::c000:201"), mtu: 1280 };
  const good = buildIPv4Packet({ src: a4("192.0.2.2"), dst: a4("198.51.100.2"), ttl: 64, protocol: 4 }, inner4());
  const out = new Uint8Array(2048);
  const reasons = new Set<string>(TUNNEL_REASONS);
  const check = (r: TunnelResult) => {
    if (r.action === "drop" || r.action === "icmp") t.true(reasons.has(r.reason), r.reason);
    // Whatever goes out parses as an IP packet of exactly its length, with a good IPv4 checksum.
    const sent = r.action === "fragments" ? r.packets : r.action === "drop" ? [] : [r.packet];
    for (const q of sent) {
      if (q[0] >> 4 === 4) {
        const h = parseIPv4(q);
        t.true(h !== undefined && h.checksumValid && h.totalLength === q.length);
      } else {
        const h = parseIPv6(q);
        t.true(h !== undefined && 40 + h.payloadLength === q.length);
      }
    }
  };
  for (let i = 0; i < 20000; i++) {
    let p: Uint8Array;
    if (i % 2 === 0) {
      p = Uint8Array.from(good);
      const flips = 1 + Math.floor(rand() * 4);
      for (let f = 0; f < flips; f++) p[Math.floor(rand() * p.length)] = Math.floor(rand() * 256);
      if (rand() < 0.2) p = p.subarray(0, Math.floor(rand() * p.length));
    } else {
      p = new Uint8Array(Math.floor(rand() * 120));
      for (let j = 0; j < p.length; j++) p[j] = Math.floor(rand() * 256);
      if (p.length > 0) p[0] = (rand() < 0.5 ? 0x45 : 0x60) | (p[0] & 0x0f);
    }
    check(decapsulate(peers, n, Uint8Array.from(p)));
    check(reencapsulate(peers, n, Uint8Array.from(p), rand() < 0.5 ? to : to4, out));
    check(encapsulate(to4, n, Uint8Array.from(p), out));
  }
  const sane = decapsulate(peers, n, Uint8Array.from(good));
  t.is(sane.action, "forward");
  t.is(parseIPv4((sane as { packet: Uint8Array }).packet)!.ttl, 63);
});
