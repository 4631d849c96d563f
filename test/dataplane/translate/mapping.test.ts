// The address mapping on its own: explicit address mappings (RFC 7757) and RFC 6052 prefixes.
import test from "ava";
import { AddressMapping, AddressMappingError } from "../../../dataplane/translate/index.js";
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

test("RFC 7757 §3.1: prefixes whose suffix lengths differ are refused", (t) => {
  t.throws(() => AddressMapping.build({ eam: [eam("192.0.2.0", 24, "2001:db8::", 64)] }), { instanceOf: AddressMappingError });
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
