// Tunnels the rule table starts or ends: decapsulation from a known peer (RFC 2003 §3, RFC 2473
// §3, RFC 4213 §3.6), re-encapsulation (flows 3.1 j, 3.2 i), IPv6-in-IPv4 to a VM's care-of
// address (route optimisation, flow 3.2 m, with the correspondents' binding cache), and the
// `encapsulate` rules (flows 3.1 f, l and 3.2 d, k). The tunnel header rules themselves are in
// dataplane/tunnel; this file picks the tunnel and its route.
import { read32 } from "../packet/checksum.js";
import { decapsulate } from "../tunnel/decapsulate.js";
import { encapsulate } from "../tunnel/encapsulate.js";
import { reencapsulate } from "../tunnel/reencapsulate.js";
import type { TunnelKind } from "../tunnel/tunnel.js";
import type { ForwardAction } from "./counters.js";
import { sendTunnelResult } from "./egress.js";
import type { PacketState } from "./packet.js";
import type { Router } from "./router.js";
import type { Encap, Reencap4, Reencap6, TunnelRoute } from "./rules.js";

const NOT_FORWARDING = { forwarding: false } as const;

const ENCAP_ACTION: Record<TunnelKind, ForwardAction> = { "4in4": "encap-4in4", "6in6": "encap-6in6", "4in6": "encap-4in6", "6in4": "encap-6in4" };

/**
 * Unwraps a packet from a known peer of that tunnel kind; the inner packet is left in `s.inner`
 * for the decision list's second and last pass (link.ts).
 */
export function decap(r: Router, s: PacketState, pkt: Uint8Array, kind: TunnelKind): void {
  // Decapsulation leaves the TTL alone (RFC 2003 §3.1); the next pass (routing, translation,
  // encapsulation) is the forwarding step that decrements it, once.
  // An IPv6 outer packet's chain was walked by well-formedness (s.chain6; decided on s.tunnel6).
  const t = decapsulate(r.rules.peers[kind], r.node, pkt, NOT_FORWARDING, pkt[0] >> 4 === 6 ? s.chain6 : undefined);
  if (t.action !== "forward") return sendTunnelResult(r, s, t, "decap", undefined);
  r.counters.actions.decap++;
  s.inner = t.packet;
}

/** Flow 3.1 j: IPv4-in-IPv4 to a pool address leaves IPv4-in-IPv6 to the VM's care-of address. */
export function reencap4(r: Router, s: PacketState, pkt: Uint8Array, e: Reencap4): void {
  const route = tunnelRoute(r, e, "4in6", e.careOfIPv6);
  if (route === null) return r.drop("no-route");
  sendTunnelResult(r, s, reencapsulate(r.rules.peers["4in4"], r.node, pkt, route.tunnel, r.outIp), "reencap-4in4-4in6", route);
}

/** Flow 3.2 i: IPv6-in-IPv6 to a VM's IPv6 care-of address leaves IPv6-in-IPv4 to its IPv4 one. */
export function reencap6(r: Router, s: PacketState, pkt: Uint8Array, e: Reencap6): void {
  const route = tunnelRoute(r, e, "6in4", e.careOfIPv4);
  if (route === null) return r.drop("no-route");
  sendTunnelResult(r, s, reencapsulate(r.rules.peers["6in6"], r.node, pkt, route.tunnel, r.outIp), "reencap-6in6-6in4", route);
}

/** Flow 3.2 m: an IPv6 packet for a VM's IPv6 care-of address goes IPv6-in-IPv4 to its IPv4 one. */
export function encap6in4(r: Router, s: PacketState, pkt: Uint8Array, e: Reencap6, forwarding = true): void {
  const route = tunnelRoute(r, e, "6in4", e.careOfIPv4);
  if (route === null) return r.drop("no-route");
  sendTunnelResult(r, s, encapsulate(route.tunnel, r.node, pkt, r.outIp, { forwarding }), "encap-6in4", route);
}

/** A binding update from a migrated VM to a correspondent behind us (flow 3.2 k–m; correspondent.ts). */
export function correspondentUpdate(r: Router, s: PacketState, pkt: Uint8Array): void {
  const u = r.correspondents!.update(pkt, s.chain6, r.careOf, r.now);
  if (u.result === "bound" || u.result === "unbound") r.counters.actions["correspondent-binding"]++;
  else r.drop(u.result === "malformed" ? "malformed" : "correspondent-refused");
  if (u.acknowledgement === undefined) return;
  // The acknowledgement goes back through the VM's tunnel, like anything for its care-of address.
  const r6 = r.rules.reencap6.inForce(u.acknowledgement, 24);
  if (r6 !== undefined) encap6in4(r, s, u.acknowledgement, r6, false);
}

/** The tunnel that replaces the route when a correspondent holds a binding for the destination (flow 3.2 m). */
export function shortcut6(r: Router, pkt: Uint8Array): Reencap6 | undefined {
  const b = r.correspondents!.shortcut(pkt, r.careOf, r.now);
  return b === undefined ? undefined : r.rules.reencap6.inForce(b.careOfIPv6, 0);
}

/**
 * An `encapsulate` rule: the packet leaves in the rule's tunnel, routed by the outer destination;
 * the outer packet is not looked at again, so no rule can wrap it twice. encapsulate() applies
 * the RFC 2003 / 2473 / 4213 rules: TTL spent → Time Exceeded, too big with DF (or IPv6) →
 * Fragmentation Needed / Packet Too Big with the tunnel MTU, ECN by RFC 6040, and the loop checks
 * of RFC 6324 §3 (an inner destination or a `remote` that is one of our endpoints).
 */
export function encap(r: Router, s: PacketState, pkt: Uint8Array, e: Encap): void {
  const route = tunnelRoute(r, e, e.tunnel, e.remote, e.local);
  if (route === null) return r.drop("no-route");
  // RFC 2003 §3.1, RFC 2473 §3.1: the inner TTL / hop limit drops only when the tunnel forwards; not for inject()ed packets.
  sendTunnelResult(r, s, encapsulate(route.tunnel, r.node, pkt, r.outIp, { forwarding: !s.injecting }), ENCAP_ACTION[e.tunnel], route);
}

/**
 * Where the tunnel of a rule leaves: resolved once per rule (routes and addresses are static).
 * The outer source is the rule's `local`, else the configured tunnel source, else the egress
 * interface's first address of the outer family, else any interface's.
 */
function tunnelRoute(r: Router, entry: Reencap4 | Reencap6 | Encap, kind: TunnelKind, remote: Uint8Array, ruleLocal?: Uint8Array): TunnelRoute | null {
  if (entry.route !== undefined) return entry.route;
  let route: TunnelRoute | null = null;
  if (remote.length === 4) {
    const rt = r.lookup4(read32(remote));
    const local = ruleLocal ?? r.source4 ?? rt?.port.v4[0]?.bytes ?? r.portList.find((p) => p.v4.length > 0)?.v4[0].bytes;
    if (rt !== undefined && local !== undefined) route = { tunnel: { kind, local, remote, mtu: rt.port.mtu, hopLimit: r.tunnelHopLimit }, ifIndex: rt.port.index, nextHop: rt.gateway ?? remote };
  } else {
    const rt = r.lookup6(remote, 0);
    const local = ruleLocal ?? r.source6 ?? rt?.port.v6[0]?.bytes ?? r.portList.find((p) => p.v6.length > 0)?.v6[0].bytes;
    if (rt !== undefined && local !== undefined && rt.port.mtu >= 1280) route = { tunnel: { kind, local, remote, mtu: rt.port.mtu, hopLimit: r.tunnelHopLimit }, ifIndex: rt.port.index, nextHop: rt.gateway ?? remote };
  }
  entry.route = route;
  return route;
}
