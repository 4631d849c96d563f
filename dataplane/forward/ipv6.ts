// The decision list for an IPv6 packet (README "Decisions per packet", IPv6), in order: each
// line hands the packet to the step that takes it, with the packet state.
import { ICMP6_TYPE } from "../packet/icmp6.js";
import { IPPROTO } from "../packet/ipv4.js";
import type { TunnelKind } from "../tunnel/tunnel.js";
import { originate, route6 } from "./egress.js";
import { delivered, local6 } from "./local.js";
import type { PacketState } from "./packet.js";
import { nd } from "./responder.js";
import type { Router } from "./router.js";
import { translate6 } from "./translation.js";
import { correspondentUpdate, decap, encap, encap6in4, reencap6, shortcut6 } from "./tunnels.js";
import { header6, sound6Outer } from "./wellformed.js";

/** `linkMulticast`: the frame was sent to a multicast or broadcast MAC. */
export function ipv6(r: Router, s: PacketState, packet: Uint8Array, linkMulticast: boolean): void {
  const pkt = header6(r, packet);
  if (pkt === undefined) return;
  // An inject()ed packet has no ingress link to learn a neighbour on or answer to.
  if (!s.decapsulated && !s.injecting && pkt[6] === IPPROTO.ICMPV6 && pkt.length >= 48 && pkt[40] >= ICMP6_TYPE.ROUTER_SOLICITATION && pkt[40] <= ICMP6_TYPE.REDIRECT) return nd(r, s, pkt);
  if (pkt[24] === 0xff || linkMulticast) return r.drop("not-for-us");
  if (!sound6Outer(s, pkt)) return r.drop("malformed");
  const rules = r.rules;
  const tp = s.tunnel6;
  const r6 = rules.reencap6.inForce(pkt, 24);
  if (r6 !== undefined) {
    // Flow 3.2 i: IPv6-in-IPv6 from the home agent to a VM's IPv6 care-of address.
    if (tp === IPPROTO.IPV6 && rules.peers["6in6"].lookup(pkt, 8, 6) !== undefined) {
      if (s.decapsulated) return r.drop("decap-loop");
      return reencap6(r, s, pkt, r6);
    }
    // Flow 3.2 m (route optimisation): IPv6 straight to the VM's care-of address goes IPv6-in-IPv4 to its IPv4 care-of address.
    return encap6in4(r, s, pkt, r6);
  }
  const own = r.own.has(pkt, 24, 6);
  // Only the translation prefix stands for IPv4 destinations. An EAM (RFC 7757) here names an
  // IPv6 node (a correspondent, an IPv6 VM) by an IPv4 pool address: IPv4 packets to that
  // address are translated, IPv6 packets to the node itself are routed to it.
  // Looked up once: the IPv4 form goes to the translator with the walked chain.
  const dst4 = r.translator.destination6(pkt, 24);
  const mapped = dst4 >= 0;
  const local = own || mapped || r.inServed6(pkt, 24);
  if (tp >= 0 && local) {
    const kind: TunnelKind = tp === IPPROTO.IPIP ? "4in6" : "6in6";
    if (rules.peers[kind].lookup(pkt, 8, 6) !== undefined) {
      if (s.decapsulated) return r.drop("decap-loop");
      return decap(r, s, pkt, kind);
    }
    // RFC 2473 §3 / RFC 4213 §3.6: only from configured peers.
    if (!mapped) return r.drop("unknown-peer");
  }
  // Flow 3.2 k–l: a VM's binding update to a correspondent behind us, out of its tunnel.
  if (s.decapsulated && r.correspondents !== undefined && (pkt[6] === IPPROTO.DSTOPTS || pkt[6] === IPPROTO.MOBILITY) && r.correspondents.isCorrespondentUpdate(pkt, s.chain6)) {
    return correspondentUpdate(r, s, pkt);
  }
  if (mapped) return translate6(r, s, pkt, dst4);
  if (delivered(r, s, pkt)) return;
  if (own) return local6(r, s, pkt);
  if (local) return r.drop("no-rule");
  // As for IPv4; link-local packets are never forwarded (RFC 4291 §2.5.6), so never tunnelled.
  if (!s.decapsulated && rules.encaps.count6 > 0 && !(pkt[24] === 0xfe && (pkt[25] & 0xc0) === 0x80) && !(pkt[8] === 0xfe && (pkt[9] & 0xc0) === 0x80)) {
    const e = rules.encaps.for6(pkt);
    if (e !== undefined && (s.injecting || !r.own.has(pkt, 8, 6))) return encap(r, s, pkt, e);
  }
  if (s.injecting) return originate(r, s, pkt, "route");
  // Flow 3.2 m: a correspondent with a binding for this home address reaches the VM directly.
  if (!s.decapsulated && r.correspondents !== undefined && r.correspondents.size > 0) {
    const e = shortcut6(r, pkt);
    if (e !== undefined) return encap6in4(r, s, pkt, e);
  }
  route6(r, s, pkt);
}
