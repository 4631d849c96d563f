import test from "ava";
import { fileURLToPath } from "node:url";
import { ipv6FromBytes, parseIPv4, parseIPv6 } from "../../../lib/net/address.js";
import { IPPROTO } from "../../../dataplane/packet/ipv4.js";
import { walkIPv6Extensions } from "../../../dataplane/packet/ipv6.js";
import {
  BA_STATUS, IPV4_ACK_STATUS, MOBILITY_OPTION, buildBindingUpdate, buildMobilityPacket, decodeMobilityOption, ipv4CareOfAddressOption,
  ipv4HomeAddressOption, messageIdOption, parseMobilityHeader, type BindingAcknowledgement,
} from "../../../dataplane/packet/mip6.js";
import { ntpFromUnixMs } from "../../../mobility/mip4/identification.js";
import { signMnHa } from "../../../mobility/mip6/auth.js";
import { buildBindingUpdatePacket, checkAcknowledgement, type BindingUpdateParams } from "../../../mobility/mip6/binding-update.js";
import { Mip6HomeAgent, isNewerSequence, type Mip6SecurityAssociation } from "../../../homeagent/mip6/homeagent.js";
import { LINKTYPE_RAW } from "../../helpers/pcap.js";
import { scapyBuild } from "../../helpers/scapy.js";
import { decodeWithTshark } from "../../helpers/tshark.js";

const HA = "2001:db8:1::1";
const HOA = "2001:db8:1::10";
const COA = "2001:db8:2::10";
const COA2 = "2001:db8:3::10";
const KEY_HEX = "6d6e2d6861206b657920666f72207465737473";
const SA: Mip6SecurityAssociation = { spi: 0x1001, key: Uint8Array.from(Buffer.from(KEY_HEX, "hex")) };
const WRONG_KEY: Mip6SecurityAssociation = { spi: 0x1001, key: Uint8Array.from(Buffer.from("not the key")) };
/** 2026-01-01T00:00:00Z: timestamps in the current NTP era, as in production. */
const T0 = Date.UTC(2026, 0, 1);
const SIGNED_BU_PY = fileURLToPath(new URL("./scapy_signed_bu.py", import.meta.url));

function agent(maxLifetimeS = 600): Mip6HomeAgent {
  return new Mip6HomeAgent({ homeAgentAddress: HA, homePrefix: "2001:db8:1::/64", maxLifetimeS, securityAssociations: new Map([[HOA, SA]]) });
}

function bu(over: Partial<BindingUpdateParams> = {}): Uint8Array {
  return buildBindingUpdatePacket({ homeAddress: HOA, careOfAddress: COA, homeAgent: HA, sequence: 1, lifetimeS: 400, sa: SA, nowMs: T0, ...over });
}

/** The BA's Mobility Header, parsed with our codec, and where the packet is addressed. */
function baOf(reply: Uint8Array | undefined): { ba: BindingAcknowledgement; dst: string; routedTo?: string } {
  if (reply === undefined) throw new Error("no reply");
  const chain = walkIPv6Extensions(reply, 0)!;
  const mh = parseMobilityHeader(reply, chain.upperOffset)!;
  if (mh.mhType !== 6) throw new Error(`MH type ${mh.mhType}`);
  const text = (at: number) => ipv6FromBytes(reply.subarray(at, at + 16)).text;
  return { ba: mh, dst: text(24), ...(chain.routingType2AddressOffset >= 0 ? { routedTo: text(chain.routingType2AddressOffset) } : {}) };
}

test("sequence numbers compare modulo 2^16 (RFC 6275 §9.5.1)", (t) => {
  t.true(isNewerSequence(2, 1));
  t.true(isNewerSequence(0, 65535));
  t.true(isNewerSequence(100, 65000));
  t.false(isNewerSequence(65535, 0));
  t.false(isNewerSequence(5, 5));
  t.false(isNewerSequence(1, 2));
});

test("our client's Binding Update is accepted and the BA checks out", (t) => {
  const ha = agent();
  const out = ha.handlePacket(bu({ sequence: 7, lifetimeS: 400 }), T0 + 100);
  t.is(out.status, BA_STATUS.ACCEPTED);
  t.is(out.reason, undefined);
  t.deepEqual(out.events, [{
    kind: "added", reason: "registration",
    binding: { homeAddress: HOA, careOfAddress: COA, sequence: 7, lifetimeS: 400, registeredAtMs: T0 + 100, expiresAtMs: T0 + 100 + 400_000, lastTimestamp: ntpFromUnixMs(T0, 0) },
  }]);
  t.deepEqual(ha.bindings(), [out.events[0].binding]);
  t.deepEqual(ha.binding("2001:DB8:1:0::10"), out.events[0].binding, "looked up by any spelling of the address");
  const { ba, dst, routedTo } = baOf(out.reply);
  t.is(dst, COA, "the BA goes to the care-of address");
  t.is(routedTo, HOA, "through a type 2 routing header to the home address");
  t.is(ba.sequence, 7);
  t.is(ba.lifetime, 100, "400 s in 4-second units");
  t.is(decodeMobilityOption.messageId(ba.options.find((o) => o.type === MOBILITY_OPTION.MESG_ID)!), ntpFromUnixMs(T0, 0), "the BU's timestamp echoed");
  t.is(ba.options.at(-1)!.type, MOBILITY_OPTION.AUTH, "the MN-HA option comes last");
  t.deepEqual(checkAcknowledgement(out.reply!, SA), { status: 0, sequence: 7, lifetimeS: 400, ok: true, timestamp: ntpFromUnixMs(T0, 0) });
  const forged = checkAcknowledgement(out.reply!, WRONG_KEY);
  t.false(forged.ok);
  t.is(forged.reason, "bad-auth");
});

test("a Binding Update built and signed by scapy/Python is accepted, IPv4 care-of address included", (t) => {
  const [plain, withV4] = scapyBuild([
    `signed_bu("${COA}", "${HA}", "${HOA}", 40, 75, ${SA.spi}, "${KEY_HEX}", ${ntpFromUnixMs(T0, 0)})`,
    `signed_bu("${COA2}", "${HA}", "${HOA}", 41, 75, ${SA.spi}, "${KEY_HEX}", ${ntpFromUnixMs(T0 + 1000, 0)}, ipv4_coa="198.51.100.77")`,
  ], `exec(open(${JSON.stringify(SIGNED_BU_PY)}).read())`);
  const ha = agent();
  const first = ha.handlePacket(plain, T0);
  t.is(first.status, 0, first.reason);
  t.is(first.events[0]?.binding.careOfAddress, COA);
  t.is(first.events[0]?.binding.lifetimeS, 300);
  const second = ha.handlePacket(withV4, T0 + 1000);
  t.is(second.status, 0, second.reason);
  t.is(second.events[0]?.kind, "updated");
  t.is(ha.binding(HOA)?.careOfAddress, COA2);
  t.is(ha.binding(HOA)?.careOfIPv4, "198.51.100.77");
  t.true(checkAcknowledgement(second.reply!, SA).ok);
  // And the same packet with one byte of the lifetime changed no longer passes.
  const tampered = plain.slice();
  const at = walkIPv6Extensions(tampered, 0)!.upperOffset;
  tampered[at + 11] ^= 1;
  tampered[at + 5] ^= 1; // keep the checksum right, so only the authenticator can catch it
  t.is(agent().handlePacket(tampered, T0).reason, "bad-auth");
});

test("tshark decodes our BU and BAs without warnings, with the fields we meant", (t) => {
  const ha = agent();
  const request = bu({ sequence: 9, lifetimeS: 400, careOfIPv4: "198.51.100.77" });
  const accepted = ha.handlePacket(request, T0).reply!;
  const refused = ha.handlePacket(bu({ sequence: 9, nowMs: T0 + 1000 }), T0 + 1000).reply!;
  const r = decodeWithTshark([request, accepted, refused], LINKTYPE_RAW);
  t.deepEqual(r.problems, []);
  const json = r.packets.map((p) => JSON.stringify(p._source.layers));
  t.true(json[0].includes(`"mip6.bu.seqnr":"9"`));
  t.true(json[0].includes(`"mip6.bu.a_flag":"1"`) && json[0].includes(`"mip6.bu.h_flag":"1"`));
  t.true(json[0].includes(`"mip6.ipv4coa.addr":"198.51.100.77"`));
  t.true(json[0].includes(`"mip6.auth.mobility_spi":"${SA.spi}"`));
  t.true(json[1].includes(`"mip6.ba.status":"0"`));
  t.true(json[1].includes(`"mip6.ba.seqnr":"9"`));
  t.true(json[1].includes(`"mip6.ba.lifetime":"100"`));
  t.true(json[1].includes(`"mip6.auth.mobility_spi":"${SA.spi}"`));
  t.true(json[1].includes(`"ipv6.routing.mipv6.home_address":"${HOA}"`));
  t.true(json[2].includes(`"mip6.ba.status":"${BA_STATUS.SEQUENCE_NUMBER_OUT_OF_WINDOW}"`));
  t.true(json[2].includes(`"mip6.ba.seqnr":"9"`));
  t.true(json[1].includes(`"mip6.mseg_id.timestamp"`), "the replay protection option is decoded");
});

test("a wrong key is refused with 146 and changes no binding", (t) => {
  const ha = agent();
  t.is(ha.handlePacket(bu({ sequence: 1 }), T0).status, 0);
  const before = ha.bindings();
  const out = ha.handlePacket(bu({ sequence: 2, careOfAddress: COA2, sa: WRONG_KEY, nowMs: T0 + 1000 }), T0 + 1000);
  t.is(out.status, BA_STATUS.MIPV6_AUTH_FAIL);
  t.is(out.reason, "bad-auth");
  t.deepEqual(out.events, []);
  t.deepEqual(ha.bindings(), before);
  const check = checkAcknowledgement(out.reply!, SA);
  t.is(check.status, 146);
  t.false(check.ok);
  t.is(check.reason, "mipv6-auth-fail");
  // Another SPI, or no authentication option at all, fare no better.
  t.is(ha.handlePacket(bu({ sequence: 3, sa: { ...SA, spi: 7 }, nowMs: T0 + 2000 }), T0 + 2000).reason, "bad-auth");
  const unsigned = ha.handlePacket(bu({ sequence: 4, sa: undefined }), T0 + 3000);
  t.is(unsigned.status, BA_STATUS.MIPV6_AUTH_FAIL);
  t.deepEqual(ha.bindings(), before);
});

test("a replayed Binding Update is refused with 144 and changes no binding", (t) => {
  const ha = agent();
  const first = bu({ sequence: 1, careOfAddress: COA });
  t.is(ha.handlePacket(first, T0).status, 0);
  t.is(ha.handlePacket(bu({ sequence: 2, careOfAddress: COA2, nowMs: T0 + 2000 }), T0 + 2000).status, 0);
  const before = ha.bindings();
  const replay = ha.handlePacket(first, T0 + 3000);
  t.is(replay.status, BA_STATUS.MIPV6_ID_MISMATCH);
  t.is(replay.reason, "replay");
  t.deepEqual(replay.events, []);
  t.deepEqual(ha.bindings(), before);
  t.is(checkAcknowledgement(replay.reply!, SA).timestamp, ntpFromUnixMs(T0 + 3000, 0), "the BA tells the node our clock");
  // A fresh sequence number does not help a stale timestamp: outside the 7 s window.
  const stale = ha.handlePacket(bu({ sequence: 3, nowMs: T0 + 2000 - 8000 }), T0 + 2000);
  t.is(stale.status, BA_STATUS.MIPV6_ID_MISMATCH);
  const early = ha.handlePacket(bu({ sequence: 3, nowMs: T0 + 20_000 }), T0 + 2000);
  t.is(early.status, BA_STATUS.MIPV6_ID_MISMATCH, "a clock running ahead is refused too");
  // Even after deregistration, the old registration cannot be replayed.
  t.is(ha.handlePacket(bu({ sequence: 4, lifetimeS: 0, nowMs: T0 + 4000 }), T0 + 4000).events[0]?.kind, "removed");
  t.is(ha.handlePacket(first, T0 + 5000).reason, "replay");
  t.deepEqual(ha.bindings(), []);
  // No timestamp option at all: 145.
  const mh = signMnHa((o) => buildBindingUpdate({ sequence: 5, acknowledge: true, homeRegistration: true, lifetime: 10 }, o), [], SA, parseIPv6(COA, "t").bytes, parseIPv6(HOA, "t").bytes);
  const noTimestamp = buildMobilityPacket({ src: parseIPv6(COA, "t").bytes, dst: parseIPv6(HA, "t").bytes, homeAddress: parseIPv6(HOA, "t").bytes }, mh);
  const out = ha.handlePacket(noTimestamp, T0 + 6000);
  t.is(out.status, BA_STATUS.MIPV6_MESG_ID_REQD);
  t.deepEqual(out.events, []);
});

test("sequence numbers wrap: 65535 then 0 is accepted, an older one gets 135 with the last accepted", (t) => {
  const ha = agent();
  t.is(ha.handlePacket(bu({ sequence: 65535, nowMs: T0 }), T0).status, 0);
  const wrapped = ha.handlePacket(bu({ sequence: 0, careOfAddress: COA2, nowMs: T0 + 1000 }), T0 + 1000);
  t.is(wrapped.status, 0);
  t.is(wrapped.events[0]?.kind, "updated");
  t.is(ha.binding(HOA)?.sequence, 0);
  const before = ha.bindings();
  for (const [i, old] of [65535, 0, 40000].entries()) {
    const now = T0 + 2000 + i * 1000;
    const out = ha.handlePacket(bu({ sequence: old, careOfAddress: COA, nowMs: now }), now);
    t.is(out.status, BA_STATUS.SEQUENCE_NUMBER_OUT_OF_WINDOW, `sequence ${old}`);
    t.is(out.reason, "sequence-out-of-window");
    t.deepEqual(out.events, []);
    t.is(baOf(out.reply).ba.sequence, 0, "the BA carries the last accepted sequence number");
    t.is(checkAcknowledgement(out.reply!, SA).reason, "sequence-number-out-of-window");
  }
  t.deepEqual(ha.bindings(), before);
  t.is(ha.handlePacket(bu({ sequence: 1, nowMs: T0 + 9000 }), T0 + 9000).status, 0);
});

test("the granted lifetime is capped at maxLifetimeS, in 4-second units", (t) => {
  const ha = agent(602);
  const out = ha.handlePacket(bu({ lifetimeS: 3600 }), T0);
  t.is(out.status, 0);
  t.is(out.events[0]?.binding.lifetimeS, 600, "602 s is not a whole number of units: 150 units");
  t.is(out.events[0]?.binding.expiresAtMs, T0 + 600_000);
  t.is(baOf(out.reply).ba.lifetime, 150);
  t.is(checkAcknowledgement(out.reply!, SA).lifetimeS, 600);
  const shorter = ha.handlePacket(bu({ sequence: 2, lifetimeS: 40, nowMs: T0 + 1000 }), T0 + 1000);
  t.is(shorter.events[0]?.binding.lifetimeS, 40, "a shorter request is granted as asked");
});

test("deregistration: lifetime 0, or care-of equal to home; unknown bindings get 133", (t) => {
  const ha = agent();
  const unknown = ha.handlePacket(bu({ lifetimeS: 0 }), T0);
  t.is(unknown.status, BA_STATUS.NOT_HOME_AGENT_FOR_THIS_MOBILE_NODE);
  t.is(unknown.reason, "unknown-binding");
  t.is(ha.handlePacket(bu({ sequence: 2, nowMs: T0 + 1000 }), T0 + 1000).status, 0);
  const gone = ha.handlePacket(bu({ sequence: 3, lifetimeS: 0, nowMs: T0 + 2000 }), T0 + 2000);
  t.is(gone.status, 0);
  t.is(gone.events.length, 1);
  t.like(gone.events[0], { kind: "removed", reason: "deregistration", binding: { homeAddress: HOA, careOfAddress: COA, sequence: 3 } });
  t.is(baOf(gone.reply).ba.lifetime, 0);
  t.deepEqual(ha.bindings(), []);
  // Returning home: the BU comes from the home address itself, without a Home Address option.
  t.is(ha.handlePacket(bu({ sequence: 4, nowMs: T0 + 3000 }), T0 + 3000).status, 0);
  const home = bu({ sequence: 5, careOfAddress: HOA, nowMs: T0 + 4000 });
  t.is(walkIPv6Extensions(home, 0)!.homeAddressOffset, -1);
  const back = ha.handlePacket(home, T0 + 4000);
  t.like(back.events[0], { kind: "removed", reason: "deregistration" });
  const reply = baOf(back.reply);
  t.is(reply.dst, HOA);
  t.is(reply.routedTo, undefined, "no type 2 routing header without a Home Address option");
  t.true(checkAcknowledgement(back.reply!, SA).ok);
  t.is(ha.binding(HOA), undefined);
});

test("bindings expire, and a BU after the expiry adds a new one", (t) => {
  const ha = agent();
  ha.handlePacket(bu({ sequence: 10, lifetimeS: 40 }), T0);
  t.deepEqual(ha.expire(T0 + 39_999), []);
  t.is(ha.bindings().length, 1);
  const gone = ha.expire(T0 + 40_000);
  t.is(gone.length, 1);
  t.like(gone[0], { kind: "removed", reason: "expiry", binding: { homeAddress: HOA, sequence: 10 } });
  t.deepEqual(ha.bindings(), []);
  t.deepEqual(ha.expire(T0 + 50_000), []);
  const again = ha.handlePacket(bu({ sequence: 3, nowMs: T0 + 60_000 }), T0 + 60_000);
  t.is(again.status, 0, "the expired entry's sequence number no longer applies");
  t.is(again.events[0]?.kind, "added");
});

test("the RFC 5555 IPv4 care-of address is recorded; an IPv4 home address request is declined in the BA", (t) => {
  const ha = agent();
  const out = ha.handlePacket(bu({ careOfIPv4: "198.51.100.77" }), T0);
  t.is(out.status, 0);
  t.is(out.events[0]?.binding.careOfIPv4, "198.51.100.77");
  t.is(baOf(out.reply).ba.options.find((o) => o.type === MOBILITY_OPTION.IPV4_ADDRESS_ACKNOWLEDGEMENT), undefined, "no IPv4 home address was asked for");
  // A BU that also asks for a dynamic IPv4 home address (0.0.0.0): registered, and told 132.
  const coa = parseIPv6(COA2, "t").bytes;
  const hoa = parseIPv6(HOA, "t").bytes;
  const mh = signMnHa(
    (o) => buildBindingUpdate({ sequence: 2, acknowledge: true, homeRegistration: true, lifetime: 10 }, o),
    [ipv4HomeAddressOption(0), ipv4CareOfAddressOption(parseIPv4("203.0.113.5", "t").bytes), messageIdOption(ntpFromUnixMs(T0 + 1000, 0))],
    SA, coa, hoa,
  );
  const second = ha.handlePacket(buildMobilityPacket({ src: coa, dst: parseIPv6(HA, "t").bytes, homeAddress: hoa }, mh), T0 + 1000);
  t.is(second.status, 0);
  t.is(ha.binding(HOA)?.careOfIPv4, "203.0.113.5");
  const ack = baOf(second.reply).ba.options.find((o) => o.type === MOBILITY_OPTION.IPV4_ADDRESS_ACKNOWLEDGEMENT)!;
  t.is(decodeMobilityOption.ipv4AddressAcknowledgement(ack)?.status, IPV4_ACK_STATUS.DYNAMIC_IPV4_HOME_ADDRESS_ASSIGNMENT_NOT_AVAILABLE);
  t.deepEqual(decodeWithTshark([second.reply!], LINKTYPE_RAW).problems, []);
  // With an IPv4 care-of address, care-of = home is not a deregistration (RFC 5555).
  const v4only = ha.handlePacket(bu({ sequence: 3, careOfAddress: HOA, careOfIPv4: "203.0.113.9", nowMs: T0 + 2000 }), T0 + 2000);
  t.is(v4only.events[0]?.kind, "updated");
  t.is(ha.binding(HOA)?.careOfIPv4, "203.0.113.9");
});

test("other refusals and silent drops", (t) => {
  const ha = new Mip6HomeAgent({
    homeAgentAddress: HA, homePrefix: "2001:db8:1::/64", maxLifetimeS: 600,
    securityAssociations: new Map([[HOA, SA], ["2001:db8:9::10", SA]]),
  });
  const away = ha.handlePacket(bu({ homeAddress: "2001:db8:9::10" }), T0);
  t.is(away.status, BA_STATUS.NOT_HOME_SUBNET);
  t.is(away.reason, "not-home-subnet");
  t.deepEqual(away.events, []);
  const stranger = ha.handlePacket(bu({ homeAddress: "2001:db8:1::99" }), T0);
  t.is(stranger.status, BA_STATUS.NOT_HOME_AGENT_FOR_THIS_MOBILE_NODE);
  t.is(baOf(stranger.reply).ba.options.find((o) => o.type === MOBILITY_OPTION.AUTH), undefined, "no SA, no signature");
  const correspondent = ha.handlePacket(bu({ homeRegistration: false }), T0);
  t.deepEqual(correspondent, { events: [], reason: "not-home-registration" });
  t.is(ha.handlePacket(bu({ homeAgent: "2001:db8:1::2" }), T0).reason, "not-for-home-agent");
  const corrupt = bu();
  corrupt[corrupt.length - 1] ^= 0xff; // in the authenticator: only the checksum notices
  t.deepEqual(ha.handlePacket(corrupt, T0), { events: [], reason: "bad-checksum" });
  t.deepEqual(ha.handlePacket(bu().subarray(0, 60), T0), { events: [], reason: "malformed" });
  t.deepEqual(ha.handlePacket(new Uint8Array(10), T0), { events: [], reason: "malformed" });
  t.deepEqual(ha.bindings(), []);
  // Accepted without the A flag: registered, nothing to send.
  const quiet = ha.handlePacket(bu({ acknowledge: false }), T0);
  t.is(quiet.status, 0);
  t.is(quiet.reply, undefined);
  t.is(quiet.events.length, 1);
});

test("the route-optimisation form: to a correspondent, no H flag, unsigned", (t) => {
  const packet = bu({ homeAgent: "2001:db8:4::1", homeRegistration: false, sa: undefined, careOfIPv4: undefined });
  const chain = walkIPv6Extensions(packet, 0)!;
  t.is(chain.upperProtocol, IPPROTO.MOBILITY);
  t.true(chain.homeAddressOffset > 0);
  const mh = parseMobilityHeader(packet, chain.upperOffset)!;
  if (mh.mhType !== 5) return t.fail();
  t.false(mh.homeRegistration);
  t.true(mh.acknowledge);
  t.deepEqual(mh.options, []);
  t.deepEqual(decodeWithTshark([packet], LINKTYPE_RAW).problems, []);
});

test("RFC 8200 §4.2: an unknown destination option whose type says discard (01, 10, 11) drops the BU; 00 is skipped", (t) => {
  // Types 0x07, 0x47, 0x87, 0xc7: the same low bits, the four actions.
  const packets = scapyBuild([0x07, 0x47, 0x87, 0xc7].map((type) =>
    `signed_bu("${COA}", "${HA}", "${HOA}", 40, 75, ${SA.spi}, "${KEY_HEX}", ${ntpFromUnixMs(T0, 0)}, dest_opt_type=${type})`), `exec(open(${JSON.stringify(SIGNED_BU_PY)}).read())`);
  const skipped = agent().handlePacket(packets[0], T0);
  t.is(skipped.status, 0, `00: skipped, the BU accepted (${skipped.reason})`);
  for (const [i, bits] of [[1, "01"], [2, "10"], [3, "11"]] as const) {
    const ha = agent();
    const out = ha.handlePacket(packets[i], T0);
    t.is(out.reason, "unrecognised-option", `${bits}: discarded`);
    t.is(out.reply, undefined, `${bits}: no BA`);
    t.deepEqual(out.events, [], `${bits}: no binding change`);
    t.deepEqual(ha.bindings(), []);
  }
});
