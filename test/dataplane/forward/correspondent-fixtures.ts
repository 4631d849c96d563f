// The lab's flow 3.2 VM, its rules and the frames of the route-optimisation tests
// (correspondent.test.ts): binding updates as the agent sends them, tunnelled from the care-of
// address, and readers of what the worker sends back.
import { Forwarder } from "../../../dataplane/forward/index.js";
import { buildEthernetFrame, ETHERTYPE, formatMac, parseMac } from "../../../dataplane/packet/ethernet.js";
import { buildIPv4Packet, IPPROTO } from "../../../dataplane/packet/ipv4.js";
import { buildBindingUpdatePacket, checkAcknowledgement } from "../../../mobility/mip6/binding-update.js";
import type { Rule } from "../../../lib/rules/rules.js";
import { bindingRules, configRules } from "../../../services/rules/compile.js";
import type { EngineConfig } from "../../../services/config/config.js";
import { parseCidr } from "../../../lib/net/address.js";
import { collector, ip4, ip6, labWorker, MAC, udp6Frame, type Sent } from "./helpers.js";

// The lab's flow 3.2 VM (dataplane/offline/example-table.json): IPv6 VM at home on the v6 link,
// now on an IPv4 host with care-of 192.0.2.100 / 2001:db8:3::c000:264.
export const HOME = "2001:db8:1::50";
export const HOME_AGENT = "2001:db8:1::10";
export const CARE_OF4 = "192.0.2.100";
export const CARE_OF6 = "2001:db8:3::c000:264";
export const POOL4 = "198.51.100.20";
export const ENGINE4 = "192.0.2.254";
export const CN6 = "2001:db8:2::9";
export const CN4 = "203.0.113.9";
/** CN4 behind the translation prefix 2001:db8:64::/96 (RFC 6052 §2.2). */
export const CN4_AS6 = "2001:db8:64::cb00:7109";
export const CARE_OF4_MAC = parseMac("02:00:00:00:04:64");
export const HOME_MAC = "02:00:00:00:06:50";

export const VM_RULES = bindingRules({
  vmId: "b", homeAddress: HOME, homeAgent: HOME_AGENT, hostId: "h4", careOfIPv4: CARE_OF4, careOfIPv6: CARE_OF6,
  translatedIPv4: POOL4, translatedIPv6: "", migrationId: "m1", updatedAtMs: 0,
});

export function rules(): Rule[] {
  const prefix = parseCidr("2001:db8:64::/96", "translationPrefix");
  return [...configRules({ translationPrefix: prefix } as unknown as EngineConfig), ...structuredClone(VM_RULES)];
}

export function router(correspondentRouter = true): Forwarder {
  const f = new Forwarder(labWorker({ correspondentRouter }), 0);
  f.replaceRules({ revision: 1n, rules: rules() });
  return f;
}

export interface Bu {
  correspondent?: string;
  home?: string;
  careOf?: string;
  sequence?: number;
  lifetimeS?: number;
  homeRegistration?: boolean;
}

/** A BU as the agent sends it (no SA), IPv6-in-IPv4 from the IPv4 care-of address to the engine. */
export function buPacket(b: Bu = {}): Uint8Array {
  return buildBindingUpdatePacket({
    homeAddress: b.home ?? HOME, careOfAddress: b.careOf ?? CARE_OF6, homeAgent: b.correspondent ?? CN6, sequence: b.sequence ?? 1,
    lifetimeS: b.lifetimeS ?? 300, nowMs: 0, homeRegistration: b.homeRegistration ?? false, acknowledge: true,
  });
}

export function tunnelled(inner: Uint8Array): Uint8Array {
  return buildEthernetFrame(MAC.v4, CARE_OF4_MAC, ETHERTYPE.IPV4, buildIPv4Packet({ src: ip4(CARE_OF4), dst: ip4(ENGINE4), ttl: 64, protocol: IPPROTO.IPV6 }, inner));
}

export const hex = (b: Uint8Array): string => Buffer.from(b).toString("hex");

/** The inner IPv6 packet of a 6in4 frame we emitted to the IPv4 care-of address, or a failure message. */
export function inner6in4(s: Sent): Uint8Array {
  const f = s.frame;
  if (s.ifIndex !== 1 || ((f[12] << 8) | f[13]) !== ETHERTYPE.IPV4) throw new Error(`not IPv4 on v4: if ${s.ifIndex}`);
  if (f[14 + 9] !== IPPROTO.IPV6) throw new Error(`protocol ${f[14 + 9]}, not 41`);
  if (hex(f.subarray(14 + 12, 14 + 16)) !== hex(ip4(ENGINE4)) || hex(f.subarray(14 + 16, 14 + 20)) !== hex(ip4(CARE_OF4))) throw new Error("outer addresses");
  if (formatMac(f, 0) !== "02:00:00:00:04:64") throw new Error(`to ${formatMac(f, 0)}`);
  const ihl = (f[14] & 0x0f) << 2;
  return f.slice(14 + ihl);
}

/** Sends `frame` in on `ifIndex` and returns what went out. */
export function send(f: Forwarder, ifIndex: number, frame: Uint8Array, now = 0): Sent[] {
  const c = collector();
  f.processFrame(ifIndex, frame, c.emit, now);
  return c.sent;
}

/** Where a packet from an IPv6 correspondent to the home address goes: "shortcut", "routed" or what. */
export function fromCn6(f: Forwarder, now = 0, dst = HOME): string {
  const out = send(f, 2, udp6Frame(CN6, dst), now);
  if (out.length !== 1) return `${out.length} frames`;
  if (out[0].ifIndex === 2 && formatMac(out[0].frame, 0) === HOME_MAC) return "routed";
  const inner = inner6in4(out[0]);
  return hex(inner.subarray(8, 24)) === hex(ip6(CN6)) && hex(inner.subarray(24, 40)) === hex(ip6(dst)) ? "shortcut" : "shortcut, wrong inner addresses";
}

export function ackOf(out: Sent[]): ReturnType<typeof checkAcknowledgement> & { packet: Uint8Array } {
  if (out.length !== 1) throw new Error(`${out.length} frames sent, one expected`);
  const packet = inner6in4(out[0]);
  return { ...checkAcknowledgement(packet), packet };
}
