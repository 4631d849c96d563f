// The privileged-VM agent (clients/agent/agent.ts), with the harness of ./harness.ts (a real
// Forwarder as its worker; the engine, hypervisor and wire mocked).
// Coming home (RFC 5944 §4.6, RFC 6275 §11.5.4): the announcement, the deregistration, RegisterMigration without care-of addresses.
import test from "ava";
import { ipv4Bytes } from "../../../dataplane/forward/addresses.js";
import { ARP_OPERATION, parseArp } from "../../../dataplane/packet/arp.js";
import { ETHERTYPE, formatMac } from "../../../dataplane/packet/ethernet.js";
import { ICMP6_TYPE } from "../../../dataplane/packet/icmp6.js";
import { IPPROTO } from "../../../dataplane/packet/ipv4.js";
import { BA_STATUS } from "../../../dataplane/packet/mip6.js";
import { parseNd } from "../../../dataplane/packet/nd.js";
import { MIP4_REPLY_CODE, parseMip4 } from "../../../dataplane/packet/mip4.js";
import { buildAuthenticatedRequest } from "../../../mobility/mip4/registration.js";
import { type Mip4SecurityAssociation } from "../../../homeagent/mip4/homeagent.js";
import { checkMnHa } from "../../../mobility/mip6/auth.js";
import { buildBindingUpdatePacket } from "../../../mobility/mip6/binding-update.js";
import { decodeWithTshark, frameProtocols } from "../../helpers/tshark.js";
import { KEY, HOME, HOME_AGENT, CARE_OF4, PV0_MAC, VM_MAC, R1_MAC, HOME6, HOME_AGENT6, R2_MAC, VM6_MAC, H4_CARE_OF4, H4_CARE_OF6, T0, hex, harness, settle, until, fakeTimers, homeAgent, untilMs, unavailable } from "./harness.js";
import { etherType, SA6, bytes6, homeAgent6, bindingUpdateIn, h4Harness } from "./mip6.js";

test.serial("an IPv4 VM's port on the home bridge of its home host: a gratuitous ARP with its MAC, a deregistration straight to r1, RegisterMigration without care-of addresses", async (t) => {
  const timers = fakeTimers(t);
  // r1 holds the binding h6's agent made.
  const sa: Mip4SecurityAssociation = { spi: 256, algorithm: "hmac-sha256", key: Uint8Array.from(Buffer.from(KEY, "hex")) };
  const r1 = homeAgent(KEY);
  const away = buildAuthenticatedRequest({ homeAddress: HOME, homeAgent: HOME_AGENT, careOfAddress: CARE_OF4, lifetimeS: 300, sa, nowMs: T0 - 1000 });
  t.is(r1.handleRequest({ source: HOME, destination: HOME_AGENT, sourcePort: 434, payload: away }, T0 - 1000).code, MIP4_REPLY_CODE.ACCEPTED);

  const h = await h4Harness(t);
  h.fire({ kind: "attached", port: "tap-v4", bridge: "home" });
  await settle();
  t.is(h.frames.length, 0, "nothing before the VM runs here");
  t.false(h.calls.some((c) => c.method === "registerMigration"));
  h.rarp(VM_MAC, 0);
  await until(() => h.handovers.length === 1, "the home-coming");
  t.is(h.handovers[0].activation, "rarp");
  t.true(h.handovers[0].ok, h.handovers[0].error);
  t.is(h.handovers[0].direction, "home");
  t.deepEqual(h.calls.filter((c) => c.method === "registerMigration").map((c) => c.request), [
    { vmId: "v4", homeAddress: HOME, homeAgent: HOME_AGENT, sourceHostId: "", destinationHostId: "h4", careOfIpv4: "", careOfIpv6: "" },
  ]);
  t.false(h.calls.some((c) => c.method === "allocateCareOf"));
  t.is(h.frames.length, 2);
  t.true(h.frames.every((f) => f.ifIndex === 0), "both on the uplink");

  // Gratuitous ARP (RFC 5227 §3, RFC 5944 §4.6): sender and target = the home address, sender MAC the VM's.
  const garp = h.frames[0].frame;
  t.is(formatMac(garp, 0), "ff:ff:ff:ff:ff:ff");
  t.is(formatMac(garp, 6), PV0_MAC);
  t.is(etherType(garp), ETHERTYPE.ARP);
  const arp = parseArp(garp, 14)!;
  t.is(arp.operation, ARP_OPERATION.REQUEST);
  t.is(formatMac(garp, arp.senderMacOffset), VM_MAC);
  t.is(arp.senderIp, 0xc0000201);
  t.is(arp.targetIp, 0xc0000201);

  // The deregistration: plain IPv4/UDP 434 to r1's MAC, not tunnelled; lifetime 0, care-of = home.
  const dereg = h.frames[1].frame;
  t.is(formatMac(dereg, 0), R1_MAC);
  t.is(etherType(dereg), ETHERTYPE.IPV4);
  const ip = dereg.subarray(14);
  t.is(ip[9], IPPROTO.UDP);
  t.is(hex(ip.subarray(12, 20)), hex(ipv4Bytes(HOME, "t")) + hex(ipv4Bytes(HOME_AGENT, "t")));
  const payload = ip.subarray(((ip[0] & 0x0f) << 2) + 8);
  const rrq = parseMip4(payload);
  t.true(rrq !== undefined && rrq.type === 1 && rrq.lifetime === 0 && rrq.careOfAddress === 0xc0000201);
  const outcome = r1.handleRequest({ source: HOME, destination: HOME_AGENT, sourcePort: 434, payload: payload.slice() }, h.clock.now);
  t.is(outcome.code, MIP4_REPLY_CODE.ACCEPTED, outcome.reason);
  t.is(r1.binding(HOME), undefined, "r1 dropped the binding");

  const ts = decodeWithTshark(h.frames.map((f) => f.frame));
  t.deepEqual(ts.problems, []);
  t.regex(frameProtocols(ts)[0], /eth:ethertype:arp/);
  t.regex(frameProtocols(ts)[1], /eth:ethertype:ip:udp:mip/);
  // The announcement is repeated once r1 has stopped proxying.
  timers.tick(50);
  t.is(h.frames.length, 3);
  t.is(hex(h.frames[2].frame), hex(garp));
});

test("coming home while the engine is away: the deregistration goes at once, RegisterMigration is asked again until the engine answers", async (t) => {
  let down = 2;
  const h = await h4Harness(t, {}, {
    registerMigration: () => {
      if (down-- > 0) throw unavailable();
      return { migrationId: "m2", ruleRevision: 7n, translatedIpv4: "", translatedIpv6: "", returnedHome: true };
    },
  });
  h.fire({ kind: "attached", port: "tap-v4", bridge: "home" });
  await settle();
  h.rarp(VM_MAC, 0);
  await untilMs(() => h.handovers.length === 1, "the home-coming, after the engine came back");
  t.true(h.handovers[0].ok, h.handovers[0].error);
  t.is(h.handovers[0].direction, "home");
  t.is(h.calls.filter((c) => c.method === "registerMigration").length, 3, "two refusals, then the answer");
  // The VM was reachable at home before the engine answered: the announcement and the
  // deregistration went first, once.
  const uplink = h.frames.filter((f) => f.ifIndex === 0);
  t.is(etherType(uplink[0].frame), ETHERTYPE.ARP);
  t.is(uplink.filter((f) => etherType(f.frame) === ETHERTYPE.IPV4).length, 1, "one deregistration");
});

test.serial("an IPv6 VM's port on the home bridge of its home host: an unsolicited NA (O set) with its MAC, a deregistration straight to r2, RegisterMigration without care-of addresses", async (t) => {
  fakeTimers(t);
  // r2 holds the binding h4's agent made (an older sequence number, as the clock goes).
  const r2 = homeAgent6();
  const away = buildBindingUpdatePacket({ homeAddress: HOME6, careOfAddress: H4_CARE_OF6, careOfIPv4: H4_CARE_OF4, homeAgent: HOME_AGENT6, sequence: (Math.floor(T0 / 64) - 100) & 0xffff, lifetimeS: 300, sa: SA6, nowMs: T0 - 1000 });
  t.is(r2.handlePacket(away, T0 - 1000).status, BA_STATUS.ACCEPTED);

  const h = await harness(t);
  h.fire({ kind: "attached", port: "tap-v6", bridge: "home" });
  await settle();
  h.rarp(VM6_MAC, 0);
  await until(() => h.handovers.length === 1, "the home-coming");
  t.true(h.handovers[0].ok, h.handovers[0].error);
  t.deepEqual(h.calls.filter((c) => c.method === "registerMigration").map((c) => c.request), [
    { vmId: "v6", homeAddress: HOME6, homeAgent: HOME_AGENT6, sourceHostId: "", destinationHostId: "h6", careOfIpv4: "", careOfIpv6: "" },
  ]);
  t.is(h.frames.length, 2);
  t.true(h.frames.every((f) => f.ifIndex === 0), "both on the uplink");

  // Unsolicited NA (RFC 4861 §7.2.6, RFC 6275 §11.5.4): to all nodes, R and S clear, O set, TLLA the VM's MAC.
  const naFrame = h.frames[0].frame;
  t.is(formatMac(naFrame, 0), "33:33:00:00:00:01");
  t.is(formatMac(naFrame, 6), PV0_MAC);
  t.is(etherType(naFrame), ETHERTYPE.IPV6);
  const na6 = naFrame.subarray(14);
  t.is(na6[6], IPPROTO.ICMPV6);
  t.is(na6[7], 255);
  t.is(hex(na6.subarray(8, 10)), "fe80", "from the port's link-local address");
  t.is(hex(na6.subarray(24, 40)), hex(bytes6("ff02::1")));
  t.is(na6[40], ICMP6_TYPE.NEIGHBOR_ADVERTISEMENT);
  const nd = parseNd(na6, 40)!;
  t.like(nd, { router: false, solicited: false, override: true });
  t.is(hex(na6.subarray(nd.targetOffset, nd.targetOffset + 16)), hex(bytes6(HOME6)));
  t.true(nd.targetLinkLayerOffset >= 0);
  t.is(formatMac(na6, nd.targetLinkLayerOffset), VM6_MAC);

  // The deregistration: native IPv6 to r2's MAC, from the home address, no HAO (at home), lifetime 0.
  const dereg = h.frames[1].frame;
  t.is(formatMac(dereg, 0), R2_MAC);
  t.is(etherType(dereg), ETHERTYPE.IPV6);
  const p = bindingUpdateIn(dereg.subarray(14));
  t.is(p.packet[6], IPPROTO.MOBILITY, "no extension header, no tunnel");
  t.is(hex(p.packet.subarray(8, 40)), hex(bytes6(HOME6)) + hex(bytes6(HOME_AGENT6)));
  t.is(p.bu.lifetime, 0);
  t.true(p.bu.homeRegistration);
  t.is(checkMnHa(p.packet, p.bu, SA6, bytes6(HOME6), bytes6(HOME6)), "ok");
  const outcome = r2.handlePacket(p.packet, h.clock.now);
  t.is(outcome.status, BA_STATUS.ACCEPTED, outcome.reason);
  t.deepEqual(outcome.events.map((e) => [e.kind, e.reason]), [["removed", "deregistration"]]);
  t.is(r2.binding(HOME6), undefined);

  const ts = decodeWithTshark(h.frames.map((f) => f.frame));
  t.deepEqual(ts.problems, []);
  t.regex(frameProtocols(ts)[0], /eth:ethertype:ipv6:icmpv6/);
  t.regex(frameProtocols(ts)[1], /eth:ethertype:ipv6:mipv6/);
});
