// ICMP errors the translator itself sends back towards a packet's source: the router errors
// (Time Exceeded, Fragmentation Needed / Packet Too Big, Parameter Problem) and the
// "cannot translate" errors of RFC 7915 §4.4 and §5.4. Nothing is sent about an ICMP error or
// a non-initial fragment (RFC 1812 §4.3.2.7, RFC 4443 §2.4(e)); the input is then just dropped.
import { buildIcmp4Error, mayQuoteIcmp4 } from "../packet/icmp4.js";
import { buildIcmp6Error, mayQuoteIcmp6 } from "../packet/icmp6.js";
import { readIPv4Address } from "../packet/ipv4.js";
import { drop, type DropReason, type TranslateResult } from "./result.js";
import type { TranslatorState } from "./state.js";

/** An ICMPv4 error about the IPv4 `packet`, from the translator to its source. */
export function icmp4Back(t: TranslatorState, packet: Uint8Array, type: number, code: number, restOfHeader: number, reason: DropReason): TranslateResult {
  if (!mayQuoteIcmp4(packet)) return drop(reason);
  return { action: "icmp", packet: buildIcmp4Error(type, code, restOfHeader, packet, t.cfg.routerAddress4, readIPv4Address(packet, 12)), reason };
}

/** RFC 7915 §4.4: Destination Unreachable, Communication Administratively Prohibited (3/13). */
export function icmp4Untranslatable(t: TranslatorState, packet: Uint8Array, reason: DropReason): TranslateResult {
  if (!t.cfg.sendUntranslatableErrors) return drop(reason);
  return icmp4Back(t, packet, 3, 13, 0, reason);
}

/** An ICMPv6 error about the IPv6 `packet`, from the translator to its source. */
export function icmp6Back(t: TranslatorState, packet: Uint8Array, type: number, code: number, restOfHeader: number, reason: DropReason): TranslateResult {
  if (!mayQuoteIcmp6(packet, type, code)) return drop(reason);
  // Without a configured router address, answer from the address the packet was sent to: the
  // translator owns it (it maps into IPv4), so the error passes source-address filters.
  const src = t.cfg.routerAddress6 ?? packet.subarray(24, 40);
  return { action: "icmp", packet: buildIcmp6Error(type, code, restOfHeader, packet, src, packet.subarray(8, 24)), reason };
}

/** RFC 7915 §5.4: Destination Unreachable, Communication with Destination Administratively Prohibited (1/1). */
export function icmp6Untranslatable(t: TranslatorState, packet: Uint8Array, reason: DropReason): TranslateResult {
  if (!t.cfg.sendUntranslatableErrors) return drop(reason);
  return icmp6Back(t, packet, 1, 1, 0, reason);
}
