// Packet in: the Ethernet checks on a received frame (README "Decisions per packet", Ethernet),
// the hand-off by ethertype, and the decision list's passes over an IP packet: one, and a second
// and last one for the inner packet when the first decapsulated it.
import { ETHERTYPE } from "../packet/ethernet.js";
import { ipv4 } from "./ipv4.js";
import { ipv6 } from "./ipv6.js";
import { ETH, type PacketState } from "./packet.js";
import { arp } from "./responder.js";
import type { Router } from "./router.js";

/** A frame received on `s.port`; `packet`, when given, is frame.subarray(ETH), a view the caller keeps. */
export function frameIn(r: Router, s: PacketState, frame: Uint8Array, packet?: Uint8Array): void {
  const port = s.port;
  port.counters.rxPackets++;
  port.counters.rxBytes += frame.length;
  if (frame.length < ETH) return r.drop("malformed");
  for (const p of r.portList) {
    const m = p.mac;
    if (frame[6] === m[0] && frame[7] === m[1] && frame[8] === m[2] && frame[9] === m[3] && frame[10] === m[4] && frame[11] === m[5]) return r.drop("own-frame");
  }
  if (r.watchingStations && r.stationSeen !== undefined) r.stationSeen(frame, port.index);
  const m = port.mac;
  // Unicast frames for other stations: the capture is promiscuous.
  if ((frame[0] & 1) === 0 && !port.promiscuous && !(frame[0] === m[0] && frame[1] === m[1] && frame[2] === m[2] && frame[3] === m[3] && frame[4] === m[4] && frame[5] === m[5])) return r.drop("not-for-us");
  s.frame = frame;
  const type = (frame[12] << 8) | frame[13];
  if (type === ETHERTYPE.IPV4) {
    // IP to a link-layer broadcast/multicast is not routed (RFC 1812 §5.3.4 for broadcast).
    if ((frame[0] & 1) !== 0) return r.drop("not-for-us");
    return ip(r, s, packet ?? frame.subarray(ETH), 4, false);
  }
  if (type === ETHERTYPE.IPV6) return ip(r, s, packet ?? frame.subarray(ETH), 6, (frame[0] & 1) !== 0);
  if (type === ETHERTYPE.ARP) return arp(r, s);
  // RFC 903 RARP: no one here answers it; QEMU sends it from a VM's MAC once the VM runs after
  // a live migration, and OVN's activation-strategy=rarp moves a port on it, as the agent does.
  if (type === ETHERTYPE.RARP && r.stationSeen !== undefined && !r.watchingStations) r.stationSeen(frame, port.index);
  return r.drop("unsupported");
}

/**
 * An IP packet (received as `family` by its ethertype, or given to inject()) through the decision list. A decapsulation
 * leaves the inner packet in `s.inner`: it takes the list once more, marked decapsulated, and a
 * tunnel inside it is dropped there (`decap-loop`), so there is never a third pass.
 */
export function ip(r: Router, s: PacketState, pkt: Uint8Array, family: 4 | 6, linkMulticast: boolean): void {
  s.innerWalked = false;
  if (family === 4) ipv4(r, s, pkt);
  else ipv6(r, s, pkt, linkMulticast);
  const inner = s.inner;
  if (inner === undefined) return;
  s.inner = undefined;
  s.decapsulated = true;
  if (inner[0] >> 4 === 4) ipv4(r, s, inner);
  else ipv6(r, s, inner, false);
}
