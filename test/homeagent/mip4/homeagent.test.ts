import test from "ava";
import { appendMobileHomeAuth, buildRegistrationRequest, parseMip4, type Mip4RegistrationReply } from "../../../dataplane/packet/mip4.js";
import { buildAuthenticatedRequest, checkReply, requestIdentification, type Mip4RegistrationInput } from "../../../mobility/mip4/registration.js";
import { MIP4_NO_REPLY, Mip4ConfigError, Mip4HomeAgent, type Mip4RefusalReason, type Mip4SecurityAssociation } from "../../../homeagent/mip4/homeagent.js";
import { NTP_UNIX_OFFSET_S, identificationSkewS, isNewerIdentification, ntpFromUnixMs, unixMsFromNtp } from "../../../mobility/mip4/identification.js";
import { parseIPv4 } from "../../../lib/net/address.js";
import { COA, COA2, HA, HOA, HOA_FOREIGN, HOA_SHA, MN_PORT, NOW, SA_FOREIGN, SA_MD5, SA_SHA, config, deliver, newAgent } from "./fixtures.js";

function request(over: Partial<Mip4RegistrationInput> = {}): Uint8Array {
  return buildAuthenticatedRequest({ homeAddress: HOA, homeAgent: HA, careOfAddress: COA, lifetimeS: 300, sa: SA_MD5, nowMs: NOW, ...over });
}

function replyOf(payload: Uint8Array | undefined): Mip4RegistrationReply {
  const r = payload === undefined ? undefined : parseMip4(payload);
  if (r === undefined || r.type !== 3) throw new Error("no Registration Reply");
  return r;
}

const u32 = (text: string): number => parseIPv4(text, "test").value;

for (const [name, hoa, sa, authLength] of [["HMAC-MD5", HOA, SA_MD5, 16], ["HMAC-SHA-256", HOA_SHA, SA_SHA, 32]] as const) {
  test(`a registration authenticated with ${name} is accepted, answered to its source, and makes a binding`, (t) => {
    const ha = newAgent();
    const req = request({ homeAddress: hoa, sa });
    const id = requestIdentification(req);
    const out = deliver(ha, req, NOW + 250);
    t.is(out.code, 0);
    t.is(out.reason, undefined);
    t.deepEqual(out.replyTo, { address: COA, port: MN_PORT });
    const binding = { homeAddress: hoa, careOfAddress: COA, lifetimeS: 300, registeredAtMs: NOW + 250, expiresAtMs: NOW + 250 + 300_000, identification: id };
    t.deepEqual(out.events, [{ kind: "added", binding, reason: "registration" }]);
    t.deepEqual(ha.binding(hoa), binding);
    t.deepEqual(ha.bindings(), [binding]);
    t.deepEqual(checkReply(out.reply!, sa, id), { code: 0, lifetimeS: 300, homeAddress: hoa, ok: true });
    const reply = replyOf(out.reply);
    t.is(reply.homeAgent, u32(HA));
    t.is(reply.identification, id, "§5.7: an accepted reply carries the whole Identification");
    t.deepEqual(reply.extensions.map((e) => [e.type, e.data.length]), [[32, 4 + authLength]]);
    const other = sa === SA_MD5 ? SA_SHA : SA_MD5;
    t.is(checkReply(out.reply!, other, id).reason, "bad-auth", "the reply is signed under this VM's association only");
  });
}

test("a new care-of address updates the binding; the S flag is answered with code 1", (t) => {
  const ha = newAgent();
  deliver(ha, request(), NOW);
  const req = request({ careOfAddress: COA2, nowMs: NOW + 1000, flags: { simultaneousBindings: true } });
  const out = deliver(ha, req, NOW + 1000, COA2);
  t.is(out.code, 1, "accepted, simultaneous bindings unsupported");
  t.true(checkReply(out.reply!, SA_MD5, requestIdentification(req)).ok);
  t.is(out.events.length, 1);
  t.is(out.events[0].kind, "updated");
  t.is(out.events[0].binding.careOfAddress, COA2);
  t.is(ha.binding(HOA)?.careOfAddress, COA2);
  t.is(ha.bindings().length, 1, "one binding per home address");
});

test("the granted lifetime is capped at maxLifetimeS and the reply says so", (t) => {
  const ha = newAgent({ maxLifetimeS: 120 });
  const req = request({ lifetimeS: 3600 });
  const out = deliver(ha, req, NOW);
  t.is(out.code, 0);
  t.is(replyOf(out.reply).lifetime, 120);
  t.is(checkReply(out.reply!, SA_MD5, requestIdentification(req)).lifetimeS, 120);
  t.is(ha.binding(HOA)?.lifetimeS, 120);
  t.is(ha.binding(HOA)?.expiresAtMs, NOW + 120_000);
  const shorter = deliver(ha, request({ lifetimeS: 30, nowMs: NOW + 1 }), NOW + 1);
  t.is(replyOf(shorter.reply).lifetime, 30, "a shorter request is granted as asked");
  const forever = newAgent({ maxLifetimeS: 0xffff });
  deliver(forever, request({ lifetimeS: 0xffff }), NOW);
  t.is(forever.binding(HOA)?.expiresAtMs, Infinity, "RFC 5944 §3.3: all ones is infinity");
  t.deepEqual(forever.expire(Number.MAX_SAFE_INTEGER), []);
});

test("a wrong key, a wrong SPI, a missing or doubled extension, or no association: 131 and nothing changes", (t) => {
  const ha = newAgent();
  deliver(ha, request(), NOW);
  const before = ha.binding(HOA);
  const wrongKey: Mip4SecurityAssociation = { ...SA_MD5, key: Uint8Array.from(Buffer.from("not the key")) };
  const wrongSpi: Mip4SecurityAssociation = { ...SA_MD5, spi: SA_MD5.spi + 1 };
  const wrongAlgorithm: Mip4SecurityAssociation = { ...SA_MD5, algorithm: "hmac-sha256" };
  const bare = buildRegistrationRequest({ decapsulationByMobileNode: true, lifetime: 300, homeAddress: parseIPv4(HOA, "t").bytes, homeAgent: parseIPv4(HA, "t").bytes, careOfAddress: parseIPv4(COA2, "t").bytes, identification: ntpFromUnixMs(NOW + 1000) });
  const cases: [string, Uint8Array, Mip4RefusalReason][] = [
    ["wrong key", request({ careOfAddress: COA2, nowMs: NOW + 1000, sa: wrongKey }), "bad-auth"],
    ["wrong SPI", request({ careOfAddress: COA2, nowMs: NOW + 1000, sa: wrongSpi }), "bad-auth"],
    ["wrong algorithm", request({ careOfAddress: COA2, nowMs: NOW + 1000, sa: wrongAlgorithm }), "bad-auth"],
    ["no extension", bare, "no-auth"],
    ["two extensions", appendMobileHomeAuth(appendMobileHomeAuth(bare, SA_MD5.spi, SA_MD5.key), SA_MD5.spi, SA_MD5.key), "no-auth"],
  ];
  for (const [what, req, reason] of cases) {
    const out = deliver(ha, req, NOW + 1000, COA2);
    t.is(out.code, 131, what);
    t.is(out.reason, reason, what);
    t.deepEqual(out.events, [], what);
    t.is(ha.binding(HOA), before, `${what}: the binding is untouched`);
    const check = checkReply(out.reply!, SA_MD5, requestIdentification(req));
    t.like(check, { code: 131, ok: false, reason: "refused" }, `${what}: the refusal is signed under the real association`);
  }
  // A tampered lifetime after signing.
  const tampered = request({ careOfAddress: COA2, nowMs: NOW + 1000 });
  tampered[3] ^= 1;
  t.is(deliver(ha, tampered, NOW + 1000).reason, "bad-auth");
  t.is(ha.binding(HOA), before);

  const unknown = buildAuthenticatedRequest({ homeAddress: "192.0.2.77", homeAgent: HA, careOfAddress: COA, lifetimeS: 300, sa: SA_MD5, nowMs: NOW });
  const out = deliver(ha, unknown, NOW);
  t.is(out.code, 131);
  t.is(out.reason, "no-security-association");
  t.deepEqual(replyOf(out.reply).extensions, [], "no association, so no authenticator on the reply");
  t.is(ha.binding("192.0.2.77"), undefined);
  t.is(ha.bindings().length, 1);
});

test("a replayed request is refused with 133 and changes nothing, even after a newer one or a deregistration", (t) => {
  const ha = newAgent();
  const first = request({ nowMs: NOW });
  t.is(deliver(ha, first, NOW).code, 0);
  const again = deliver(ha, first, NOW + 1000);
  t.is(again.code, 133);
  t.is(again.reason, "replay");
  t.deepEqual(again.events, []);

  const second = request({ careOfAddress: COA2, nowMs: NOW + 2000 });
  t.is(deliver(ha, second, NOW + 2000, COA2).code, 0);
  const moved = ha.binding(HOA);
  for (const [what, replayed] of [["the older request", first], ["the latest request itself", second]] as const) {
    const out = deliver(ha, replayed, NOW + 3000);
    t.is(out.code, 133, what);
    t.is(out.reason, "replay", what);
    t.deepEqual(out.events, [], what);
    t.is(ha.binding(HOA), moved, `${what}: the binding still points at ${COA2}`);
    const reply = replyOf(out.reply);
    t.is(reply.identification & 0xffffffffn, requestIdentification(replayed) & 0xffffffffn, "§5.7: low 32 bits copied");
    t.is(reply.identification >> 32n, BigInt(Math.floor((NOW + 3000) / 1000) + NTP_UNIX_OFFSET_S), "§5.7: our time in the high 32 bits");
  }

  t.is(deliver(ha, request({ lifetimeS: 0, nowMs: NOW + 4000 }), NOW + 4000).code, 0);
  t.is(ha.binding(HOA), undefined);
  const out = deliver(ha, second, NOW + 5000, COA2);
  t.is(out.reason, "replay", "a registration replayed after deregistration does not bring the binding back");
  t.is(ha.binding(HOA), undefined);
});

test("a timestamp out of the 7 s window: 133 with our time, and the node resyncs from it", (t) => {
  const ha = newAgent();
  const slowClock = NOW - 60_000;
  const req = request({ nowMs: slowClock });
  const out = deliver(ha, req, NOW + 500);
  t.is(out.code, 133);
  t.is(out.reason, "timestamp-out-of-window");
  t.deepEqual(out.events, []);
  t.is(ha.binding(HOA), undefined);
  const reply = replyOf(out.reply);
  t.is(reply.identification >> 32n, BigInt(NOW / 1000 + NTP_UNIX_OFFSET_S));
  t.is(reply.identification & 0xffffffffn, requestIdentification(req) & 0xffffffffn);
  const check = checkReply(out.reply!, SA_MD5, requestIdentification(req));
  t.like(check, { code: 133, ok: false, reason: "refused", homeAgentTimeMs: NOW });
  // The node adds the offset it learnt to its clock and registers again.
  const offset = check.homeAgentTimeMs! - slowClock;
  const retry = request({ nowMs: slowClock + 100 + offset });
  t.is(deliver(ha, retry, NOW + 600).code, 0);
  t.is(ha.binding(HOA)?.careOfAddress, COA);
});

test("the window is ±replayToleranceS (default 7 s, RFC 5944 §5.7)", (t) => {
  const at = (skewMs: number, agent = newAgent()): number =>
    deliver(agent, request({ identification: ntpFromUnixMs(NOW + skewMs, 0) }), NOW).code;
  t.is(at(7000), 0);
  t.is(at(-7000), 0);
  t.is(at(7001), 133);
  t.is(at(-7001), 133);
  t.is(at(-20_000, newAgent({ replayToleranceS: 30 })), 0);
  t.is(at(31_000, newAgent({ replayToleranceS: 30 })), 133);
});

test("deregistration: lifetime 0, or the home address as care-of address; both answered with lifetime 0", (t) => {
  const ha = newAgent();
  deliver(ha, request(), NOW);
  const bound = ha.binding(HOA)!;
  const dereg = request({ lifetimeS: 0, nowMs: NOW + 1000 });
  const out = deliver(ha, dereg, NOW + 1000);
  t.is(out.code, 0);
  t.deepEqual(out.events, [{ kind: "removed", binding: bound, reason: "deregistration" }]);
  t.like(checkReply(out.reply!, SA_MD5, requestIdentification(dereg)), { ok: true, lifetimeS: 0 });
  t.is(ha.binding(HOA), undefined);
  t.deepEqual(ha.bindings(), []);
  const nothing = deliver(ha, request({ lifetimeS: 0, nowMs: NOW + 2000 }), NOW + 2000);
  t.is(nothing.code, 0, "deregistering with no binding is still accepted");
  t.deepEqual(nothing.events, []);

  deliver(ha, request({ nowMs: NOW + 3000 }), NOW + 3000);
  const home = deliver(ha, request({ careOfAddress: HOA, lifetimeS: 300, nowMs: NOW + 4000 }), NOW + 4000, HOA);
  t.is(home.code, 0);
  t.is(replyOf(home.reply).lifetime, 0);
  t.is(home.events[0]?.reason, "deregistration");
  t.is(ha.binding(HOA), undefined);
});

test("bindings expire at expiresAtMs, through expire() or when the node registers again", (t) => {
  const ha = newAgent();
  deliver(ha, request({ lifetimeS: 10 }), NOW);
  deliver(ha, request({ homeAddress: HOA_SHA, sa: SA_SHA, lifetimeS: 20 }), NOW);
  t.deepEqual(ha.expire(NOW + 9_999), []);
  t.is(ha.bindings().length, 2);
  const gone = ha.expire(NOW + 10_000);
  t.deepEqual(gone.map((e) => [e.kind, e.reason, e.binding.homeAddress]), [["removed", "expiry", HOA]]);
  t.is(ha.binding(HOA), undefined);
  t.truthy(ha.binding(HOA_SHA));
  t.deepEqual(ha.expire(NOW + 10_000), [], "removed once");

  // Past its time but not yet swept: the new registration reports the expiry, then the new binding.
  const late = deliver(ha, request({ homeAddress: HOA_SHA, sa: SA_SHA, careOfAddress: COA2, nowMs: NOW + 25_000 }), NOW + 25_000, COA2);
  t.deepEqual(late.events.map((e) => [e.kind, e.reason, e.binding.careOfAddress]), [["removed", "expiry", COA], ["added", "registration", COA2]]);
});

test("other refusals: another home agent (136), a home address off the home network (129), minimal or GRE encapsulation (139), no usable care-of address (134)", (t) => {
  const ha = newAgent();
  const cases: [string, Uint8Array, number, Mip4RefusalReason, Mip4SecurityAssociation][] = [
    ["directed broadcast as home agent", request({ homeAgent: "192.0.2.255" }), 136, "unknown-home-agent", SA_MD5],
    ["home address outside 192.0.2.0/24", request({ homeAddress: HOA_FOREIGN, sa: SA_FOREIGN }), 129, "unknown-home-address", SA_FOREIGN],
    ["minimal encapsulation", request({ flags: { minimalEncapsulation: true } }), 139, "encapsulation-unavailable", SA_MD5],
    ["GRE", request({ flags: { greEncapsulation: true } }), 139, "encapsulation-unavailable", SA_MD5],
    ["care-of 0.0.0.0", request({ careOfAddress: "0.0.0.0" }), 134, "poorly-formed", SA_MD5],
    ["multicast care-of", request({ careOfAddress: "224.0.0.1" }), 134, "poorly-formed", SA_MD5],
  ];
  for (const [what, req, code, reason, sa] of cases) {
    const out = deliver(ha, req, NOW);
    t.is(out.code, code, what);
    t.is(out.reason, reason, what);
    t.deepEqual(out.events, [], what);
    t.like(checkReply(out.reply!, sa, requestIdentification(req)), { code, ok: false, reason: "refused" }, what);
    if (code === 136) t.is(replyOf(out.reply).homeAgent, u32(HA), "§3.4 136: the reply names our unicast address");
  }
  t.deepEqual(ha.bindings(), []);
  t.is(deliver(ha, request({ nowMs: NOW + 1 }), NOW + 1).code, 0, "refused requests did not advance the replay state past a good one");
});

test("what is not a well-formed request is dropped without a reply", (t) => {
  const ha = newAgent();
  const good = request();
  const drops: [string, Uint8Array, Mip4RefusalReason][] = [
    ["cut short", good.subarray(0, 23), "malformed"],
    ["extension past the end", good.subarray(0, good.length - 1), "malformed"],
    ["empty", new Uint8Array(0), "malformed"],
    ["a reply", deliver(newAgent(), good, NOW).reply!, "not-a-request"],
    ["unknown extension 100 (RFC 5944 §1.9)", withExtension(100), "unknown-extension"],
  ];
  for (const [what, payload, reason] of drops) {
    const out = deliver(ha, payload, NOW);
    t.is(out.code, MIP4_NO_REPLY, what);
    t.is(out.reply, undefined, what);
    t.is(out.reason, reason, what);
    t.deepEqual(out.events, [], what);
  }
  t.deepEqual(ha.bindings(), []);
  t.is(deliver(ha, withExtension(200), NOW).code, 0, "an unknown extension of 128 and up is skipped");
});

function withExtension(type: number): Uint8Array {
  const bare = buildRegistrationRequest({
    decapsulationByMobileNode: true, lifetime: 300, homeAddress: parseIPv4(HOA, "t").bytes, homeAgent: parseIPv4(HA, "t").bytes, careOfAddress: parseIPv4(COA, "t").bytes,
    identification: ntpFromUnixMs(NOW),
  }, [{ type, data: Uint8Array.of(1, 2, 3, 4) }]);
  return appendMobileHomeAuth(bare, SA_MD5.spi, SA_MD5.key);
}

test("checkReply refuses replies that are not the answer to our request", (t) => {
  const ha = newAgent();
  const req = request();
  const id = requestIdentification(req);
  const reply = deliver(ha, req, NOW).reply!;
  t.true(checkReply(reply, SA_MD5, id).ok);
  t.is(checkReply(reply, SA_MD5, id + 1n).reason, "identification-mismatch");
  t.is(checkReply(reply, SA_MD5, id + (1n << 32n)).reason, "identification-mismatch", "an accepted reply must carry the whole Identification");
  const tampered = reply.slice(); tampered[3] ^= 1;
  t.is(checkReply(tampered, SA_MD5, id).reason, "bad-auth");
  t.is(checkReply(reply.subarray(0, 10), SA_MD5, id).reason, "malformed");
  t.is(checkReply(req, SA_MD5, id).reason, "not-a-reply");
});

test("the client sets D by default, takes flags, and refuses a lifetime that does not fit", (t) => {
  const p = parseMip4(request({ flags: { reverseTunnel: true } }));
  if (p?.type !== 1) return t.fail();
  t.true(p.decapsulationByMobileNode);
  t.true(p.reverseTunnel);
  t.false(p.simultaneousBindings);
  const q = parseMip4(request({ flags: { decapsulationByMobileNode: false } }));
  t.false(q?.type === 1 && q.decapsulationByMobileNode);
  t.throws(() => request({ lifetimeS: 70000 }), { instanceOf: RangeError });
  const ha = newAgent();
  t.is(deliver(ha, request({ flags: { decapsulationByMobileNode: false, reverseTunnel: true, broadcast: true } }), NOW).code, 0, "D clear, T and B set: accepted all the same");
  t.is(ha.binding(HOA)?.careOfAddress, COA);
});

test("configuration errors name their key", (t) => {
  const bad = (over: Parameters<typeof config>[0], field: RegExp): void => {
    const e = t.throws(() => new Mip4HomeAgent(config(over)), { instanceOf: Mip4ConfigError });
    t.regex(e?.message ?? "", field);
  };
  bad({ homeAgentAddress: "192.0.2" }, /^homeAgentAddress: /);
  bad({ homeNetwork: "192.0.2.1/24" }, /^homeNetwork: .*host bits/);
  bad({ maxLifetimeS: 0 }, /^maxLifetimeS: /);
  bad({ maxLifetimeS: 70000 }, /^maxLifetimeS: /);
  bad({ replayToleranceS: 0 }, /^replayToleranceS: /);
  bad({ securityAssociations: new Map([[HOA, { ...SA_MD5, spi: 255 }]]) }, /^securityAssociations\[192\.0\.2\.1\]\.spi: .*reserves 0–255/);
  bad({ securityAssociations: new Map([["192.0.2.x", SA_MD5]]) }, /^securityAssociations\[192\.0\.2\.x\]: /);
  bad({ securityAssociations: new Map([[HOA, { ...SA_MD5, algorithm: "hmac-sha1" as "hmac-md5" }]]) }, /algorithm: 'hmac-sha1'/);
  bad({ securityAssociations: new Map([[HOA, { ...SA_MD5, key: new Uint8Array(0) }]]) }, /key: is empty/);
  t.is(newAgent().binding("not an address"), undefined);
});

test("NTP identification arithmetic: epoch, fraction, the 2036 wrap", (t) => {
  // 2026-11-26 15:00:00.500 UTC: 1795705200 s since 1970, +2208988800 to 1900.
  const id = ntpFromUnixMs(NOW + 500, 0);
  t.is(id >> 32n, 1795705200n + 2208988800n);
  t.is(id & 0xffffffffn, 0x80000000n);
  t.is(unixMsFromNtp(id), NOW + 500);
  t.is(Number((ntpFromUnixMs(NOW, 4294966) & 0xffffffffn)), 4294966, "sub-millisecond bits fill what the clock cannot");
  t.true(isNewerIdentification(ntpFromUnixMs(NOW + 1, 0), ntpFromUnixMs(NOW, 4294966)), "a later millisecond is newer whatever the random bits");
  // 2036-02-07 06:28:16 UTC is NTP second 2^32, which wraps to 0 (era 1).
  const wrap = Date.UTC(2036, 1, 7, 6, 28, 16);
  t.is(ntpFromUnixMs(wrap, 0), 0n);
  t.is(unixMsFromNtp(ntpFromUnixMs(wrap + 5000, 0)), wrap + 5000, "RFC 4330 §3: high bit clear is era 1");
  t.true(isNewerIdentification(ntpFromUnixMs(wrap + 1000, 0), ntpFromUnixMs(wrap - 1000, 0)));
  t.false(isNewerIdentification(ntpFromUnixMs(wrap - 1000, 0), ntpFromUnixMs(wrap + 1000, 0)));
  t.is(identificationSkewS(ntpFromUnixMs(wrap + 3000, 0), wrap - 2000), 5);
  t.is(identificationSkewS(ntpFromUnixMs(wrap - 2000, 0), wrap + 3000), -5);
  const agent = newAgent();
  t.is(deliver(agent, request({ nowMs: wrap - 1000 }), wrap).code, 0);
  t.is(deliver(agent, request({ nowMs: wrap + 1000, careOfAddress: COA2 }), wrap + 1000).code, 0, "registrations go on across the wrap");
});
