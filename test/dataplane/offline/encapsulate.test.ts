// Exact-output cases for the `encapsulate` rule (the hypervisor host's side of flows 3.1 and 3.2)
// through the offline mode, with the host table of dataplane/offline/example-host-table.json plus
// a reverse tunnel of each other kind. Inputs and expected outputs are built by scapy; outputs are
// compared byte for byte except the free offsets of `maskFree`, and tshark decodes every output.
import test from "ava";
import { readFileSync } from "node:fs";
import { OfflineTableError, parseOfflineTable } from "../../../dataplane/offline/index.js";
import { decodeWithTshark } from "../../helpers/tshark.js";
import { scapyBuild } from "../../helpers/scapy.js";
import { EXAMPLE_TABLE, exactOutputCases, hex, maskFree, runFrames, SCAPY_PRELUDE, type ExactCase } from "./harness.js";

const HOST_TABLE = new URL("../../../dataplane/offline/example-host-table.json", import.meta.url).pathname;

type Table = Record<string, any>;

function hostTable(): Table {
  return JSON.parse(readFileSync(HOST_TABLE, "utf8")) as Table;
}

/**
 * The example host plus an IPv4 VM c reverse-tunnelling IPv4-in-IPv4 to its Mobile IPv4 home
 * agent r1 (RFC 3024 over RFC 2003) and an IPv6 VM d reverse-tunnelling IPv6-in-IPv6 to its
 * Mobile IPv6 home agent r2 (RFC 6275 §11.3.1 over RFC 2473), from a second uplink address.
 */
function labHost(): Table {
  const t = hostTable();
  t.worker.interfaces[1].addresses.push("2001:db8:1::c000:202/64");
  t.worker.routes.push({ prefix: "192.0.2.2/32", interface: "vm" }, { prefix: "2001:db8:1::51/128", interface: "vm" });
  t.worker.neighbours.push(
    { interface: "vm", address: "192.0.2.2", mac: "02:00:00:00:0a:13" },
    { interface: "vm", address: "2001:db8:1::51", mac: "02:00:00:00:0a:14" },
    { interface: "up", address: "192.0.2.10", mac: "02:00:00:00:04:10" },
    { interface: "up", address: "2001:db8:1::10", mac: "02:00:00:00:06:10" },
  );
  t.rules.push(
    { key: "vm/c/encap", kind: "encapsulate", tunnel: "4in4", remote: "192.0.2.10", innerSource: "192.0.2.2", vmId: "c" },
    { key: "vm/d/encap", kind: "encapsulate", tunnel: "6in6", remote: "2001:db8:1::10", local: "2001:db8:1::c000:202", innerSource: "2001:db8:1::51", vmId: "d" },
  );
  return t;
}

const PRELUDE = `${SCAPY_PRELUDE}
from scapy.layers.mobileip import MobileIP, MobileIPRRQ
HV='02:00:00:00:0a:01'; UP='02:00:00:00:0b:01'
VMA='02:00:00:00:0a:11'; VMBM='02:00:00:00:0a:12'; VMC='02:00:00:00:0a:13'; VMD='02:00:00:00:0a:14'
ENG6='02:00:00:00:06:01'; ENG4='02:00:00:00:04:01'
def fv(src): return Ether(dst=HV, src=src)
def fu(src): return Ether(dst=UP, src=src)
def tv(dst): return Ether(dst=dst, src=HV)
def tu(dst): return Ether(dst=dst, src=UP)
COA6='2001:db8:1::c000:201'; COA4='192.0.2.100'; E6='2001:db8:1::fe'; E4='192.0.2.254'
RRQ = UDP(sport=434, dport=434)/MobileIP()/MobileIPRRQ(flags=0x02, lifetime=1800, homeaddr='192.0.2.1', haaddr='192.0.2.10', coaddr='198.51.100.10', id=7)
A_UDP = IP(src='192.0.2.1', dst='203.0.113.10', tos=0xb9)/UDP(sport=7000, dport=9)/P
A_BIG_DF = IP(src='192.0.2.1', dst='203.0.113.10', flags='DF')/UDP(sport=7000, dport=9)/Raw(b'a'*1452)
A_BIG = IP(src='192.0.2.1', dst='203.0.113.10', id=0x4242)/UDP(sport=7000, dport=9)/Raw(b'a'*1472)
A_BIG_B = bytes(IP(src='192.0.2.1', dst='203.0.113.10', id=0x4242, ttl=63)/UDP(sport=7000, dport=9)/Raw(b'a'*1472))
A_TTL1 = IP(src='192.0.2.1', dst='203.0.113.10', ttl=1)/UDP(sport=7000, dport=9)/P
B_BIG = IPv6(src='2001:db8:1::50', dst='2001:db8:c::10')/UDP(sport=7000, dport=9)/Raw(b'b'*1452)
B_HL1 = IPv6(src='2001:db8:1::50', dst='2001:db8:c::10', hlim=1)/UDP(sport=7000, dport=9)/P
PING_US = IP(src='192.0.2.1', dst=COA4)/ICMP(id=3, seq=4)/P
`;

type Case = ExactCase;

const CASES: Case[] = [
  // ---- the paper's flows, outbound
  {
    title: "RFC 2473 §3, §6 (flow 3.1 f): the IPv4 VM's Mobile IPv4 registration to r1 leaves IPv4-in-IPv6 from its care-of address to the engine, not by the connected route",
    ingress: "vm",
    input: "fv(VMA)/IP(src='192.0.2.1', dst='192.0.2.10')/RRQ",
    expected: ["tu(ENG6)/IPv6(src=COA6, dst=E6, nh=4, hlim=64)/IP(src='192.0.2.1', dst='192.0.2.10', ttl=63)/RRQ"],
  },
  {
    title: "RFC 2473 §3, §6 with RFC 6040 §4.1 (flow 3.1 l): the IPv4 VM's reply is wrapped IPv4-in-IPv6; DSCP and ECN copied outward, inner TTL − 1",
    ingress: "vm",
    input: "fv(VMA)/A_UDP",
    expected: ["tu(ENG6)/IPv6(src=COA6, dst=E6, nh=4, hlim=64, tc=0xb9)/IP(src='192.0.2.1', dst='203.0.113.10', tos=0xb9, ttl=63)/UDP(sport=7000, dport=9)/P"],
  },
  {
    title: "RFC 4213 §3.5 (flow 3.2 d, k): the IPv6 VM's packet leaves IPv6-in-IPv4 from its IPv4 care-of address to the engine, DF clear, hop limit − 1",
    ingress: "vm",
    input: "fv(VMBM)/IPv6(src='2001:db8:1::50', dst='2001:db8:c::10', tc=0x20)/TCP(sport=80, dport=4000, flags='SA', seq=1, ack=2)",
    expected: ["tu(ENG4)/IP(src=COA4, dst=E4, proto=41, ttl=64, tos=0x20)/IPv6(src='2001:db8:1::50', dst='2001:db8:c::10', tc=0x20, hlim=63)/TCP(sport=80, dport=4000, flags='SA', seq=1, ack=2)"],
  },
  {
    title: "RFC 2003 §3.1: IPv4 from VM c leaves IPv4-in-IPv4 to its home agent r1 (reverse tunnel), DF copied to the outer header",
    ingress: "vm",
    input: "fv(VMC)/IP(src='192.0.2.2', dst='203.0.113.10', flags='DF')/UDP(sport=7000, dport=9)/P",
    expected: ["tu(R1M)/IP(src=COA4, dst='192.0.2.10', proto=4, ttl=64, flags='DF')/IP(src='192.0.2.2', dst='203.0.113.10', flags='DF', ttl=63)/UDP(sport=7000, dport=9)/P"],
  },
  {
    title: "RFC 2473 §3, §6: IPv6 from VM d leaves IPv6-in-IPv6 to its home agent r2 from the rule's own outer source",
    ingress: "vm",
    input: "fv(VMD)/IPv6(src='2001:db8:1::51', dst='2001:db8:c::10')/UDP(sport=7000, dport=9)/P",
    expected: ["tu(R2M)/IPv6(src='2001:db8:1::c000:202', dst='2001:db8:1::10', nh=41, hlim=64)/IPv6(src='2001:db8:1::51', dst='2001:db8:c::10', hlim=63)/UDP(sport=7000, dport=9)/P"],
  },
  // ---- MTU and TTL
  {
    title: "RFC 2473 §7.2 (a), RFC 1191 §4: a DF packet too big for the 4in6 tunnel gets Fragmentation Needed with the tunnel MTU (1500 − 40)",
    ingress: "vm",
    input: "fv(VMA)/A_BIG_DF",
    expected: ["tv(VMA)/IP(src=COA4, dst='192.0.2.1', tos=0xc0, ttl=64)/ICMP(type=3, code=4, nexthopmtu=1460)/Raw(bytes(A_BIG_DF)[:548])"],
  },
  {
    title: "RFC 2473 §7.2 (b), RFC 791: a packet without DF too big for the 4in6 tunnel is fragmented inside, each fragment wrapped",
    ingress: "vm",
    input: "fv(VMA)/A_BIG",
    expected: [
      "tu(ENG6)/IPv6(src=COA6, dst=E6, nh=4, hlim=64)/IP(src='192.0.2.1', dst='203.0.113.10', id=0x4242, ttl=63, flags='MF', proto=17)/Raw(A_BIG_B[20:1460])",
      "tu(ENG6)/IPv6(src=COA6, dst=E6, nh=4, hlim=64)/IP(src='192.0.2.1', dst='203.0.113.10', id=0x4242, ttl=63, frag=180, proto=17)/Raw(A_BIG_B[1460:])",
    ],
  },
  {
    title: "RFC 4213 §3.2: an IPv6 packet too big for the 6in4 tunnel gets Packet Too Big with the tunnel MTU (1500 − 20)",
    ingress: "vm",
    input: "fv(VMBM)/B_BIG",
    expected: ["tv(VMBM)/IPv6(src=COA6, dst='2001:db8:1::50', hlim=64)/ICMPv6PacketTooBig(mtu=1480)/Raw(bytes(B_BIG)[:1232])"],
  },
  {
    title: "RFC 2003 §3.1, RFC 2473 §3.2: an IPv4 packet whose TTL is spent is not encapsulated; Time Exceeded goes back to the VM",
    ingress: "vm",
    input: "fv(VMA)/A_TTL1",
    expected: ["tv(VMA)/IP(src=COA4, dst='192.0.2.1', tos=0xc0, ttl=64)/ICMP(type=11, code=0)/Raw(bytes(A_TTL1))"],
  },
  {
    title: "RFC 4213 §3.3, RFC 4443 §3.3: an IPv6 packet with hop limit 1 is not encapsulated; Time Exceeded goes back to the VM",
    ingress: "vm",
    input: "fv(VMBM)/B_HL1",
    expected: ["tv(VMBM)/IPv6(src=COA6, dst='2001:db8:1::50', hlim=64)/ICMPv6TimeExceeded(code=0)/Raw(bytes(B_HL1))"],
  },
  // ---- precedence and the inbound direction
  {
    title: "RFC 1122 §3.2.2.6: an Echo Request from the VM to the worker's own address is answered, not encapsulated",
    ingress: "vm",
    input: "fv(VMA)/PING_US",
    expected: ["tv(VMA)/IP(src=COA4, dst='192.0.2.1', ttl=64)/ICMP(type=0, id=3, seq=4)/P"],
  },
  {
    title: "RFC 2473 §3 (flow 3.1 k): IPv4-in-IPv6 from the engine is unwrapped and routed to the VM, not wrapped again",
    ingress: "up",
    input: "fu(ENG6)/IPv6(src=E6, dst=COA6)/IP(src='203.0.113.10', dst='192.0.2.1', ttl=62)/UDP(sport=9, dport=7000)/P",
    expected: ["tv(VMA)/IP(src='203.0.113.10', dst='192.0.2.1', ttl=61)/UDP(sport=9, dport=7000)/P"],
  },
  {
    title: "RFC 4213 §3.6 (flow 3.2 m): IPv6-in-IPv4 from the engine to the VM's care-of address is unwrapped and routed to the VM",
    ingress: "up",
    input: "fu(ENG4)/IP(src=E4, dst=COA4)/IPv6(src='2001:db8:c::10', dst='2001:db8:3::c000:264', hlim=60)/UDP(sport=9, dport=7000)/P",
    expected: ["tv(VMBM)/IPv6(src='2001:db8:c::10', dst='2001:db8:3::c000:264', hlim=59)/UDP(sport=9, dport=7000)/P"],
  },
];

const outputs = exactOutputCases(test, CASES, PRELUDE, labHost);

test.serial("the example host table as shipped wraps flow 3.1 l and 3.2 k, and the engine's example table accepts both (decapsulated, routed)", (t) => {
  const [a, b, aAtEngine, bAtEngine] = scapyBuild([
    "fv(VMA)/IP(src='192.0.2.1', dst='203.0.113.10')/UDP(sport=7000, dport=9)/P",
    "fv(VMBM)/IPv6(src='2001:db8:1::50', dst='2001:db8:2::9')/UDP(sport=7000, dport=9)/P",
    "o4(GW4)/IP(src='192.0.2.1', dst='203.0.113.10', ttl=62)/UDP(sport=7000, dport=9)/P",
    "o6(GW6)/IPv6(src='2001:db8:1::50', dst='2001:db8:2::9', hlim=62)/UDP(sport=7000, dport=9)/P",
  ], PRELUDE);
  const host = runFrames([a, b], HOST_TABLE, "vm");
  t.is(host.frames.length, 2);
  t.is(host.summary.counters.actions["encap-4in6"], 1);
  t.is(host.summary.counters.actions["encap-6in4"], 1);
  outputs.push(...host.frames);
  // The engine takes the 4in6 packet on its IPv6 leg and the 6in4 packet on its IPv4 leg.
  const e6 = runFrames([host.frames[0]], EXAMPLE_TABLE, "v6");
  const e4 = runFrames([host.frames[1]], EXAMPLE_TABLE, "v4");
  t.is(e6.summary.counters.actions.decap, 1);
  t.is(e4.summary.counters.actions.decap, 1);
  t.deepEqual(e6.frames.map((f) => hex(maskFree(f))), [hex(maskFree(aAtEngine))]);
  t.deepEqual(e4.frames.map((f) => hex(maskFree(f))), [hex(maskFree(bAtEngine))]);
});

test.serial("tshark decodes every emitted frame without warnings", (t) => {
  t.true(outputs.length >= CASES.length);
  t.deepEqual(decodeWithTshark(outputs).problems, []);
});

test("encapsulate rule errors name the rule and the field", (t) => {
  const bad = (rule: Record<string, unknown>): string => {
    const o = hostTable();
    o.rules[1] = { key: "vm/a/encap", kind: "encapsulate", tunnel: "4in6", remote: "2001:db8:1::fe", innerSource: "192.0.2.1", ...rule };
    return t.throws(() => parseOfflineTable(o), { instanceOf: OfflineTableError })!.message;
  };
  t.regex(bad({ tunnel: "gre" }), /^rules\[1\]: rule "vm\/a\/encap": tunnel: must be one of 4in4, 6in6, 4in6, 6in4/);
  t.regex(bad({ remote: "192.0.2.254" }), /^rules\[1\]: rule "vm\/a\/encap": remote: must be an IPv6 address for a 4in6 tunnel/);
  t.regex(bad({ remote: undefined }), /^rules\[1\]: rule "vm\/a\/encap": remote: must be an IPv6 address \(the outer destination\)/);
  t.regex(bad({ remote: "ff02::1" }), /remote: must be a unicast address, not a multicast address/);
  t.regex(bad({ remote: "2001:db8:1::zz" }), /^rules\[1\]: rule "vm\/a\/encap": remote: /);
  t.regex(bad({ local: "192.0.2.100" }), /local: must be an IPv6 address for a 4in6 tunnel/);
  t.regex(bad({ innerSource: "2001:db8:1::50" }), /innerSource: must be an IPv4 address or prefix for a 4in6 tunnel \(its inner family\)/);
  t.regex(bad({ innerSource: "192.0.2.1/24" }), /^rules\[1\]: rule "vm\/a\/encap": innerSource: /);
  t.regex(bad({ innerDestination: "2001:db8::/32" }), /innerDestination: must be an IPv4 address or prefix/);
  t.regex(bad({ vmId: 7 }), /vmId: must be a string/);
  t.regex(bad({ tunnel: "6in4", remote: "0.0.0.0", innerSource: "2001:db8:1::50" }), /remote: must be a unicast address/);
});
