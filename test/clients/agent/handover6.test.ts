// The privileged-VM agent (clients/agent/agent.ts), with the harness of ./harness.ts (a real
// Forwarder as its worker; the engine, hypervisor and wire mocked).
// An IPv6 VM on the IPv4 host h4 (flow 3.2 b–f, k): RequestPrefix, the BU 6in4, r2's acknowledgement, resynchronisation (RFC 6275 §11.7.3), route optimisation.
import test from "ava";
import { mock } from "node:test";
import { ipv4Bytes } from "../../../dataplane/forward/addresses.js";
import { pseudoHeaderSum6 } from "../../../dataplane/packet/checksum.js";
import { buildEthernetFrame, ETHERTYPE, formatMac, parseMac } from "../../../dataplane/packet/ethernet.js";
import { IPPROTO } from "../../../dataplane/packet/ipv4.js";
import { AUTH_SUBTYPE, BA_STATUS, MOBILITY_OPTION, buildBindingAcknowledgement, buildMobilityPacket, decodeMobilityOption, isNewerSequence, messageIdOption, verifyMhChecksum } from "../../../dataplane/packet/mip6.js";
import { buildUdp6 } from "../../../dataplane/packet/udp.js";
import { ntpFromUnixMs } from "../../../mobility/mip4/identification.js";
import { checkMnHa, signMnHa } from "../../../mobility/mip6/auth.js";
import { createLogger } from "../../../lib/log.js";
import { decodeWithTshark, frameProtocols } from "../../helpers/tshark.js";
import { PV0_MAC, PV1_MAC, GATEWAY_MAC, KEY6, HOME6, HOME_AGENT6, VM6_MAC, ENGINE4, H4_CARE_OF4, H4_CARE_OF6, CORRESPONDENT6, T0, hex, attachAndRun, until, fakeTimers, homeAgent } from "./harness.js";
import { SA6, WRONG_SA6, bytes6, homeAgent6, sent6in4, engine6in4, nthBindingUpdate, h4Harness, mnHaAuthenticator, handover6, homeAgentAhead } from "./mip6.js";

test("an IPv6 VM on an IPv4 host: RequestPrefix, AllocateCareOf, RegisterMigration, and a BU 6in4 from 192.0.2.100 to the engine with the HAO and the MN-HA authenticator", async (t) => {
  const h = await h4Harness(t);
  t.is(h.agent.family, 4);
  t.deepEqual(h.calls.find((c) => c.method === "requestPrefix")?.request, { hostId: "h4", ipv4Segment: "192.0.2.0/24" });
  t.true(h.forwarder.currentRules().some((r) => r.key === "engine/6in4" && r.kind === "tunnel-peer"));
  await attachAndRun(h, "tap-v6", VM6_MAC);
  const p = await nthBindingUpdate(h, 1);

  const steps = h.calls.filter((c) => c.method === "allocateCareOf" || c.method === "registerMigration");
  t.deepEqual(steps.map((c) => c.method), ["allocateCareOf", "registerMigration"]);
  t.deepEqual(steps[0].request, { hostId: "h4", vmId: "v6", homeAddress: HOME6 });
  t.deepEqual(steps[1].request, { vmId: "v6", homeAddress: HOME6, homeAgent: HOME_AGENT6, sourceHostId: "h6", destinationHostId: "h4", careOfIpv4: H4_CARE_OF4, careOfIpv6: H4_CARE_OF6 });
  t.true(steps[1].rulesAtCall.includes("vm/v6/out") && steps[1].rulesAtCall.includes("vm/v6/out-care-of"), "the host's rules before the engine's");

  // 6in4 from the IPv4 care-of address to the engine, by the default gateway.
  t.is(formatMac(p.frame, 0), GATEWAY_MAC);
  t.is(formatMac(p.frame, 6), PV0_MAC);
  t.is(hex(p.outer.subarray(12, 16)), hex(ipv4Bytes(H4_CARE_OF4, "t")));
  t.is(hex(p.outer.subarray(16, 20)), hex(ipv4Bytes(ENGINE4, "t")));
  // Inside: from the IPv6 care-of address to r2, the Home Address option holding the home address (RFC 6275 §6.3, §11.7.1).
  t.is(hex(p.packet.subarray(8, 24)), hex(bytes6(H4_CARE_OF6)));
  t.is(hex(p.packet.subarray(24, 40)), hex(bytes6(HOME_AGENT6)));
  t.true(p.chain.homeAddressOffset >= 0);
  t.is(hex(p.packet.subarray(p.chain.homeAddressOffset, p.chain.homeAddressOffset + 16)), hex(bytes6(HOME6)));
  t.true(p.bu.homeRegistration && p.bu.acknowledge);
  t.is(p.bu.lifetime, 75, "300 s in 4-second units");
  const v4coa = p.bu.options.find((o) => o.type === MOBILITY_OPTION.IPV4_CARE_OF_ADDRESS);
  t.is(v4coa && decodeMobilityOption.ipv4CareOfAddress(v4coa), 0xc0000264, "RFC 5555 IPv4 care-of address 192.0.2.100");
  const mesg = p.bu.options.find((o) => o.type === MOBILITY_OPTION.MESG_ID);
  t.is(mesg && decodeMobilityOption.messageId(mesg), ntpFromUnixMs(T0, 0), "RFC 4285 §6 timestamp from the injected clock");
  // RFC 4285 §5: the MN-HA option last, SPI 257; its authenticator checked by hand and by r2's code.
  const auth = p.bu.options.at(-1)!;
  t.is(auth.type, MOBILITY_OPTION.AUTH);
  t.deepEqual(decodeMobilityOption.auth(auth) && { subtype: decodeMobilityOption.auth(auth)!.subtype, spi: decodeMobilityOption.auth(auth)!.spi }, { subtype: AUTH_SUBTYPE.MN_HA, spi: 257 });
  const { expected, sent } = mnHaAuthenticator(KEY6, H4_CARE_OF6, HOME6, p);
  t.is(sent, expected);
  t.is(checkMnHa(p.packet, p.bu, SA6, bytes6(H4_CARE_OF6), bytes6(HOME6)), "ok");
  t.is(checkMnHa(p.packet, p.bu, WRONG_SA6, bytes6(H4_CARE_OF6), bytes6(HOME6)), "bad-authenticator");
  // RFC 6275 §6.1.1: the MH checksum with the home address as the pseudo-header's source.
  t.true(verifyMhChecksum(p.packet, p.bu.offset, p.bu.length, pseudoHeaderSum6(bytes6(HOME6), 0, bytes6(HOME_AGENT6), 0, IPPROTO.MOBILITY, p.bu.length)));

  const ts = decodeWithTshark([p.frame]);
  t.deepEqual(ts.problems, []);
  t.regex(frameProtocols(ts)[0], /eth:ethertype:ip:ipv6:ipv6\.dstopts:mipv6/);

  // Answered, so that the agent is not left waiting when the test ends.
  h.forwarder.processFrame(0, engine6in4(homeAgent6().handlePacket(p.packet, h.clock.now).reply!), () => {}, h.clock.now);
  await until(() => h.handovers.length === 1, "the handover");
});

test("the IPv6 care-of address is checked against the segment's prefix by its bits, not its text (2001:db8:3:1:: is outside a /96; 2001:db8:3ff:: inside a /40)", async (t) => {
  const cases = [
    { ipv6Prefix: "2001:db8:3::/96", careOfIpv6: H4_CARE_OF6, outside: false },
    { ipv6Prefix: "2001:db8:3::/96", careOfIpv6: "2001:db8:3:1::c000:264", outside: true },
    { ipv6Prefix: "2001:db8:300::/40", careOfIpv6: "2001:db8:3ff::c000:264", outside: false },
    { ipv6Prefix: "2001:db8:300::/40", careOfIpv6: "2001:db8:400::c000:264", outside: true },
  ];
  for (const c of cases) {
    const warnings: string[] = [];
    const log = createLogger({}, "warn", (line) => {
      const entry = JSON.parse(line) as { level: string; msg: string };
      if (entry.level === "warn") warnings.push(entry.msg);
    });
    const h = await h4Harness(t, {}, {
      ipv6Prefix: c.ipv6Prefix, log,
      allocateCareOf: () => ({ careOfIpv4: H4_CARE_OF4, careOfIpv6: c.careOfIpv6, lifetimeSeconds: 300, pool: "192.0.2.96/28", expiresAtMs: 0n }),
    });
    h.fire({ kind: "attached", port: "tap-v6", bridge: "visitor" });
    await until(() => h.calls.some((call) => call.method === "prepareMigration"), "the prepare");
    t.is(warnings.includes("care-of address outside the segment's prefix"), c.outside, `${c.careOfIpv6} in ${c.ipv6Prefix}`);
  }
});

test("r2's acknowledgement, 6in4 from the engine, completes the IPv6 VM's handover; the VM's packets then leave 6in4", async (t) => {
  const h = await h4Harness(t);
  await attachAndRun(h, "tap-v6", VM6_MAC);
  const p = await nthBindingUpdate(h, 1);
  const ha = homeAgent6();
  const outcome = ha.handlePacket(p.packet, h.clock.now);
  t.is(outcome.status, BA_STATUS.ACCEPTED, outcome.reason);
  t.like(ha.binding(HOME6), { careOfAddress: H4_CARE_OF6, careOfIPv4: H4_CARE_OF4, sequence: p.bu.sequence });
  t.is(h.handovers.length, 0, "not done before the acknowledgement");
  h.clock.now += 30;
  const frame = engine6in4(outcome.reply!);
  t.deepEqual(decodeWithTshark([frame]).problems, []);
  h.forwarder.processFrame(0, frame, () => t.fail("the acknowledgement is taken, not forwarded"), h.clock.now);
  t.is(h.forwarder.counters.actions.decap, 1);
  t.is(h.forwarder.counters.actions.deliver, 1);
  await until(() => h.handovers.length === 1, "the handover");
  const tl = h.agent.timelines[0];
  t.true(tl.ok, tl.error);
  t.like(tl, { vmId: "v6", direction: "6to4", careOfIPv4: H4_CARE_OF4, careOfIPv6: H4_CARE_OF6, registrationAttempts: 1, registeredMs: 30 });

  // Reverse tunnelling (flow 3.2 d): what the VM sends from its home address leaves 6in4 to the engine.
  const fromVm6 = buildUdp6({ src: bytes6(HOME6), dst: bytes6(CORRESPONDENT6), srcPort: 5000, dstPort: 6000 }, new TextEncoder().encode("from the VM"));
  const out: { ifIndex: number; frame: Uint8Array }[] = [];
  h.forwarder.processFrame(1, buildEthernetFrame(parseMac(PV1_MAC), parseMac(VM6_MAC), ETHERTYPE.IPV6, fromVm6), (ifIndex, f) => out.push({ ifIndex, frame: f.slice() }), h.clock.now);
  t.is(out.length, 1);
  t.is(out[0].ifIndex, 0);
  t.is(out[0].frame[14 + 9], IPPROTO.IPV6);
  t.is(hex(out[0].frame.subarray(14 + 12, 14 + 20)), hex(ipv4Bytes(H4_CARE_OF4, "t")) + hex(ipv4Bytes(ENGINE4, "t")));
});

/** r2 with a binding made by another host's agent whose sequence number runs ahead of this host's clock. */
test("a BA with status 135 makes the agent send the BU again with a sequence number after r2's, and the second is accepted (RFC 6275 §11.7.3)", async (t) => {
  const h = await h4Harness(t);
  const { ha, ahead } = homeAgentAhead();
  await attachAndRun(h, "tap-v6", VM6_MAC);
  const first = await nthBindingUpdate(h, 1);
  const refused = ha.handlePacket(first.packet, h.clock.now);
  t.is(refused.status, BA_STATUS.SEQUENCE_NUMBER_OUT_OF_WINDOW);
  h.clock.now += 10;
  h.forwarder.processFrame(0, engine6in4(refused.reply!), () => {}, h.clock.now);
  const second = await nthBindingUpdate(h, 2);
  t.is(second.bu.sequence, (ahead + 1) & 0xffff);
  t.true(isNewerSequence(second.bu.sequence, ahead));
  t.is(checkMnHa(second.packet, second.bu, SA6, bytes6(H4_CARE_OF6), bytes6(HOME6)), "ok");
  const accepted = ha.handlePacket(second.packet, h.clock.now);
  t.is(accepted.status, BA_STATUS.ACCEPTED, accepted.reason);
  t.is(ha.binding(HOME6)?.careOfAddress, H4_CARE_OF6);
  h.forwarder.processFrame(0, engine6in4(accepted.reply!), () => {}, h.clock.now);
  await until(() => h.handovers.length === 1, "the handover");
  t.true(h.agent.timelines[0].ok, h.agent.timelines[0].error);
  t.is(h.agent.timelines[0].registrationAttempts, 1, "a resend after 135 is an answer, not a retransmission");
});

// Bug (clients/agent/agent.ts register()): the 135 resynchronisation uses up one of
// registration.maxAttempts, so with maxAttempts 1 an answered registration fails as
// "no answer from home agent 2001:db8:1::1 after 1 attempts" without sending the resynchronised BU.
test("with maxAttempts 1, a BA with status 135 still leads to the resynchronised BU and a completed handover", async (t) => {
  const h = await h4Harness(t, { maxAttempts: 1 });
  const { ha } = homeAgentAhead();
  await attachAndRun(h, "tap-v6", VM6_MAC);
  const first = await nthBindingUpdate(h, 1);
  h.forwarder.processFrame(0, engine6in4(ha.handlePacket(first.packet, h.clock.now).reply!), () => {}, h.clock.now);
  await until(() => sent6in4(h).length === 2 || h.handovers.length === 1, "a second BU or the handover's end");
  t.is(h.handovers.length, 0, h.agent.timelines[0]?.error);
  const second = await nthBindingUpdate(h, 2);
  h.forwarder.processFrame(0, engine6in4(ha.handlePacket(second.packet, h.clock.now).reply!), () => {}, h.clock.now);
  await until(() => h.handovers.length === 1, "the handover");
  t.true(h.agent.timelines[0].ok);
});

// Bug (clients/agent/agent.ts register()): checkAcknowledgement reports status and sequence even
// when the MN-HA check fails ("bad-auth"), and the 135 branch does not look at `reason`, so a
// forged, unauthenticated BA with status 135 sets the VM's sequence number to whatever it says.
test("a BA with status 135 that fails the MN-HA check is refused like any other bad-auth reply, not taken as a resync", async (t) => {
  const h = await h4Harness(t, { firstRetransmitMs: 50 });
  await attachAndRun(h, "tap-v6", VM6_MAC);
  const first = await nthBindingUpdate(h, 1);
  const timestamp = decodeMobilityOption.messageId(first.bu.options.find((o) => o.type === MOBILITY_OPTION.MESG_ID)!)!;
  const forged = signMnHa((o) => buildBindingAcknowledgement({ status: BA_STATUS.SEQUENCE_NUMBER_OUT_OF_WINDOW, sequence: 0x1234, lifetime: 0 }, o), [messageIdOption(timestamp)], WRONG_SA6, bytes6(H4_CARE_OF6), bytes6(HOME6));
  const ba = buildMobilityPacket({ src: bytes6(HOME_AGENT6), dst: bytes6(H4_CARE_OF6), routingHomeAddress: bytes6(HOME6) }, forged);
  h.forwarder.processFrame(0, engine6in4(ba), () => {}, h.clock.now);
  await until(() => sent6in4(h).length === 2 || h.handovers.length === 1, "a second BU or the handover's end");
  t.is(sent6in4(h).length, 1, "no BU with the forged sequence number + 1");
  t.false(h.agent.timelines[0].ok);
  t.regex(h.agent.timelines[0].error ?? "", /bad-auth/);
});

// Serial, with mock timers: the agent's stop() leaves the correspondent's refresh timer (2/3 of the
// lifetime, 200 s here) running, which with real timers keeps the test process from exiting.
test.serial("a correspondent's packet to the home address, 6in4 from the engine, makes the agent send it a BU (no H flag, from the care-of address, HAO = home address) 6in4 toward the engine", async (t) => {
  fakeTimers(t);
  const h = await h4Harness(t);
  await handover6(h);
  t.is(sent6in4(h).length, 1);
  const fromCn = buildUdp6({ src: bytes6(CORRESPONDENT6), dst: bytes6(HOME6), srcPort: 7000, dstPort: 5000, hopLimit: 60 }, new TextEncoder().encode("to the VM"));
  const delivered: { ifIndex: number; frame: Uint8Array }[] = [];
  h.forwarder.processFrame(0, engine6in4(fromCn), (ifIndex, f) => delivered.push({ ifIndex, frame: f.slice() }), h.clock.now);
  t.true(delivered.length > 0 && delivered.every((d) => d.ifIndex === 1), "the packet itself goes on to the VM's link");
  const p = await nthBindingUpdate(h, 2);
  // 6in4 from the IPv4 care-of address to the engine (the engine takes it: flow 3.2 k).
  t.is(hex(p.outer.subarray(12, 20)), hex(ipv4Bytes(H4_CARE_OF4, "t")) + hex(ipv4Bytes(ENGINE4, "t")));
  t.is(hex(p.packet.subarray(8, 24)), hex(bytes6(H4_CARE_OF6)));
  t.is(hex(p.packet.subarray(24, 40)), hex(bytes6(CORRESPONDENT6)));
  t.true(p.chain.homeAddressOffset >= 0);
  t.is(hex(p.packet.subarray(p.chain.homeAddressOffset, p.chain.homeAddressOffset + 16)), hex(bytes6(HOME6)));
  t.false(p.bu.homeRegistration, "no H flag: a correspondent registration");
  t.true(p.bu.acknowledge);
  t.false(p.bu.options.some((o) => o.type === MOBILITY_OPTION.AUTH), "no MN-HA option: the correspondent holds no key");
  t.true(verifyMhChecksum(p.packet, p.bu.offset, p.bu.length, pseudoHeaderSum6(bytes6(HOME6), 0, bytes6(CORRESPONDENT6), 0, IPPROTO.MOBILITY, p.bu.length)));
  t.deepEqual(decodeWithTshark([p.frame]).problems, []);

  // The same correspondent again: no second BU.
  h.forwarder.processFrame(0, engine6in4(fromCn), () => {}, h.clock.now);
  for (let i = 0; i < 50; i++) await new Promise((r) => setImmediate(r));
  t.is(sent6in4(h).length, 2);
  // The correspondent's acknowledgement (the engine answers for it) ends the exchange.
  const ack = buildMobilityPacket({ src: bytes6(CORRESPONDENT6), dst: bytes6(H4_CARE_OF6), routingHomeAddress: bytes6(HOME6) }, buildBindingAcknowledgement({ status: BA_STATUS.ACCEPTED, sequence: p.bu.sequence, lifetime: p.bu.lifetime }));
  h.forwarder.processFrame(0, engine6in4(ack), () => t.fail("the acknowledgement is taken"), h.clock.now);
  const accepted = async () => (await h.agent.metrics.registrations.get()).values.find((v) => v.labels.protocol === "mip6-correspondent" && v.labels.result === "accepted")?.value ?? 0;
  for (let i = 0; i < 200 && (await accepted()) === 0; i++) await new Promise((r) => setImmediate(r));
  t.is(await accepted(), 1);
});
