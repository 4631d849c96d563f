// The neighbour cache driven through the forwarder: ARP (RFC 826) and NDP (RFC 4861 §7.2, §7.3)
// resolution with queued packets, retransmissions, failure, REACHABLE → STALE and probing.
import test from "ava";
import { Forwarder } from "../../../dataplane/forward/index.js";
import type { SharedLearn } from "../../../dataplane/neighbour/cache.js";
import { ARP_OPERATION, buildArp, parseArp } from "../../../dataplane/packet/arp.js";
import { buildEthernetFrame, ETHERTYPE, formatMac, parseMac } from "../../../dataplane/packet/ethernet.js";
import { ICMP6_TYPE } from "../../../dataplane/packet/icmp6.js";
import { buildNeighborAdvertisement, parseNd } from "../../../dataplane/packet/nd.js";
import { collector, ip4, ip6, labRules, labWorker, MAC, udp4Frame, udp6Frame } from "./helpers.js";

const TIMERS = { retransMs: 1000, maxRetries: 3, reachableMs: 30_000, delayMs: 5000, staleExpiryMs: 60_000, queueLength: 2 };

function resolvingForwarder(): Forwarder {
  const f = new Forwarder(labWorker({ neighbours: [], neighbourTimers: TIMERS }), 0);
  f.replaceRules({ revision: 1n, rules: labRules() });
  return f;
}

const GW4_MAC = parseMac("02:00:00:00:04:aa");

function arpReplyFromGateway(): Uint8Array {
  return buildEthernetFrame(MAC.v4, GW4_MAC, ETHERTYPE.ARP, buildArp(ARP_OPERATION.REPLY, GW4_MAC, ip4("192.0.2.1"), MAC.v4, ip4("192.0.2.254")));
}

test("RFC 826 / RFC 4861 §7.2.2: an unresolved next hop gets an ARP request, the packet waits and leaves when the reply comes", (t) => {
  const f = resolvingForwarder();
  const c = collector();
  f.processFrame(1, udp4Frame("192.0.2.1", "203.0.113.9"), c.emit, 0);
  t.is(c.sent.length, 1);
  const req = c.sent[0].frame;
  t.is(formatMac(req, 0), "ff:ff:ff:ff:ff:ff");
  const arp = parseArp(req, 14)!;
  t.is(arp.operation, ARP_OPERATION.REQUEST);
  t.deepEqual([...req.subarray(arp.targetIpOffset, arp.targetIpOffset + 4)], [192, 0, 2, 1]);
  t.deepEqual([...req.subarray(arp.senderIpOffset, arp.senderIpOffset + 4)], [192, 0, 2, 254]);
  t.is(f.neighbours.stats().incomplete, 1);
  t.is(f.neighbours.stats().queued, 1);

  f.processFrame(1, arpReplyFromGateway(), c.emit, 10);
  t.is(c.sent.length, 2);
  t.is(formatMac(c.sent[1].frame, 0), "02:00:00:00:04:aa");
  t.is(c.sent[1].frame[14 + 8], 63, "TTL decremented");
  t.is(f.neighbours.stats().reachable, 1);

  // Now resolved: the next packet goes at once.
  f.processFrame(1, udp4Frame("192.0.2.1", "203.0.113.10"), c.emit, 20);
  t.is(c.sent.length, 3);
  t.is(f.counters.interfaces.get(1)!.txPackets, 3);
});

test("RFC 4861 §7.2.2: requests are retransmitted, then the entry and its queued packets are dropped; the queue keeps the newest", (t) => {
  const f = resolvingForwarder();
  const c = collector();
  for (let i = 0; i < 3; i++) f.processFrame(1, udp4Frame("192.0.2.1", "203.0.113.9"), c.emit, 0);
  t.is(c.sent.length, 1, "one request for three packets");
  t.is(f.counters.drops["no-neighbour"], 1, "queue of 2: the oldest went");
  f.tick(500, c.emit);
  t.is(c.sent.length, 1);
  f.tick(1000, c.emit);
  f.tick(2000, c.emit);
  t.is(c.sent.length, 3, "retransmitted up to maxRetries");
  f.tick(3000, c.emit);
  t.is(c.sent.length, 3);
  t.is(f.neighbours.stats().entries, 0);
  t.is(f.counters.drops["no-neighbour"], 3);
});

test("RFC 4861 §7.3.3: REACHABLE turns STALE, a STALE entry still forwards and is probed unicast after the delay", (t) => {
  const f = resolvingForwarder();
  const c = collector();
  f.processFrame(1, udp4Frame("192.0.2.1", "203.0.113.9"), c.emit, 0);
  f.processFrame(1, arpReplyFromGateway(), c.emit, 0);
  f.tick(31_000, c.emit);
  t.is(f.neighbours.stats().stale, 1);
  const before = c.sent.length;
  f.processFrame(1, udp4Frame("192.0.2.1", "203.0.113.9"), c.emit, 31_000);
  t.is(c.sent.length, before + 1, "forwarded through the stale entry");
  f.tick(36_001, c.emit);
  const probe = c.sent[c.sent.length - 1].frame;
  t.is(formatMac(probe, 0), "02:00:00:00:04:aa", "unicast probe");
  t.is(parseArp(probe, 14)!.operation, ARP_OPERATION.REQUEST);
  f.processFrame(1, arpReplyFromGateway(), c.emit, 36_010);
  t.is(f.neighbours.stats().reachable, 1);
});

test("RFC 4861 §7.2.2, §7.2.5: IPv6 next hops are solicited at their solicited-node address and learned from the NA", (t) => {
  const f = resolvingForwarder();
  const c = collector();
  f.processFrame(2, udp6Frame("2001:db8:1::10", "2001:db8:2::9"), c.emit, 0);
  t.is(c.sent.length, 1);
  const ns = c.sent[0].frame;
  t.is(formatMac(ns, 0), "33:33:ff:00:00:01");
  const nd = parseNd(ns, 54, ns.length - 54)!;
  t.is(nd.type, ICMP6_TYPE.NEIGHBOR_SOLICITATION);
  t.deepEqual([...ns.subarray(nd.targetOffset, nd.targetOffset + 16)], [...ip6("2001:db8:1::1")]);
  t.true(nd.sourceLinkLayerOffset > 0);

  const na = buildNeighborAdvertisement({ src: ip6("2001:db8:1::1"), dst: ip6("2001:db8:1::fe"), target: ip6("2001:db8:1::1"), router: true, solicited: true, override: true, targetLinkLayer: MAC.gw6 });
  f.processFrame(2, buildEthernetFrame(MAC.v6, MAC.gw6, ETHERTYPE.IPV6, na), c.emit, 5);
  t.is(c.sent.length, 2);
  t.is(formatMac(c.sent[1].frame, 0), "02:00:00:00:06:aa");
  t.is(c.sent[1].frame[14 + 7], 63);
});

test("RFC 826: an ARP request for us teaches us the asker's MAC", (t) => {
  const f = resolvingForwarder();
  const c = collector();
  const asker = parseMac("02:00:00:00:04:77");
  f.processFrame(1, buildEthernetFrame(parseMac("ff:ff:ff:ff:ff:ff"), asker, ETHERTYPE.ARP, buildArp(ARP_OPERATION.REQUEST, asker, ip4("192.0.2.77"), new Uint8Array(6), ip4("192.0.2.254"))), c.emit, 0);
  t.is(c.sent.length, 1, "the reply");
  // A packet to 192.0.2.77 now leaves without a request.
  f.processFrame(2, udp6Frame("2001:db8:1::50", "2001:db8:64::c000:24d", { from: parseMac("02:00:00:00:06:50") }), c.emit, 1);
  t.is(c.sent.length, 2);
  t.is(formatMac(c.sent[1].frame, 0), "02:00:00:00:04:77");
});

// workers: N > 1 (dataplane/worker/threads.ts): each thread's forwarder hands what it learns to
// the others, as the threads' BroadcastChannel does; here two forwarders, the messages passed by hand.
function threadPair() {
  const queues = { a: [] as SharedLearn[], b: [] as SharedLearn[] };
  const make = (peer: SharedLearn[]) => {
    const f = new Forwarder(labWorker({ neighbours: [], neighbourTimers: TIMERS }), 0, {
      share: { neighbourLearned: (l) => peer.push(structuredClone(l)), correspondentChanged: () => {} },
    });
    f.replaceRules({ revision: 1n, rules: labRules() });
    return f;
  };
  const a = make(queues.b);
  const b = make(queues.a);
  const ca = collector();
  const cb = collector();
  /** Delivers what each shared to the other; returns how many messages went. */
  const pass = (now: number) => {
    const n = queues.a.length + queues.b.length;
    for (const l of queues.b.splice(0)) b.learnShared(l, cb.emit, now);
    for (const l of queues.a.splice(0)) a.learnShared(l, ca.emit, now);
    return n;
  };
  return { a, b, ca, cb, pass };
}

test("threads: the ARP reply to one thread's request, taken by the other thread, still sends the packet the first holds", (t) => {
  const { a, b, ca, cb, pass } = threadPair();
  b.processFrame(1, udp4Frame("192.0.2.1", "203.0.113.9"), cb.emit, 0);
  t.is(cb.sent.length, 1, "b's ARP request");
  t.is(b.neighbours.stats().queued, 1);
  a.processFrame(1, arpReplyFromGateway(), ca.emit, 5);
  t.is(ca.sent.length, 0, "a sends nothing");
  t.is(pass(6), 1, "a shared the one thing it learned");
  t.is(cb.sent.length, 2, "b's held packet left");
  t.is(formatMac(cb.sent[1].frame, 0), "02:00:00:00:04:aa");
  t.is(b.neighbours.stats().reachable, 1);
  t.is(b.neighbours.stats().queued, 0);
  t.is(b.counters.interfaces.get(1)!.txPackets, 2, "counted as sent by b");
  t.is(pass(7), 0, "what b took from a is not shared again");
  // a learned it too (the reply was for us): its next packet there goes at once.
  a.processFrame(1, udp4Frame("192.0.2.1", "203.0.113.10"), ca.emit, 8);
  t.is(ca.sent.length, 1);
  t.is(formatMac(ca.sent[0].frame, 0), "02:00:00:00:04:aa");
});

test("threads: a solicited NA taken by a thread with no entry for it (NDP creates none) still resolves the thread that asked", (t) => {
  const { a, b, ca, cb, pass } = threadPair();
  b.processFrame(2, udp6Frame("2001:db8:1::10", "2001:db8:2::9"), cb.emit, 0);
  t.is(cb.sent.length, 1, "b's NS");
  const na = buildNeighborAdvertisement({ src: ip6("2001:db8:1::1"), dst: ip6("2001:db8:1::fe"), target: ip6("2001:db8:1::1"), router: true, solicited: true, override: true, targetLinkLayer: MAC.gw6 });
  a.processFrame(2, buildEthernetFrame(MAC.v6, MAC.gw6, ETHERTYPE.IPV6, na), ca.emit, 5);
  t.is(a.neighbours.stats().entries, 0, "a made no entry (RFC 4861 §7.2.5)");
  t.is(pass(6), 1);
  t.is(cb.sent.length, 2);
  t.is(formatMac(cb.sent[1].frame, 0), "02:00:00:00:06:aa");
  t.is(b.neighbours.stats().reachable, 1);
});
