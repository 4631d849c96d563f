// Translation (RFC 7915) in the pipeline: the Translator built from the worker's settings and the
// rule table's mapping, and what becomes of its output (routed, or straight into a VM's tunnel
// when a correspondent holds a binding, paper 3.2). The header rules are in dataplane/translate.
import { read32 } from "../packet/checksum.js";
import { Translator, type TranslateResult } from "../translate/index.js";
import { ipv4Bytes, ipv6Bytes } from "./addresses.js";
import { ForwarderConfigError } from "./config.js";
import type { ForwardAction } from "./counters.js";
import { originate, sendError } from "./egress.js";
import type { PacketState } from "./packet.js";
import type { Router } from "./router.js";
import { encap6in4, shortcut6 } from "./tunnels.js";

/**
 * Translates an IPv4 packet to an EAM-mapped or IPv4-translatable destination toward the IPv6
 * side (RFC 7915 §4); the decision (ipv4.ts, Translator.destination4) has looked the mapping up.
 */
export function translate4(r: Router, s: PacketState, pkt: Uint8Array): void {
  translated(r, s, r.translator.translate4to6(pkt, true), "translate-4to6");
}

/**
 * Translates an IPv6 packet to the translation prefix toward the IPv4 side (RFC 7915 §5), with
 * the chain well-formedness walked (s.chain6) and the destination's IPv4 form the decision found.
 */
export function translate6(r: Router, s: PacketState, pkt: Uint8Array, dst4: number): void {
  translated(r, s, r.translator.translateWalked6to4(pkt, s.chain6, dst4), "translate-6to4");
}

/** A whole translated packet is written straight into the output buffer (r.outIp, newTranslator), so originate() sends it without a copy. */
function translated(r: Router, s: PacketState, t: TranslateResult, action: ForwardAction): void {
  switch (t.action) {
    case "forward":
      for (const p of t.packets) {
        // Paper 3.2, last paragraph: an IPv4 correspondent's binding (pool address ↔ IPv4
        // care-of address) sends its translated packets straight into the VM's tunnel.
        const e = p[0] >> 4 === 6 && r.correspondents !== undefined && r.correspondents.size > 0 ? shortcut6(r, p) : undefined;
        if (e !== undefined) {
          r.counters.actions[action]++;
          // The tunnel writes its outer packet into the output buffer: the inner one moves out first.
          encap6in4(r, s, r.outIpViews.holds(p) ? p.slice() : p, e, false);
        } else originate(r, s, p, action);
      }
      return;
    case "icmp":
      return sendError(r, s, t.packet, t.reason);
    case "drop":
      return r.drop(t.reason);
  }
}

/** A Translator for the rule table in force; its identification counter goes on from `firstIdentification`. */
export function newTranslator(r: Router, firstIdentification: number): Translator {
  const s = r.config.translator ?? {};
  const v4 = r.portList.filter((p) => p.v4.length > 0).map((p) => p.mtu);
  const v6 = r.portList.filter((p) => p.v6.length > 0).map((p) => p.mtu);
  const first4 = r.portList.find((p) => p.v4.length > 0)?.v4[0].value;
  try {
    return new Translator({
      mapping: r.rules.mapping,
      lowestIpv6Mtu: s.lowestIpv6Mtu,
      // The translator checks one MTU per family: the smallest of the interfaces of that family.
      ipv4Mtu: v4.length > 0 ? Math.min(...v4) : undefined,
      ipv6Mtu: v6.length > 0 ? Math.max(1280, Math.min(...v6)) : undefined,
      udpZeroChecksum: s.udpZeroChecksum,
      icmpErrorSource4: s.icmpErrorSource4 === undefined ? undefined : read32(ipv4Bytes(s.icmpErrorSource4, "icmpErrorSource4")),
      // The translator's own ICMPv4 errors come from this router, not from the RFC 6791 pool.
      routerAddress4: s.routerAddress4 !== undefined ? read32(ipv4Bytes(s.routerAddress4, "routerAddress4")) : first4,
      routerAddress6: s.routerAddress6 === undefined ? undefined : ipv6Bytes(s.routerAddress6, "routerAddress6"),
      sendUntranslatableErrors: s.sendUntranslatableErrors,
      icmp4ErrorMaxBytes: s.icmp4ErrorMaxBytes,
      eamHairpinning: s.eamHairpinning,
    }, firstIdentification, r.outIpViews, r.identificationStep);
  } catch (e) {
    throw new ForwarderConfigError("worker.translator", (e as Error).message);
  }
}

/** After a table change: a new Translator when, and only when, the mapping changed. */
export function refreshTranslator(r: Router): void {
  if (r.rules.mapping === r.translatorMapping) return;
  r.translatorMapping = r.rules.mapping;
  r.translator = newTranslator(r, r.translator.nextIdentification());
}
