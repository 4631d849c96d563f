// One interface for the two Mobile IPs, so that the privileged-VM agent (clients/agent/) and the
// home agents (homeagent/run.ts) write their flows once. Mobile IPv4 (RFC 5944) and Mobile IPv6
// (RFC 6275) each implement it (mip4/protocol.ts, mip6/protocol.ts): what a registration looks
// like on the wire, how its answer is recognised and checked, how a home agent knows one arriving
// for it, and the tunnel a binding becomes. Pure: packets and times in, packets and verdicts out.
import type { MnHaKey, MobilityProtocolName } from "./keys.js";

/** The care-of addresses the engine leased to a VM (AllocateCareOf): one of each family. */
export interface CareOfAddresses {
  careOfIPv4: string;
  careOfIPv6: string;
}

/** The verdict on a registration's answer (a Registration Reply, a Binding Acknowledgement). */
export interface RegistrationCheck {
  /** Accepted, authenticated, and the answer to this registration. */
  ok: boolean;
  /** Why not ok: the protocol's reason ("bad-auth", "identification-mismatch", a status name, ...). */
  reason?: string;
  /**
   * An authenticated refusal that says where the home agent's replay state is (RFC 6275 §11.7.3:
   * status 135 carries the last accepted sequence number). The mobile node may go on from it
   * (`MobileNode.resync`) and send again: the home agent answered, so that is no retransmission.
   */
  resync?: number;
}

/** One registration as sent: the packet, and how its answer is known. */
export interface Registration {
  /** The whole IP packet, from the mobile node's side, for the data plane to send. */
  packet: Uint8Array;
  /** Whether an arriving IP packet answers this registration (and not an earlier one). */
  matches(pkt: Uint8Array): boolean;
  check(pkt: Uint8Array): RegistrationCheck;
}

/**
 * The mobile-node side of one home address: its home agent, its key, and what a mobile node keeps
 * between registrations (MIPv6's sequence number, RFC 6275 §11.7.1, kept across moves).
 */
export interface MobileNode {
  readonly protocol: MobilityProtocol;
  readonly homeAddress: string;
  readonly homeAgent: string;
  /** A registration from away (lifetime > 0), or a deregistration (0), tunnelled from the care-of addresses. */
  register(careOf: CareOfAddresses, lifetimeS: number, nowMs: number): Registration;
  /** The deregistration sent on the home link (care-of = home address, lifetime 0: RFC 5944 §3.6.1.2, RFC 6275 §11.5.4). */
  deregisterAtHome(nowMs: number): Uint8Array;
  /** Continue from the home agent's state that a RegistrationCheck carried. */
  resync(to: number): void;
}

export interface MobilityProtocol {
  readonly name: MobilityProtocolName;
  readonly family: 4 | 6;
  /** The home agent's tunnel to a care-of address (RFC 5944 §4.1 IP-in-IP; RFC 6275 §9.4 IPv6-in-IPv6). */
  readonly bindingTunnel: "4in4" | "6in6";
  /** A home address as a prefix: /32 or /128. */
  readonly hostPrefixLength: 32 | 128;
  mobileNode(homeAddress: string, homeAgent: string, key: MnHaKey): MobileNode;
  /** Home agent side: whether `pkt` is a registration sent to the home agent at `homeAgent` (its address's bytes). */
  isRegistrationTo(pkt: Uint8Array, homeAgent: Uint8Array): boolean;
}

/** A protocol from its two parts of code; the rest follows from the address family. */
export function defineProtocol(family: 4 | 6, parts: Pick<MobilityProtocol, "mobileNode" | "isRegistrationTo">): MobilityProtocol {
  return family === 4
    ? { name: "mip4", family, bindingTunnel: "4in4", hostPrefixLength: 32, ...parts }
    : { name: "mip6", family, bindingTunnel: "6in6", hostPrefixLength: 128, ...parts };
}

/** Whether `want` stands in `buf` at `off`. */
export function equalAt(buf: Uint8Array, off: number, want: Uint8Array): boolean {
  if (buf.length < off + want.length) return false;
  for (let i = 0; i < want.length; i++) if (buf[off + i] !== want[i]) return false;
  return true;
}
