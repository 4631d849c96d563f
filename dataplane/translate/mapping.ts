// Address mapping of the translator (RFC 7915 §6): explicit address mappings (RFC 7757) first,
// then the RFC 6052 algorithm. The caller builds one `AddressMapping` per rule-table revision;
// a lookup is one Map probe per distinct prefix length in the table and allocates nothing, so
// 100,000 entries cost no more per packet than ten.
import { embedIPv4, extractIPv4At, isRfc6052Length } from "../../lib/net/rfc6052.js";
import { read32 } from "../packet/checksum.js";

/** An RFC 6052 translation prefix (pref64) at one of the lengths of RFC 6052 §2.2. */
export interface Rfc6052Prefix {
  /** 16 bytes; bits past `length` are ignored. */
  prefix: Uint8Array;
  /** 32, 40, 48, 56, 64 or 96. */
  length: number;
  /**
   * The IPv4 addresses this prefix represents in IPv4 → IPv6 translation, as a 32-bit network
   * and length; absent means all. With several prefixes the first match wins.
   */
  ipv4Network?: number;
  ipv4Length?: number;
  /**
   * IPv4-translatable destinations (RFC 6052 §2, RFC 6144): the IPv4 prefixes whose
   * addresses stand for IPv6 nodes at this prefix, so an IPv4 packet to one is translated with
   * this prefix when no explicit mapping covers it (RFC 7757 §3.3). The forwarder's decision
   * (`translatable4to6`); prefixes of all the lists may not overlap.
   */
  ipv4Translatable?: readonly { network: number; length: number }[];
}

/**
 * An explicit address mapping entry (RFC 7757 §3.1): an IPv4 prefix and an IPv6 prefix. The
 * IPv4 suffix bits are copied right after the IPv6 prefix (§3.2); an IPv6 suffix longer than the
 * IPv4 one (a /24 ↔ /72) leaves its remaining bits zero 4→6 and ignored 6→4. A shorter one
 * cannot hold the IPv4 suffix and is refused. A single-address entry is /32 ↔ /128.
 */
export interface ExplicitAddressMapping {
  /** The IPv4 network as an unsigned 32-bit integer. */
  ipv4: number;
  ipv4Length: number;
  /** 16 bytes. */
  ipv6: Uint8Array;
  ipv6Length: number;
}

export interface AddressMappingConfig {
  rfc6052?: readonly Rfc6052Prefix[];
  eam?: readonly ExplicitAddressMapping[];
}

/** A configuration the table refuses; raised by `AddressMapping.build`, never on the hot path. */
export class AddressMappingError extends Error {
  override name = "AddressMappingError";
}

interface EamEntry {
  ipv4: number;
  /** 16 bytes, the bits past the IPv6 prefix cleared. */
  ipv6: Uint8Array;
  /** Mask of the IPv4 suffix bits (32 − IPv4 length). */
  suffixMask: number;
  /**
   * Where the IPv4 suffix lies in the IPv6 address (RFC 7757 §3.2: right after the IPv6 prefix):
   * its lowest bit is bit `shift` of 32-bit word `word` (0 = the first); when it crosses into
   * the word before, `spill` is true. For equal suffix lengths: word 3, shift 0.
   */
  word: number;
  shift: number;
  spill: boolean;
}

interface TranslatableEntry {
  network: number;
  mask: number;
  length: number;
  /** Index into `prefixes`. */
  prefix: number;
}

interface ResolvedPrefix {
  prefix: Uint8Array;
  length: number;
  /** The prefix's whole 32-bit words (unsigned), and its bytes past them (40, 48, 56: 1–3). */
  words: number[];
  ipv4Network: number;
  ipv4Mask: number;
}

function write32(buf: Uint8Array, offset: number, v: number): void {
  buf[offset] = v >>> 24; buf[offset + 1] = (v >>> 16) & 255; buf[offset + 2] = (v >>> 8) & 255; buf[offset + 3] = v & 255;
}

function mask4(length: number): number {
  return length === 0 ? 0 : (0xffffffff << (32 - length)) >>> 0;
}

/** The four 32-bit words of an IPv6 prefix mask of `length` bits. */
function masks6(length: number): Uint32Array {
  const m = new Uint32Array(4);
  for (let i = 0; i < 4; i++) m[i] = mask4(Math.max(0, Math.min(32, length - 32 * i)));
  return m;
}

/**
 * A 32-bit hash of the bits of an IPv6 address set in `mask`, signed: a Map keyed by a number
 * needs no string built per packet, and a V8 small integer (an unsigned hash above 2^31 would be a
 * boxed number, hashed in C++ on every probe). Prefixes that collide share a bucket and are told
 * apart by `samePrefix`.
 */
function hash6(buf: Uint8Array, offset: number, mask: Uint32Array): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < 4; i++) {
    h = Math.imul(h ^ (read32(buf, offset + 4 * i) & mask[i]), 0x01000193);
    h ^= h >>> 15;
  }
  return h | 0;
}

function samePrefix(prefix: Uint8Array, buf: Uint8Array, offset: number, mask: Uint32Array): boolean {
  for (let i = 0; i < 4; i++) {
    if (((read32(buf, offset + 4 * i) ^ read32(prefix, 4 * i)) & mask[i]) !== 0) return false;
  }
  return true;
}

function ipv4Text(v: number): string {
  return `${v >>> 24}.${(v >>> 16) & 255}.${(v >>> 8) & 255}.${v & 255}`;
}

export class AddressMapping {
  /** EAM by IPv4 prefix: one Map per prefix length present, longest first (RFC 7757 §3.2), keyed by the network as a signed 32-bit number (a V8 small integer, as in hash6). */
  private readonly eam4Masks: number[];
  private readonly eam4: Map<number, EamEntry>[];
  /** EAM by IPv6 prefix: one Map of hash buckets per prefix length present, longest first. */
  private readonly eam6Masks: Uint32Array[];
  private readonly eam6: Map<number, EamEntry[]>[];
  private readonly prefixes: ResolvedPrefix[];
  /** The IPv4-translatable prefixes of all the RFC 6052 prefixes; few, so a list. */
  private readonly translatable: TranslatableEntry[] = [];
  private readonly scratch4 = new Uint8Array(4);
  private readonly scratch16 = new Uint8Array(16);
  private readonly entries: number;

  private constructor(config: AddressMappingConfig) {
    const by4 = new Map<number, Map<number, EamEntry>>();
    const by6 = new Map<number, Map<number, EamEntry[]>>();
    let entries = 0;
    for (const e of config.eam ?? []) {
      if (!(Number.isInteger(e.ipv4Length) && e.ipv4Length >= 0 && e.ipv4Length <= 32 && Number.isInteger(e.ipv6Length) && e.ipv6Length >= 0 && e.ipv6Length <= 128)) {
        throw new AddressMappingError(`explicit address mapping has an invalid prefix length (/${e.ipv4Length} ↔ /${e.ipv6Length})`);
      }
      // RFC 7757 §3.2: the IPv4 suffix is carried in the IPv6 suffix, so it must fit.
      const s4 = 32 - e.ipv4Length;
      if (128 - e.ipv6Length < s4) {
        throw new AddressMappingError(`explicit address mapping /${e.ipv4Length} ↔ /${e.ipv6Length}: the IPv6 suffix (${128 - e.ipv6Length} bits) cannot hold the IPv4 suffix (${s4} bits) (RFC 7757 §3.2)`);
      }
      if (e.ipv6.length !== 16) throw new AddressMappingError("explicit address mapping: the IPv6 prefix must be 16 bytes");
      const suffixMask = ~mask4(e.ipv4Length) >>> 0;
      const ipv6 = Uint8Array.from(e.ipv6);
      // Clear the IPv6 suffix, so translation only has to OR the IPv4 suffix in.
      const keep = masks6(e.ipv6Length);
      for (let w = 0; w < 4; w++) write32(ipv6, 4 * w, (read32(ipv6, 4 * w) & keep[w]) >>> 0);
      // The suffix's lowest bit, counted from the address's last bit.
      const low = 128 - e.ipv6Length - s4;
      const shift = low % 32;
      const entry: EamEntry = { ipv4: (e.ipv4 & ~suffixMask) >>> 0, ipv6, suffixMask, word: 3 - Math.floor(low / 32), shift, spill: shift > 0 && shift + s4 > 32 };

      let m4 = by4.get(e.ipv4Length);
      if (m4 === undefined) by4.set(e.ipv4Length, (m4 = new Map()));
      const key4 = entry.ipv4 | 0;
      if (m4.has(key4)) throw new AddressMappingError(`explicit address mapping: ${ipv4Text(entry.ipv4)}/${e.ipv4Length} appears twice`);
      m4.set(key4, entry);

      let m6 = by6.get(e.ipv6Length);
      if (m6 === undefined) by6.set(e.ipv6Length, (m6 = new Map()));
      const mask = masks6(e.ipv6Length);
      const key = hash6(ipv6, 0, mask);
      const bucket = m6.get(key);
      if (bucket === undefined) m6.set(key, [entry]);
      else if (bucket.some((b) => samePrefix(b.ipv6, ipv6, 0, mask))) throw new AddressMappingError(`explicit address mapping: an IPv6 prefix /${e.ipv6Length} appears twice`);
      else bucket.push(entry);
      entries++;
    }
    this.entries = entries;
    // RFC 7757 §3.2: the longest matching prefix wins, so lengths are tried longest first.
    const lengths4 = [...by4.keys()].sort((a, b) => b - a);
    this.eam4Masks = lengths4.map(mask4);
    this.eam4 = lengths4.map((l) => by4.get(l)!);
    const lengths6 = [...by6.keys()].sort((a, b) => b - a);
    this.eam6Masks = lengths6.map(masks6);
    this.eam6 = lengths6.map((l) => by6.get(l)!);

    this.prefixes = [];
    for (const p of config.rfc6052 ?? []) {
      if (!isRfc6052Length(p.length)) throw new AddressMappingError(`RFC 6052 prefix length must be 32, 40, 48, 56, 64 or 96, not ${p.length}`);
      if (p.prefix.length !== 16) throw new AddressMappingError("RFC 6052 prefix must be 16 bytes");
      const prefix = new Uint8Array(16);
      prefix.set(p.prefix.subarray(0, p.length >> 3));
      const ipv4Mask = mask4(p.ipv4Length ?? 0);
      for (const t of p.ipv4Translatable ?? []) this.addTranslatable(t.network, t.length, this.prefixes.length);
      const words: number[] = [];
      for (let w = 0; w < p.length >> 5; w++) words.push(read32(prefix, 4 * w));
      this.prefixes.push({ prefix, length: p.length, words, ipv4Mask, ipv4Network: ((p.ipv4Network ?? 0) & ipv4Mask) >>> 0 });
    }
  }

  private addTranslatable(network: number, length: number, prefix: number): void {
    if (!(Number.isInteger(length) && length >= 0 && length <= 32)) throw new AddressMappingError(`IPv4-translatable prefix length must be 0..32, not ${length}`);
    const mask = mask4(length);
    const entry: TranslatableEntry = { network: (network & mask) >>> 0, mask, length, prefix };
    for (const o of this.translatable) {
      // Two prefixes overlap when the shorter one contains the other's network.
      const m = (o.mask & mask) >>> 0;
      if (((o.network & m) >>> 0) === ((entry.network & m) >>> 0)) {
        throw new AddressMappingError(`IPv4-translatable prefix ${ipv4Text(entry.network)}/${length} overlaps ${ipv4Text(o.network)}/${o.length}`);
      }
    }
    this.translatable.push(entry);
  }

  /** Validates and indexes a table; throws AddressMappingError on a bad entry. */
  static build(config: AddressMappingConfig): AddressMapping {
    return new AddressMapping(config);
  }

  get explicitMappingCount(): number {
    return this.entries;
  }

  /**
   * The IPv6 form of the IPv4 address `ipv4` (unsigned 32-bit), written to out[offset..+16].
   * Returns false when neither an explicit mapping nor an RFC 6052 prefix covers it.
   */
  map4to6(ipv4: number, out: Uint8Array, offset: number): boolean {
    // RFC 7757 §3.3: the EAM table is consulted before the RFC 6052 algorithm.
    return this.eam4to6(ipv4, out, offset) || this.prefix4to6(ipv4, out, offset);
  }

  /** The RFC 6052 form of `ipv4` alone (explicit mappings aside), written like map4to6's; false when no prefix covers it. */
  prefix4to6(ipv4: number, out: Uint8Array, offset: number): boolean {
    for (let i = 0; i < this.prefixes.length; i++) {
      const p = this.prefixes[i];
      if (((ipv4 & p.ipv4Mask) >>> 0) !== p.ipv4Network) continue;
      const s = this.scratch4;
      s[0] = ipv4 >>> 24; s[1] = (ipv4 >>> 16) & 255; s[2] = (ipv4 >>> 8) & 255; s[3] = ipv4 & 255;
      // RFC 6052 §2.2.
      out.set(embedIPv4(p.prefix, p.length, s, this.scratch16), offset);
      return true;
    }
    return false;
  }

  /**
   * For an IPv4-translatable destination (an address of some prefix's `ipv4Translatable`), its
   * RFC 6052 form at that prefix, written like map4to6's; false for any other address. The
   * forwarder asks this after the explicit mappings (RFC 7757 §3.3).
   */
  translatable4to6(ipv4: number, out: Uint8Array, offset: number): boolean {
    const i = this.translatableIndex(ipv4);
    if (i < 0) return false;
    const p = this.prefixes[i];
    const s = this.scratch4;
    s[0] = ipv4 >>> 24; s[1] = (ipv4 >>> 16) & 255; s[2] = (ipv4 >>> 8) & 255; s[3] = ipv4 & 255;
    // RFC 6052 §2.2.
    out.set(embedIPv4(p.prefix, p.length, s, this.scratch16), offset);
    return true;
  }

  /** Whether `ipv4` is an IPv4-translatable address (the responder answers ARP for it). */
  isTranslatable4(ipv4: number): boolean {
    return this.translatableIndex(ipv4) >= 0;
  }

  private translatableIndex(ipv4: number): number {
    const t = this.translatable;
    for (let i = 0; i < t.length; i++) if (((ipv4 & t[i].mask) >>> 0) === t[i].network) return t[i].prefix;
    return -1;
  }

  /**
   * The explicit mapping (RFC 7757) of the IPv4 address `ipv4` alone, written like map4to6's;
   * false when no EAM covers it. map4to6 gives the same address whenever this finds one.
   */
  eam4to6(ipv4: number, out: Uint8Array, offset: number): boolean {
    for (let i = 0; i < this.eam4.length; i++) {
      const e = this.eam4[i].get(ipv4 & this.eam4Masks[i]);
      if (e === undefined) continue;
      out.set(e.ipv6, offset);
      // RFC 7757 §3.2: the suffix bits of the IPv4 address follow the IPv6 prefix.
      const v = (ipv4 & e.suffixMask) >>> 0;
      const at = offset + 4 * e.word;
      write32(out, at, (read32(e.ipv6, 4 * e.word) | (v << e.shift)) >>> 0);
      if (e.spill) write32(out, at - 4, (read32(e.ipv6, 4 * e.word - 4) | (v >>> (32 - e.shift))) >>> 0);
      return true;
    }
    return false;
  }

  /** Whether the IPv6 address lies in one of the translation prefixes (RFC 6052), EAMs aside. */
  inTranslationPrefix(buf: Uint8Array, offset: number): boolean {
    return this.prefixIndex(buf, offset) >= 0;
  }

  /**
   * The IPv4 form (unsigned 32-bit) of the IPv6 address at buf[offset..+16], or -1 when neither an
   * explicit mapping nor an RFC 6052 prefix covers it.
   */
  map6to4(buf: Uint8Array, offset: number): number {
    // RFC 7757 §3.3: explicit mappings first.
    const e = this.eam6to4(buf, offset);
    return e >= 0 ? e : this.extract(this.prefixIndex(buf, offset), buf, offset);
  }

  /**
   * For an IPv6 destination in a translation prefix (RFC 6052), its IPv4 form as map6to4 gives
   * it; -1 for any other address. One lookup serves both the forwarder's decision (is this
   * destination translated?) and the translator (to what?).
   */
  translationDestination6(buf: Uint8Array, offset: number): number {
    const i = this.prefixIndex(buf, offset);
    if (i < 0) return -1;
    // RFC 7757 §3.3: explicit mappings first, as in map6to4.
    const e = this.eam6to4(buf, offset);
    return e >= 0 ? e : this.extract(i, buf, offset);
  }

  private eam6to4(buf: Uint8Array, offset: number): number {
    for (let i = 0; i < this.eam6.length; i++) {
      const mask = this.eam6Masks[i];
      const bucket = this.eam6[i].get(hash6(buf, offset, mask));
      if (bucket === undefined) continue;
      for (let j = 0; j < bucket.length; j++) {
        const e = bucket[j];
        if (!samePrefix(e.ipv6, buf, offset, mask)) continue;
        // RFC 7757 §3.2: the IPv4 suffix is read from right after the IPv6 prefix; bits past it are not part of the mapping.
        const at = offset + 4 * e.word;
        let v = read32(buf, at) >>> e.shift;
        if (e.spill) v |= read32(buf, at - 4) << (32 - e.shift);
        return (e.ipv4 | (v & e.suffixMask)) >>> 0;
      }
    }
    return -1;
  }

  /** The first RFC 6052 prefix the IPv6 address at buf[offset..+16] lies in, or -1. */
  private prefixIndex(buf: Uint8Array, offset: number): number {
    for (let i = 0; i < this.prefixes.length; i++) {
      const p = this.prefixes[i];
      // Word by word, then the bytes past the last whole word (all RFC 6052 lengths are whole bytes).
      const words = p.words;
      let match = true;
      for (let w = 0; w < words.length; w++) if (read32(buf, offset + 4 * w) !== words[w]) { match = false; break; }
      for (let b = words.length << 2; match && b < p.length >> 3; b++) if (p.prefix[b] !== buf[offset + b]) match = false;
      if (match) return i;
    }
    return -1;
  }

  /** RFC 6052 §2.2: the IPv4 address embedded in the IPv6 one by prefix `i` (-1 for none). */
  private extract(i: number, buf: Uint8Array, offset: number): number {
    return i < 0 ? -1 : extractIPv4At(buf, offset, this.prefixes[i].length);
  }
}
