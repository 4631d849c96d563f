// The decision list for an IPv4 packet (README "Decisions per packet", IPv4), in order: each
// line hands the packet to the step that takes it, with the packet state.
import { read32 } from "../packet/checksum.js";
import { IPPROTO } from "../packet/ipv4.js";
import type { TunnelKind } from "../tunnel/tunnel.js";
import { originate, route4 } from "./egress.js";
import { delivered, local4 } from "./local.js";
import type { PacketState } from "./packet.js";
import type { Router } from "./router.js";
import { translate4 } from "./translation.js";
import { decap, encap, reencap4 } from "./tunnels.js";
import { martianSource4, wellFormed4 } from "./wellformed.js";

export function ipv4(r: Router, s: PacketState, packet: Uint8Array): void {
  const pkt = wellFormed4(r, s, packet);
  if (pkt === undefined) return;
  const dst = read32(pkt, 16);
  const proto = pkt[9];
  const rules = r.rules;
  // Flow 3.1 j: IPv4-in-IPv4 to a pool address being re-encapsulated.
  if (proto === IPPROTO.IPIP) {
    const e = rules.reencap4.inForce(dst);
    if (e !== undefined) {
      if (s.decapsulated) return r.drop("decap-loop");
      return reencap4(r, s, pkt, e);
    }
  }
  const own = r.own.has(pkt, 16, 4);
  // Looked up once: the translator keeps the IPv6 form it found for translate4.
  const mapped = r.translator.destination4(dst);
  // wellFormed4 let an ICMPv4 error from an RFC 1812 §5.3.7 source through for the translator
  // alone (RFC 7915 §4.1); a router does not forward it.
  if (!mapped && martianSource4(read32(pkt, 12))) return r.drop("malformed");
  const local = own || mapped || r.inServed4(dst);
  if ((proto === IPPROTO.IPIP || proto === IPPROTO.IPV6) && local) {
    const kind: TunnelKind = proto === IPPROTO.IPIP ? "4in4" : "6in4";
    if (rules.peers[kind].lookup(pkt, 12, 4) !== undefined) {
      if (s.decapsulated) return r.drop("decap-loop");
      return decap(r, s, pkt, kind);
    }
    // RFC 2003 §7, RFC 4213 §3.6: tunnel packets from anyone else are dropped silently.
    if (!mapped) return r.drop("unknown-peer");
  }
  if (mapped) return translate4(r, s, pkt);
  // After translation: mapped destinations are VMs behind the translator, not a local control plane.
  if (delivered(r, s, pkt)) return;
  if (own) return local4(r, s, pkt);
  if (local) return r.drop("no-rule");
  // An encapsulate rule replaces the routing table for what would be routed, except for packets
  // that came out of a tunnel (one decapsulation and one encapsulation per packet at most; the
  // reencap rules, which check the peer, are the only way from one tunnel into another) and
  // packets from our own addresses (our tunnel output looping back to us).
  if (!s.decapsulated && rules.encaps.count4 > 0) {
    const e = rules.encaps.for4(read32(pkt, 12), dst);
    if (e !== undefined && (s.injecting || !r.own.has(pkt, 12, 4))) return encap(r, s, pkt, e);
  }
  // RFC 1812 §5.3.1: only a forwarded packet spends TTL; ours leaves as the control plane made it.
  if (s.injecting) return originate(r, s, pkt, "route");
  route4(r, s, pkt);
}
