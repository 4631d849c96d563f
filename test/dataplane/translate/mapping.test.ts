// The address mapping on its own: explicit address mappings (RFC 7757) and RFC 6052 prefixes.
import test from "ava";
import { AddressMapping, AddressMappingError, Translator } from "../../../dataplane/translate/index.js";
import { ipv6FromBytes } from "../../../lib/net/address.js";
import { eam, v4, v6 } from "./fixtures.js";

function to6(m: AddressMapping, ipv4: string): string | undefined {
  const out = new Uint8Array(16);
  return m.map4to6(v4(ipv4), out, 0) ? ipv6FromBytes(out).text : undefined;
}

function to4(m: AddressMapping, ipv6: string): string | undefined {
  const v = m.map6to4(v6(ipv6), 0);
  return v < 0 ? undefined : `${v >>> 24}.${(v >>> 16) & 255}.${(v >>> 8) & 255}.${v & 255}`;
}

test("RFC 7757 §3.3: a 100,000-entry EAM table maps every entry both ways", (t) => {
  // 100,000 IPv4 addresses do not fit the documentation ranges; 198.18.0.0/15 is the range
  // RFC 2544 §C.2.2 sets aside for benchmarking, and stays in memory here.
  const base = v4("198.18.0.0");
  const entries = [];
  for (let i = 0; i < 100_000; i++) {
    const ipv6 = v6("2001:db8:100::");
    ipv6[12] = (i >>> 24) & 255; ipv6[13] = (i >>> 16) & 255; ipv6[14] = (i >>> 8) & 255; ipv6[15] = i & 255;
    entries.push({ ipv4: base + i, ipv4Length: 32, ipv6, ipv6Length: 128 });
  }
  const m = AddressMapping.build({ eam: entries });
  t.is(m.explicitMappingCount, 100_000);
  const out = new Uint8Array(16);
  let wrong = 0;
  for (let i = 0; i < 100_000; i++) {
    if (!m.map4to6(base + i, out, 0)) { wrong++; continue; }
    const back = m.map6to4(out, 0);
    if (back !== base + i || out[15] !== (i & 255) || out[14] !== ((i >>> 8) & 255) || out[13] !== ((i >>> 16) & 255)) wrong++;
    // The same lookup at an offset inside a larger buffer, as the translator does on packets.
    const packet = new Uint8Array(40);
    packet.set(out, 24);
    if (m.map6to4(packet, 24) !== base + i) wrong++;
  }
  t.is(wrong, 0);
  t.is(to6(m, "198.18.134.160"), "2001:db8:100::86a0"); // entry 134 × 256 + 160 = 0x86a0
  t.is(to4(m, "2001:db8:100::1:86a0"), undefined); // index 100,000 is past the table
  t.is(to6(m, "198.19.134.160"), undefined); // 198.18.0.0 + 100,000 is not in the table
  t.is(to6(m, "192.0.2.1"), undefined);
});

test("RFC 7757 §3.2: an IPv6 suffix too short for the IPv4 suffix is refused, as are duplicates and other RFC 6052 lengths", (t) => {
  // /24 ↔ /64 is now allowed (the test below); /24 ↔ /121 leaves 7 bits for an 8-bit suffix.
  t.throws(() => AddressMapping.build({ eam: [eam("192.0.2.0", 24, "2001:db8::", 121)] }), { instanceOf: AddressMappingError, message: /IPv6 suffix \(7 bits\) cannot hold the IPv4 suffix \(8 bits\)/ });
  t.throws(() => AddressMapping.build({ eam: [eam("192.0.2.1", 32, "2001:db8::1", 129)] }), { instanceOf: AddressMappingError });
  t.throws(() => AddressMapping.build({ eam: [eam("192.0.2.1", 32, "2001:db8::1", 128), eam("192.0.2.1", 32, "2001:db8::2", 128)] }), { instanceOf: AddressMappingError });
  t.throws(() => AddressMapping.build({ rfc6052: [{ prefix: v6("2001:db8::"), length: 80 }] }), { instanceOf: AddressMappingError });
});

test("RFC 7757 §3.2: the longest matching EAM prefix wins, and suffix bits are carried across", (t) => {
  const m = AddressMapping.build({ eam: [eam("203.0.113.0", 24, "2001:db8:ea::", 120), eam("203.0.113.7", 32, "2001:db8:7::7", 128), eam("198.51.100.0", 28, "2001:db8:1c::", 124)] });
  t.is(to6(m, "203.0.113.7"), "2001:db8:7::7");
  t.is(to6(m, "203.0.113.8"), "2001:db8:ea::8");
  t.is(to4(m, "2001:db8:7::7"), "203.0.113.7");
  t.is(to4(m, "2001:db8:ea::ff"), "203.0.113.255");
  t.is(to6(m, "198.51.100.15"), "2001:db8:1c::f");
  t.is(to6(m, "198.51.100.16"), undefined);
  t.is(to4(m, "2001:db8:1c::10"), undefined);
});

test("RFC 7757 §3.3: EAM is consulted before the RFC 6052 prefix in both directions", (t) => {
  const m = AddressMapping.build({
    rfc6052: [{ prefix: v6("2001:db8:64::"), length: 96 }],
    eam: [eam("198.51.100.20", 32, "2001:db8:2::20", 128), eam("192.0.2.30", 32, "2001:db8:64::198.51.100.30", 128)],
  });
  t.is(to6(m, "198.51.100.20"), "2001:db8:2::20");
  t.is(to6(m, "198.51.100.21"), "2001:db8:64::c633:6415");
  t.is(to4(m, "2001:db8:64::198.51.100.30"), "192.0.2.30");
  t.is(to4(m, "2001:db8:64::198.51.100.31"), "198.51.100.31");
  t.is(to4(m, "2001:db8:65::1"), undefined);
});

test("RFC 6052 §2.2: several prefixes, each serving its own IPv4 range in 4→6", (t) => {
  const m = AddressMapping.build({
    rfc6052: [
      { prefix: v6("2001:db8:aa::"), length: 48, ipv4Network: v4("192.0.2.0"), ipv4Length: 24 },
      { prefix: v6("2001:db8:bb::"), length: 96 },
    ],
  });
  t.is(to6(m, "192.0.2.33"), "2001:db8:aa:c000:2:2100::");
  t.is(to6(m, "198.51.100.1"), "2001:db8:bb::c633:6401");
  t.is(to4(m, "2001:db8:aa:c000:2:2100::"), "192.0.2.33");
  t.is(to4(m, "2001:db8:bb::c633:6401"), "198.51.100.1");
});

test("RFC 7757 §3.2: an IPv6 suffix longer than the IPv4 suffix (/24 ↔ /72, /24 ↔ /64, /16 ↔ /88) carries the IPv4 suffix right after the IPv6 prefix", (t) => {
  const m = AddressMapping.build({
    eam: [eam("203.0.113.0", 24, "2001:db8:ea::", 72), eam("192.0.2.0", 24, "2001:db8:aaaa::", 64), eam("198.18.0.0", 16, "2001:db8:aaaa:bbbb:cc00::", 88), eam("198.51.100.7", 32, "2001:db8:77::", 64)],
  });
  t.is(to6(m, "203.0.113.77"), "2001:db8:ea:0:4d::");
  t.is(to4(m, "2001:db8:ea:0:4e::"), "203.0.113.78");
  // The IPv6 suffix bits past the IPv4 suffix are not part of the mapping: zero 4→6, ignored 6→4.
  t.is(to4(m, "2001:db8:ea:0:4e:ffff:1:2"), "203.0.113.78");
  t.is(to6(m, "192.0.2.1"), "2001:db8:aaaa:0:100::");
  t.is(to4(m, "2001:db8:aaaa:0:1ff:ffff:ffff:ffff"), "192.0.2.1");
  // The 16-bit suffix crosses a 32-bit word of the IPv6 address.
  t.is(to6(m, "198.18.2.3"), "2001:db8:aaaa:bbbb:cc00:2:300:0");
  t.is(to4(m, "2001:db8:aaaa:bbbb:cc00:2:3ff:ffff"), "198.18.2.3");
  t.is(to6(m, "198.18.255.254"), "2001:db8:aaaa:bbbb:cc00:ff:fe00:0");
  t.is(to4(m, "2001:db8:aaaa:bbbb:cc00:ff:fe00:0"), "198.18.255.254");
  t.is(to6(m, "198.51.100.7"), "2001:db8:77::");
  t.is(to4(m, "2001:db8:77::1234"), "198.51.100.7");
  t.is(to4(m, "2001:db8:eb::"), undefined);
});

test("RFC 6052 §2: IPv4-translatable destinations are the listed prefixes alone, EAM first (RFC 7757 §3.3); lists may not overlap", (t) => {
  const m = AddressMapping.build({
    rfc6052: [{ prefix: v6("2001:db8:64::"), length: 96, ipv4Translatable: [{ network: v4("198.51.100.128"), length: 25 }] }],
    eam: [eam("198.51.100.200", 32, "2001:db8:2::200", 128)],
  });
  const out = new Uint8Array(16);
  const dest = (a: string): string | undefined => {
    const tr = new Translator({ mapping: m });
    return tr.destination4(v4(a)) ? ipv6FromBytes(tr.dst6).text : undefined;
  };
  t.true(m.translatable4to6(v4("198.51.100.130"), out, 0));
  t.is(ipv6FromBytes(out).text, "2001:db8:64::c633:6482");
  t.true(m.isTranslatable4(v4("198.51.100.255")));
  t.false(m.isTranslatable4(v4("198.51.100.127")));
  t.is(dest("198.51.100.130"), "2001:db8:64::c633:6482");
  t.is(dest("198.51.100.200"), "2001:db8:2::200", "EAM wins over the prefix");
  t.is(dest("198.51.100.10"), undefined, "outside the list: not a translated destination");
  // As a source the prefix still maps any IPv4 address (RFC 6052 §2.2).
  t.is(to6(m, "198.51.100.10"), "2001:db8:64::c633:640a");
  const overlap = (): AddressMapping => AddressMapping.build({
    rfc6052: [
      { prefix: v6("2001:db8:64::"), length: 96, ipv4Translatable: [{ network: v4("198.51.100.0"), length: 24 }] },
      { prefix: v6("2001:db8:65::"), length: 96, ipv4Translatable: [{ network: v4("198.51.100.128"), length: 25 }] },
    ],
  });
  t.throws(overlap, { instanceOf: AddressMappingError, message: "IPv4-translatable prefix 198.51.100.128/25 overlaps 198.51.100.0/24" });
});
