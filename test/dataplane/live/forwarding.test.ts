// Live: the worker process on real veth interfaces in a namespace, between a sender namespace and
// a receiver namespace, with a static rule table (--table). Each tunnel type is decapsulated from
// its peer, both re-encapsulations and both translation directions go through; inputs are built
// by scapy or sent from real sockets, and what arrives is read from a real socket or captured and
// decoded by our codec and by tshark.
import anyTest, { type ExecutionContext, type TestFn } from "ava";
import { parseEthernet, ETHERTYPE } from "../../../dataplane/packet/ethernet.js";
import { parseIPv4 } from "../../../dataplane/packet/ipv4.js";
import { parseIPv6 } from "../../../dataplane/packet/ipv6.js";
import { ipv4FromBytes, ipv6FromBytes } from "../../../lib/net/address.js";
import { netnsAvailable } from "../../../harness/netns.js";
import { scapyBuild } from "../../helpers/scapy.js";
import { decodeWithTshark, frameProtocols } from "../../helpers/tshark.js";
import {
  captureFrames, createTopology, FRAMES_PY, metricValue, sendFrames, startLines, startWorker, SYSTEM_PYTHON,
  workerMetricsText, type StartedWorker, type Topology,
} from "../../../harness/topology.js";
import { configureEnds, TABLE, WORKER_CONFIG } from "./static-lab.js";

const test = anyTest as TestFn<{ topo: Topology; worker: StartedWorker; teardowns: (() => Promise<void> | void)[] }>;

const live = netnsAvailable() ? test.serial : test.serial.skip;

test.before(async (t) => {
  if (!netnsAvailable()) return;
  const teardowns: (() => Promise<void> | void)[] = [];
  const topo = await createTopology({ teardown: (fn) => teardowns.push(fn) });
  t.context = { topo, teardowns, worker: undefined as unknown as StartedWorker };
  await configureEnds(topo);
  // forwarding-threads.test.ts runs these again with workers: 2 (MIP46_TEST_WORKERS).
  t.context.worker = await startWorker(topo, { ...WORKER_CONFIG, workers: Number(process.env.MIP46_TEST_WORKERS ?? 1) }, TABLE);
});

test.after.always(async (t) => {
  for (const fn of (t.context?.teardowns ?? []).reverse()) await fn();
});

let seq = 0;
function marker(name: string): string {
  return `m46-${name}-${process.pid}-${++seq}`;
}

/** Sends `frames` a few times from the sender and returns what the receiver's UDP socket got. */
async function throughUdp(topo: Topology, family: 4 | 6, port: number, send: () => Promise<void>): Promise<{ src: string; port: number; data: string }[]> {
  const listener = await startLines(topo, topo.receiver, [SYSTEM_PYTHON, FRAMES_PY, "udp-listen", String(family), family === 6 ? "::" : "0.0.0.0", String(port), "1", "10"]);
  await send();
  const lines = await listener.done;
  return lines.map((l) => JSON.parse(l));
}

function ether(topo: Topology): string {
  return `Ether(src='${topo.macs.s0}', dst='${topo.macs.w0}')`;
}

const DECAP_CASES: { tunnel: string; outer: string; inner: string; family: 4 | 6; expectSrc: string }[] = [
  { tunnel: "4in4 (RFC 2003)", outer: "IP(src='203.0.113.2', dst='203.0.113.1')", inner: "IP(src='203.0.113.10', dst='192.0.2.1')", family: 4, expectSrc: "203.0.113.10" },
  { tunnel: "6in4 (RFC 4213)", outer: "IP(src='203.0.113.2', dst='203.0.113.1')", inner: "IPv6(src='2001:db8:c::10', dst='2001:db8:1::5')", family: 6, expectSrc: "2001:db8:c::10" },
  { tunnel: "6in6 (RFC 2473)", outer: "IPv6(src='2001:db8:c::2', dst='2001:db8:c::1')", inner: "IPv6(src='2001:db8:c::10', dst='2001:db8:1::5')", family: 6, expectSrc: "2001:db8:c::10" },
  { tunnel: "4in6 (RFC 2473)", outer: "IPv6(src='2001:db8:c::2', dst='2001:db8:c::1')", inner: "IP(src='203.0.113.10', dst='192.0.2.1')", family: 4, expectSrc: "203.0.113.10" },
];

for (const c of DECAP_CASES) {
  live(`decapsulates ${c.tunnel} from its peer; the inner UDP datagram reaches a socket in the receiver namespace`, async (t) => {
    const { topo } = t.context;
    const text = marker("decap");
    const [frame, stranger] = scapyBuild([
      `${ether(topo)}/${c.outer}/${c.inner}/UDP(sport=5555, dport=4001)/Raw(b'${text}')`,
      // The same tunnel packet from a source that is not a peer: dropped silently (RFC 4213 §3.6).
      `${ether(topo)}/${c.outer.replace("203.0.113.2", "203.0.113.10").replace("2001:db8:c::2'", "2001:db8:c::10'")}/${c.inner}/UDP(sport=5555, dport=4001)/Raw(b'stranger')`,
    ]);
    const got = await throughUdp(topo, c.family, 4001, () => sendFrames(topo, [stranger, frame], 5, 0.2));
    t.true(got.length >= 1, "the datagram arrived");
    t.is(got[0].data, text);
    t.is(got[0].src, c.expectSrc);
    t.is(got[0].port, 5555);
  });
}

/** Sends `frame` into the worker and returns the first frame the receiver captures carrying `text`. */
async function sendAndCaptureOne(t: ExecutionContext<unknown>, topo: Topology, frame: Uint8Array, text: string): Promise<Uint8Array> {
  const capture = await captureFrames(topo, new TextEncoder().encode(text), 1, 10);
  await sendFrames(topo, [frame], 5, 0.2);
  const lines = await capture.done;
  t.true(lines.length >= 1, "a frame arrived");
  return Uint8Array.from(Buffer.from(lines[0], "hex"));
}

live("re-encapsulates IPv4-in-IPv4 for a pool address as IPv4-in-IPv6 to the care-of address (flow 3.1 j)", async (t) => {
  const { topo } = t.context;
  const text = marker("reencap4");
  const [frame] = scapyBuild([`${ether(topo)}/IP(src='203.0.113.2', dst='198.51.100.2')/IP(src='203.0.113.10', dst='192.0.2.1', ttl=30)/UDP(sport=5555, dport=4002)/Raw(b'${text}')`]);
  const out = await sendAndCaptureOne(t, topo, frame, text);
  const e = parseEthernet(out)!;
  t.is(e.etherType, ETHERTYPE.IPV6);
  const outer = parseIPv6(out, e.payloadOffset)!;
  t.is(outer.nextHeader, 4, "IPv4 inside");
  t.is(ipv6FromBytes(out.subarray(outer.dstOffset, outer.dstOffset + 16)).text, "2001:db8:1::c000:201");
  t.is(ipv6FromBytes(out.subarray(outer.srcOffset, outer.srcOffset + 16)).text, "2001:db8:1::fe", "from the worker's address on that link");
  const inner = parseIPv4(out, outer.payloadOffset)!;
  t.is(ipv4FromBytes(out.subarray(inner.dstOffset, inner.dstOffset + 4)).text, "192.0.2.1");
  t.is(inner.ttl, 29, "forwarded once: TTL decremented once (RFC 2003 §3.1)");
  const decoded = decodeWithTshark([out]);
  t.deepEqual(decoded.problems, []);
  t.is(frameProtocols(decoded)[0], "eth:ethertype:ipv6:ip:udp:data");
});

live("re-encapsulates IPv6-in-IPv6 for an assigned prefix as IPv6-in-IPv4 to the IPv4 care-of address (flow 3.2 i)", async (t) => {
  const { topo } = t.context;
  const text = marker("reencap6");
  const [frame] = scapyBuild([`${ether(topo)}/IPv6(src='2001:db8:c::2', dst='2001:db8:3::c000:203')/IPv6(src='2001:db8:c::10', dst='2001:db8:1::2', hlim=30)/UDP(sport=5555, dport=4003)/Raw(b'${text}')`]);
  const out = await sendAndCaptureOne(t, topo, frame, text);
  const e = parseEthernet(out)!;
  t.is(e.etherType, ETHERTYPE.IPV4);
  const outer = parseIPv4(out, e.payloadOffset)!;
  t.is(outer.protocol, 41, "IPv6 inside");
  t.is(ipv4FromBytes(out.subarray(outer.dstOffset, outer.dstOffset + 4)).text, "192.0.2.3");
  const inner = parseIPv6(out, outer.payloadOffset)!;
  t.is(inner.hopLimit, 29, "hop limit decremented once");
  t.is(ipv6FromBytes(out.subarray(inner.dstOffset, inner.dstOffset + 16)).text, "2001:db8:1::2");
  const decoded = decodeWithTshark([out]);
  t.deepEqual(decoded.problems, []);
  t.is(frameProtocols(decoded)[0], "eth:ethertype:ip:ipv6:udp:data");
});

live("translates 6→4: a real IPv6 socket reaches an IPv4 socket through the translation prefix (RFC 7915 §5, RFC 6052)", async (t) => {
  const { topo } = t.context;
  const text = marker("6to4");
  const got = await throughUdp(topo, 4, 4004, () => topo.lab.exec(topo.sender,
    [SYSTEM_PYTHON, FRAMES_PY, "udp-send", "6", "2001:db8:c::10", "2001:db8:64::192.0.2.1", "4004", "10", "0.2", text]).then(() => undefined));
  t.true(got.length >= 1, "the datagram arrived");
  t.is(got[0].data, text);
  t.is(got[0].src, "198.51.100.7", "the explicit address mapping of the source (RFC 7757)");
});

live("translates 4→6: a real IPv4 socket reaches an IPv6 socket at its mapped address (RFC 7915 §4, RFC 7757)", async (t) => {
  const { topo } = t.context;
  const text = marker("4to6");
  const got = await throughUdp(topo, 6, 4005, () => topo.lab.exec(topo.sender,
    [SYSTEM_PYTHON, FRAMES_PY, "udp-send", "4", "203.0.113.10", "198.51.100.20", "4005", "10", "0.2", text]).then(() => undefined));
  t.true(got.length >= 1, "the datagram arrived");
  t.is(got[0].data, text);
  t.is(got[0].src, "2001:db8:64::cb00:710a", "the source behind the translation prefix (RFC 6052 §2.2)");
});

live("metrics count what went through, by interface, action and drop reason", async (t) => {
  const { topo, worker } = t.context;
  const m = await workerMetricsText(topo, worker.metricsPort);
  t.is(metricValue(m, "mip46_dataplane_rules_revision"), 7);
  t.is(metricValue(m, "mip46_dataplane_rules"), TABLE.rules.length);
  t.true((metricValue(m, 'mip46_dataplane_packets_total{interface="w0",direction="in"}') ?? 0) > 0);
  t.true((metricValue(m, 'mip46_dataplane_packets_total{interface="w1",direction="out"}') ?? 0) > 0);
  t.true((metricValue(m, 'mip46_dataplane_action_packets_total{action="decap"}') ?? 0) >= 4);
  t.true((metricValue(m, 'mip46_dataplane_action_packets_total{action="reencap-4in4-4in6"}') ?? 0) >= 1);
  t.true((metricValue(m, 'mip46_dataplane_action_packets_total{action="reencap-6in6-6in4"}') ?? 0) >= 1);
  t.true((metricValue(m, 'mip46_dataplane_action_packets_total{action="translate-6to4"}') ?? 0) >= 1);
  t.true((metricValue(m, 'mip46_dataplane_action_packets_total{action="translate-4to6"}') ?? 0) >= 1);
  t.true((metricValue(m, 'mip46_dataplane_drops_total{reason="unknown-peer"}') ?? 0) >= 1, "the strangers' tunnel packets");
  t.true((metricValue(m, 'mip46_dataplane_neighbours{family="ipv4",state="reachable"}') ?? 0)
    + (metricValue(m, 'mip46_dataplane_neighbours{family="ipv4",state="stale"}') ?? 0) >= 1, "the receiver was resolved by ARP");
  t.not(metricValue(m, 'mip46_dataplane_capture_drops_total{interface="w0"}'), undefined);
  t.regex(worker.log(), new RegExp(`"msg":"dataplane started".*"workers":${process.env.MIP46_TEST_WORKERS ?? 1}`));
  t.notRegex(worker.log(), /host set-up lets the kernel/, "the namespace is set up as the worker asks");
});
