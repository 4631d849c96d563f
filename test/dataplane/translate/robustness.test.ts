// The hot path never throws and never emits a malformed packet, whatever arrives; and the
// settings RFC 7915 makes configurable behave as documented.
import test from "ava";
import { parseIPv4 } from "../../../dataplane/packet/ipv4.js";
import { parseIPv6, walkIPv6Extensions } from "../../../dataplane/packet/ipv6.js";
import { DROP_REASONS, Translator, TranslatorConfigError, type TranslateResult } from "../../../dataplane/translate/index.js";
import { scapyBuild } from "../../helpers/scapy.js";
import { fromHex, loadCases, testMapping, translatorFor, v6 } from "./fixtures.js";
import { seededRandom } from "../../../lib/random.js";

/** Why `p` is not a well-formed IP packet, or undefined when it is. */
function malformation(p: Uint8Array): string | undefined {
  if (p.length === 0) return "empty";
  if (p[0] >> 4 === 4) {
    const h = parseIPv4(p);
    if (h === undefined) return "IPv4 header does not parse";
    if (!h.checksumValid) return "IPv4 header checksum";
    if (h.totalLength !== p.length) return "IPv4 total length";
    return undefined;
  }
  const h = parseIPv6(p);
  if (h === undefined) return "IPv6 header does not parse";
  if (h.payloadLength + 40 !== p.length) return "IPv6 payload length";
  if (walkIPv6Extensions(p, 0) === undefined) return "IPv6 extension headers";
  return undefined;
}

function emitted(r: TranslateResult): Uint8Array[] {
  return r.action === "forward" ? r.packets : r.action === "icmp" ? [r.packet] : [];
}


test("RFC 7915 §4 §5: 40,000 mutated packets never throw, and every packet emitted is well formed", (t) => {
  const inputs = loadCases().map((c) => fromHex(c.input));
  const translator = translatorFor({});
  const random = seededRandom(7915);
  const problems: string[] = [];
  const reasons = new Set<string>(DROP_REASONS);
  for (let i = 0; i < 40_000; i++) {
    const base = inputs[Math.floor(random() * inputs.length)];
    let p = Uint8Array.from(base);
    const op = Math.floor(random() * 4);
    if (op === 0) {
      const flips = 1 + Math.floor(random() * 3);
      for (let f = 0; f < flips; f++) p[Math.floor(random() * p.length)] = Math.floor(random() * 256);
    } else if (op === 1) {
      p = p.subarray(0, Math.floor(random() * p.length));
    } else if (op === 2) {
      // Lengths, offsets and header sizes are where parsers go wrong.
      const at = [0, 2, 3, 4, 5, 6, 7, 20, 21, 24, 25, 26, 27, 28, 40, 41, 42, 44, 45, 48, 52][Math.floor(random() * 21)];
      if (at < p.length) p[at] = Math.floor(random() * 256);
    } else {
      const longer = new Uint8Array(p.length + Math.floor(random() * 64));
      longer.set(p);
      p = longer;
    }
    for (const direction of ["4to6", "6to4"] as const) {
      let r: TranslateResult;
      try {
        r = direction === "4to6" ? translator.translate4to6(p) : translator.translate6to4(p);
      } catch (e) {
        problems.push(`${direction} threw ${(e as Error).message} on ${Buffer.from(p).toString("hex")}`);
        continue;
      }
      if (r.action !== "forward" && !reasons.has(r.reason)) problems.push(`unknown reason ${r.reason}`);
      for (const out of emitted(r)) {
        const why = malformation(out);
        if (why !== undefined) problems.push(`${direction}: ${why}: in ${Buffer.from(p).toString("hex")} out ${Buffer.from(out).toString("hex")}`);
      }
    }
    if (problems.length > 5) break;
  }
  t.deepEqual(problems, []);
});

test("RFC 7915 §4.1: lowest-ipv6-mtu below 1280 is refused", (t) => {
  t.throws(() => new Translator({ mapping: testMapping(), lowestIpv6Mtu: 1000 }), { instanceOf: TranslatorConfigError });
  t.throws(() => new Translator({ mapping: testMapping(), ipv4Mtu: 60 }), { instanceOf: TranslatorConfigError });
});

test("RFC 1812 §4.3.2.3: an ICMPv4 error size limit below 576 is refused", (t) => {
  t.throws(() => new Translator({ mapping: testMapping(), icmp4ErrorMaxBytes: 575 }), { instanceOf: TranslatorConfigError, message: /icmp4ErrorMaxBytes/ });
  t.notThrows(() => new Translator({ mapping: testMapping(), icmp4ErrorMaxBytes: 576 }));
});

test("RFC 7915 §4.4 §5.4: the untranslatable-packet errors can be turned off", (t) => {
  const [un6, z4] = scapyBuild([
    'IPv6(src="2001:db8:ffff::2", dst="2001:db8:64::198.51.100.10")/UDP(sport=1, dport=2)/b"who"',
    'IP(src="198.51.100.10", dst="192.0.2.10")/UDP(sport=7, dport=8, chksum=0)/b"zero"',
  ]);
  const quiet = translatorFor({ udpZeroChecksum: "drop" }, { sendUntranslatableErrors: false });
  t.deepEqual(quiet.translate6to4(un6), { action: "drop", reason: "unmapped-source" });
  t.deepEqual(quiet.translate4to6(z4), { action: "drop", reason: "udp-zero-checksum" });
  const loud = translatorFor({ udpZeroChecksum: "drop" });
  t.is(loud.translate6to4(un6).action, "icmp");
  t.is(loud.translate4to6(z4).action, "icmp");
});

test("RFC 7915 §5.1: a configured router address is the source of the translator's ICMPv6 errors", (t) => {
  const [expired] = scapyBuild(['IPv6(src="2001:db8:1::10", dst="2001:db8:64::198.51.100.10", hlim=1)/UDP(sport=1, dport=2)/b"hop"']);
  const router = v6("2001:db8:64::1");
  const r = translatorFor({}, { routerAddress6: router }).translate6to4(expired);
  if (r.action !== "icmp") return t.fail(`expected an ICMPv6 error, got ${r.action}`);
  t.deepEqual(r.packet.subarray(8, 24), router);
  t.deepEqual(r.packet.subarray(24, 40), expired.subarray(8, 24));
});

test("RFC 7915 §5.1: the Identification of unfragmented IPv4 packets comes from the translator's generator", (t) => {
  const [udp] = scapyBuild(['IPv6(src="2001:db8:1::10", dst="2001:db8:64::198.51.100.10")/UDP(sport=1, dport=2)/b"id"']);
  const translator = translatorFor({});
  const ids = [0, 1, 2].map(() => {
    const r = translator.translate6to4(udp);
    return r.action === "forward" ? (r.packets[0][4] << 8) | r.packets[0][5] : -1;
  });
  t.is(new Set(ids).size, 3);
  t.false(ids.includes(-1));
});

test("RFC 1812 §5.2.2: an IPv4 header with a bad checksum is dropped", (t) => {
  const [udp] = scapyBuild(['IP(src="198.51.100.10", dst="192.0.2.10")/UDP(sport=1, dport=2)/b"x"']);
  const bad = Uint8Array.from(udp);
  bad[10] ^= 0xff;
  t.deepEqual(translatorFor({}).translate4to6(bad), { action: "drop", reason: "ipv4-header-checksum" });
  t.is(translatorFor({}).translate4to6(udp).action, "forward");
});
