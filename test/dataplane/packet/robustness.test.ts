// Parsers get random and mutated bytes: they must return undefined or a value, never throw,
// and whatever offsets they return must lie inside the buffer.
import test from "ava";
import * as pkt from "../../../dataplane/packet/index.js";
import { MAC_A, a4, a6, patternBytes } from "./fixtures.js";

function seeds(): Uint8Array[] {
  const mh = pkt.buildMobilityPacket({ src: a6("2001:db8::1"), dst: a6("2001:db8::2"), homeAddress: a6("2001:db8::3") },
    pkt.buildBindingUpdate({ sequence: 1, lifetime: 2 }, [pkt.ipv4CareOfAddressOption(a4("192.0.2.1")), pkt.alternateCareOfAddressOption(a6("2001:db8::4"))]));
  return [
    pkt.buildUdp4({ src: a4("192.0.2.1"), dst: a4("192.0.2.2"), srcPort: 1, dstPort: 434 }, pkt.appendMobileHomeAuth(pkt.buildRegistrationRequest({ lifetime: 1, homeAddress: 1, homeAgent: 2, careOfAddress: 3, identification: 4n }), 1, Uint8Array.of(1))),
    pkt.buildTcp4({ src: a4("192.0.2.1"), dst: a4("192.0.2.2") }, { srcPort: 1, dstPort: 2, options: Uint8Array.of(2, 4, 5, 0xb4) }, patternBytes(20)),
    pkt.buildIcmp4Error(3, 4, 1400, pkt.buildUdp4({ src: a4("192.0.2.1"), dst: a4("192.0.2.2"), srcPort: 1, dstPort: 2 }, patternBytes(100)), a4("192.0.2.9"), a4("192.0.2.1")),
    pkt.buildIcmp6Error(2, 0, 1280, pkt.buildUdp6({ src: a6("2001:db8::1"), dst: a6("2001:db8::2"), srcPort: 1, dstPort: 2 }, patternBytes(100)), a6("2001:db8::9"), a6("2001:db8::1")),
    pkt.buildNeighborSolicitation({ src: a6("fe80::1"), target: a6("2001:db8::5"), sourceLinkLayer: MAC_A }),
    mh,
  ];
}

/** What the parsers made of one buffer: whether an IP header was accepted, and an upper layer below it. */
interface Outcome { ip: boolean; upper: boolean }

function exercise(b: Uint8Array): Outcome {
  let upper = false;
  const inBounds = (o: number, what: string) => {
    if (o < -1 || o > b.length) throw new Error(`${what} offset ${o} outside a ${b.length}-byte buffer`);
  };
  pkt.parseEthernet(b);
  pkt.parseArp(b);
  const v4 = pkt.parseIPv4(b);
  if (v4) {
    inBounds(v4.payloadOffset + v4.payloadLength, "IPv4 payload end");
    pkt.parseUdp(b, v4.payloadOffset, v4.payloadLength);
    pkt.parseTcp(b, v4.payloadOffset, v4.payloadLength);
    const m = pkt.parseIcmp4(b, v4.payloadOffset, v4.payloadLength);
    upper ||= m !== undefined || pkt.parseUdp(b, v4.payloadOffset, v4.payloadLength) !== undefined || pkt.parseTcp(b, v4.payloadOffset, v4.payloadLength) !== undefined;
    if (m) pkt.parseIPv4(b, m.bodyOffset);
    pkt.mayQuoteIcmp4(b);
    const u = pkt.parseUdp(b, v4.payloadOffset, v4.payloadLength);
    if (u) pkt.parseMip4(b.subarray(u.payloadOffset, u.payloadOffset + u.payloadLength));
  }
  const v6 = pkt.parseIPv6(b);
  if (v6) {
    const c = pkt.walkIPv6Extensions(b, 0);
    pkt.mayQuoteIcmp6(b, 1, 0);
    if (c) {
      inBounds(c.upperOffset, "upper layer");
      inBounds(c.homeAddressOffset + 16, "home address end");
      inBounds(c.routingType2AddressOffset + 16, "routing address end");
      const left = 40 + v6.payloadLength - c.upperOffset;
      if (left >= 0) {
        upper ||= pkt.parseIcmp6(b, c.upperOffset, left) !== undefined || pkt.parseMobilityHeader(b, c.upperOffset, left) !== undefined;
        pkt.parseNd(b, c.upperOffset, left);
        pkt.parseMobilityHeader(b, c.upperOffset, left);
        pkt.parseUdp(b, c.upperOffset, left);
        pkt.parseTcp(b, c.upperOffset, left);
      }
    }
  }
  pkt.parseMip4(b);
  pkt.parseMobilityHeader(b, 0);
  pkt.parseNd(b, 0);
  return { ip: v4 !== undefined || v6 !== undefined, upper };
}

/** The run reached both sides of the parsers: accepted and refused headers, and parsed upper layers. */
function covered(t: { true(v: boolean, m: string): void }, outcomes: Outcome[]): void {
  const ip = outcomes.filter((o) => o.ip).length;
  t.true(ip > 0 && ip < outcomes.length, `some IP headers accepted and some refused (${ip} of ${outcomes.length} accepted)`);
  t.true(outcomes.some((o) => o.upper), "some upper layers parsed below an accepted header");
}

test("20,000 mutated and truncated packets never make a parser throw", (t) => {
  const base = seeds();
  const noise = patternBytes(400000, 77);
  const outcomes: Outcome[] = [];
  let k = 0;
  for (let i = 0; i < 20000; i++) {
    const s = base[i % base.length];
    const b = s.slice(0, noise[k++ % noise.length] % 3 === 0 ? noise[k++ % noise.length] % (s.length + 1) : s.length);
    const flips = 1 + (noise[k++ % noise.length] % 4);
    for (let f = 0; f < flips && b.length > 0; f++) b[(noise[k++ % noise.length] << 8 | noise[k++ % noise.length]) % b.length] = noise[k++ % noise.length];
    t.notThrows(() => outcomes.push(exercise(b)));
  }
  t.is(outcomes.length, 20000);
  covered(t, outcomes);
});

test("5,000 random byte strings never make a parser throw", (t) => {
  const noise = patternBytes(1_000_000, 3);
  const outcomes: Outcome[] = [];
  let at = 0;
  for (let i = 0; i < 5000; i++) {
    const len = noise[at++] % 200;
    const b = noise.slice(at, at + len);
    at = (at + len) % (noise.length - 300);
    // Give half of them a plausible first byte so the deeper paths run.
    if (b.length > 0 && i % 2 === 0) b[0] = i % 4 === 0 ? 0x45 : 0x60;
    t.notThrows(() => outcomes.push(exercise(b)));
  }
  t.is(outcomes.length, 5000);
  t.true(outcomes.some((o) => !o.ip), "random bytes are mostly refused");
});
