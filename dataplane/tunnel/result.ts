// What a tunnel operation decided about one packet. The reason strings are a closed set: the
// worker exports them as Prometheus label values, so a new one is an API change.

/** Why a packet was dropped or answered with an ICMP error instead of being forwarded. */
export const TUNNEL_REASONS = [
  /** The outer source is not a configured tunnel peer (RFC 2003 §7, RFC 4213 §3.6). */
  "unknown-peer",
  /** The packet's IP version, or the inner family a peer sent, is not the one configured. */
  "family-mismatch",
  /** The outer header is not a well-formed IPv4/IPv6 header (bad version, lengths, checksum). */
  "outer-malformed",
  /** The outer packet is not an IP-in-IP packet (protocol / next header is not 4 or 41). */
  "not-tunnel",
  /** The outer packet is a fragment; this data plane does not reassemble. */
  "outer-fragment",
  /** The inner packet is not a well-formed IPv4/IPv6 packet. */
  "inner-malformed",
  /** The inner source is not allowed for that peer (RFC 4213 §3.6 ingress filtering). */
  "ingress-filter",
  /** RFC 6040 §4.2: Not-ECT inner with a CE outer must be dropped. */
  "ecn-drop",
  /** The packet would come back to this node through a tunnel (RFC 6324, RFC 2473 §4). */
  "loop",
  /** TTL / hop limit spent (RFC 2003 §3.1, RFC 2473 §3.2). */
  "ttl-expired",
  /** Bigger than the tunnel MTU and not fragmentable (RFC 1191, RFC 2473 §7, RFC 4213 §3.2). */
  "too-big",
  /** RFC 2473 §4.1.1: the inner packet's Tunnel Encapsulation Limit is 0. */
  "encapsulation-limit",
  /**
   * An error from inside a tunnel about one of our tunnel packets, passed on to the original
   * source as unreachable (RFC 2003 §4, RFC 2473 §8).
   */
  "tunnel-unreachable",
  /** The caller's output buffer cannot hold the result. A configuration error, not traffic. */
  "buffer-too-small",
] as const;

export type TunnelReason = (typeof TUNNEL_REASONS)[number];

/** Reasons that come with an ICMP error when one may be sent (see `TunnelIcmp`). */
export type TunnelIcmpReason = "ttl-expired" | "too-big" | "encapsulation-limit" | "tunnel-unreachable";

/**
 * The packet goes on. `packet` is `packet.length === length` bytes: for encapsulation a view of
 * the caller's output buffer, for decapsulation a view of the input (changed in place).
 */
export interface TunnelForward {
  action: "forward";
  packet: Uint8Array;
  length: number;
  /**
   * RFC 6040 §4.2 marks some outer/inner ECN combinations "(!!!)": currently unused, to be
   * logged. The packet is still forwarded.
   */
  ecnUnexpected?: boolean;
}

/** The packet goes on as several packets (fragmentation, see the README). Freshly allocated. */
export interface TunnelFragments {
  action: "fragments";
  packets: Uint8Array[];
}

/** The packet is dropped and this ICMP/ICMPv6 error (a whole IP packet) goes to its source. */
export interface TunnelIcmp {
  action: "icmp";
  packet: Uint8Array;
  length: number;
  reason: TunnelIcmpReason;
}

export interface TunnelDrop {
  action: "drop";
  reason: TunnelReason;
}

export type TunnelResult = TunnelForward | TunnelFragments | TunnelIcmp | TunnelDrop;

const DROPS = new Map<TunnelReason, TunnelDrop>(TUNNEL_REASONS.map((r) => [r, Object.freeze({ action: "drop", reason: r })]));

/** The drop result for `reason`; one frozen object per reason, so a drop allocates nothing. */
export function drop(reason: TunnelReason): TunnelDrop {
  return DROPS.get(reason)!;
}
