// The translator object: one per rule-table revision (its mapping is built with the table).
// RFC 7915 §4 and §5 live in 4to6.ts and 6to4.ts; this holds their shared state.
import { IdentificationCounter } from "../packet/identification.js";
import { newIPv4Header } from "../packet/ipv4.js";
import { newIPv6Chain, newIPv6Header, type IPv6Chain } from "../packet/ipv6.js";
import { PrefixViews } from "../packet/buffers.js";
import { translate4to6 } from "./4to6.js";
import { translate6to4, translateWalked6to4 } from "./6to4.js";
import { resolveConfig, type ResolvedConfig, type TranslatorConfig } from "./config.js";
import { drop, type TranslateResult } from "./result.js";
import { copyPacket } from "./alloc.js";
import type { TranslatorState } from "./state.js";

function equal16(a: Uint8Array, b: Uint8Array, offset: number): boolean {
  for (let i = 0; i < 16; i++) if (a[i] !== b[offset + i]) return false;
  return true;
}

export class Translator implements TranslatorState {
  readonly cfg: ResolvedConfig;
  readonly src6 = new Uint8Array(16);
  readonly dst6 = new Uint8Array(16);
  readonly innerSrc6 = new Uint8Array(16);
  readonly innerDst6 = new Uint8Array(16);
  readonly ip4 = newIPv4Header();
  readonly ip6 = newIPv6Header();
  readonly chain = newIPv6Chain();
  readonly innerChain = newIPv6Chain();
  readonly output: PrefixViews | undefined;
  private readonly identification: IdentificationCounter;

  /**
   * Throws TranslatorConfigError on settings out of range; never afterwards. `output`: where
   * whole translated packets are written when they fit (TranslatorState.output), or its views
   * (the forwarder shares its own); the packets returned are then views of it, valid until the
   * next call. An input may be one of those packets; it must not otherwise overlap `output`.
   */
  constructor(config: TranslatorConfig, firstIdentification = 1, output?: Uint8Array | PrefixViews, identificationStep = 1) {
    this.cfg = resolveConfig(config);
    this.identification = new IdentificationCounter(16, firstIdentification, identificationStep);
    this.output = output === undefined || output instanceof PrefixViews ? output : new PrefixViews(output);
  }

  /** RFC 7915 §5.1 "Identification": a counter, unique per source and destination for 65,536 packets (for 65,536 / step with a step). */
  nextIdentification(): number {
    return this.identification.take();
  }

  /**
   * RFC 7915 §4: an IPv4 packet (IP header first) towards the IPv6 side. `mapped`: the caller
   * has just found the destination's explicit mapping with `destination4` (the forwarder's
   * decision), so it is not looked up again.
   */
  translate4to6(packet: Uint8Array, mapped = false): TranslateResult {
    return translate4to6(this, packet, mapped);
  }

  /** RFC 7915 §5: an IPv6 packet (IP header first) towards the IPv4 side, parsed and walked here. */
  translate6to4(packet: Uint8Array): TranslateResult {
    return this.hairpin(translate6to4(this, packet), packet);
  }

  /**
   * RFC 7915 §5 for a packet the caller has checked (IPv6 fixed header, cut to its payload length)
   * and whose extension chain it has walked into `chain`; `dst4` is its destination's IPv4 form
   * from `destination6`. Nothing is parsed, walked or looked up twice.
   */
  translateWalked6to4(packet: Uint8Array, chain: IPv6Chain, dst4: number): TranslateResult {
    return this.hairpin(translateWalked6to4(this, packet, chain, dst4), packet);
  }

  /** `p`, or a copy of it when it lies in the output buffer. */
  private outside(p: Uint8Array): Uint8Array {
    return this.output !== undefined && this.output.holds(p) ? copyPacket(p, 0, p.length) : p;
  }

  /**
   * RFC 7757 §4 (intrinsic hairpinning): when the IPv4 destination of a translated IPv6 packet is
   * an explicit-mapping IPv4 address, the IPv4 packet (or each fragment) is translated back to
   * IPv6 at once, towards that mapping's IPv6 address, with its source in RFC 6052 form. It
   * crosses the translator twice, so the hop limit goes down by two. When the way back cannot
   * be translated, the packet is dropped with that reason: an ICMPv4 error about the IPv4 form
   * would go to an address that is really an IPv6 node.
   *
   * The same holds for an IPv4-translatable destination (RFC 6052 §2, the translation prefix's
   * `ipv4Translatable`): its IPv4 address stands for an IPv6 node, so the IPv4 packet would only
   * come back to this translator (it answers ARP for that address). It goes back to IPv6 at once,
   * to the node's RFC 6052 address (the one it was sent to), from the source's RFC 6052 form.
   */
  private hairpin(r: TranslateResult, input: Uint8Array): TranslateResult {
    if (r.action !== "forward" || !this.cfg.eamHairpinning) return r;
    const first = r.packets[0];
    const dst4 = ((first[16] << 24) | (first[17] << 16) | (first[18] << 8) | first[19]) >>> 0;
    const m = this.cfg.mapping;
    if (m.eam4to6(dst4, this.dst6, 0)) {
      // Sent to that mapping's own IPv6 address (RFC 7757 §3.3: EAM first), it is no hairpin.
      if (equal16(this.dst6, input, 24)) return r;
    } else if (!m.translatable4to6(dst4, this.dst6, 0)) return r;
    const packets: Uint8Array[] = [];
    for (const p of r.packets) {
      // The first translation may sit in the output buffer: it moves out, so the way back can be
      // written there. With several fragments, only the last may stay there.
      const back = translate4to6(this, this.outside(p), true, true);
      if (back.action !== "forward") return back.action === "drop" ? back : drop(back.reason);
      for (const q of back.packets) packets.push(r.packets.length > 1 ? this.outside(q) : q);
    }
    return { action: "forward", packets };
  }

  /**
   * The forwarder's decision for an IPv4 destination: whether an explicit mapping covers it, or
   * else (RFC 7757 §3.3) whether it is IPv4-translatable at an RFC 6052 prefix (RFC 6052 §2,
   * `Rfc6052Prefix.ipv4Translatable`). When so, its IPv6 form is kept for translate4to6(packet, true).
   */
  destination4(dst: number): boolean {
    const m = this.cfg.mapping;
    return m.eam4to6(dst, this.dst6, 0) || m.translatable4to6(dst, this.dst6, 0);
  }

  /** The forwarder's decision for an IPv6 destination: its IPv4 form when it is in a translation prefix (RFC 6052), else -1. */
  destination6(packet: Uint8Array, offset: number): number {
    return this.cfg.mapping.translationDestination6(packet, offset);
  }
}
