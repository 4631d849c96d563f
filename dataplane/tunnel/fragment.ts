// The fragmentation the tunnels use (see the README for when each is used), on the codec's
// fragmenters.
import { fragmentIPv6Payload } from "../packet/fragment.js";
import { IPV6_HEADER_LENGTH } from "../packet/ipv6.js";

export { fragmentIPv4Packet, withHeadroom } from "../packet/fragment.js";

/**
 * Splits an IPv6 packet that we built ourselves (a fixed header and no extension header that must
 * stay unfragmentable) into fragments of at most `maxSize` bytes, RFC 8200 §4.5. Returns undefined
 * if `maxSize` leaves no room for 8 bytes of data.
 */
export function fragmentOwnIPv6Packet(packet: Uint8Array, maxSize: number, identification: number): Uint8Array[] | undefined {
  const total = IPV6_HEADER_LENGTH + ((packet[4] << 8) | packet[5]);
  return fragmentIPv6Payload(packet.subarray(IPV6_HEADER_LENGTH, total), {
    trafficClass: ((packet[0] & 0x0f) << 4) | (packet[1] >> 4), hopLimit: packet[7],
    src: packet.subarray(8, 24), dst: packet.subarray(24, 40), nextHeader: packet[6],
    fragmentOffset: 0, moreFragments: false, identification,
  }, maxSize);
}
