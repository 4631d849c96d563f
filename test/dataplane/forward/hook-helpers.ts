// Shared by the control-plane hook tests (hooks.test.ts, proxy.test.ts): a lab forwarder whose
// intercept records what it is offered, and the frames those tests send.
import { Forwarder, type ForwarderConfig, type Intercept } from "../../../dataplane/forward/index.js";
import { ARP_OPERATION, buildArp } from "../../../dataplane/packet/arp.js";
import { BROADCAST_MAC, buildEthernetFrame, ETHERTYPE, ipv6MulticastMac, parseMac } from "../../../dataplane/packet/ethernet.js";
import { IPPROTO } from "../../../dataplane/packet/ipv4.js";
import { buildIPv6Packet } from "../../../dataplane/packet/ipv6.js";
import { buildNeighborSolicitation, solicitedNodeAddress } from "../../../dataplane/packet/nd.js";
import { buildUdp4, buildUdp6 } from "../../../dataplane/packet/udp.js";
import type { Rule } from "../../../lib/rules/rules.js";
import type { TsharkPacket } from "../../helpers/tshark.js";
import { ip4, ip6, labRules, labWorker, MAC } from "./helpers.js";

export interface Offer {
  packet: Uint8Array;
  ingressIf: number;
  decapsulated: boolean;
}

/** The lab worker and table, with an intercept that records what it is offered and answers `take`. */
export function lab(take: (o: Offer) => boolean = () => true, config: ForwarderConfig = labWorker(), rules: Rule[] = labRules()): { f: Forwarder; offers: Offer[] } {
  const offers: Offer[] = [];
  const intercept: Intercept = (packet, ingressIf, decapsulated) => {
    const o = { packet: packet.slice(), ingressIf, decapsulated };
    offers.push(o);
    return take(o);
  };
  const f = new Forwarder(config, 0, { intercept });
  f.replaceRules({ revision: 1n, rules });
  return { f, offers };
}

export const hex = (b: Uint8Array): string => Buffer.from(b).toString("hex");
export const ipPayload = (frame: Uint8Array): Uint8Array => frame.subarray(14);
export const utf8 = (s: string): Uint8Array => new TextEncoder().encode(s);

export function udp4(src: string, dst: string, ttl = 64): Uint8Array {
  return buildUdp4({ src: ip4(src), dst: ip4(dst), srcPort: 1000, dstPort: 2000, ttl }, utf8("registration"));
}

export function udp6(src: string, dst: string, hopLimit = 64): Uint8Array {
  return buildUdp6({ src: ip6(src), dst: ip6(dst), srcPort: 1000, dstPort: 2000, hopLimit }, utf8("binding"));
}

/** A 4in6 frame from the VM's care-of address (a known 4in6 peer, inner source 192.0.2.1) to the worker. */
export function fromVmCareOf(inner: Uint8Array): Uint8Array {
  const outer = buildIPv6Packet({ src: ip6("2001:db8:1::c000:201"), dst: ip6("2001:db8:1::fe"), hopLimit: 64, nextHeader: IPPROTO.IPIP }, inner);
  return buildEthernetFrame(MAC.v6, parseMac("02:00:00:00:06:21"), ETHERTYPE.IPV6, outer);
}

/** Layers of one tshark packet, looked up by field name anywhere in the tree. */
export function field(p: TsharkPacket, name: string): unknown {
  const walk = (o: unknown): unknown => {
    if (typeof o !== "object" || o === null) return undefined;
    for (const [k, v] of Object.entries(o)) {
      if (k === name) return v;
      const found = walk(v);
      if (found !== undefined) return found;
    }
    return undefined;
  };
  return walk(p._source.layers);
}

export function arpRequest(target: string): Uint8Array {
  const asker = parseMac("02:00:00:00:04:55");
  return buildEthernetFrame(BROADCAST_MAC, asker, ETHERTYPE.ARP, buildArp(ARP_OPERATION.REQUEST, asker, ip4("192.0.2.55"), new Uint8Array(6), ip4(target)));
}

export function neighborSolicitation(target: string): Uint8Array {
  const asker = parseMac("02:00:00:00:06:55");
  const dst = solicitedNodeAddress(ip6(target));
  const ns = buildNeighborSolicitation({ src: ip6("2001:db8:1::55"), target: ip6(target), dst, sourceLinkLayer: asker });
  return buildEthernetFrame(ipv6MulticastMac(dst), asker, ETHERTYPE.IPV6, ns);
}
