// The ARP / NDP responder: the kernel has no addresses on the worker's interfaces, so this
// answers for our own addresses, the addresses we proxy (a home agent's bindings) and those we
// serve, learns neighbours from what it hears (RFC 826, RFC 4861 §7), solicits next hops for the
// neighbour cache, and makes the announcements a control plane asks for (RFC 5227, RFC 4861 §7.2.6).
import { prefixContainsAt } from "../../lib/net/address.js";
import { ARP_LENGTH, ARP_OPERATION, parseArp, writeArp } from "../packet/arp.js";
import { pseudoHeaderSum6At, read32 } from "../packet/checksum.js";
import { BROADCAST_MAC, ETHERTYPE, ipv6MulticastMac, writeEthernetHeader } from "../packet/ethernet.js";
import { ICMP6_TYPE, verifyIcmp6Checksum } from "../packet/icmp6.js";
import { IPPROTO } from "../packet/ipv4.js";
import { ALL_NODES, buildNeighborAdvertisement, buildNeighborSolicitation, parseNd, solicitedNodeAddress } from "../packet/nd.js";
import type { NeighbourEntry } from "../neighbour/cache.js";
import { ipv4Bytes, ipv6Bytes } from "./addresses.js";
import { ForwarderConfigError } from "./config.js";
import { ETH, type Emit, type PacketState, type Port } from "./packet.js";
import type { Router } from "./router.js";

function isZero(buf: Uint8Array, off: number, n: number): boolean {
  for (let i = 0; i < n; i++) if (buf[off + i] !== 0) return false;
  return true;
}

/** Whether we answer ARP for the address on `port`: our own, or a served one not behind `port`. */
function answersFor4(r: Router, port: Port, a: number, buf: Uint8Array, off: number): boolean {
  if (r.own.has(buf, off, 4) || r.proxied.has(buf, off, 4)) return true;
  if (!(r.inServed4(a) || r.rules.eam.isMappedIPv4(a) || r.rules.mapping.isTranslatable4(a))) return false;
  // Proxy ARP only for addresses that are not on the asking link.
  return r.lookup4(a)?.port !== port;
}

function answersFor6(r: Router, port: Port, buf: Uint8Array, off: number): boolean {
  if (r.own.has(buf, off, 6) || r.proxied.has(buf, off, 6)) return true;
  if (!(r.inServed6(buf, off) || r.rules.reencap6.inForce(buf, off) !== undefined || r.rules.mapping.inTranslationPrefix(buf, off))) return false;
  return r.lookup6(buf, off)?.port !== port;
}

/** RFC 826 "packet reception", with RFC 5227's probes (sender 0.0.0.0) not learned from. */
export function arp(r: Router, s: PacketState): void {
  const frame = s.frame;
  const port = s.port;
  const a = parseArp(frame, ETH);
  if (a === undefined) return r.drop("malformed");
  const forUs = answersFor4(r, port, a.targetIp, frame, a.targetIpOffset);
  const reply = a.operation === ARP_OPERATION.REPLY;
  if (a.senderIp !== 0 && (frame[a.senderMacOffset] & 1) === 0) {
    r.neighbours.learn(port.index, frame, a.senderIpOffset, 4, frame, a.senderMacOffset, r.now, s.send, { confirmed: reply && forUs, create: forUs });
  }
  if (a.operation !== ARP_OPERATION.REQUEST || !forUs || a.senderIp === a.targetIp) {
    r.learned++;
    return;
  }
  const out = new Uint8Array(ETH + ARP_LENGTH);
  writeEthernetHeader(out, 0, frame.subarray(a.senderMacOffset, a.senderMacOffset + 6), port.mac, ETHERTYPE.ARP);
  writeArp(out, ETH, ARP_OPERATION.REPLY, port.mac, frame.subarray(a.targetIpOffset, a.targetIpOffset + 4), frame.subarray(a.senderMacOffset, a.senderMacOffset + 6), frame.subarray(a.senderIpOffset, a.senderIpOffset + 4));
  r.counters.actions.arp++;
  s.send(port.index, out);
}

/** RFC 4861 §7.1 validation, §7.2.3–§7.2.5 (and §7.2.8 for the addresses we proxy). `pkt`: the IPv6 packet of `s.frame`. */
export function nd(r: Router, s: PacketState, pkt: Uint8Array): void {
  const port = s.port;
  const len = pkt.length - 40;
  // §7.1.1/§7.1.2: hop limit 255, valid checksum, code 0.
  if (pkt[7] !== 255 || !verifyIcmp6Checksum(pkt, 40, len, pseudoHeaderSum6At(pkt, 0, IPPROTO.ICMPV6, len)) || pkt[41] !== 0) return r.drop("malformed");
  const m = parseNd(pkt, 40, len);
  if (m === undefined) return r.drop("malformed");
  if (m.type === ICMP6_TYPE.NEIGHBOR_SOLICITATION) {
    if (pkt[m.targetOffset] === 0xff) return r.drop("malformed");
    const unspecified = isZero(pkt, 8, 16);
    if (unspecified) {
      // §7.1.1: DAD probes go to a solicited-node address and carry no source link-layer option.
      if (m.sourceLinkLayerOffset >= 0 || !(pkt[24] === 0xff && pkt[25] === 0x02 && pkt[35] === 0x01 && pkt[36] === 0xff)) return r.drop("malformed");
    }
    const forUs = answersFor6(r, port, pkt, m.targetOffset);
    if (!unspecified && m.sourceLinkLayerOffset >= 0) {
      r.neighbours.learn(port.index, pkt, 8, 6, pkt, m.sourceLinkLayerOffset, r.now, s.send, { confirmed: false, create: forUs });
    }
    if (!forUs) return r.drop("not-for-us");
    const target = pkt.slice(m.targetOffset, m.targetOffset + 16);
    const own = r.own.has(pkt, m.targetOffset, 6);
    // §7.2.4: to the solicitor, or to all-nodes for a DAD probe; §7.2.8: a proxy leaves O clear.
    const dst = unspecified ? ALL_NODES : pkt.slice(8, 24);
    // RFC 4861 §7.2.5 / RFC 6275 §10.4.1: for a proxied home address we speak for a host, so R is clear (as in announce()).
    const router = own || !r.proxied.has(pkt, m.targetOffset, 6);
    const na = buildNeighborAdvertisement({ src: target, dst, target, router, solicited: !unspecified, override: own, targetLinkLayer: port.mac });
    const dstMac = unspecified ? ipv6MulticastMac(ALL_NODES) : s.frame.subarray(6, 12);
    r.counters.actions.nd++;
    return s.send(port.index, ipv6Frame(dstMac, port.mac, na));
  }
  if (m.type === ICMP6_TYPE.NEIGHBOR_ADVERTISEMENT) {
    // §7.1.2: a solicited NA to a multicast address is invalid.
    if (m.solicited && pkt[24] === 0xff) return r.drop("malformed");
    if (m.targetLinkLayerOffset >= 0) {
      r.neighbours.learn(port.index, pkt, m.targetOffset, 6, pkt, m.targetLinkLayerOffset, r.now, s.send, { confirmed: m.solicited, create: false, override: m.override });
    }
    r.learned++;
    return;
  }
  // Router solicitations/advertisements and redirects: we neither advertise nor follow them.
  r.drop("local");
}

function ipv6Frame(dstMac: Uint8Array, srcMac: Uint8Array, packet: Uint8Array): Uint8Array {
  const out = new Uint8Array(ETH + packet.length);
  writeEthernetHeader(out, 0, dstMac, srcMac, ETHERTYPE.IPV6);
  out.set(packet, ETH);
  return out;
}

function arpRequest(dstMac: Uint8Array, port: Port, senderMac: Uint8Array, senderIp: Uint8Array | 0, targetIp: Uint8Array): Uint8Array {
  const out = new Uint8Array(ETH + ARP_LENGTH);
  writeEthernetHeader(out, 0, dstMac, port.mac, ETHERTYPE.ARP);
  writeArp(out, ETH, ARP_OPERATION.REQUEST, senderMac, senderIp, new Uint8Array(6), targetIp);
  return out;
}

/** ARP request / Neighbor Solicitation for a neighbour entry (RFC 826, RFC 4861 §7.2.2). */
export function solicit(r: Router, e: NeighbourEntry, unicast: boolean, emit: Emit): void {
  const port = r.ports.get(e.ifIndex);
  if (port === undefined) return;
  if (e.family === 4) {
    const target = read32(e.address);
    const sender = port.v4.find((a) => ((a.value & a.mask) >>> 0) === ((target & a.mask) >>> 0)) ?? port.v4[0];
    r.counters.actions.arp++;
    return emit(port.index, arpRequest(unicast ? e.mac : BROADCAST_MAC, port, port.mac, sender?.bytes ?? 0, e.address));
  }
  const src = port.v6.find((a) => prefixContainsAt(a.bytes, a.length, e.address, 0))?.bytes ?? port.v6[0]?.bytes ?? port.linkLocal;
  const dst = unicast ? e.address : solicitedNodeAddress(e.address);
  const ns = buildNeighborSolicitation({ src, target: e.address, dst, sourceLinkLayer: port.mac });
  r.counters.actions.nd++;
  emit(port.index, ipv6Frame(unicast ? e.mac : ipv6MulticastMac(dst), port.mac, ns));
}

/**
 * Tells a link that `address` is now at `mac` (default: the interface's own MAC): a gratuitous
 * ARP request for IPv4 (RFC 5944 §4.6, RFC 5227 §3 "ARP Announcement"), an unsolicited Neighbor
 * Advertisement with the Override flag to all-nodes for IPv6 (RFC 4861 §7.2.6). The Ethernet
 * source is always the interface's MAC, so switches do not learn `mac` on our port.
 */
export function announce(r: Router, ifName: string, address: string, emit: Emit, mac?: Uint8Array): void {
  const port = r.portList.find((p) => p.name === ifName);
  if (port === undefined) throw new ForwarderConfigError("interface", `no interface is named '${ifName}'`);
  const hw = mac ?? port.mac;
  let out: Uint8Array;
  if (!address.includes(":")) {
    const a = ipv4Bytes(address, "address");
    out = arpRequest(BROADCAST_MAC, port, hw, a, a);
    r.counters.actions.arp++;
  } else {
    const a = ipv6Bytes(address, "address");
    const na = buildNeighborAdvertisement({ src: port.linkLocal, dst: ALL_NODES, target: a, router: false, solicited: false, override: true, targetLinkLayer: hw });
    out = ipv6Frame(ipv6MulticastMac(ALL_NODES), port.mac, na);
    r.counters.actions.nd++;
  }
  port.counters.txPackets++;
  port.counters.txBytes += out.length;
  emit(port.index, out);
}
