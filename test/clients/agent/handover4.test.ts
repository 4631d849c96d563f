// The privileged-VM agent (clients/agent/agent.ts), with the harness of ./harness.ts (a real
// Forwarder as its worker; the engine, hypervisor and wire mocked).
// An IPv4 VM on an IPv6 host (flow 3.1 b–g): the handover, the home agent's reply, refusals, detach.
import test from "ava";
import { createHmac } from "node:crypto";
import { ipv4Bytes, ipv6Bytes } from "../../../dataplane/forward/addresses.js";
import { formatMac } from "../../../dataplane/packet/ethernet.js";
import { IPPROTO } from "../../../dataplane/packet/ipv4.js";
import { MIP4_EXTENSION, MIP4_REPLY_CODE, parseMip4, verifyMobileHomeAuth } from "../../../dataplane/packet/mip4.js";
import { buildAuthenticatedRequest, requestIdentification } from "../../../mobility/mip4/registration.js";
import { type Mip4SecurityAssociation } from "../../../homeagent/mip4/homeagent.js";
import { decodeWithTshark, frameProtocols } from "../../helpers/tshark.js";
import { KEY, WRONG_KEY, HOME, HOME_AGENT, CARE_OF4, CARE_OF6, ENGINE6, GATEWAY_MAC, hex, harness, until, registrationRequest, replyFrame, homeAgent, vmPacketGoes, arrive } from "./harness.js";

test("an IPv4 VM on the visitor bridge: AllocateCareOf, then RegisterMigration, the host's 4in6 rule, and an authenticated RRQ through the engine", async (t) => {
  const h = await harness(t);
  t.is(h.agent.family, 6);
  t.is(vmPacketGoes(h), "routed", "before the VM's handover, its packets are routed");
  const { frame, payload } = await arrive(h);

  await until(() => h.calls.some((c) => c.method === "registerMigration"), "RegisterMigration");
  const steps = h.calls.filter((c) => c.method !== "heartbeat");
  t.deepEqual(steps.map((c) => c.method), ["allocateCareOf", "prepareMigration", "registerMigration"]);
  t.deepEqual(steps[0].request, { hostId: "h6", vmId: "v4", homeAddress: HOME });
  const migration = { vmId: "v4", homeAddress: HOME, homeAgent: HOME_AGENT, sourceHostId: "h4", destinationHostId: "h6", careOfIpv4: CARE_OF4, careOfIpv6: CARE_OF6 };
  t.deepEqual(steps[1].request, migration);
  t.deepEqual(steps[2].request, migration);
  t.false(steps[0].rulesAtCall.includes("vm/v4/out"));
  t.true(steps[1].rulesAtCall.includes("vm/v4/out"), "the host's rule is in place before the engine is asked for its own");
  t.true(h.forwarder.currentRules().some((r) => r.key === "engine/4in6" && r.kind === "tunnel-peer"));

  // The frame: IPv6 from the care-of address to the engine, IPv4 in it, UDP 434 to the home agent.
  t.is(formatMac(frame, 0), GATEWAY_MAC);
  const { outer, inner } = registrationRequest(frame);
  t.is(hex(outer.subarray(8, 24)), hex(ipv6Bytes(CARE_OF6, "t")));
  t.is(hex(outer.subarray(24, 40)), hex(ipv6Bytes(ENGINE6, "t")));
  t.is(inner[9], IPPROTO.UDP);
  t.is(hex(inner.subarray(12, 16)), hex(ipv4Bytes(HOME, "t")));
  t.is(hex(inner.subarray(16, 20)), hex(ipv4Bytes(HOME_AGENT, "t")));
  const ihl = (inner[0] & 0x0f) << 2;
  t.is((inner[ihl] << 8) | inner[ihl + 1], 434);
  t.is((inner[ihl + 2] << 8) | inner[ihl + 3], 434);

  const rrq = parseMip4(payload);
  t.truthy(rrq);
  t.is(rrq!.type, 1);
  if (rrq !== undefined && rrq.type === 1) {
    t.is(rrq.lifetime, 300);
    t.is(rrq.careOfAddress, 0xc633640a, "care-of 198.51.100.10, the pool address");
    t.is(rrq.homeAgent, 0xc0000202);
  }
  // The authentication extension, checked by hand (RFC 5944 §3.5.2: HMAC over the message through the SPI) and by our codec.
  const auth = payload.subarray(payload.length - 38);
  t.is(auth[0], MIP4_EXTENSION.MOBILE_HOME_AUTH);
  t.is(auth[1], 36);
  t.is(new DataView(auth.buffer, auth.byteOffset).getUint32(2), 256);
  const expected = createHmac("sha256", Buffer.from(KEY, "hex")).update(payload.subarray(0, payload.length - 32)).digest();
  t.is(hex(payload.subarray(payload.length - 32)), expected.toString("hex"));
  t.true(verifyMobileHomeAuth(payload, rrq!, 256, Uint8Array.from(Buffer.from(KEY, "hex")), "hmac-sha256"));
  t.false(verifyMobileHomeAuth(payload, rrq!, 256, Uint8Array.from(Buffer.from(WRONG_KEY, "hex")), "hmac-sha256"));

  const ts = decodeWithTshark([frame]);
  t.deepEqual(ts.problems, []);
  t.regex(frameProtocols(ts)[0], /eth:ethertype:ipv6:ip:udp:mip/);

  // The host's encapsulate rule: the VM's own packets now leave 4in6 to the engine.
  t.is(vmPacketGoes(h), "4in6 to the engine");
  // Answered, so that stop() does not wait out the retransmission timer (it does not cancel it).
  const outcome = homeAgent(KEY).handleRequest({ source: HOME, destination: HOME_AGENT, sourcePort: 434, payload }, h.clock.now);
  h.forwarder.processFrame(0, replyFrame(outcome.reply!), () => {}, h.clock.now);
  await until(() => h.handovers.length === 1, "the handover");
});

test("the home agent's reply, 4in6 from the engine, completes the handover", async (t) => {
  const h = await harness(t);
  const { payload } = await arrive(h);
  t.is(h.handovers.length, 0, "not done before the reply");
  const ha = homeAgent(KEY);
  const outcome = ha.handleRequest({ source: HOME, destination: HOME_AGENT, sourcePort: 434, payload }, h.clock.now);
  t.is(outcome.code, MIP4_REPLY_CODE.ACCEPTED, outcome.reason);
  t.is(ha.binding(HOME)?.careOfAddress, CARE_OF4);
  h.clock.now += 40;
  h.forwarder.processFrame(0, replyFrame(outcome.reply!), () => t.fail("the reply is taken, not forwarded"), h.clock.now);
  t.is(h.forwarder.counters.actions.decap, 1);
  t.is(h.forwarder.counters.actions.deliver, 1);
  await until(() => h.handovers.length === 1, "the handover");
  const tl = h.agent.timelines[0];
  t.true(tl.ok, tl.error);
  t.is(tl.vmId, "v4");
  t.is(tl.direction, "4to6");
  t.is(tl.careOfIPv4, CARE_OF4);
  t.is(tl.careOfIPv6, CARE_OF6);
  t.is(tl.registrationAttempts, 1);
  t.is(tl.registeredMs, 40);
  t.true(tl.allocatedMs! <= tl.hostRulesMs! && tl.hostRulesMs! <= tl.engineRulesMs! && tl.engineRulesMs! <= tl.registeredMs!);
});

test("a reply authenticated with another key fails the handover with a clear error", async (t) => {
  const h = await harness(t);
  const { payload } = await arrive(h);
  // A home agent holding another key, answering the same Identification: an accepted reply, wrongly signed for us.
  const wrongSa: Mip4SecurityAssociation = { spi: 256, algorithm: "hmac-sha256", key: Uint8Array.from(Buffer.from(WRONG_KEY, "hex")) };
  const resigned = buildAuthenticatedRequest({ homeAddress: HOME, homeAgent: HOME_AGENT, careOfAddress: CARE_OF4, lifetimeS: 300, sa: wrongSa, nowMs: h.clock.now, identification: requestIdentification(payload) });
  const outcome = homeAgent(WRONG_KEY).handleRequest({ source: HOME, destination: HOME_AGENT, sourcePort: 434, payload: resigned }, h.clock.now);
  t.is(outcome.code, MIP4_REPLY_CODE.ACCEPTED);
  h.forwarder.processFrame(0, replyFrame(outcome.reply!), () => {}, h.clock.now);
  await until(() => h.handovers.length === 1, "the handover's end");
  const tl = h.agent.timelines[0];
  t.false(tl.ok);
  t.regex(tl.error ?? "", /home agent 192\.0\.2\.2 .* v4: bad-auth/);
  t.false((tl.error ?? "").includes(KEY) || (tl.error ?? "").includes(WRONG_KEY));
});

test("a refusal from the home agent (our request under the wrong key: 131) fails the handover, naming why", async (t) => {
  const h = await harness(t);
  const { payload } = await arrive(h);
  // The home agent has another key: it refuses with 131, signed with its key, which we cannot check either.
  const outcome = homeAgent(WRONG_KEY).handleRequest({ source: HOME, destination: HOME_AGENT, sourcePort: 434, payload }, h.clock.now);
  t.is(outcome.code, MIP4_REPLY_CODE.HA_MOBILE_NODE_FAILED_AUTHENTICATION);
  h.forwarder.processFrame(0, replyFrame(outcome.reply!), () => {}, h.clock.now);
  await until(() => h.handovers.length === 1, "the handover's end");
  t.false(h.agent.timelines[0].ok);
  t.regex(h.agent.timelines[0].error ?? "", /refused the registration of v4/);
});

test("a reply from someone other than the engine's tunnel is not taken", async (t) => {
  const h = await harness(t);
  const { payload } = await arrive(h);
  const outcome = homeAgent(KEY).handleRequest({ source: HOME, destination: HOME_AGENT, sourcePort: 434, payload }, h.clock.now);
  const frame = replyFrame(outcome.reply!);
  // Same reply, outer source not the engine: no tunnel peer, dropped before the agent sees it.
  const forged = frame.slice();
  forged[14 + 8 + 15] ^= 0x01;
  h.forwarder.processFrame(0, forged, () => {}, h.clock.now);
  t.is(h.forwarder.counters.drops["unknown-peer"], 1);
  t.is(h.forwarder.counters.actions.deliver, 0);
  for (let i = 0; i < 50; i++) await new Promise((r) => setImmediate(r));
  t.is(h.handovers.length, 0);
  h.forwarder.processFrame(0, frame, () => {}, h.clock.now);
  await until(() => h.handovers.length === 1, "the handover");
  t.true(h.agent.timelines[0].ok);
});

test("detach removes the host's rules: the VM's packets are routed, not wrapped", async (t) => {
  const h = await harness(t);
  const { payload } = await arrive(h);
  const outcome = homeAgent(KEY).handleRequest({ source: HOME, destination: HOME_AGENT, sourcePort: 434, payload }, h.clock.now);
  h.forwarder.processFrame(0, replyFrame(outcome.reply!), () => {}, h.clock.now);
  await until(() => h.handovers.length === 1, "the handover");
  t.true(h.agent.timelines[0].ok);
  t.is(vmPacketGoes(h), "4in6 to the engine");

  h.fire({ kind: "detached", port: "tap-v4", bridge: "visitor" });
  await until(() => !h.forwarder.currentRules().some((r) => r.key === "vm/v4/out"), "the rule's removal");
  t.is(vmPacketGoes(h), "routed");
  // The care-of address is no longer ours: the engine's tunnel to it is not taken.
  const before = h.forwarder.counters.actions.decap;
  h.forwarder.processFrame(0, replyFrame(outcome.reply!), () => {}, h.clock.now);
  t.is(h.forwarder.counters.actions.decap, before);
  // The engine's tunnel peer stays: it is the host's, not the VM's.
  t.true(h.forwarder.currentRules().some((r) => r.key === "engine/4in6"));
});

test("a port of an unknown VM, or a VM of the host's own protocol on the visitor bridge, starts no handover", async (t) => {
  const h = await harness(t);
  h.fire({ kind: "attached", port: "tap-unknown", bridge: "visitor" });
  h.fire({ kind: "attached", port: "tap-v4", bridge: "home" });
  for (let i = 0; i < 50; i++) await new Promise((r) => setImmediate(r));
  t.deepEqual(h.calls.filter((c) => c.method !== "heartbeat"), []);
  t.is(h.handovers.length, 0);
  t.is(h.frames.length, 0);
});
