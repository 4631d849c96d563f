// The state of one packet as it goes from step to step (packet in: link.ts; decisions: ipv4.ts,
// ipv6.ts; out: egress.ts). One object per kind of caller is kept by the Forwarder and reused,
// so a packet allocates nothing to carry it; what a step learns (the well-formedness walk) is
// written here for the next one, and nothing is left on the Forwarder between steps.
import { newIPv6Chain, type IPv6Chain } from "../packet/ipv6.js";
import type { InterfaceCounters } from "./counters.js";

/** Length of the Ethernet II header: the IP packet starts here in every frame. */
export const ETH = 14;

export type Emit = (egressIf: number, frame: Uint8Array) => void;

/** One of our interfaces, as the steps use it. */
export interface Port {
  index: number;
  name: string;
  mac: Uint8Array;
  mtu: number;
  /** Accepts unicast frames to any MAC (InterfaceConfig.promiscuous). */
  promiscuous: boolean;
  v4: { value: number; bytes: Uint8Array; mask: number }[];
  v6: { bytes: Uint8Array; length: number }[];
  /** fe80::/64 + modified EUI-64 of the MAC (RFC 4291 §2.5.1, App. A); NS source when there is no other. */
  linkLocal: Uint8Array;
  counters: InterfaceCounters;
}

const NO_EMIT: Emit = () => {};

export class PacketState {
  /** The ingress port (for inject(): the first one). */
  port!: Port;
  /** The received Ethernet frame: its source MAC answers a Neighbor Solicitation. */
  frame: Uint8Array = new Uint8Array(0);
  /** Where this packet's frames go, as given by the caller. */
  emit: Emit = NO_EMIT;
  /** `emit`, counted as sent on the interface: also flushes what the neighbour cache queued. */
  readonly send: Emit = (ifIndex, frame) => {
    const c = this.ports.get(ifIndex)?.counters;
    if (c !== undefined) {
      c.txPackets++;
      c.txBytes += frame.length;
    }
    this.emit(ifIndex, frame);
  };
  /** A packet handed to inject(): ours, never offered to intercept, no TTL spent. */
  injecting: boolean;
  /** The packet came out of a tunnel (at most one decapsulation per packet). */
  decapsulated = false;
  /** Set by a decapsulation: the inner packet, which takes the decision list once more (link.ts). */
  inner: Uint8Array | undefined = undefined;
  /** Well-formedness (wellformed.ts), IPv6: 4 or 41 when the packet is IP in IPv6 (after hop-by-hop and destination options), else -1. */
  tunnel6 = -1;
  /** Well-formedness, IPv6: the packet's extension chain, walked once (the decisions, the correspondents and the translator read it). */
  chain6: IPv6Chain = newIPv6Chain();
  /** Well-formedness: the chain of an IPv6 packet inside the one checked, kept for its own pass once decapsulated. */
  innerChain6: IPv6Chain = newIPv6Chain();
  /** innerChain6 holds the walk of the IPv6 packet inside the current one (reset by each first pass, link.ts ip()). */
  innerWalked = false;
  /** Set while inject() uses it, so a re-entrant inject takes a fresh one. */
  busy = false;

  /** `ports`: the Forwarder's, by interface index (for the sent counters). */
  constructor(private readonly ports: ReadonlyMap<number, Port>, injecting: boolean) {
    this.injecting = injecting;
  }

  /** Ready for a new packet from `port`, whose frames go to `emit`. */
  begin(port: Port, emit: Emit): void {
    this.port = port;
    this.emit = emit;
    this.decapsulated = false;
  }

  /** `inner` needs no reset here: the pass that reads it (link.ts ip()) clears it, and so does the Forwarder after an internal error. */
  end(): void {
    this.emit = NO_EMIT;
  }
}
