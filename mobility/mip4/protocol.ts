// Mobile IPv4 (RFC 5944) behind the one interface of ../protocol.ts: a Registration Request in
// UDP to port 434 from the home address (the VM's co-located care-of address is wrapped by the
// host's tunnel), and the Registration Reply that answers it.
import { parseIPv4 } from "../../lib/net/address.js";
import { IPPROTO } from "../../dataplane/packet/ipv4.js";
import { buildUdp4 } from "../../dataplane/packet/udp.js";
import type { MnHaKey } from "../keys.js";
import { defineProtocol, equalAt, type CareOfAddresses, type MobileNode, type MobilityProtocol, type Registration } from "../protocol.js";
import { buildAuthenticatedRequest, checkReply, requestIdentification, type Mip4SecurityAssociation } from "./registration.js";

/** RFC 5944 §3.3: registrations go to UDP port 434. */
export const MIP4_PORT = 434;

class Mip4MobileNode implements MobileNode {
  readonly protocol = mip4;
  private readonly sa: Mip4SecurityAssociation;
  private readonly home: Uint8Array;
  private readonly agent: Uint8Array;

  constructor(readonly homeAddress: string, readonly homeAgent: string, key: MnHaKey) {
    this.sa = { spi: key.spi, algorithm: key.algorithm, key: key.key };
    this.home = parseIPv4(homeAddress, "homeAddress").bytes;
    this.agent = parseIPv4(homeAgent, "homeAgent").bytes;
  }

  register(careOf: CareOfAddresses, lifetimeS: number, nowMs: number): Registration {
    // 3.1 e: home address → r1, care-of address the pool address; the host's rule wraps it (f).
    const rrq = buildAuthenticatedRequest({ homeAddress: this.homeAddress, homeAgent: this.homeAgent, careOfAddress: careOf.careOfIPv4, lifetimeS, sa: this.sa, nowMs });
    const identification = requestIdentification(rrq);
    // RFC 5944 §5.7: the reply carries the request's low 32 identification bits, so a late
    // reply to an earlier attempt is not taken for this one's.
    const low = rrq.subarray(20, 24).slice();
    return {
      packet: this.udp(rrq),
      matches: (pkt) => {
        if (pkt[0] >> 4 !== 4 || pkt[9] !== IPPROTO.UDP || !equalAt(pkt, 16, this.home) || udpSourcePort4(pkt) !== MIP4_PORT) return false;
        return equalAt(pkt, ((pkt[0] & 0x0f) << 2) + 8 + 16, low);
      },
      check: (pkt) => checkReply(pkt.subarray(((pkt[0] & 0x0f) << 2) + 8), this.sa, identification),
    };
  }

  deregisterAtHome(nowMs: number): Uint8Array {
    return this.udp(buildAuthenticatedRequest({ homeAddress: this.homeAddress, homeAgent: this.homeAgent, careOfAddress: this.homeAddress, lifetimeS: 0, sa: this.sa, nowMs }));
  }

  /** Nothing to keep: the Identification follows the clock (RFC 5944 §5.7). */
  resync(): void {}

  private udp(rrq: Uint8Array): Uint8Array {
    return buildUdp4({ src: this.home, dst: this.agent, srcPort: MIP4_PORT, dstPort: MIP4_PORT }, rrq);
  }
}

export const mip4: MobilityProtocol = defineProtocol(4, {
  mobileNode: (homeAddress, homeAgent, key) => new Mip4MobileNode(homeAddress, homeAgent, key),
  isRegistrationTo(pkt, homeAgent) {
    // IPv4, UDP to the home agent, port 434 (§3.3); a fragment is not taken (registrations are small).
    if (pkt[0] >> 4 !== 4 || pkt[9] !== IPPROTO.UDP || (((pkt[6] << 8) | pkt[7]) & 0x3fff) !== 0 || !equalAt(pkt, 16, homeAgent)) return false;
    const ihl = (pkt[0] & 0x0f) << 2;
    return pkt.length >= ihl + 8 && ((pkt[ihl + 2] << 8) | pkt[ihl + 3]) === MIP4_PORT;
  },
});

function udpSourcePort4(pkt: Uint8Array): number {
  const ihl = (pkt[0] & 0x0f) << 2;
  return pkt.length >= ihl + 8 ? (pkt[ihl] << 8) | pkt[ihl + 1] : -1;
}
