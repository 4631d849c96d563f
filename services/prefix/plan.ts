// Prefix management (paper, "The parts" 1): the IPv6 prefix assigned to each IPv4 segment, the
// IPv6 host networks, and the care-of addresses built from them.
import {
  type Cidr6, type IPAddress, type IPv4, type IPv6, cidrText, ipv6FromBytes, parseCidr, parseCidr4, prefixContains,
} from "../../lib/net/address.js";
import { embedIPv4 } from "../../lib/net/rfc6052.js";
import type { EngineConfig, IPv6NetworkConfig, SegmentConfig } from "../config/config.js";

export type HostNetwork =
  | { family: 4; name: string; segment: SegmentConfig }
  | { family: 6; name: string; network: IPv6NetworkConfig };

export class PrefixPlan {
  private readonly byCidr = new Map<string, HostNetwork>();

  constructor(private readonly config: EngineConfig) {
    for (const segment of config.segments) this.byCidr.set(cidrText(segment.network), { family: 4, name: segment.name, segment });
    for (const network of config.ipv6Networks) this.byCidr.set(cidrText(network.network), { family: 6, name: network.name, network });
  }

  /** The network a host record names (HostRecord.network, as networkText gives it). */
  networkByCidr(text: string): HostNetwork | undefined {
    return this.byCidr.get(text);
  }

  get segments(): readonly SegmentConfig[] {
    return this.config.segments;
  }

  /** The segment exactly matching `cidr` (strict CIDR text already validated by the caller). */
  segmentFor(cidr: string): SegmentConfig | undefined {
    const c = parseCidr4(cidr, "ipv4_segment");
    return this.config.segments.find((s) => s.network.length === c.length && s.network.network.value === c.network.value);
  }

  /**
   * Which configured network a host is on, from the addresses its agent reports in CIDR form.
   * An address inside an IPv4 segment or an IPv6 network settles it; IPv4 wins if a host is on both.
   */
  networkOf(addresses: readonly string[]): HostNetwork | undefined {
    let v6: HostNetwork | undefined;
    for (const text of addresses) {
      const c = parseCidr(text, "addresses", false);
      if (c.address.family === 4) {
        const a = c.address;
        const seg = this.config.segments.find((s) => prefixContains(s.network.network.bytes, s.network.length, a.bytes));
        if (seg) return { family: 4, name: seg.name, segment: seg };
      } else {
        const a = c.address;
        const net = this.config.ipv6Networks.find((n) => prefixContains(n.network.network.bytes, n.network.length, a.bytes));
        if (net && !v6) v6 = { family: 6, name: net.name, network: net };
      }
    }
    return v6;
  }

  /**
   * The configured network a home address belongs to: the IPv4 segment holding an IPv4 address,
   * the IPv6 network holding an IPv6 one; undefined for an address on no network the engine serves.
   */
  homeNetworkOf(home: IPAddress): HostNetwork | undefined {
    if (home.family === 4) {
      const seg = this.config.segments.find((s) => prefixContains(s.network.network.bytes, s.network.length, home.bytes));
      return seg && { family: 4, name: seg.name, segment: seg };
    }
    const net = this.config.ipv6Networks.find((n) => prefixContains(n.network.network.bytes, n.network.length, home.bytes));
    return net && { family: 6, name: net.name, network: net };
  }

  /**
   * The IPv6 care-of address the engine derives for a VM with `home` and the IPv4 care-of address
   * `careOf` on host network `net`, as AllocateCareOf hands it out: flow 3.1 b in an IPv6 network
   * (its prefix + the IPv4 home address), flow 3.2 c on a segment with a prefix (the segment's
   * RFC 6052 prefix + the care-of address); undefined where the engine derives none.
   */
  careOfIPv6(net: HostNetwork, home: IPAddress, careOf: IPv4): IPv6 | undefined {
    if (net.family === 6) return home.family === 4 ? this.careOfInIPv6Network(net.network, home) : undefined;
    return net.segment.prefix ? this.careOfInSegment(net.segment.prefix, careOf) : undefined;
  }

  /** Flow 3.1 b: the IPv6 network's prefix with the IPv4 home address in the low 32 bits. */
  careOfInIPv6Network(network: IPv6NetworkConfig, home: IPv4): IPv6 {
    const bytes = Uint8Array.from(network.network.network.bytes);
    bytes.set(home.bytes, 12);
    return ipv6FromBytes(bytes);
  }

  /** Flow 3.2 c: the segment's RFC 6052 prefix + the IPv4 care-of address. */
  careOfInSegment(prefix: Cidr6, careOf: IPv4): IPv6 {
    return ipv6FromBytes(embedIPv4(prefix.network.bytes, prefix.length, careOf.bytes));
  }

  /** The address at which IPv6 correspondents reach an IPv4 address through the translator. */
  translated(address: IPv4): IPv6 | undefined {
    const p = this.config.translationPrefix;
    return p ? ipv6FromBytes(embedIPv4(p.network.bytes, p.length, address.bytes)) : undefined;
  }
}

export function networkText(net: HostNetwork): string {
  return net.family === 4 ? cidrText(net.segment.network) : cidrText(net.network.network);
}
