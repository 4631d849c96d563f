// Re-encapsulation in one pass (paper flows 3.1 j and 3.2 i): the outer header of a packet from a
// known peer is checked and dropped, and the inner packet is copied once, from the input straight
// behind the new outer header in the caller's buffer.
import { decapsulate } from "./decapsulate.js";
import { encapsulate } from "./encapsulate.js";
import type { TunnelPeerTable } from "./peers.js";
import type { TunnelResult } from "./result.js";
import type { Tunnel, TunnelNode } from "./tunnel.js";

/**
 * Decapsulates `packet` (checks of `decapsulate`: known peer, family, well-formed inner, RFC 4213
 * §3.6, RFC 6040 §4.2) and encapsulates its inner packet for `to` (checks of `encapsulate`: loop,
 * TTL, MTU). The caller picks `to` from the outer destination: a pool address in use (3.1 j,
 * 4in4 → 4in6 to the VM's IPv6 care-of address) or an address in an assigned prefix (3.2 i,
 * 6in6 → 6in4 to the VM's IPv4 care-of address).
 *
 * The inner TTL / hop limit is decremented once: this node forwards the inner packet from one
 * tunnel into the next. ICMP errors (TTL, MTU) go to the inner source, as for `encapsulate`.
 * `packet` is changed in place (ECN) like with `decapsulate`.
 */
export function reencapsulate(peers: TunnelPeerTable, node: TunnelNode, packet: Uint8Array, to: Tunnel, out: Uint8Array): TunnelResult {
  const inner = decapsulate(peers, node, packet, { forwarding: false });
  if (inner.action !== "forward") return inner;
  const result = encapsulate(to, node, inner.packet, out, { forwarding: true });
  if (inner.ecnUnexpected === true && result.action === "forward") result.ecnUnexpected = true;
  return result;
}
