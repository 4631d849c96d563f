// The four tunnels of the paper (RFC 2003, RFC 2473, RFC 4213): see README.md.
export { decapsulate, type DecapsulateOptions } from "./decapsulate.js";
export { decrementHopLimit, encapsulate, encapsulatedLength, TUNNEL_ENCAPSULATION_LIMIT_OPTION, type EncapsulateOptions } from "./encapsulate.js";
export { decapsulateEcn, ecnCombinationUnexpected, encapsulateEcn, ECN_CE, ECN_DROP, ECN_ECT0, ECN_ECT1, ECN_NOT_ECT } from "./ecn.js";
export { fragmentIPv4Packet, fragmentOwnIPv6Packet } from "./fragment.js";
export { AddressMap, AddressSet, innerSourceAllowed, TunnelPeerTable, type IPFamily, type Prefix, type TunnelPeer } from "./peers.js";
export { reencapsulate } from "./reencapsulate.js";
export { relayTunnelIcmpError, type TunnelIcmpRelay } from "./relay.js";
export { drop, TUNNEL_REASONS, type TunnelDrop, type TunnelForward, type TunnelFragments, type TunnelIcmp, type TunnelIcmpReason, type TunnelReason, type TunnelResult } from "./result.js";
export {
  DEFAULT_TUNNEL_HOP_LIMIT, encapsulationOverhead, innerFamily, outerFamily, TUNNEL_KINDS, tunnelMtu, TunnelNode, validateTunnel,
  type Tunnel, type TunnelKind,
} from "./tunnel.js";
