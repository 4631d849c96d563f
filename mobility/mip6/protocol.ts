// Mobile IPv6 (RFC 6275) behind the one interface of ../protocol.ts: a Binding Update from the
// IPv6 care-of address with the home address option (RFC 5555's IPv4 care-of option beside it),
// and the Binding Acknowledgement that answers it.
import { IPPROTO } from "../../dataplane/packet/ipv4.js";
import { newIPv6Chain, walkIPv6Extensions } from "../../dataplane/packet/ipv6.js";
import type { MnHaKey } from "../keys.js";
import { defineProtocol, equalAt, type CareOfAddresses, type MobileNode, type MobilityProtocol, type Registration } from "../protocol.js";
import type { Mip6SecurityAssociation } from "./auth.js";
import { buildBindingUpdatePacket, checkAcknowledgement } from "./binding-update.js";
import { nextSequence } from "./sequence.js";
import { BA_STATUS } from "../../dataplane/packet/mip6.js";

const chain = newIPv6Chain();

/** Whether `pkt` is a Mobility Header message from `from` to `to` (16-byte addresses). */
export function isMobilityMessage(pkt: Uint8Array, from: Uint8Array, to: Uint8Array): boolean {
  return pkt[0] >> 4 === 6 && equalAt(pkt, 24, to) && equalAt(pkt, 8, from) && walkIPv6Extensions(pkt, 0, pkt.length, chain)?.upperProtocol === IPPROTO.MOBILITY;
}

/** The matcher of the answer to a Binding Update packet: from its destination, to its source. */
export function answersTo(bu: Uint8Array): (pkt: Uint8Array) => boolean {
  const careOf = bu.subarray(8, 24).slice();
  const peer = bu.subarray(24, 40).slice();
  return (pkt) => isMobilityMessage(pkt, peer, careOf);
}

class Mip6MobileNode implements MobileNode {
  readonly protocol = mip6;
  private readonly sa: Mip6SecurityAssociation;
  /** The last sequence number used; undefined before the first. */
  private sequence: number | undefined;

  constructor(readonly homeAddress: string, readonly homeAgent: string, key: MnHaKey) {
    this.sa = { spi: key.spi, key: key.key };
  }

  register(careOf: CareOfAddresses, lifetimeS: number, nowMs: number): Registration {
    // 3.2 d: from the IPv6 care-of address with the home address option; wrapped by the host (d).
    const packet = buildBindingUpdatePacket({
      homeAddress: this.homeAddress, careOfAddress: careOf.careOfIPv6, homeAgent: this.homeAgent, sequence: this.next(nowMs), lifetimeS, sa: this.sa, nowMs,
      ...(careOf.careOfIPv4 ? { careOfIPv4: careOf.careOfIPv4 } : {}),
    });
    return {
      packet,
      matches: answersTo(packet),
      check: (pkt) => {
        const r = checkAcknowledgement(pkt, this.sa);
        // Only an acknowledgement that passed authentication may move the sequence number.
        const resync = !r.ok && r.status === BA_STATUS.SEQUENCE_NUMBER_OUT_OF_WINDOW && r.reason !== "bad-auth" ? r.sequence : undefined;
        return { ok: r.ok, ...(r.reason !== undefined ? { reason: r.reason } : {}), ...(resync !== undefined ? { resync } : {}) };
      },
    };
  }

  deregisterAtHome(nowMs: number): Uint8Array {
    return buildBindingUpdatePacket({ homeAddress: this.homeAddress, careOfAddress: this.homeAddress, homeAgent: this.homeAgent, sequence: this.next(nowMs), lifetimeS: 0, sa: this.sa, nowMs });
  }

  /** RFC 6275 §11.7.3: go on from the home agent's last accepted sequence number. */
  resync(to: number): void {
    this.sequence = to;
  }

  private next(nowMs: number): number {
    this.sequence = nextSequence(this.sequence, nowMs);
    return this.sequence;
  }
}

export const mip6: MobilityProtocol = defineProtocol(6, {
  mobileNode: (homeAddress, homeAgent, key) => new Mip6MobileNode(homeAddress, homeAgent, key),
  isRegistrationTo: (pkt, homeAgent) => pkt[0] >> 4 === 6 && equalAt(pkt, 24, homeAgent) && walkIPv6Extensions(pkt, 0, pkt.length, chain)?.upperProtocol === IPPROTO.MOBILITY,
});
