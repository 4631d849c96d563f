// Local delivery: what is addressed to the worker itself. A control plane sharing the process
// takes its packets first (`intercept`, README "Control-plane hooks"); then echo requests to our
// own addresses are answered (RFC 1122 §3.2.2.6, RFC 4443 §4.2), ICMP errors about our tunnel
// packets are relayed to the inner source (RFC 2003 §4, RFC 2473 §8), and the rest stops here.
import { checksumOk, pseudoHeaderSum6At } from "../packet/checksum.js";
import { buildIcmp4Echo, ICMP4_TYPE, isIcmp4Error } from "../packet/icmp4.js";
import { buildIcmp6Echo, ICMP6_TYPE, verifyIcmp6Checksum } from "../packet/icmp6.js";
import { IPPROTO } from "../packet/ipv4.js";
import { relayTunnelIcmpError } from "../tunnel/relay.js";
import { originate, sendTunnelResult } from "./egress.js";
import type { PacketState } from "./packet.js";
import type { Router } from "./router.js";

/** Offers the packet to the control plane's `intercept`; true when it took it (counted as `deliver`). */
export function delivered(r: Router, s: PacketState, pkt: Uint8Array): boolean {
  if (r.intercept === undefined || s.injecting || !r.intercept(pkt, s.port.index, s.decapsulated)) return false;
  r.counters.actions.deliver++;
  return true;
}

/** Echo requests to our own IPv4 addresses are answered (RFC 1122 §3.2.2.6); anything else stops here. */
export function local4(r: Router, s: PacketState, pkt: Uint8Array): void {
  const ihl = (pkt[0] & 0x0f) << 2;
  const fragmented = (((pkt[6] << 8) | pkt[7]) & 0x3fff) !== 0;
  if (pkt[9] === IPPROTO.ICMP && !fragmented && pkt.length >= ihl + 8 && pkt[ihl] === ICMP4_TYPE.ECHO_REQUEST && pkt[ihl + 1] === 0 && checksumOk(pkt, ihl, pkt.length)) {
    const id = (pkt[ihl + 4] << 8) | pkt[ihl + 5];
    const seq = (pkt[ihl + 6] << 8) | pkt[ihl + 7];
    const reply = buildIcmp4Echo({ src: pkt.subarray(16, 20), dst: pkt.subarray(12, 16), ttl: 64 }, true, id, seq, pkt.subarray(ihl + 8));
    r.counters.actions.icmp++;
    return originate(r, s, reply, undefined);
  }
  if (pkt[9] === IPPROTO.ICMP && !fragmented && pkt.length >= ihl + 8 && isIcmp4Error(pkt[ihl])) return relay(r, s, pkt);
  r.drop("local");
}

/** The same for IPv6 (RFC 4443 §4.2). */
export function local6(r: Router, s: PacketState, pkt: Uint8Array): void {
  if (pkt[6] === IPPROTO.ICMPV6 && pkt.length >= 48 && pkt[40] === ICMP6_TYPE.ECHO_REQUEST && pkt[41] === 0) {
    const len = pkt.length - 40;
    if (verifyIcmp6Checksum(pkt, 40, len, pseudoHeaderSum6At(pkt, 0, IPPROTO.ICMPV6, len))) {
      const id = (pkt[44] << 8) | pkt[45];
      const seq = (pkt[46] << 8) | pkt[47];
      const reply = buildIcmp6Echo({ src: pkt.subarray(24, 40), dst: pkt.subarray(8, 24), hopLimit: 64 }, true, id, seq, pkt.subarray(48));
      r.counters.actions.icmp++;
      return originate(r, s, reply, undefined);
    }
  }
  if (pkt[6] === IPPROTO.ICMPV6 && pkt.length >= 48 && pkt[40] < 128) return relay(r, s, pkt);
  r.drop("local");
}

/**
 * An ICMP error to us about one of our tunnel packets is passed on to the inner packet's source
 * (RFC 2003 §4, RFC 2473 §8); other errors end here. The reported path MTU is not kept: our
 * tunnels use the egress link MTU (see README, "Not done").
 */
function relay(r: Router, s: PacketState, pkt: Uint8Array): void {
  const t = relayTunnelIcmpError(r.node, pkt).result;
  if (t.action === "drop" && t.reason === "not-tunnel") return r.drop("local");
  sendTunnelResult(r, s, t, "icmp", undefined);
}
