// Egress: the route lookup, the neighbour and the frame we transmit, for routed packets (RFC 1812
// §5.2–5.3, RFC 8200 §3, RFC 4443) and for what other steps produced (tunnel results, translated
// packets, ICMP errors and echo replies we build). Also the ICMP errors routing itself sends.
import { read32, updateChecksum16 } from "../packet/checksum.js";
import { ETHERTYPE } from "../packet/ethernet.js";
import { fragmentIPv4Packet } from "../packet/fragment.js";
import { buildIcmp4Error, ICMP4_TYPE, ICMP4_UNREACH, mayQuoteIcmp4 } from "../packet/icmp4.js";
import { buildIcmp6Error, ICMP6_TYPE, ICMP6_UNREACH, mayQuoteIcmp6 } from "../packet/icmp6.js";
import { fragmentationNeeded, packetTooBig, timeExceeded4, timeExceeded6 } from "../tunnel/errors.js";
import type { IPFamily } from "../tunnel/peers.js";
import type { TunnelResult } from "../tunnel/result.js";
import type { ForwardAction } from "./counters.js";
import { ETH, type PacketState, type Port } from "./packet.js";
import type { TunnelRoute } from "./rules.js";
import type { Router } from "./router.js";

function copy4(r: Router, buf: Uint8Array, off: number): Uint8Array {
  const n = r.nh4;
  n[0] = buf[off];
  n[1] = buf[off + 1];
  n[2] = buf[off + 2];
  n[3] = buf[off + 3];
  return n;
}

function copy6(r: Router, buf: Uint8Array, off: number): Uint8Array {
  const n = r.nh6;
  for (let i = 0; i < 16; i++) n[i] = buf[off + i];
  return n;
}

/** RFC 1812 §5.2, §5.3.1: plain IPv4 forwarding. */
export function route4(r: Router, s: PacketState, pkt: Uint8Array): void {
  const rt = r.lookup4(read32(pkt, 16));
  if (rt === undefined) {
    // RFC 1812 §5.2.7.1: Destination Unreachable, network unreachable.
    error4(r, s, pkt, ICMP4_TYPE.DESTINATION_UNREACHABLE, ICMP4_UNREACH.NET, 0);
    return r.drop("no-route");
  }
  // RFC 1812 §5.3.1: a TTL that would reach zero is not forwarded; Time Exceeded goes back.
  if (pkt[8] <= 1) return sendTunnelResult(r, s, timeExceeded4(r.node, pkt), "route", undefined);
  const len = pkt.length;
  const out = r.outIp;
  out.set(pkt);
  out[8]--;
  // RFC 1624: the checksum follows the TTL word (TTL, protocol).
  const c = updateChecksum16((out[10] << 8) | out[11], ((out[8] + 1) << 8) | out[9], (out[8] << 8) | out[9]);
  out[10] = c >> 8;
  out[11] = c & 0xff;
  const nextHop = rt.gateway ?? copy4(r, out, 16);
  if (len > rt.port.mtu) {
    // RFC 1812 §5.2.6 / RFC 1191: DF set → Fragmentation Needed with the next-hop MTU; else fragment.
    if ((out[6] & 0x40) !== 0) return sendTunnelResult(r, s, fragmentationNeeded(r.node, pkt, rt.port.mtu), "route", undefined);
    const frags = fragmentIPv4Packet(out.subarray(0, len), rt.port.mtu);
    if (frags === undefined) return r.drop("too-big");
    for (const f of frags) {
      out.set(f);
      r.counters.actions.route++;
      transmit(r, s, rt.port, 4, nextHop, f.length);
    }
    return;
  }
  r.counters.actions.route++;
  transmit(r, s, rt.port, 4, nextHop, len);
}

/** RFC 8200 §3, RFC 4443: plain IPv6 forwarding; routers never fragment. */
export function route6(r: Router, s: PacketState, pkt: Uint8Array): void {
  // RFC 4291 §2.5.6: link-local addresses are never forwarded.
  if ((pkt[24] === 0xfe && (pkt[25] & 0xc0) === 0x80) || (pkt[8] === 0xfe && (pkt[9] & 0xc0) === 0x80)) return r.drop("not-for-us");
  const rt = r.lookup6(pkt, 24);
  if (rt === undefined) {
    // RFC 4443 §3.1 code 0: no route to destination.
    error6(r, s, pkt, ICMP6_TYPE.DESTINATION_UNREACHABLE, ICMP6_UNREACH.NO_ROUTE, 0);
    return r.drop("no-route");
  }
  // RFC 8200 §3 / RFC 4443 §3.3: a hop limit that would reach zero.
  if (pkt[7] <= 1) return sendTunnelResult(r, s, timeExceeded6(r.node, pkt), "route", undefined);
  // RFC 4443 §3.2: too big for the next link → Packet Too Big with its MTU.
  if (pkt.length > rt.port.mtu) return sendTunnelResult(r, s, packetTooBig(r.node, pkt, rt.port.mtu), "route", undefined);
  const out = r.outIp;
  out.set(pkt);
  out[7]--;
  r.counters.actions.route++;
  transmit(r, s, rt.port, 6, rt.gateway ?? copy6(r, out, 24), pkt.length);
}

/** An ICMPv4 error from this router about `pkt` (RFC 1812 §4.3.2.7 decides whether one may go). */
function error4(r: Router, s: PacketState, pkt: Uint8Array, type: number, code: number, rest: number): void {
  const src = r.node.icmpSource4;
  if (src === undefined || !mayQuoteIcmp4(pkt)) return;
  if (!r.icmpErrors.take(r.now)) return r.drop("icmp-rate-limited");
  r.counters.actions.icmp++;
  originate(r, s, buildIcmp4Error(type, code, rest, pkt, src, pkt.subarray(12, 16)), undefined);
}

function error6(r: Router, s: PacketState, pkt: Uint8Array, type: number, code: number, rest: number): void {
  const src = r.node.icmpSource6;
  if (src === undefined || !mayQuoteIcmp6(pkt, type, code)) return;
  if (!r.icmpErrors.take(r.now)) return r.drop("icmp-rate-limited");
  r.counters.actions.icmp++;
  originate(r, s, buildIcmp6Error(type, code, rest, pkt, src, pkt.subarray(8, 24)), undefined);
}

/**
 * Sends an ICMP error that a tunnel or the translator built, within the worker's rate limit
 * (ratelimit.ts); the packet it is about was dropped for `reason`, counted here.
 */
export function sendError(r: Router, s: PacketState, error: Uint8Array, reason: string): void {
  r.drop(reason);
  if (!r.icmpErrors.take(r.now)) return r.drop("icmp-rate-limited");
  r.counters.actions.icmp++;
  originate(r, s, error, undefined);
}

/**
 * Sends a whole IP packet that needs no TTL change here (translated, an ICMP error we built):
 * route lookup, MTU check, neighbour. `action` is counted when given.
 */
export function originate(r: Router, s: PacketState, pkt: Uint8Array, action: ForwardAction | undefined): void {
  let port: Port;
  let nextHop: Uint8Array;
  if (pkt[0] >> 4 === 4) {
    const rt = r.lookup4(read32(pkt, 16));
    if (rt === undefined) return r.drop("no-route");
    port = rt.port;
    nextHop = rt.gateway ?? copy4(r, pkt, 16);
  } else {
    const rt = r.lookup6(pkt, 24);
    if (rt === undefined) return r.drop("no-route");
    port = rt.port;
    nextHop = rt.gateway ?? copy6(r, pkt, 24);
  }
  if (pkt.length > port.mtu) return r.drop("egress-too-big");
  // A translated packet is already there (translation.ts); anything else is copied in once.
  if (!inOutput(r, pkt)) r.outIp.set(pkt);
  if (action !== undefined) r.counters.actions[action]++;
  transmit(r, s, port, pkt[0] >> 4 === 4 ? 4 : 6, nextHop, pkt.length);
}

/** Sends what a tunnel operation produced: the packet along `route`, or an ICMP error back. */
export function sendTunnelResult(r: Router, s: PacketState, t: TunnelResult, action: ForwardAction, route: TunnelRoute | undefined): void {
  switch (t.action) {
    case "forward": {
      if (route === undefined) return r.drop("internal-error");
      const port = r.ports.get(route.ifIndex)!;
      // With a route, the result is an (re-)encapsulation's: written at r.outIp[0..t.length), where it is sent from.
      r.counters.actions[action]++;
      return transmit(r, s, port, route.nextHop.length === 4 ? 4 : 6, route.nextHop, t.length);
    }
    case "fragments": {
      if (route === undefined) return r.drop("internal-error");
      const port = r.ports.get(route.ifIndex)!;
      for (const f of t.packets) {
        r.outIp.set(f);
        r.counters.actions[action]++;
        transmit(r, s, port, route.nextHop.length === 4 ? 4 : 6, route.nextHop, f.length);
      }
      return;
    }
    case "icmp":
      return sendError(r, s, t.packet.subarray(0, t.length), t.reason);
    case "drop":
      return r.drop(t.reason);
  }
}

/** Whether `pkt` already sits where the frame is sent from: a translated packet the translator wrote there (r.outIpViews). */
function inOutput(r: Router, pkt: Uint8Array): boolean {
  return r.outIpViews.holds(pkt);
}

/** The IP packet at outIp[0..length] leaves on `port` towards `nextHop`, now or once resolved. */
function transmit(r: Router, s: PacketState, port: Port, family: IPFamily, nextHop: Uint8Array, length: number): void {
  const out = r.out;
  const m = port.mac;
  out[6] = m[0]; out[7] = m[1]; out[8] = m[2]; out[9] = m[3]; out[10] = m[4]; out[11] = m[5];
  const type = family === 4 ? ETHERTYPE.IPV4 : ETHERTYPE.IPV6;
  out[12] = type >> 8;
  out[13] = type & 0xff;
  const frame = r.outFrames.of(ETH + length);
  const mac = r.neighbours.resolve(port.index, nextHop, 0, family, frame, r.now, s.send);
  if (mac === undefined) return;
  out[0] = mac[0]; out[1] = mac[1]; out[2] = mac[2]; out[3] = mac[3]; out[4] = mac[4]; out[5] = mac[5];
  s.send(port.index, frame);
}
