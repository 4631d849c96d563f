// What the forwarder counts, as plain numbers: the worker turns them into Prometheus metrics.
import { DROP_REASONS } from "../translate/result.js";
import { TUNNEL_REASONS } from "../tunnel/result.js";

/**
 * Frames out, per stage of the pipeline (a decapsulated packet that is then routed counts in both).
 * `encap-<kind>`: encapsulated by an `encapsulate` rule; `encap-6in4` also counts route
 * optimisation (flow 3.2 m).
 */
export const FORWARD_ACTIONS = [
  "decap", "reencap-4in4-4in6", "reencap-6in6-6in4", "encap-4in4", "encap-6in6", "encap-4in6", "encap-6in4", "translate-4to6", "translate-6to4", "route", "arp", "nd", "icmp", "deliver", "correspondent-binding",
] as const;
export type ForwardAction = (typeof FORWARD_ACTIONS)[number];

/** The forwarder's own drop reasons; tunnel and translator reasons are added to these. */
export const OWN_DROP_REASONS = [
  /** The source MAC is one of ours: the capture sees the frames we inject. */
  "own-frame",
  /** The destination MAC is neither ours nor broadcast/multicast, or an IP multicast/broadcast we do not route. */
  "not-for-us",
  /** Ethernet, ARP, IPv4 or IPv6 framing is broken (lengths, version, IPv4 header checksum). */
  "malformed",
  /** A VLAN tag, an unknown ethertype or an unknown ingress interface. */
  "unsupported",
  /** No route to the destination (RFC 1812 §5.2.7.1, RFC 4443 §3.1). */
  "no-route",
  /** The next hop did not answer ARP/NDP, or its queue overflowed (RFC 4861 §7.2.2). */
  "no-neighbour",
  /** A packet that came out of a tunnel would be decapsulated again (at most one decapsulation per packet). */
  "decap-loop",
  /** Addressed to a served address (pool, prefix) that no rule covers. */
  "no-rule",
  /** Addressed to one of our own addresses and not something we answer. */
  "local",
  /** Bigger than the egress MTU after translation or for a packet we originate. */
  "egress-too-big",
  /** A binding update to a correspondent that the rule table does not back (correspondent router, see correspondent.ts). */
  "correspondent-refused",
  /** An ICMP error we would originate, over the rate limit (`icmpErrorLimit`; RFC 4443 §2.4(f), RFC 1812 §4.3.2.8). */
  "icmp-rate-limited",
  /** A bug: an exception inside the pipeline, caught so one frame cannot stop the worker. */
  "internal-error",
] as const;

export const FORWARD_DROP_REASONS: readonly string[] = [...new Set<string>([...OWN_DROP_REASONS, ...TUNNEL_REASONS, ...DROP_REASONS])];

export interface InterfaceCounters {
  rxPackets: number;
  rxBytes: number;
  txPackets: number;
  txBytes: number;
}

export interface ForwarderCounters {
  interfaces: Map<number, InterfaceCounters>;
  actions: Record<ForwardAction, number>;
  drops: Record<string, number>;
}

export function newCounters(): ForwarderCounters {
  const actions = Object.fromEntries(FORWARD_ACTIONS.map((a) => [a, 0])) as Record<ForwardAction, number>;
  const drops: Record<string, number> = Object.fromEntries(FORWARD_DROP_REASONS.map((r) => [r, 0]));
  return { interfaces: new Map(), actions, drops };
}
