import test from "ava";
import { pseudoHeaderSum4At, pseudoHeaderSum6At } from "../../../dataplane/packet/checksum.js";
import { IPPROTO, parseIPv4 } from "../../../dataplane/packet/ipv4.js";
import { parseIPv6 } from "../../../dataplane/packet/ipv6.js";
import { TCP_FLAG, buildTcp4, buildTcp6, computeTcpChecksum, newTcpHeader, parseTcp, verifyTcpChecksum } from "../../../dataplane/packet/tcp.js";
import { buildUdp4, buildUdp6, computeUdpChecksum, newUdpHeader, parseUdp, verifyUdpChecksum } from "../../../dataplane/packet/udp.js";
import { LINKTYPE_RAW } from "../../helpers/pcap.js";
import { scapyBuild } from "../../helpers/scapy.js";
import { decodeWithTshark } from "../../helpers/tshark.js";
import { a4, a6, hex, patternBytes } from "./fixtures.js";

const SRC4 = a4("192.0.2.1");
const DST4 = a4("198.51.100.2");
const SRC6 = a6("2001:db8::1");
const DST6 = a6("2001:db8:ffff::2");
const MSS_OPTION = Uint8Array.of(2, 4, 0x05, 0xb4);

test("UDP over IPv4 round trip with checksum", (t) => {
  const payload = patternBytes(37);
  const p = buildUdp4({ src: SRC4, dst: DST4, srcPort: 40000, dstPort: 434 }, payload);
  const ip = parseIPv4(p)!;
  const u = parseUdp(p, ip.payloadOffset, ip.payloadLength);
  if (u === undefined) return t.fail("did not parse");
  t.is(u.srcPort, 40000);
  t.is(u.dstPort, 434);
  t.is(u.length, 45);
  t.deepEqual(p.subarray(u.payloadOffset, u.payloadOffset + u.payloadLength), payload);
  const ps = pseudoHeaderSum4At(p, 0, IPPROTO.UDP, u.length);
  t.true(verifyUdpChecksum(p, u.offset, u.length, ps));
  t.is(computeUdpChecksum(p, u.offset, u.length, ps), u.checksum);
  p[u.payloadOffset] ^= 1;
  t.false(verifyUdpChecksum(p, u.offset, u.length, ps));
});

test("UDP zero checksum: allowed to build over IPv4, reported as not verified", (t) => {
  const p = buildUdp4({ src: SRC4, dst: DST4, srcPort: 1, dstPort: 2, zeroChecksum: true }, patternBytes(4));
  const u = parseUdp(p, 20)!;
  t.is(u.checksum, 0);
  t.false(verifyUdpChecksum(p, 20, u.length, pseudoHeaderSum4At(p, 0, 17, u.length)));
});

test("a UDP checksum that computes to 0 is sent as 0xFFFF (RFC 768)", (t) => {
  // Find a payload word that makes the checksum 0 by solving for it: set the last word so the
  // sum of everything is 0xFFFF, then the computed value is 0 and must be sent as 0xFFFF.
  const p = buildUdp4({ src: SRC4, dst: DST4, srcPort: 1, dstPort: 2 }, new Uint8Array(2));
  const c = (p[26] << 8) | p[27];
  // Adding x to the data lowers the checksum by x (ones' complement); choose x = c.
  p[28] = c >> 8;
  p[29] = c & 0xff;
  t.is(computeUdpChecksum(p, 20, 10, pseudoHeaderSum4At(p, 0, 17, 10)), 0xffff);
});

test("UDP over IPv6 is byte-identical to scapy's", (t) => {
  const ours = buildUdp6({ src: SRC6, dst: DST6, srcPort: 5353, dstPort: 53 }, Uint8Array.from(Buffer.from("hello")));
  const [theirs] = scapyBuild([`IPv6(src="2001:db8::1", dst="2001:db8:ffff::2")/UDP(sport=5353, dport=53)/Raw(b"hello")`]);
  t.is(hex(ours), hex(theirs));
  const ip = parseIPv6(ours)!;
  t.true(verifyUdpChecksum(ours, 40, ip.payloadLength, pseudoHeaderSum6At(ours, 0, 17, ip.payloadLength)));
});

test("UDP and TCP over IPv4 are byte-identical to scapy's", (t) => {
  const [udp, tcp] = scapyBuild([
    `IP(src="192.0.2.1", dst="198.51.100.2", id=1)/UDP(sport=1234, dport=5678)/Raw(b"abc")`,
    `IP(src="192.0.2.1", dst="198.51.100.2", id=1)/TCP(sport=1234, dport=80, seq=0x11223344, ack=0x55667788, flags="PA", window=1000, options=[("MSS", 1460)])/Raw(b"GET /")`,
  ]);
  t.is(hex(buildUdp4({ src: SRC4, dst: DST4, identification: 1, srcPort: 1234, dstPort: 5678 }, Uint8Array.from(Buffer.from("abc")))), hex(udp));
  const ours = buildTcp4({ src: SRC4, dst: DST4, identification: 1 }, {
    srcPort: 1234, dstPort: 80, seq: 0x11223344, ack: 0x55667788, flags: TCP_FLAG.PSH | TCP_FLAG.ACK, window: 1000, options: MSS_OPTION,
  }, Uint8Array.from(Buffer.from("GET /")));
  t.is(hex(ours), hex(tcp));
});

test("TCP round trip over IPv6 with options", (t) => {
  const payload = patternBytes(101);
  const p = buildTcp6({ src: SRC6, dst: DST6, hopLimit: 3 }, {
    srcPort: 443, dstPort: 50000, seq: 0xfffffff0, ack: 1, flags: TCP_FLAG.SYN | TCP_FLAG.ACK | TCP_FLAG.ECE, window: 64240, urgentPointer: 0, options: Uint8Array.of(2, 4, 5, 0xa0, 1),
  }, payload);
  const ip = parseIPv6(p)!;
  const out = newTcpHeader();
  const h = parseTcp(p, ip.payloadOffset, ip.payloadLength, out);
  if (h === undefined) return t.fail("did not parse");
  t.is(h, out);
  t.is(h.srcPort, 443);
  t.is(h.dstPort, 50000);
  t.is(h.seq, 0xfffffff0);
  t.is(h.ack, 1);
  t.is(h.flags, TCP_FLAG.SYN | TCP_FLAG.ACK | TCP_FLAG.ECE);
  t.is(h.window, 64240);
  t.is(h.headerLength, 28);
  t.is(h.optionsLength, 8);
  t.deepEqual(p.subarray(h.payloadOffset, h.payloadOffset + h.payloadLength), payload);
  const ps = pseudoHeaderSum6At(p, 0, IPPROTO.TCP, ip.payloadLength);
  t.true(verifyTcpChecksum(p, h.offset, ip.payloadLength, ps));
  t.is(computeTcpChecksum(p, h.offset, ip.payloadLength, ps), h.checksum);
});

test("UDP and TCP malformed inputs parse to undefined", (t) => {
  const u = buildUdp4({ src: SRC4, dst: DST4, srcPort: 1, dstPort: 2 }, patternBytes(10));
  t.is(parseUdp(u, 20, 7), undefined, "fewer than 8 bytes");
  t.is(parseUdp(u, 20, 17), undefined, "length field above what is there");
  const short = u.slice(); short[25] = 7;
  t.is(parseUdp(short, 20, 18), undefined, "length field below 8");
  t.is(parseUdp(u, 20, 30), undefined, "available past the buffer");
  t.is(parseUdp(u, 20, 18, newUdpHeader())?.payloadLength, 10);
  const tc = buildTcp4({ src: SRC4, dst: DST4 }, { srcPort: 1, dstPort: 2, options: MSS_OPTION }, new Uint8Array(0));
  t.is(parseTcp(tc, 20, 19), undefined, "fewer than 20 bytes");
  t.is(parseTcp(tc, 20, 23), undefined, "cut inside the options");
  const off = tc.slice(); off[32] = 0x40;
  t.is(parseTcp(off, 20, 24), undefined, "data offset 4");
});

test("tshark decodes our UDP and TCP packets with checksums checked and no complaint", (t) => {
  const frames = [
    buildUdp4({ src: SRC4, dst: DST4, srcPort: 1000, dstPort: 2000 }, patternBytes(33)),
    buildUdp4({ src: SRC4, dst: DST4, srcPort: 1000, dstPort: 2000, zeroChecksum: true }, patternBytes(33)),
    buildUdp6({ src: SRC6, dst: DST6, srcPort: 1000, dstPort: 2000 }, patternBytes(33)),
    buildTcp4({ src: SRC4, dst: DST4 }, { srcPort: 1000, dstPort: 2000, flags: TCP_FLAG.SYN, seq: 5, options: MSS_OPTION }, patternBytes(31)),
    buildTcp6({ src: SRC6, dst: DST6 }, { srcPort: 1000, dstPort: 2000, flags: TCP_FLAG.ACK, seq: 5, ack: 6 }, patternBytes(31)),
  ];
  const r = decodeWithTshark(frames, LINKTYPE_RAW);
  t.deepEqual(r.problems, []);
  const udp = r.packets[0]._source.layers.udp as Record<string, unknown>;
  t.is(udp["udp.checksum.status"], "1", "tshark verified the checksum as good");
  const tcp = r.packets[3]._source.layers.tcp as Record<string, unknown>;
  t.is(tcp["tcp.checksum.status"], "1");
});
