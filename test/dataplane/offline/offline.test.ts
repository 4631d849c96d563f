// The offline mode itself: raw-IP input, resolution without a default MAC, table validation
// errors that name the field, and files it cannot read.
import test from "ava";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { OfflineTableError, parseOfflineTable, runOffline } from "../../../dataplane/offline/index.js";
import { LINKTYPE_RAW } from "../../helpers/pcap.js";
import { scapyBuild } from "../../helpers/scapy.js";
import { decodeWithTshark } from "../../helpers/tshark.js";
import { exampleTable, hex, maskFree, runFrames, SCAPY_PRELUDE } from "./harness.js";

test("RFC 7915 §4.1 from a raw-IP (link type 101) capture: the packet is wrapped for the ingress interface and translated", (t) => {
  const [input, expected] = scapyBuild([
    "IP(src='203.0.113.5', dst='198.51.100.20')/UDP(sport=1000, dport=2000)/P",
    "o6(VMB6)/IPv6(src='2001:db8:64::cb00:7105', dst='2001:db8:1::50', hlim=63)/UDP(sport=1000, dport=2000)/P",
  ], SCAPY_PRELUDE);
  const { frames, summary } = runFrames([input], exampleTable(), "v4", LINKTYPE_RAW);
  t.is(frames.length, 1);
  t.is(hex(maskFree(frames[0])), hex(maskFree(expected)));
  t.deepEqual(summary.egress, [{ ifIndex: 2, name: "v6" }]);
});

test("RFC 826: without static neighbours or a default MAC, the output holds the ARP request the worker would send", (t) => {
  const table = exampleTable() as { worker: { neighbours?: unknown[] }; defaultNeighbourMac?: string };
  delete table.defaultNeighbourMac;
  table.worker.neighbours = [];
  const [input, expected] = scapyBuild([
    "e4()/IP(src='192.0.2.1', dst='203.0.113.9')/UDP(sport=1, dport=2)/P",
    "Ether(dst='ff:ff:ff:ff:ff:ff', src=V4)/ARP(op=1, hwsrc=V4, psrc='192.0.2.254', hwdst='00:00:00:00:00:00', pdst='192.0.2.1')",
  ], SCAPY_PRELUDE);
  const { frames, summary } = runFrames([input], table as Record<string, unknown>, "1");
  t.deepEqual(frames.map(hex), [hex(expected)]);
  t.is(summary.counters.actions.arp, 1);
  t.deepEqual(decodeWithTshark(frames).problems, []);
});

test("table errors name the field", (t) => {
  const bad = (mutate: (o: Record<string, any>) => void): string => {
    const o = exampleTable() as Record<string, any>;
    mutate(o);
    return t.throws(() => parseOfflineTable(o), { instanceOf: OfflineTableError })!.message;
  };
  t.regex(bad((o) => (o.rules[1].poolIPv4 = "198.51.100.256")), /^rules\[1\]: rule "vm\/a\/reencap": poolIPv4: /);
  t.regex(bad((o) => (o.rules[2].tunnel = "gre")), /^rules\[2\]: rule "vm\/a\/peer-home-agent": tunnel: must be one of/);
  t.regex(bad((o) => (o.rules[3].innerSource = "2001:db8::1")), /^rules\[3\]: .*innerSource: must be an IPv4 address for a 4in6 tunnel/);
  // RFC 7757 §3.2: a longer IPv6 suffix (/32 ↔ /64) is allowed; one too short for the IPv4 suffix is not.
  t.regex(bad((o) => (o.rules[7].ipv4 = "198.51.100.0/24")), /^rules\[7\]: .*ipv6: a \/24 needs an IPv6 prefix of \/120 or shorter/);
  t.regex(bad((o) => (o.rules[0].kind = "nat44")), /^rules\[0\]: .*kind: unknown rule kind "nat44"/);
  t.regex(bad((o) => (o.rules[4].key = "vm/a/reencap")), /^rules\[4\]\.key: "vm\/a\/reencap" appears twice/);
  t.regex(bad((o) => (o.worker.interfaces[0].mtu = 40)), /^worker\.interfaces\[0\]\.mtu: must be an integer in 68\.\.65535/);
  t.regex(bad((o) => (o.worker.neighbours[0].mac = "zz")), /^worker\.neighbours\[0\]\.mac: /);
  t.regex(bad((o) => (o.revision = -1)), /^revision: /);
  t.regex(bad((o) => (o.defaultNeighbourMac = "02:00")), /^defaultNeighbourMac: /);
  t.regex(bad((o) => (o.extra = 1)), /^extra: unknown key/);
  t.regex(bad((o) => delete o.rules), /^rules: must be an array/);
});

test("runOffline reports files it cannot use clearly", (t) => {
  const dir = mkdtempSync(join(tmpdir(), "mip46-offline-bad-"));
  const table = join(dir, "t.json");
  writeFileSync(table, "{ not json");
  const pcap = join(dir, "in.pcap");
  writeFileSync(pcap, Uint8Array.of(0x0a, 0x0d, 0x0d, 0x0a, ...new Array(28).fill(0)));
  t.throws(() => runOffline({ input: pcap, table, output: join(dir, "out.pcap") }), { instanceOf: OfflineTableError, message: /t\.json: / });
  writeFileSync(table, JSON.stringify(exampleTable()));
  t.throws(() => runOffline({ input: pcap, table, output: join(dir, "out.pcap") }), { message: /pcapng/ });
  t.throws(() => runOffline({ input: pcap, table, output: join(dir, "out.pcap"), ingress: "eth7" }), { message: /pcapng|ingress/ });
});
