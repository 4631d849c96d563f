// What the translator does with a packet. Drop reasons are a closed set: they are Prometheus label
// values (`mip46_dataplane_drops_total{reason=...}`), so adding one is a deliberate change here.

export const DROP_REASONS = [
  /** The packet does not parse as the IP version it arrived as. */
  "malformed",
  /** RFC 1812 §5.2.2: a router discards an IPv4 header whose checksum is wrong. */
  "ipv4-header-checksum",
  /** RFC 7915 §4.6 / §5: no mapping covers the destination, so it is not ours to translate. */
  "unmapped-destination",
  /** No explicit mapping or RFC 6052 prefix covers the source (RFC 7915 §4.1, §5.1). */
  "unmapped-source",
  /** TTL or hop limit would reach zero (RFC 7915 §4.1, §5.1 "Hop Limit"). */
  "ttl-expired",
  /** DF set and bigger than the next-hop MTU (RFC 7915 §4.1), or an IPv6 packet too big for IPv4 (§5.1). */
  "packet-too-big",
  /** An unexpired IPv4 source route option (RFC 7915 §4.1). */
  "source-route",
  /** An IPv6 routing header with Segments Left non-zero (RFC 7915 §5.1). */
  "segments-left",
  /** RFC 6145 erratum 3061: extension headers after the fragment header cannot be stripped statelessly. */
  "fragment-extension-headers",
  /** An ICMP type or code RFC 7915 §4.2 / §5.2 says to drop, or a Parameter Problem pointer with no counterpart. */
  "icmp-untranslatable",
  /** An ICMP error whose checksum is wrong: its translation gets a new checksum, which must not launder a damaged packet (RFC 7915 §5: "evaluated before translation"). */
  "icmp-checksum",
  /** A fragmented ICMP message: its checksum covers bytes this fragment does not have. */
  "icmp-fragmented",
  /** An ICMP error whose quoted packet cannot be translated, or quotes another ICMP error (RFC 7915 §4.3, §5.3). */
  "icmp-error-inner",
  /** UDP without checksum, configured to drop (RFC 7915 §4.5 option 1). */
  "udp-zero-checksum",
  /** A fragmented UDP datagram without checksum cannot be given one statelessly (RFC 7915 §4.5). */
  "udp-zero-checksum-fragment",
  /** An IPv4 protocol that is an IPv6 extension header or ICMPv6, or ICMPv4 inside IPv6: its translation would be malformed (4to6.ts, 6to4.ts). */
  "untranslatable-protocol",
] as const;

export type DropReason = (typeof DROP_REASONS)[number];

export type TranslateResult =
  /** Send these (one, or the fragments of one) towards the other address family. */
  | { action: "forward"; packets: Uint8Array[] }
  /** Send this ICMP error back towards the source, same address family; `reason` says why the input was not forwarded. */
  | { action: "icmp"; packet: Uint8Array; reason: DropReason }
  | { action: "drop"; reason: DropReason };

// Shared drop results, so the hot path does not allocate to drop.
const DROPS = Object.fromEntries(DROP_REASONS.map((r) => [r, Object.freeze({ action: "drop", reason: r })])) as Record<DropReason, TranslateResult>;

export function drop(reason: DropReason): TranslateResult {
  return DROPS[reason];
}
