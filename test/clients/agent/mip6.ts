// The IPv6 side of the agent tests: r2, the 6in4 frames of h4, binding updates (flow 3.2).
import type { ExecutionContext } from "ava";
import { createHmac } from "node:crypto";
import { ipv4Bytes, ipv6Bytes } from "../../../dataplane/forward/addresses.js";
import { buildEthernetFrame, ETHERTYPE, parseMac } from "../../../dataplane/packet/ethernet.js";
import { buildIPv4Packet, IPPROTO } from "../../../dataplane/packet/ipv4.js";
import { walkIPv6Extensions, type IPv6Chain } from "../../../dataplane/packet/ipv6.js";
import { BA_STATUS, MH_TYPE, parseMobilityHeader, type BindingUpdate } from "../../../dataplane/packet/mip6.js";
import { buildBindingUpdatePacket } from "../../../mobility/mip6/binding-update.js";
import { Mip6HomeAgent, type Mip6SecurityAssociation } from "../../../homeagent/mip6/homeagent.js";
import { PV0_MAC, GATEWAY_MAC, KEY6, WRONG_KEY6, HOME6, HOME_AGENT6, VM6_MAC, ENGINE4, H4_CARE_OF4, T0, hex, agentConfig4, type Harness, type HarnessOptions, harness, attachAndRun, until, homeAgent, H4_ANSWERS } from "./harness.js";

// ---------------------------------------------------------------- an IPv6 VM on the IPv4 host h4 (flow 3.2 b–f, k)

export const etherType = (frame: Uint8Array): number => (frame[12] << 8) | frame[13];
export const SA6: Mip6SecurityAssociation = { spi: 257, key: Uint8Array.from(Buffer.from(KEY6, "hex")) };
export const WRONG_SA6: Mip6SecurityAssociation = { spi: 257, key: Uint8Array.from(Buffer.from(WRONG_KEY6, "hex")) };
export const bytes6 = (a: string): Uint8Array => ipv6Bytes(a, "t");

/** r2, the real protocol core, holding the VM's key. */
export function homeAgent6(sa: Mip6SecurityAssociation = SA6): Mip6HomeAgent {
  return new Mip6HomeAgent({ homeAgentAddress: HOME_AGENT6, homePrefix: "2001:db8:1::/64", maxLifetimeS: 600, securityAssociations: new Map([[HOME6, sa]]) });
}

/** What the agent sent 6in4 on the IPv4 host's uplink: the frame, its outer IPv4 packet and the IPv6 packet inside. */
export function sent6in4(h: Harness): { frame: Uint8Array; outer: Uint8Array; inner: Uint8Array }[] {
  return h.frames.filter((f) => f.ifIndex === 0 && etherType(f.frame) === ETHERTYPE.IPV4 && f.frame[14 + 9] === IPPROTO.IPV6).map(({ frame }) => {
    const outer = frame.subarray(14);
    return { frame, outer, inner: outer.subarray((outer[0] & 0x0f) << 2) };
  });
}

/** The engine's 6in4 frame to the VM's IPv4 care-of address (flow 3.2 j), carrying `inner`. */
export function engine6in4(inner: Uint8Array): Uint8Array {
  const outer = buildIPv4Packet({ src: ipv4Bytes(ENGINE4, "t"), dst: ipv4Bytes(H4_CARE_OF4, "t"), ttl: 62, protocol: IPPROTO.IPV6 }, inner);
  return buildEthernetFrame(parseMac(PV0_MAC), parseMac(GATEWAY_MAC), ETHERTYPE.IPV4, outer);
}

export interface MobilityPacket { packet: Uint8Array; chain: IPv6Chain; bu: BindingUpdate }

/** The Binding Update in an IPv6 packet, with its extension chain. */
export function bindingUpdateIn(packet: Uint8Array): MobilityPacket {
  const chain = walkIPv6Extensions(packet, 0);
  if (chain === undefined || chain.upperProtocol !== IPPROTO.MOBILITY) throw new Error("not a Mobility Header packet");
  const mh = parseMobilityHeader(packet, chain.upperOffset);
  if (mh === undefined || mh.mhType !== MH_TYPE.BINDING_UPDATE) throw new Error("not a Binding Update");
  return { packet: packet.slice(), chain, bu: mh };
}

/** Waits for the agent's `n`-th 6in4 packet (1-based) and returns its Binding Update. */
export async function nthBindingUpdate(h: Harness, n: number): Promise<MobilityPacket & { frame: Uint8Array; outer: Uint8Array }> {
  await until(() => sent6in4(h).length >= n, `6in4 packet ${n}`);
  const s = sent6in4(h)[n - 1];
  return { ...bindingUpdateIn(s.inner), frame: s.frame, outer: s.outer };
}

export function h4Harness(t: ExecutionContext, registration: Parameters<typeof agentConfig4>[0] = {}, options: HarnessOptions = {}): Promise<Harness> {
  return harness(t, { config: agentConfig4(registration), ...H4_ANSWERS, ...options });
}

/** RFC 4285 §5.1, computed here with node:crypto: HMAC-SHA1 over CoA | HoA | the MH through the SPI (checksum zero), first 96 bits. */
export function mnHaAuthenticator(key: string, careOf: string, home: string, p: MobilityPacket): { expected: string; sent: string } {
  const auth = p.bu.options.at(-1)!;
  const covered = Buffer.from(p.packet.subarray(p.bu.offset, auth.offset + 7));
  covered[4] = 0;
  covered[5] = 0;
  const mac = createHmac("sha1", Buffer.from(key, "hex")).update(bytes6(careOf)).update(bytes6(home)).update(covered).digest();
  return { expected: mac.subarray(0, 12).toString("hex"), sent: hex(p.packet.subarray(auth.offset + 7, auth.offset + 19)) };
}

/** The VM arrives; r2 answers its BU; the answer comes back 6in4 from the engine; the handover ends. */
export async function handover6(h: Harness, ha = homeAgent6()): Promise<MobilityPacket> {
  await attachAndRun(h, "tap-v6", VM6_MAC);
  const bu = await nthBindingUpdate(h, 1);
  const outcome = ha.handlePacket(bu.packet, h.clock.now);
  if (outcome.status !== BA_STATUS.ACCEPTED) throw new Error(`r2 refused the BU: ${outcome.reason}`);
  h.forwarder.processFrame(0, engine6in4(outcome.reply!), () => {}, h.clock.now);
  await until(() => h.handovers.length === 1, "the handover");
  return bu;
}


export function homeAgentAhead(): { ha: Mip6HomeAgent; ahead: number } {
  const ha = homeAgent6();
  const ahead = (Math.floor(T0 / 64) + 1000) & 0xffff;
  const other = buildBindingUpdatePacket({ homeAddress: HOME6, careOfAddress: "2001:db8:9::c000:201", homeAgent: HOME_AGENT6, sequence: ahead, lifetimeS: 300, sa: SA6, nowMs: T0 - 1000 });
  const outcome = ha.handlePacket(other, T0 - 1000);
  if (outcome.status !== BA_STATUS.ACCEPTED) throw new Error(`setup: ${outcome.reason}`);
  return { ha, ahead };
}
