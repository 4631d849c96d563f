// The token bucket on the ICMP errors the worker originates (RFC 4443 §2.4(f), RFC 1812
// §4.3.2.8): router, tunnel and translator errors share it; the clock is the `now` handed in.
import test from "ava";
import { Forwarder } from "../../../dataplane/forward/index.js";
import { TokenBucket } from "../../../dataplane/forward/ratelimit.js";
import { collector, labRules, labWorker, udp4Frame, udp6Frame } from "./helpers.js";

function lab(perSecond: number, burst: number): Forwarder {
  const f = new Forwarder(labWorker({ icmpErrorLimit: { perSecond, burst } }), 0);
  f.replaceRules({ revision: 3n, rules: labRules() });
  return f;
}

/** The ICMP type of each frame sent (IPv4 or IPv6 after a 14-byte Ethernet header). */
function icmpTypes(frames: readonly { frame: Uint8Array }[]): number[] {
  return frames.map(({ frame }) => (frame[14] >> 4 === 4 ? frame[14 + ((frame[14] & 0x0f) << 2)] : frame[14 + 40]));
}

test("token bucket: a burst, then perSecond tokens a second, never above the burst", (t) => {
  const b = new TokenBucket(2, 3, 0);
  t.deepEqual([b.take(0), b.take(0), b.take(0), b.take(0)], [true, true, true, false]);
  t.is(b.take(499), false, "under one token back after 499 ms at 2/s");
  t.is(b.take(500), true);
  t.deepEqual([b.take(100_000), b.take(100_000), b.take(100_000), b.take(100_000)], [true, true, true, false], "a long pause refills to the burst only");
});

test("RFC 4443 §2.4(f), RFC 1812 §4.3.2.8: router and translator errors beyond the bucket are not sent, counted as icmp-rate-limited", (t) => {
  const f = lab(1, 2);
  const c = collector();
  // Routed with TTL 1 (router Time Exceeded) and translated with TTL 1 (the translator's own).
  f.processFrame(1, udp4Frame("192.0.2.1", "203.0.113.9", { ttl: 1 }), c.emit, 0);
  f.processFrame(1, udp4Frame("203.0.113.5", "198.51.100.20", { ttl: 1 }), c.emit, 0);
  f.processFrame(2, udp6Frame("2001:db8:1::50", "2001:db8:64::cb00:7105", { hopLimit: 1, from: Uint8Array.of(2, 0, 0, 0, 6, 0x50) }), c.emit, 10);
  f.processFrame(1, udp4Frame("192.0.2.1", "203.0.113.9", { ttl: 1 }), c.emit, 20);
  t.deepEqual(icmpTypes(c.sent), [11, 11], "two Time Exceeded, then none");
  t.is(f.counters.drops["icmp-rate-limited"], 2);
  t.is(f.counters.drops["ttl-expired"], 4, "each expired packet is counted, whether or not its error goes");
  // One token back a second later.
  f.processFrame(2, udp6Frame("2001:db8:1::50", "2001:db8:64::cb00:7105", { hopLimit: 1, from: Uint8Array.of(2, 0, 0, 0, 6, 0x50) }), c.emit, 1020);
  f.processFrame(1, udp4Frame("192.0.2.1", "203.0.113.9", { ttl: 1 }), c.emit, 1020);
  t.deepEqual(icmpTypes(c.sent), [11, 11, 3], "an ICMPv6 Time Exceeded (type 3) a second later, then none");
  t.is(f.counters.drops["icmp-rate-limited"], 3);
});

test("icmpErrorLimit out of range is refused", (t) => {
  t.throws(() => new Forwarder(labWorker({ icmpErrorLimit: { perSecond: 0 } }), 0), { message: /icmpErrorLimit\.perSecond/ });
});
