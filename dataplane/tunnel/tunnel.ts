// Tunnel configuration: the four kinds of the paper, one tunnel's endpoints and MTU, and the
// node-wide state the tunnel code needs (its own endpoints, ICMP source addresses, IDs).
import { IdentificationCounter } from "../packet/identification.js";
import { AddressSet, type IPFamily } from "./peers.js";

/**
 * inner-in-outer: "4in4" RFC 2003 (protocol 4); "6in6" and "4in6" RFC 2473 (next header 41 / 4);
 * "6in4" RFC 4213 (protocol 41).
 */
export type TunnelKind = "4in4" | "6in6" | "4in6" | "6in4";

export const TUNNEL_KINDS: readonly TunnelKind[] = ["4in4", "6in6", "4in6", "6in4"];

/**
 * RFC 2003 §3.1 leaves the outer TTL to "a value appropriate for delivery to the tunnel exit
 * point" and RFC 2473 §6.3 uses the node's default hop limit; 64 is the IANA-recommended default
 * TTL and Linux's default for both.
 */
export const DEFAULT_TUNNEL_HOP_LIMIT = 64;

/** One tunnel that starts at this node. */
export interface Tunnel {
  kind: TunnelKind;
  /** Outer source: this node's endpoint (4 bytes for an IPv4 outer, 16 for IPv6). */
  local: Uint8Array;
  /** Outer destination: the exit point (care-of address, peer). */
  remote: Uint8Array;
  /**
   * MTU of the link the outer packets leave on (or the path MTU to `remote` when known): the
   * largest outer packet. The tunnel MTU of RFC 2473 §6.7 is this minus the encapsulation
   * headers (see `tunnelMtu`).
   */
  mtu: number;
  /** Outer TTL / hop limit; default DEFAULT_TUNNEL_HOP_LIMIT. */
  hopLimit?: number;
}

export function innerFamily(kind: TunnelKind): IPFamily {
  return kind === "4in4" || kind === "4in6" ? 4 : 6;
}

export function outerFamily(kind: TunnelKind): IPFamily {
  return kind === "4in4" || kind === "6in4" ? 4 : 6;
}

/** Bytes the outer header adds (without the optional Tunnel Encapsulation Limit header). */
export function encapsulationOverhead(kind: TunnelKind): number {
  return outerFamily(kind) === 4 ? 20 : 40;
}

/** RFC 2473 §6.7 / RFC 4213 §3.2: the largest inner packet that goes through unfragmented. */
export function tunnelMtu(tunnel: Tunnel): number {
  return tunnel.mtu - encapsulationOverhead(tunnel.kind);
}

/** Throws RangeError when a tunnel's addresses do not fit its kind or its MTU is unusable. */
export function validateTunnel(tunnel: Tunnel): void {
  const size = outerFamily(tunnel.kind) === 4 ? 4 : 16;
  if (!TUNNEL_KINDS.includes(tunnel.kind)) throw new RangeError(`unknown tunnel kind ${String(tunnel.kind)}`);
  if (tunnel.local.length !== size || tunnel.remote.length !== size) {
    throw new RangeError(`a ${tunnel.kind} tunnel needs ${size}-byte outer addresses`);
  }
  // RFC 8200 §5 for an IPv6 outer; RFC 791's 68 plus our header for an IPv4 outer.
  const min = outerFamily(tunnel.kind) === 6 ? 1280 : 68 + encapsulationOverhead(tunnel.kind);
  if (!Number.isInteger(tunnel.mtu) || tunnel.mtu < min || tunnel.mtu > 65535) {
    throw new RangeError(`a ${tunnel.kind} tunnel MTU must be an integer in ${min}..65535, not ${tunnel.mtu}`);
  }
  const hl = tunnel.hopLimit ?? DEFAULT_TUNNEL_HOP_LIMIT;
  if (!Number.isInteger(hl) || hl < 1 || hl > 255) throw new RangeError(`tunnel hop limit must be 1..255, not ${hl}`);
}

/** Per-node state shared by every tunnel of this node. */
export class TunnelNode {
  /**
   * Every address this node terminates tunnels on (RFC 6324 §3: a packet addressed to one of
   * them must not be sent into a tunnel, it would come straight back).
   */
  readonly endpoints: AddressSet;
  /** Source of the ICMPv4 errors this node sends; without one, the errors are not sent. */
  icmpSource4?: Uint8Array;
  /** Source of the ICMPv6 errors this node sends; without one, the errors are not sent. */
  icmpSource6?: Uint8Array;
  private readonly identification: IdentificationCounter;
  private readonly fragmentIdentification: IdentificationCounter;

  /** `identificationStep`: see IdentificationCounter (the threads of one worker). */
  constructor(options: { endpoints?: Iterable<Uint8Array>; icmpSource4?: Uint8Array; icmpSource6?: Uint8Array; firstIdentification?: number; identificationStep?: number } = {}) {
    this.endpoints = new AddressSet(options.endpoints);
    this.icmpSource4 = options.icmpSource4;
    this.icmpSource6 = options.icmpSource6;
    this.identification = new IdentificationCounter(16, options.firstIdentification ?? 1, options.identificationStep);
    this.fragmentIdentification = new IdentificationCounter(32, options.firstIdentification ?? 1, options.identificationStep);
  }

  /**
   * The IPv4 Identification of the next outer header or fragment series. A counter, as RFC 6864
   * §4 allows; wrap-around is harmless for atomic datagrams and our fragments are short-lived.
   */
  nextIdentification(): number {
    return this.identification.take();
  }

  /** The next IPv6 Fragment header identification (RFC 8200 §4.5). */
  nextFragmentIdentification(): number {
    return this.fragmentIdentification.take();
  }
}
