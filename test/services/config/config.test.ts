// The configuration is checked at start-up: every RFC 6052 length is accepted; overlaps and
// impossible plans are refused with the key named.
import test from "ava";
import { parseConfig } from "../../../services/config/config.js";
import { ConfigError } from "../../../services/errors.js";
import { labConfig } from "../../../harness/engine.js";
import { SERVER_LIMITS } from "../../../services/api/server.js";
import { limitsOf } from "../../../services/engine/run.js";

const base = (o: Record<string, unknown> = {}) => labConfig("/nonexistent", o);

test("the example lab plan parses", (t) => {
  const c = parseConfig(base());
  t.is(c.pool.ranges[0].first.text, "198.51.100.1");
  t.is(c.pool.ranges[0].last.text, "198.51.100.254");
  t.deepEqual(c.pool.exclude.map((a) => a.text), ["198.51.100.1"]);
  t.is(c.segments[0].careOfPool?.ranges[0].first.text, "192.0.2.100");
  t.is(c.segments[0].prefix?.length, 96);
});

for (const length of [32, 40, 48, 56, 64, 96]) {
  test(`RFC 6052 §2.2: a /${length} segment prefix is valid`, (t) => {
    const prefix = length === 32 ? "2001:db8::/32" : `2001:db8:300::/${length}`;
    t.is(parseConfig(base({ segments: [{ network: "192.0.2.0/24", prefix }], ipv6Networks: [], translation: {} })).segments[0].prefix?.length, length);
  });
}

const refused: [string, Record<string, unknown>, RegExp][] = [
  ["a prefix length RFC 6052 does not allow", { segments: [{ network: "192.0.2.0/24", prefix: "2001:db8:3::/80" }] }, /segments\[0\]\.prefix: \/80 is not an RFC 6052/],
  ["overlapping segment prefixes", {
    segments: [{ network: "192.0.2.0/25", prefix: "2001:db8:3::/96" }, { network: "192.0.2.128/25", prefix: "2001:db8:3::/64" }],
  }, /segments\[1\]\.prefix: 2001:db8:3::\/64 overlaps segments\[0\]\.prefix/],
  ["a segment prefix inside an IPv6 network", { segments: [{ network: "192.0.2.0/24", prefix: "2001:db8:1::/96" }] }, /ipv6Networks\[0\]\.network: .* overlaps segments\[0\]\.prefix/],
  ["overlapping IPv4 segments", { segments: [{ network: "192.0.2.0/24" }, { network: "192.0.2.128/25" }] }, /segments\[1\]\.network: 192\.0\.2\.128\/25 overlaps segments\[0\]\.network/],
  ["a segment overlapping the pool", { segments: [{ network: "198.51.100.0/25" }] }, /segments\[0\]\.network: .* overlaps pool\.prefix/],
  ["a care-of range outside its segment", { segments: [{ network: "192.0.2.0/24", careOfRange: "192.0.2.200-192.0.3.10" }] }, /careOfRange: .* lies outside the segment/],
  ["a segment's home agent off the segment", { segments: [{ network: "192.0.2.0/24", homeAgent: "203.0.113.1" }] }, /^segments\[0\]\.homeAgent: 203\.0\.113\.1 is not on the segment 192\.0\.2\.0\/24/],
  ["an IPv6 network's home agent off the network", { ipv6Networks: [{ network: "2001:db8:1::/64", homeAgent: "2001:db8:9::1" }] }, /^ipv6Networks\[0\]\.homeAgent: 2001:db8:9::1 is not on the network 2001:db8:1::\/64/],
  ["an IPv6 network's home agent that is no IPv6 address", { ipv6Networks: [{ network: "2001:db8:1::/64", homeAgent: "192.0.2.1" }] }, /^ipv6Networks\[0\]\.homeAgent: /],
  ["a segment with host bits", { segments: [{ network: "192.0.2.1/24" }] }, /segments\[0\]\.network: '192\.0\.2\.1\/24' has host bits set/],
  ["a malformed pool", { pool: { prefix: "198.51.100.0/24x" } }, /pool\.prefix: '198\.51\.100\.0\/24x' has an invalid prefix length/],
  ["watermarks without a gap", { migration: { highWatermark: 0.7, lowWatermark: 0.7 } }, /migration\.lowWatermark/],
  ["an unknown store", { store: { kind: "postgres" } }, /store\.kind: 'postgres' is not supported/],
];
for (const [what, override, message] of refused) {
  test(`refused at start-up: ${what}`, (t) => {
    const err = t.throws(() => parseConfig(base(override)), { instanceOf: ConfigError });
    t.regex(err!.message, message);
  });
}

test("an unknown key anywhere is refused, naming its path, instead of its default applying unannounced", (t) => {
  const plan = base() as Record<string, unknown> & { segments: Record<string, unknown>[]; leases?: Record<string, unknown> };
  const cases: [Record<string, unknown>, RegExp][] = [
    [{ leases: { cooldownSecond: 5 } }, /^leases\.cooldownSecond: unknown key \(known: lifetimeSeconds, cooldownSeconds, correspondentLifetimeSeconds\)/],
    [{ segments: [{ ...plan.segments[0], careofRange: "192.0.2.100-192.0.2.199", careOfRange: undefined }] }, /^segments\[0\]\.careofRange: unknown key/],
    [{ colour: "blue" }, /^colour: unknown key/],
    [{ store: { kind: "sqlite", pth: "x.db" } }, /^store\.pth: unknown key/],
    [{ hosts: { downAfter: 3 } }, /^hosts\.downAfter: unknown key/],
    [{ migration: { highWaterMark: 0.9 } }, /^migration\.highWaterMark: unknown key/],
    [{ translation: { prefx: "2001:db8:64::/96" } }, /^translation\.prefx: unknown key/],
    [{ pool: { prefix: "198.51.100.0/24", exlude: [] } }, /^pool\.exlude: unknown key/],
    [{ ipv6Networks: [{ network: "2001:db8:1::/64", nme: "x" }] }, /^ipv6Networks\[0\]\.nme: unknown key/],
    [{ store: { kind: "etcd", etcd: { endpoints: ["127.0.0.1:2379"], leaderTTL: 3 } } }, /^store\.etcd\.leaderTTL: unknown key/],
  ];
  for (const [over, message] of cases) {
    const doc = JSON.parse(JSON.stringify({ ...plan, ...over }));
    t.throws(() => parseConfig(doc), { instanceOf: ConfigError, message }, JSON.stringify(over));
  }
});

test("the grpc section sets the port's limits; without it they are SERVER_LIMITS; out of range is refused by name", (t) => {
  const dir = "/tmp/m46-config-none";
  t.deepEqual(limitsOf(parseConfig(labConfig(dir))), SERVER_LIMITS);
  const set = parseConfig(labConfig(dir, { grpc: { maxConnectionIdleSeconds: 30, maxConnections: 10 } }));
  t.deepEqual(limitsOf(set), { ...SERVER_LIMITS, maxConnectionIdleMs: 30_000, maxConnections: 10 });
  t.throws(() => parseConfig(labConfig(dir, { grpc: { maxConnections: 0 } })), { instanceOf: ConfigError, message: /^grpc\.maxConnections: / });
  t.throws(() => parseConfig(labConfig(dir, { grpc: { maxConnection: 5 } })), { instanceOf: ConfigError, message: /^grpc\.maxConnection: unknown key/ });
});
