import test from "ava";
import { pseudoHeaderSum6At } from "../../../dataplane/packet/checksum.js";
import {
  ICMP4_ERROR_MAX_LENGTH, ICMP4_TYPE, ICMP4_UNREACH, buildIcmp4Echo, buildIcmp4Error, fragmentationNeededRest, mayQuoteIcmp4,
  newIcmp4Message, parameterProblemRest, parseIcmp4, verifyIcmp4Checksum,
} from "../../../dataplane/packet/icmp4.js";
import {
  ICMP6_PARAM_PROBLEM, ICMP6_TIME_EXCEEDED, ICMP6_TYPE, buildIcmp6Echo, buildIcmp6Error, mayQuoteIcmp6, parseIcmp6, verifyIcmp6Checksum,
} from "../../../dataplane/packet/icmp6.js";
import { IPPROTO, buildIPv4Packet, parseIPv4 } from "../../../dataplane/packet/ipv4.js";
import { IPV6_MIN_MTU, buildFragmentHeader, buildIPv6Packet, chainExtensions, parseIPv6 } from "../../../dataplane/packet/ipv6.js";
import { buildUdp4, buildUdp6 } from "../../../dataplane/packet/udp.js";
import { LINKTYPE_RAW } from "../../helpers/pcap.js";
import { scapyBuild } from "../../helpers/scapy.js";
import { decodeWithTshark } from "../../helpers/tshark.js";
import { a4, a6, hex, patternBytes, u32 } from "./fixtures.js";

const ROUTER4 = a4("203.0.113.1");
const HOST4 = a4("192.0.2.1");
const FAR4 = a4("198.51.100.2");
const ROUTER6 = a6("2001:db8:ff::1");
const HOST6 = a6("2001:db8::1");
const FAR6 = a6("2001:db8:1::2");

test("ICMPv4 echo round trip, and byte-identical to scapy's", (t) => {
  const data = Uint8Array.from(Buffer.from("ping-data"));
  const ours = buildIcmp4Echo({ src: HOST4, dst: FAR4, identification: 1 }, false, 0x1234, 7, data);
  const [theirs] = scapyBuild([`IP(src="192.0.2.1", dst="198.51.100.2", id=1)/ICMP(type=8, id=0x1234, seq=7)/Raw(b"ping-data")`]);
  t.is(hex(ours), hex(theirs));
  const ip = parseIPv4(ours)!;
  const m = parseIcmp4(ours, ip.payloadOffset, ip.payloadLength, newIcmp4Message());
  if (m === undefined) return t.fail("did not parse");
  t.is(m.type, ICMP4_TYPE.ECHO_REQUEST);
  t.is(m.code, 0);
  t.is(m.restOfHeader >>> 16, 0x1234);
  t.is(m.restOfHeader & 0xffff, 7);
  t.deepEqual(ours.subarray(m.bodyOffset, m.bodyOffset + m.bodyLength), data);
  t.true(verifyIcmp4Checksum(ours, m.offset, ip.payloadLength));
});

test("ICMPv6 echo round trip, and byte-identical to scapy's", (t) => {
  const ours = buildIcmp6Echo({ src: HOST6, dst: FAR6 }, true, 0xabcd, 9, Uint8Array.of(1, 2, 3));
  const [theirs] = scapyBuild([`IPv6(src="2001:db8::1", dst="2001:db8:1::2")/ICMPv6EchoReply(id=0xabcd, seq=9, data=b"\\x01\\x02\\x03")`]);
  t.is(hex(ours), hex(theirs));
  const ip = parseIPv6(ours)!;
  const m = parseIcmp6(ours, 40, ip.payloadLength)!;
  t.is(m.type, ICMP6_TYPE.ECHO_REPLY);
  t.is(m.restOfHeader, (0xabcd << 16 | 9) >>> 0);
  t.true(verifyIcmp6Checksum(ours, 40, ip.payloadLength, pseudoHeaderSum6At(ours, 0, IPPROTO.ICMPV6, ip.payloadLength)));
});

test("ICMPv4 Fragmentation Needed quotes as much as fits in 576 bytes (RFC 1812 §4.3.2.3)", (t) => {
  const big = buildUdp4({ src: HOST4, dst: FAR4, srcPort: 1, dstPort: 2, dontFragment: true }, patternBytes(1472));
  const e = buildIcmp4Error(ICMP4_TYPE.DESTINATION_UNREACHABLE, ICMP4_UNREACH.FRAGMENTATION_NEEDED, fragmentationNeededRest(1400), big, ROUTER4, HOST4);
  t.is(e.length, ICMP4_ERROR_MAX_LENGTH);
  const ip = parseIPv4(e)!;
  t.is(ip.protocol, IPPROTO.ICMP);
  t.is(ip.tos, 0xc0, "precedence 6 (RFC 1812 §4.3.2.5)");
  t.is(ip.src, u32("203.0.113.1"));
  t.is(ip.dst, u32("192.0.2.1"));
  const m = parseIcmp4(e, ip.payloadOffset, ip.payloadLength)!;
  t.is(m.type, 3);
  t.is(m.code, 4);
  t.is(m.restOfHeader & 0xffff, 1400);
  t.deepEqual(e.subarray(m.bodyOffset), big.subarray(0, 576 - 28));
  t.true(verifyIcmp4Checksum(e, m.offset, ip.payloadLength));
});

test("ICMPv4 error about a small packet quotes it whole, without link padding", (t) => {
  const small = buildUdp4({ src: HOST4, dst: FAR4, srcPort: 1, dstPort: 2 }, patternBytes(4));
  const padded = new Uint8Array(46);
  padded.set(small);
  const e = buildIcmp4Error(ICMP4_TYPE.TIME_EXCEEDED, 0, 0, padded, ROUTER4, HOST4, 255, { tos: 0 });
  t.is(e.length, 20 + 8 + small.length);
  t.is(parseIPv4(e)?.tos, 0);
  t.is(parseIPv4(e)?.ttl, 255);
});

test("ICMPv6 Packet Too Big stays within 1280 bytes (RFC 4443 §2.4(c))", (t) => {
  const big = buildUdp6({ src: HOST6, dst: FAR6, srcPort: 1, dstPort: 2 }, patternBytes(1900));
  const e = buildIcmp6Error(ICMP6_TYPE.PACKET_TOO_BIG, 0, 1280, big, ROUTER6, HOST6);
  t.is(e.length, IPV6_MIN_MTU);
  const ip = parseIPv6(e)!;
  const m = parseIcmp6(e, 40, ip.payloadLength)!;
  t.is(m.type, 2);
  t.is(m.restOfHeader, 1280);
  t.deepEqual(e.subarray(48), big.subarray(0, 1280 - 48));
  t.true(verifyIcmp6Checksum(e, 40, ip.payloadLength, pseudoHeaderSum6At(e, 0, IPPROTO.ICMPV6, ip.payloadLength)));
});

test("mayQuoteIcmp4 follows RFC 1812 §4.3.2.7", (t) => {
  const udp = buildUdp4({ src: HOST4, dst: FAR4, srcPort: 1, dstPort: 2 }, patternBytes(8));
  t.true(mayQuoteIcmp4(udp));
  const err = buildIcmp4Error(3, 1, 0, udp, ROUTER4, HOST4);
  t.false(mayQuoteIcmp4(err), "not about an ICMP error");
  t.true(mayQuoteIcmp4(buildIcmp4Echo({ src: HOST4, dst: FAR4 }, false, 1, 1, new Uint8Array(0))), "echo request may get an error");
  const frag = buildIPv4Packet({ ttl: 9, protocol: 17, src: HOST4, dst: FAR4, fragmentOffset: 10 }, patternBytes(16));
  t.false(mayQuoteIcmp4(frag), "non-initial fragment");
  t.false(mayQuoteIcmp4(buildUdp4({ src: HOST4, dst: a4("224.0.0.5"), srcPort: 1, dstPort: 2 }, new Uint8Array(0))), "multicast destination");
  t.false(mayQuoteIcmp4(buildUdp4({ src: HOST4, dst: a4("255.255.255.255"), srcPort: 1, dstPort: 2 }, new Uint8Array(0))), "limited broadcast");
  t.false(mayQuoteIcmp4(buildUdp4({ src: a4("0.0.0.0"), dst: FAR4, srcPort: 1, dstPort: 2 }, new Uint8Array(0))), "unspecified source");
  t.false(mayQuoteIcmp4(buildUdp4({ src: a4("127.0.0.1"), dst: FAR4, srcPort: 1, dstPort: 2 }, new Uint8Array(0))), "loopback source");
  t.false(mayQuoteIcmp4(udp.subarray(0, 12)), "truncated");
});

test("mayQuoteIcmp6 follows RFC 4443 §2.4(e)", (t) => {
  const udp = buildUdp6({ src: HOST6, dst: FAR6, srcPort: 1, dstPort: 2 }, patternBytes(8));
  t.true(mayQuoteIcmp6(udp, ICMP6_TYPE.DESTINATION_UNREACHABLE, 0));
  const err = buildIcmp6Error(ICMP6_TYPE.TIME_EXCEEDED, ICMP6_TIME_EXCEEDED.HOP_LIMIT, 0, udp, ROUTER6, HOST6);
  t.false(mayQuoteIcmp6(err, ICMP6_TYPE.TIME_EXCEEDED, 0), "not about an ICMPv6 error");
  const mc = buildUdp6({ src: HOST6, dst: a6("ff0e::1:3"), srcPort: 1, dstPort: 2 }, new Uint8Array(0));
  t.false(mayQuoteIcmp6(mc, ICMP6_TYPE.DESTINATION_UNREACHABLE, 4), "multicast destination");
  t.true(mayQuoteIcmp6(mc, ICMP6_TYPE.PACKET_TOO_BIG, 0), "except Packet Too Big");
  t.true(mayQuoteIcmp6(mc, ICMP6_TYPE.PARAMETER_PROBLEM, ICMP6_PARAM_PROBLEM.OPTION), "and Parameter Problem code 2");
  t.false(mayQuoteIcmp6(buildUdp6({ src: new Uint8Array(16), dst: FAR6, srcPort: 1, dstPort: 2 }, new Uint8Array(0)), 1, 0), "unspecified source");
  // An ICMPv6 error behind a fragment header is still an error.
  const chain = chainExtensions([{ protocol: IPPROTO.FRAGMENT, bytes: buildFragmentHeader(0, 0, true, 1) }], IPPROTO.ICMPV6, err.subarray(40, 96));
  const fragErr = buildIPv6Packet({ nextHeader: chain.nextHeader, hopLimit: 64, src: ROUTER6, dst: HOST6 }, chain.bytes);
  t.false(mayQuoteIcmp6(fragErr, ICMP6_TYPE.TIME_EXCEEDED, 0));
});

test("ICMP malformed inputs parse to undefined", (t) => {
  const e = buildIcmp4Echo({ src: HOST4, dst: FAR4 }, false, 1, 1, new Uint8Array(0));
  t.is(parseIcmp4(e, 20, 7), undefined);
  t.is(parseIcmp4(e, 20, 9), undefined, "length past the buffer");
  const e6 = buildIcmp6Echo({ src: HOST6, dst: FAR6 }, false, 1, 1, new Uint8Array(0));
  t.is(parseIcmp6(e6, 40, 7), undefined);
  t.is(parseIcmp6(e6, 44), undefined, "4 bytes left");
});

test("scapy-built ICMP errors parse to the right fields", (t) => {
  const [v4, v6] = scapyBuild([
    `IP(src="203.0.113.1", dst="192.0.2.1")/ICMP(type=3, code=4, nexthopmtu=1400)/IPerror(src="192.0.2.1", dst="198.51.100.2")/UDPerror(sport=1, dport=2)`,
    `IPv6(src="2001:db8:ff::1", dst="2001:db8::1")/ICMPv6PacketTooBig(mtu=1280)/IPerror6(src="2001:db8::1", dst="2001:db8:1::2")/UDPerror(sport=1, dport=2)`,
  ]);
  const ip = parseIPv4(v4)!;
  const m = parseIcmp4(v4, ip.payloadOffset, ip.payloadLength)!;
  t.is(m.type, 3);
  t.is(m.code, 4);
  t.is(m.restOfHeader & 0xffff, 1400);
  t.true(verifyIcmp4Checksum(v4, m.offset, ip.payloadLength));
  t.is(parseIPv4(v4, m.bodyOffset)?.dst, u32("198.51.100.2"), "the quoted header parses");
  const ip6 = parseIPv6(v6)!;
  const m6 = parseIcmp6(v6, 40, ip6.payloadLength)!;
  t.is(m6.type, 2);
  t.is(m6.restOfHeader, 1280);
  t.true(verifyIcmp6Checksum(v6, 40, ip6.payloadLength, pseudoHeaderSum6At(v6, 0, IPPROTO.ICMPV6, ip6.payloadLength)));
});

test("tshark decodes our ICMP and ICMPv6 messages and errors without complaint", (t) => {
  const big4 = buildUdp4({ src: HOST4, dst: FAR4, srcPort: 1, dstPort: 2, dontFragment: true }, patternBytes(1472));
  const big6 = buildUdp6({ src: HOST6, dst: FAR6, srcPort: 1, dstPort: 2 }, patternBytes(1900));
  const small6 = buildUdp6({ src: HOST6, dst: FAR6, srcPort: 1, dstPort: 2 }, patternBytes(20));
  const frames = [
    buildIcmp4Echo({ src: HOST4, dst: FAR4 }, false, 1, 2, patternBytes(56)),
    buildIcmp4Error(3, 4, fragmentationNeededRest(1400), big4, ROUTER4, HOST4),
    buildIcmp4Error(12, 0, parameterProblemRest(8), big4.subarray(0, 60), ROUTER4, HOST4),
    buildIcmp6Echo({ src: HOST6, dst: FAR6 }, false, 1, 2, patternBytes(56)),
    buildIcmp6Error(ICMP6_TYPE.PACKET_TOO_BIG, 0, 1280, big6, ROUTER6, HOST6),
    buildIcmp6Error(ICMP6_TYPE.TIME_EXCEEDED, 0, 0, small6, ROUTER6, HOST6),
    buildIcmp6Error(ICMP6_TYPE.DESTINATION_UNREACHABLE, 4, 0, small6, FAR6, HOST6),
  ];
  const r = decodeWithTshark(frames, LINKTYPE_RAW);
  t.deepEqual(r.problems, []);
  const icmp = r.packets[1]._source.layers.icmp as Record<string, unknown>;
  t.is(icmp["icmp.checksum.status"], "1");
  t.is(icmp["icmp.mtu"], "1400");
  const icmpv6 = r.packets[4]._source.layers.icmpv6 as Record<string, unknown>;
  t.is(icmpv6["icmpv6.checksum.status"], "1");
  t.is(icmpv6["icmpv6.mtu"], "1280");
});
