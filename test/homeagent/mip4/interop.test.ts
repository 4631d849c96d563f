// r1 against independent implementations: requests built by scapy (with the authenticator from
// Python's hmac) are accepted, and the replies r1 sends decode in tshark without complaint, with
// their authenticators checked again by Python.
import test from "ava";
import { execFileSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { parseIPv4 as parseIPv4Header } from "../../../dataplane/packet/ipv4.js";
import { MIP4_PORT } from "../../../dataplane/packet/mip4.js";
import { buildUdp4, parseUdp } from "../../../dataplane/packet/udp.js";
import { buildAuthenticatedRequest, checkReply, requestIdentification } from "../../../mobility/mip4/registration.js";
import type { Mip4RequestOutcome, Mip4SecurityAssociation } from "../../../homeagent/mip4/homeagent.js";
import { ipv4FromValue, parseIPv4 } from "../../../lib/net/address.js";
import { LINKTYPE_RAW } from "../../helpers/pcap.js";
import { SCAPY_PYTHON, scapyBuild } from "../../helpers/scapy.js";
import { homeAgentCore } from "../../../homeagent/core.js";
import { decodeWithTshark } from "../../helpers/tshark.js";
import { COA, COA2, HA, HOA, HOA_SHA, HOME_NETWORK, MN_PORT, NOW, SA_MD5, SA_SHA, newAgent } from "./fixtures.js";

const SCRIPT = fileURLToPath(new URL("./scapy_rrq.py", import.meta.url));
const FLAG_D = 0x20;

interface ScapyRequest {
  unixMs?: number; identification?: string; flags: number; lifetime: number; homeaddr: string; haaddr: string; coaddr: string;
  algorithm: string; spi: number; keyHex: string; src: string; sport: number;
}
interface ScapyVerify { verify: string; algorithm: string; spi: number; keyHex: string }

function python(items: readonly (ScapyRequest | ScapyVerify)[]): string[] {
  const out = execFileSync(SCAPY_PYTHON, [SCRIPT], { input: JSON.stringify(items), encoding: "utf8", stdio: ["pipe", "pipe", "pipe"] });
  const lines = out.trim().split("\n");
  if (lines.length !== items.length) throw new Error(`python printed ${lines.length} lines for ${items.length} items`);
  return lines.map((l) => l.trim());
}

const keyHex = (sa: Mip4SecurityAssociation): string => Buffer.from(sa.key).toString("hex");
const hex = (b: Uint8Array): string => Buffer.from(b).toString("hex");
const a4 = (text: string): Uint8Array => parseIPv4(text, "test").bytes;

/** Unwraps an IPv4/UDP packet into what r1's caller hands to handleRequest. */
function udpInput(packet: Uint8Array): { source: string; destination: string; sourcePort: number; destinationPort: number; payload: Uint8Array } {
  const ip = parseIPv4Header(packet);
  if (ip === undefined) throw new Error("not IPv4");
  const udp = parseUdp(packet, ip.headerLength, ip.payloadLength);
  if (udp === undefined) throw new Error("not UDP");
  return {
    source: ipv4FromValue(ip.src).text, destination: ipv4FromValue(ip.dst).text,
    sourcePort: udp.srcPort, destinationPort: udp.dstPort, payload: packet.subarray(udp.payloadOffset, udp.payloadOffset + udp.payloadLength),
  };
}

test("registration requests built by scapy, authenticated by Python's hmac, are accepted (HMAC-MD5 and HMAC-SHA-256)", (t) => {
  const ha = newAgent();
  const base = { flags: FLAG_D, lifetime: 300, haaddr: HA, sport: 40000 };
  const [md5, sha, wrongKey, stale] = python([
    { ...base, unixMs: NOW, homeaddr: HOA, coaddr: COA, src: COA, algorithm: "hmac-md5", spi: SA_MD5.spi, keyHex: keyHex(SA_MD5) },
    { ...base, unixMs: NOW + 1500, homeaddr: HOA_SHA, coaddr: COA2, src: COA2, sport: 40001, algorithm: "hmac-sha256", spi: SA_SHA.spi, keyHex: keyHex(SA_SHA) },
    { ...base, unixMs: NOW + 2000, homeaddr: HOA, coaddr: COA2, src: COA2, algorithm: "hmac-md5", spi: SA_MD5.spi, keyHex: "00112233" },
    { ...base, unixMs: NOW - 30_000, homeaddr: HOA, coaddr: COA2, src: COA2, algorithm: "hmac-md5", spi: SA_MD5.spi, keyHex: keyHex(SA_MD5) },
  ]).map((h) => Uint8Array.from(Buffer.from(h, "hex")));

  const m = udpInput(md5);
  t.is(m.destinationPort, MIP4_PORT);
  const mOut = ha.handleRequest(m, NOW + 100);
  t.is(mOut.code, 0, mOut.reason);
  t.deepEqual(mOut.replyTo, { address: COA, port: 40000 });
  t.like(ha.binding(HOA), { careOfAddress: COA, lifetimeS: 300, registeredAtMs: NOW + 100 });
  // Python computed the NTP timestamp on its own: seconds since 1900 and the millisecond fraction.
  t.is(requestIdentification(m.payload) >> 32n, BigInt(NOW / 1000 + 2_208_988_800));
  t.true(checkReply(mOut.reply!, SA_MD5, requestIdentification(m.payload)).ok);

  const s = udpInput(sha);
  const sOut = ha.handleRequest(s, NOW + 1600);
  t.is(sOut.code, 0, sOut.reason);
  t.deepEqual(sOut.replyTo, { address: COA2, port: 40001 });
  t.like(ha.binding(HOA_SHA), { careOfAddress: COA2, lifetimeS: 300 });
  t.true(checkReply(sOut.reply!, SA_SHA, requestIdentification(s.payload)).ok);

  const before = ha.binding(HOA);
  const w = ha.handleRequest(udpInput(wrongKey), NOW + 2100);
  t.is(w.code, 131);
  t.is(ha.binding(HOA), before, "a wrong key changes nothing");
  const o = ha.handleRequest(udpInput(stale), NOW + 2100);
  t.is(o.code, 133);
  t.is(o.reason, "timestamp-out-of-window");
  t.is(ha.binding(HOA), before);
});

test("r1's replies decode in tshark without warnings, with the right fields, and Python's hmac accepts their authenticators", (t) => {
  const ha = newAgent({ maxLifetimeS: 200 });
  const md5Req = buildAuthenticatedRequest({ homeAddress: HOA, homeAgent: HA, careOfAddress: COA, lifetimeS: 300, sa: SA_MD5, nowMs: NOW });
  const shaReq = buildAuthenticatedRequest({ homeAddress: HOA_SHA, homeAgent: HA, careOfAddress: COA2, lifetimeS: 100, sa: SA_SHA, nowMs: NOW, flags: { simultaneousBindings: true } });
  const staleReq = buildAuthenticatedRequest({ homeAddress: HOA, homeAgent: HA, careOfAddress: COA2, lifetimeS: 300, sa: SA_MD5, nowMs: NOW - 3_600_000 });
  const noSaReq = buildAuthenticatedRequest({ homeAddress: "192.0.2.77", homeAgent: HA, careOfAddress: COA, lifetimeS: 300, sa: SA_MD5, nowMs: NOW });
  const deregReq = buildAuthenticatedRequest({ homeAddress: HOA, homeAgent: HA, careOfAddress: COA, lifetimeS: 0, sa: SA_MD5, nowMs: NOW + 5000 });
  const send = (payload: Uint8Array, nowMs: number, source = COA): Mip4RequestOutcome => ha.handleRequest({ source, destination: HA, sourcePort: 40000, payload }, nowMs);
  const outcomes = [send(md5Req, NOW), send(shaReq, NOW, COA2), send(staleReq, NOW + 1000, COA2), send(noSaReq, NOW), send(deregReq, NOW + 5000)];
  t.deepEqual(outcomes.map((o) => o.code), [0, 1, 133, 131, 0]);

  const packets = outcomes.map((o) => buildUdp4({ src: a4(HA), dst: a4(o.replyTo.address), srcPort: MIP4_PORT, dstPort: o.replyTo.port }, o.reply!));
  const requestPackets = [md5Req, shaReq].map((p, i) => buildUdp4({ src: a4(i === 0 ? COA : COA2), dst: a4(HA), srcPort: 40000, dstPort: MIP4_PORT }, p));
  const r = decodeWithTshark([...packets, ...requestPackets], LINKTYPE_RAW);
  t.deepEqual(r.problems, []);
  const mip = r.packets.map((p) => p._source.layers.mip as Record<string, unknown> & { Extensions?: Record<string, Record<string, string>> });
  const auth = (i: number): Record<string, string> | undefined => mip[i].Extensions?.["Extension: Mobile-Home Authentication Extension"];

  t.like(mip[0], { "mip.type": "3", "mip.code": "0", "mip.life": "200", "mip.homeaddr": HOA, "mip.haaddr": HA });
  t.regex(String(mip[0]["mip.ident"]), /^Nov 26, 2026 15:00:00\.\d+ UTC$/, "the Identification is read as NTP time: our epoch is right");
  t.like(auth(0), { "mip.ext.type": "32", "mip.ext.len": "20", "mip.auth.spi": "0x00001000" });
  t.like(mip[1], { "mip.type": "3", "mip.code": "1", "mip.life": "100", "mip.homeaddr": HOA_SHA });
  t.like(auth(1), { "mip.ext.len": "36", "mip.auth.spi": "0x00002000" });
  t.is(auth(1)?.["mip.auth.auth"].split(":").length, 32, "HMAC-SHA-256 authenticator, 32 bytes");
  // 133: tshark reads our clock in the high 32 bits (15:00:01), not the request's (14:00:00).
  t.like(mip[2], { "mip.code": "133", "mip.homeaddr": HOA });
  t.regex(String(mip[2]["mip.ident"]), /^Nov 26, 2026 15:00:01\.\d+ UTC$/);
  t.like(mip[3], { "mip.code": "131", "mip.homeaddr": "192.0.2.77" });
  t.is(mip[3].Extensions, undefined, "no association, no authenticator");
  t.like(mip[4], { "mip.code": "0", "mip.life": "0" });
  t.like(mip[5], { "mip.type": "1", "mip.coa": COA, "mip.life": "300" });
  t.like(mip[5]["mip.flags_tree"] as Record<string, string>, { "mip.d": "1", "mip.s": "0" });
  t.like(mip[6]["mip.flags_tree"] as Record<string, string>, { "mip.d": "1", "mip.s": "1" });
  t.regex(String(mip[5]["mip.ident"]), /^Nov 26, 2026 15:00:00\.\d+ UTC$/);

  const sas = [SA_MD5, SA_SHA, SA_MD5, undefined, SA_MD5];
  const checks = outcomes.flatMap((o, i) => sas[i] === undefined ? [] : [{ verify: hex(o.reply!), algorithm: sas[i]!.algorithm, spi: sas[i]!.spi, keyHex: keyHex(sas[i]!) }]);
  checks.push({ ...checks[0], keyHex: "00" });
  t.deepEqual(python(checks), ["ok", "ok", "ok", "ok", "bad"]);
});

test("RFC 1122 §4.1.3.4: a well-signed request in a UDP datagram with a wrong checksum is discarded; a zero checksum (none) is taken", (t) => {
  const core = homeAgentCore({
    protocol: "mip4", address: HA, homeNetwork: HOME_NETWORK, interface: "eth0", maxLifetimeS: 600, replayToleranceS: 7,
    keys: [{ homeAddress: HOA, spi: SA_MD5.spi, algorithm: SA_MD5.algorithm, key: SA_MD5.key }],
  });
  const rrq = Buffer.from(buildAuthenticatedRequest({ homeAddress: HOA, homeAgent: HA, careOfAddress: COA, lifetimeS: 300, sa: SA_MD5, nowMs: NOW })).toString("hex");
  // scapy builds the IPv4/UDP around our request: with its checksum, with a wrong one, with none.
  const [good, wrong, none] = scapyBuild([0, 1, 2].map((k) =>
    `IP(src="${COA}", dst="${HA}")/UDP(sport=${MN_PORT}, dport=434${k === 1 ? ", chksum=0x1234" : k === 2 ? ", chksum=0" : ""})/Raw(bytes.fromhex("${rrq}"))`));
  const dropped = core.handle(wrong, NOW);
  t.is(dropped.result, "bad-udp-checksum");
  t.is(dropped.reply, undefined);
  t.deepEqual(dropped.events, []);
  t.deepEqual(core.bindings(), [], "nothing bound");
  const accepted = core.handle(good, NOW);
  t.is(accepted.result, "accepted");
  t.is(core.bindings().length, 1);
  // A fresh core: the same request without a checksum is accepted too (RFC 768: zero is none).
  const other = homeAgentCore({
    protocol: "mip4", address: HA, homeNetwork: HOME_NETWORK, interface: "eth0", maxLifetimeS: 600, replayToleranceS: 7,
    keys: [{ homeAddress: HOA, spi: SA_MD5.spi, algorithm: SA_MD5.algorithm, key: SA_MD5.key }],
  });
  t.is(other.handle(none, NOW).result, "accepted");
});
