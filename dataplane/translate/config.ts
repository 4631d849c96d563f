// Translator settings (RFC 7915 names the configurable ones) and their defaults.
import type { AddressMapping } from "./mapping.js";

export interface TranslatorConfig {
  /** RFC 7915 §6: RFC 6052 prefixes and explicit address mappings (RFC 7757), built per rule-table revision. */
  mapping: AddressMapping;
  /**
   * RFC 7915 §4.1 "lowest-ipv6-mtu": IPv4 packets without DF that would exceed it are fragmented
   * so each IPv6 fragment fits. Default 1280 (RFC 8200 §5).
   */
  lowestIpv6Mtu?: number;
  /** MTU of the IPv6 next hop (RFC 7915 §4.1 DF check, §4.2 and §5.2 MTU arithmetic). Default 1500. */
  ipv6Mtu?: number;
  /** MTU of the IPv4 next hop (RFC 7915 §4.2, §5.1, §5.2). Default 1500. */
  ipv4Mtu?: number;
  /** RFC 7915 §4.5: an unfragmented IPv4 UDP datagram without checksum gets one computed, or is dropped. Default "compute". */
  udpZeroChecksum?: "compute" | "drop";
  /**
   * RFC 6791 §4: the IPv4 source of ICMPv4 errors translated from ICMPv6 errors whose IPv6 source
   * has no IPv4 mapping. Unsigned 32-bit. Default 192.0.0.8, the IPv4 dummy address of RFC 7600 §4.
   */
  icmpErrorSource4?: number;
  /** Source of the ICMPv4 errors the translator itself sends (RFC 7915 §4.4). Default `icmpErrorSource4`. */
  routerAddress4?: number;
  /**
   * Source of the ICMPv6 errors the translator itself sends (RFC 7915 §5.4), 16 bytes. Default: the
   * destination of the packet that caused the error, an address the translator answers for.
   */
  routerAddress6?: Uint8Array;
  /** RFC 7915 §4.4 / §5.4: send ICMP errors for packets that cannot be translated. Default true. */
  sendUntranslatableErrors?: boolean;
  /**
   * Largest ICMPv4 error translated from an ICMPv6 error, IPv4 header included: the quoted
   * datagram is cut to fit (RFC 1812 §4.3.2.3; RFC 7915 §5.3 allows it). 576..65535, default 576.
   */
  icmp4ErrorMaxBytes?: number;
  /**
   * RFC 7757 §4: an IPv6 packet whose destination's IPv4 form is itself an explicit-mapping IPv4
   * address is translated back to IPv6 (Jool's "intrinsic" hairpinning). Default true.
   */
  eamHairpinning?: boolean;
}

export interface ResolvedConfig {
  mapping: AddressMapping;
  lowestIpv6Mtu: number;
  ipv6Mtu: number;
  ipv4Mtu: number;
  udpZeroChecksum: "compute" | "drop";
  icmpErrorSource4: number;
  routerAddress4: number;
  routerAddress6: Uint8Array | undefined;
  sendUntranslatableErrors: boolean;
  icmp4ErrorMaxBytes: number;
  eamHairpinning: boolean;
}

/** RFC 7600 §4: 192.0.0.8, for ICMPv4 errors whose real source has no IPv4 address. */
export const IPV4_DUMMY_ADDRESS = 0xc0000008;

export class TranslatorConfigError extends Error {
  override name = "TranslatorConfigError";
}

export function resolveConfig(c: TranslatorConfig): ResolvedConfig {
  const lowestIpv6Mtu = c.lowestIpv6Mtu ?? 1280;
  const ipv6Mtu = c.ipv6Mtu ?? 1500;
  const ipv4Mtu = c.ipv4Mtu ?? 1500;
  // RFC 7915 §4.1: the threshold may only be raised above 1280; IPv6 links carry at least 1280 (RFC 8200 §5).
  if (!(lowestIpv6Mtu >= 1280 && lowestIpv6Mtu <= 65535)) throw new TranslatorConfigError(`lowestIpv6Mtu must be 1280..65535, not ${lowestIpv6Mtu}`);
  if (!(ipv6Mtu >= 1280 && ipv6Mtu <= 65535)) throw new TranslatorConfigError(`ipv6Mtu must be 1280..65535, not ${ipv6Mtu}`);
  // RFC 791: every IPv4 link carries 68 bytes.
  if (!(ipv4Mtu >= 68 && ipv4Mtu <= 65535)) throw new TranslatorConfigError(`ipv4Mtu must be 68..65535, not ${ipv4Mtu}`);
  const icmp4ErrorMaxBytes = c.icmp4ErrorMaxBytes ?? 576;
  // RFC 1812 §4.3.2.3: 576 is what every IPv4 host accepts; less would cut quotes for nothing.
  if (!(Number.isInteger(icmp4ErrorMaxBytes) && icmp4ErrorMaxBytes >= 576 && icmp4ErrorMaxBytes <= 65535)) throw new TranslatorConfigError(`icmp4ErrorMaxBytes must be 576..65535, not ${icmp4ErrorMaxBytes}`);
  if (c.routerAddress6 !== undefined && c.routerAddress6.length !== 16) throw new TranslatorConfigError("routerAddress6 must be 16 bytes");
  const icmpErrorSource4 = (c.icmpErrorSource4 ?? IPV4_DUMMY_ADDRESS) >>> 0;
  return {
    mapping: c.mapping,
    lowestIpv6Mtu,
    ipv6Mtu,
    ipv4Mtu,
    udpZeroChecksum: c.udpZeroChecksum ?? "compute",
    icmpErrorSource4,
    routerAddress4: (c.routerAddress4 ?? icmpErrorSource4) >>> 0,
    routerAddress6: c.routerAddress6 === undefined ? undefined : Uint8Array.from(c.routerAddress6),
    sendUntranslatableErrors: c.sendUntranslatableErrors ?? true,
    icmp4ErrorMaxBytes,
    eamHairpinning: c.eamHairpinning ?? true,
  };
}
