// The translator object: one per rule-table revision (its mapping is built with the table).
// RFC 7915 §4 and §5 live in 4to6.ts and 6to4.ts; this holds their shared state.
import { newIPv4Header } from "../packet/ipv4.js";
import { newIPv6Chain, newIPv6Header } from "../packet/ipv6.js";
import { translate4to6 } from "./4to6.js";
import { translate6to4 } from "./6to4.js";
import { resolveConfig, type ResolvedConfig, type TranslatorConfig } from "./config.js";
import type { TranslateResult } from "./result.js";
import type { TranslatorState } from "./state.js";

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
  private identification: number;

  /** Throws TranslatorConfigError on settings out of range; never afterwards. */
  constructor(config: TranslatorConfig, firstIdentification = 1) {
    this.cfg = resolveConfig(config);
    this.identification = firstIdentification & 0xffff;
  }

  /** RFC 7915 §5.1 "Identification": a counter, unique per source and destination for 65,536 packets. */
  nextIdentification(): number {
    const id = this.identification;
    this.identification = (id + 1) & 0xffff;
    return id;
  }

  /** RFC 7915 §4: an IPv4 packet (IP header first) towards the IPv6 side. */
  translate4to6(packet: Uint8Array): TranslateResult {
    return translate4to6(this, packet);
  }

  /** RFC 7915 §5: an IPv6 packet (IP header first) towards the IPv4 side. */
  translate6to4(packet: Uint8Array): TranslateResult {
    return translate6to4(this, packet);
  }
}
