import test from "ava";
import {
  IPPROTO, buildIPv4Packet, newIPv4Header, parseIPv4, setIPv4Checksum, writeIPv4Header,
} from "../../../dataplane/packet/ipv4.js";
import {
  IPV6_OPTION, buildFragmentHeader, buildHomeAddressDestinationOptions, buildIPv6Packet, buildOptionsHeader, buildRoutingType2,
  chainExtensions, findIPv6Option, newIPv6Chain, parseIPv6, walkIPv6Extensions,
} from "../../../dataplane/packet/ipv6.js";
import { buildUdp6 } from "../../../dataplane/packet/udp.js";
import { LINKTYPE_RAW } from "../../helpers/pcap.js";
import { scapyBuild } from "../../helpers/scapy.js";
import { decodeWithTshark, frameProtocols } from "../../helpers/tshark.js";
import { a4, a6, hex, patternBytes, u32 } from "./fixtures.js";

// IPv4 router alert option (RFC 2113): type 148, length 4, value 0; then a NOP to test padding.
const ROUTER_ALERT = Uint8Array.of(148, 4, 0, 0, 1);

function sampleIPv4(): Uint8Array {
  return buildIPv4Packet({
    tos: 0xb9, identification: 0xbeef, dontFragment: true, ttl: 17, protocol: IPPROTO.UDP,
    src: a4("192.0.2.10"), dst: u32("198.51.100.20"), options: ROUTER_ALERT,
  }, Uint8Array.of(0x04, 0xd2, 0x16, 0x2e, 0x00, 0x0c, 0x00, 0x00, 1, 2, 3, 4));
}

test("IPv4 round trip with options: build, parse, compare", (t) => {
  const p = sampleIPv4();
  const h = parseIPv4(p);
  if (h === undefined) return t.fail("did not parse");
  t.is(h.headerLength, 28, "5 option bytes pad to 8");
  t.is(h.totalLength, p.length);
  t.is(h.tos, 0xb9);
  t.is(h.identification, 0xbeef);
  t.true(h.dontFragment);
  t.false(h.moreFragments);
  t.is(h.fragmentOffset, 0);
  t.is(h.ttl, 17);
  t.is(h.protocol, IPPROTO.UDP);
  t.true(h.checksumValid);
  t.is(h.src, u32("192.0.2.10"));
  t.is(h.dst, u32("198.51.100.20"));
  t.deepEqual(p.subarray(h.optionsOffset, h.optionsOffset + 5), ROUTER_ALERT);
  t.is(p[h.optionsOffset + 5], 0, "padding is End of Option List");
  t.is(h.payloadOffset, 28);
  t.is(h.payloadLength, 12);
});

test("IPv4 parse reuses an out object and reports a bad checksum without failing", (t) => {
  const p = sampleIPv4();
  const out = newIPv4Header();
  t.is(parseIPv4(p, 0, p.length, out), out);
  p[8] = 16; // TTL changed, checksum not
  t.false(parseIPv4(p, 0, p.length, out)?.checksumValid);
  setIPv4Checksum(p, 0);
  t.true(parseIPv4(p, 0, p.length, out)?.checksumValid);
});

test("IPv4 fragments: MF and offset in 8-octet units", (t) => {
  const buf = new Uint8Array(40);
  writeIPv4Header(buf, 0, { totalLength: 40, moreFragments: true, fragmentOffset: 185, ttl: 64, protocol: 17, src: a4("192.0.2.1"), dst: a4("192.0.2.2"), identification: 7 });
  const h = parseIPv4(buf);
  t.true(h?.moreFragments);
  t.is(h?.fragmentOffset, 185);
  t.is(hex(buf.subarray(6, 8)), "20b9");
});

test("IPv4 malformed inputs parse to undefined", (t) => {
  const p = sampleIPv4();
  t.is(parseIPv4(p.subarray(0, 19)), undefined, "shorter than 20 bytes");
  t.is(parseIPv4(p.subarray(0, 27)), undefined, "cut inside the options");
  t.is(parseIPv4(p.subarray(0, p.length - 1)), undefined, "total length past the end");
  const v = p.slice(); v[0] = 0x67;
  t.is(parseIPv4(v), undefined, "version 6");
  const ihl = p.slice(); ihl[0] = 0x44;
  t.is(parseIPv4(ihl), undefined, "IHL 4");
  const tl = p.slice(); tl[2] = 0; tl[3] = 20;
  t.is(parseIPv4(tl), undefined, "total length shorter than the header");
  const padded = new Uint8Array(p.length + 6); padded.set(p);
  t.is(parseIPv4(padded)?.payloadLength, 12, "link padding after total length is not payload");
});

test("IPv4 writer refuses options over 40 bytes", (t) => {
  t.throws(() => buildIPv4Packet({ ttl: 1, protocol: 0, src: 0, dst: 0, options: new Uint8Array(41) }, new Uint8Array(0)), { instanceOf: RangeError });
});

function sampleIPv6Chain(): Uint8Array {
  const chain = chainExtensions([
    { protocol: IPPROTO.HOPOPTS, bytes: buildOptionsHeader(0, [{ type: 5, data: Uint8Array.of(0, 0) }]) }, // router alert (RFC 2711)
    { protocol: IPPROTO.ROUTING, bytes: buildRoutingType2(0, a6("2001:db8:1::99")) },
    { protocol: IPPROTO.DSTOPTS, bytes: buildHomeAddressDestinationOptions(0, a6("2001:db8:1::99")) },
    { protocol: IPPROTO.FRAGMENT, bytes: buildFragmentHeader(0, 0, true, 0x01020304) },
  ], IPPROTO.UDP, Uint8Array.of(0, 1, 0, 2, 0, 16, 0, 0, ...patternBytes(8)));
  return buildIPv6Packet({ trafficClass: 0xa5, flowLabel: 0x12345, nextHeader: chain.nextHeader, hopLimit: 9, src: a6("2001:db8::1"), dst: a6("2001:db8::2") }, chain.bytes);
}

test("IPv6 fixed header round trip", (t) => {
  const p = sampleIPv6Chain();
  const h = parseIPv6(p);
  if (h === undefined) return t.fail("did not parse");
  t.is(h.trafficClass, 0xa5);
  t.is(h.flowLabel, 0x12345);
  t.is(h.payloadLength, p.length - 40);
  t.is(h.nextHeader, IPPROTO.HOPOPTS);
  t.is(h.hopLimit, 9);
  t.deepEqual(p.subarray(h.srcOffset, h.srcOffset + 16), a6("2001:db8::1"));
  t.deepEqual(p.subarray(h.dstOffset, h.dstOffset + 16), a6("2001:db8::2"));
});

test("IPv6 extension chain: hop-by-hop, routing type 2, Home Address option, fragment", (t) => {
  const p = sampleIPv6Chain();
  const c = walkIPv6Extensions(p, 0);
  if (c === undefined) return t.fail("did not walk");
  t.is(c.extensionCount, 4);
  t.is(c.upperProtocol, IPPROTO.UDP);
  t.is(c.upperOffset, 40 + 8 + 24 + 24 + 8);
  t.is(p[c.upperProtocolFieldOffset], IPPROTO.UDP);
  t.is(c.fragmentHeaderOffset, 40 + 8 + 24 + 24);
  t.true(c.moreFragments);
  t.is(c.fragmentOffset, 0);
  t.is(c.identification, 0x01020304);
  t.deepEqual(p.subarray(c.homeAddressOffset, c.homeAddressOffset + 16), a6("2001:db8:1::99"));
  t.is((c.homeAddressOffset - 2 - (40 + 8 + 24)) % 8, 6, "Home Address option at 8n+6 (RFC 6275 §6.3)");
  t.deepEqual(p.subarray(c.routingType2AddressOffset, c.routingType2AddressOffset + 16), a6("2001:db8:1::99"));
  t.is(c.segmentsLeft, 1);
  t.is(findIPv6Option(p, 40 + 8 + 24, IPV6_OPTION.HOME_ADDRESS), c.homeAddressOffset - 2);
  const again = newIPv6Chain();
  t.is(walkIPv6Extensions(p, 0, undefined, again), again);
});

test("IPv6 chain of a non-initial fragment stops at the fragment data", (t) => {
  const chain = chainExtensions([{ protocol: IPPROTO.FRAGMENT, bytes: buildFragmentHeader(0, 100, false, 9) }], IPPROTO.TCP, patternBytes(24));
  const p = buildIPv6Packet({ nextHeader: chain.nextHeader, hopLimit: 64, src: a6("2001:db8::1"), dst: a6("2001:db8::2") }, chain.bytes);
  const c = walkIPv6Extensions(p, 0);
  t.is(c?.upperProtocol, IPPROTO.TCP);
  t.is(c?.fragmentOffset, 100);
  t.false(c?.moreFragments);
  t.is(c?.upperOffset, 48);
});

test("IPv6 malformed inputs parse or walk to undefined", (t) => {
  const p = sampleIPv6Chain();
  t.is(parseIPv6(p.subarray(0, 39)), undefined, "shorter than 40 bytes");
  t.is(parseIPv6(p.subarray(0, p.length - 1)), undefined, "payload length past the end");
  const v = p.slice(); v[0] = 0x45;
  t.is(parseIPv6(v), undefined, "version 4");
  t.is(walkIPv6Extensions(p, 0, 40 + 8 + 20), undefined, "routing header cut short");
  const badLen = p.slice(); badLen[40 + 8 + 1] = 200;
  t.is(walkIPv6Extensions(badLen, 0), undefined, "extension length past the payload");
  // Hop-by-hop anywhere but first (RFC 8200 §4.1).
  const chain = chainExtensions([
    { protocol: IPPROTO.DSTOPTS, bytes: buildOptionsHeader(0, []) },
    { protocol: IPPROTO.HOPOPTS, bytes: buildOptionsHeader(0, []) },
  ], IPPROTO.NONE, new Uint8Array(0));
  const late = buildIPv6Packet({ nextHeader: chain.nextHeader, hopLimit: 1, src: a6("2001:db8::1"), dst: a6("2001:db8::2") }, chain.bytes);
  t.is(walkIPv6Extensions(late, 0), undefined, "hop-by-hop second");
  // An option running past its header.
  const opt = buildOptionsHeader(IPPROTO.NONE, [{ type: 0x1e, data: Uint8Array.of(1, 2) }]);
  opt[3] = 30;
  const badOpt = buildIPv6Packet({ nextHeader: IPPROTO.DSTOPTS, hopLimit: 1, src: a6("2001:db8::1"), dst: a6("2001:db8::2") }, opt);
  t.is(walkIPv6Extensions(badOpt, 0), undefined, "option past the header");
  // A loop of 17 destination option headers is longer than the walk allows.
  const many = chainExtensions(Array.from({ length: 17 }, () => ({ protocol: IPPROTO.DSTOPTS, bytes: buildOptionsHeader(0, []) })), IPPROTO.NONE, new Uint8Array(0));
  const long = buildIPv6Packet({ nextHeader: many.nextHeader, hopLimit: 1, src: a6("2001:db8::1"), dst: a6("2001:db8::2") }, many.bytes);
  t.is(walkIPv6Extensions(long, 0), undefined, "17 extension headers");
});

test("tshark decodes our IPv4 and IPv6 packets without complaint", (t) => {
  const fragmentTail = (() => {
    const chain = chainExtensions([{ protocol: IPPROTO.FRAGMENT, bytes: buildFragmentHeader(0, 2, false, 0x01020304) }], IPPROTO.UDP, patternBytes(8));
    return buildIPv6Packet({ nextHeader: chain.nextHeader, hopLimit: 9, src: a6("2001:db8::1"), dst: a6("2001:db8::2") }, chain.bytes);
  })();
  const hbhUdp = (() => {
    const udp = buildUdp6({ src: a6("2001:db8::1"), dst: a6("2001:db8::2"), srcPort: 4000, dstPort: 4001 }, patternBytes(10)).subarray(40);
    const chain = chainExtensions([{ protocol: IPPROTO.HOPOPTS, bytes: buildOptionsHeader(0, [{ type: 5, data: Uint8Array.of(0, 0) }]) }], IPPROTO.UDP, udp);
    return buildIPv6Packet({ nextHeader: chain.nextHeader, hopLimit: 9, src: a6("2001:db8::1"), dst: a6("2001:db8::2") }, chain.bytes);
  })();
  const r = decodeWithTshark([sampleIPv4(), sampleIPv6Chain(), fragmentTail, hbhUdp], LINKTYPE_RAW);
  t.deepEqual(r.problems, []);
  const protos = frameProtocols(r);
  t.regex(protos[0], /^raw:ip:udp/);
  t.regex(protos[1], /ipv6/);
  t.regex(protos[3], /ipv6:ipv6\.hopopts:udp/);
  const ip = r.packets[0]._source.layers.ip as Record<string, unknown>;
  t.is(ip["ip.src"], "192.0.2.10");
  t.is(ip["ip.ttl"], "17");
  const ipv6 = r.packets[1]._source.layers.ipv6 as Record<string, unknown>;
  t.is(Number(ipv6["ipv6.flow"]), 0x12345);
  t.is(ipv6["ipv6.dst"], "2001:db8::2");
});

test("scapy-built IPv4 and IPv6 packets parse to the right fields", (t) => {
  const [v4, v6frag, v6ext] = scapyBuild([
    `IP(src="192.0.2.1", dst="203.0.113.9", ttl=33, id=4242, flags="MF", frag=3, tos=0x10, options=[IPOption_RR(routers=["192.0.2.77"])])/UDP(sport=7, dport=9)/Raw(b"abcd")`,
    `IPv6(src="2001:db8::a", dst="2001:db8::b", hlim=5, tc=0x20, fl=0xabcde)/IPv6ExtHdrFragment(offset=7, m=1, id=0xdeadbeef)/UDP(sport=1, dport=2)/Raw(b"xy")`,
    `IPv6(src="2001:db8::a", dst="2001:db8::b")/IPv6ExtHdrHopByHop()/IPv6ExtHdrRouting(type=2, segleft=1, addresses=["2001:db8:2::5"])/IPv6ExtHdrDestOpt(options=[HAO(hoa="2001:db8:3::7")])/ICMPv6EchoRequest()`,
  ]);
  const h4 = parseIPv4(v4);
  t.is(h4?.src, u32("192.0.2.1"));
  t.is(h4?.dst, u32("203.0.113.9"));
  t.is(h4?.ttl, 33);
  t.is(h4?.identification, 4242);
  t.true(h4?.moreFragments);
  t.is(h4?.fragmentOffset, 3);
  t.is(h4?.tos, 0x10);
  t.is(h4?.headerLength, 28);
  t.true(h4?.checksumValid);
  t.is(v4[h4!.optionsOffset], 7, "record route option kept");

  const h6 = parseIPv6(v6frag);
  t.is(h6?.hopLimit, 5);
  t.is(h6?.trafficClass, 0x20);
  t.is(h6?.flowLabel, 0xabcde);
  const c6 = walkIPv6Extensions(v6frag, 0);
  t.is(c6?.fragmentOffset, 7);
  t.true(c6?.moreFragments);
  t.is(c6?.identification, 0xdeadbeef);
  t.is(c6?.upperProtocol, IPPROTO.UDP, "non-initial fragment: upper protocol from the fragment header");

  const ce = walkIPv6Extensions(v6ext, 0);
  if (ce === undefined) return t.fail("scapy chain did not walk");
  t.is(ce.upperProtocol, IPPROTO.ICMPV6);
  t.deepEqual(v6ext.subarray(ce.routingType2AddressOffset, ce.routingType2AddressOffset + 16), a6("2001:db8:2::5"));
  t.deepEqual(v6ext.subarray(ce.homeAddressOffset, ce.homeAddressOffset + 16), a6("2001:db8:3::7"));
});

test("our Home Address destination options header is byte-identical to scapy's", (t) => {
  const [s] = scapyBuild([`IPv6ExtHdrDestOpt(nh=135, options=[HAO(hoa="2001:db8:3::7")])`]);
  t.is(hex(buildHomeAddressDestinationOptions(135, a6("2001:db8:3::7"))), hex(s));
});
