// Address mapping of the translator (RFC 7915 §6): explicit address mappings (RFC 7757) first,
// then the RFC 6052 algorithm. The caller builds one `AddressMapping` per rule-table revision;
// a lookup is one Map probe per distinct prefix length in the table and allocates nothing, so
// 100,000 entries cost no more per packet than ten.
import { embedIPv4, extractIPv4, isRfc6052Length } from "../../lib/net/rfc6052.js";
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
}

/**
 * An explicit address mapping entry (RFC 7757 §3.1): an IPv4 prefix and an IPv6 prefix whose
 * suffixes have the same length, so the suffix bits are copied across. A single-address entry
 * is /32 ↔ /128.
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
  /** 16 bytes, the suffix bits cleared. */
  ipv6: Uint8Array;
  /** Mask of the suffix bits (32 − IPv4 length = 128 − IPv6 length, RFC 7757 §3.1) within the last 32 bits. */
  suffixMask: number;
}

interface ResolvedPrefix {
  prefix: Uint8Array;
  length: number;
  ipv4Network: number;
  ipv4Mask: number;
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
 * A 32-bit hash of the bits of an IPv6 address set in `mask`: a Map keyed by a number needs no
 * string built per packet. Prefixes that collide share a bucket and are told apart by `samePrefix`.
 */
function hash6(buf: Uint8Array, offset: number, mask: Uint32Array): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < 4; i++) {
    h = Math.imul(h ^ (read32(buf, offset + 4 * i) & mask[i]), 0x01000193);
    h ^= h >>> 15;
  }
  return h >>> 0;
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
  /** EAM by IPv4 prefix: one Map per prefix length present, longest first (RFC 7757 §3.2). */
  private readonly eam4Masks: number[];
  private readonly eam4: Map<number, EamEntry>[];
  /** EAM by IPv6 prefix: one Map of hash buckets per prefix length present, longest first. */
  private readonly eam6Masks: Uint32Array[];
  private readonly eam6: Map<number, EamEntry[]>[];
  private readonly prefixes: ResolvedPrefix[];
  private readonly scratch4 = new Uint8Array(4);
  private readonly scratch16 = new Uint8Array(16);
  private readonly entries: number;

  private constructor(config: AddressMappingConfig) {
    const by4 = new Map<number, Map<number, EamEntry>>();
    const by6 = new Map<number, Map<number, EamEntry[]>>();
    let entries = 0;
    for (const e of config.eam ?? []) {
      if (!(Number.isInteger(e.ipv4Length) && e.ipv4Length >= 0 && e.ipv4Length <= 32 && Number.isInteger(e.ipv6Length) && e.ipv6Length >= 96 && e.ipv6Length <= 128)) {
        throw new AddressMappingError(`explicit address mapping has an invalid prefix length (/${e.ipv4Length} ↔ /${e.ipv6Length})`);
      }
      // RFC 7757 §3.1: both prefixes leave the same number of suffix bits.
      if (32 - e.ipv4Length !== 128 - e.ipv6Length) {
        throw new AddressMappingError(`explicit address mapping /${e.ipv4Length} ↔ /${e.ipv6Length}: the suffix lengths differ (RFC 7757 §3.1)`);
      }
      if (e.ipv6.length !== 16) throw new AddressMappingError("explicit address mapping: the IPv6 prefix must be 16 bytes");
      const suffixMask = ~mask4(e.ipv4Length) >>> 0;
      const ipv6 = Uint8Array.from(e.ipv6);
      // Clear the IPv6 suffix, so translation only has to OR the IPv4 suffix in.
      const tail = (read32(ipv6, 12) & ~suffixMask) >>> 0;
      ipv6[12] = tail >>> 24; ipv6[13] = (tail >>> 16) & 255; ipv6[14] = (tail >>> 8) & 255; ipv6[15] = tail & 255;
      const entry: EamEntry = { ipv4: (e.ipv4 & ~suffixMask) >>> 0, ipv6, suffixMask };

      let m4 = by4.get(e.ipv4Length);
      if (m4 === undefined) by4.set(e.ipv4Length, (m4 = new Map()));
      if (m4.has(entry.ipv4)) throw new AddressMappingError(`explicit address mapping: ${ipv4Text(entry.ipv4)}/${e.ipv4Length} appears twice`);
      m4.set(entry.ipv4, entry);

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
      this.prefixes.push({ prefix, length: p.length, ipv4Mask, ipv4Network: ((p.ipv4Network ?? 0) & ipv4Mask) >>> 0 });
    }
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
   * The explicit mapping (RFC 7757) of the IPv4 address `ipv4` alone, written like map4to6's;
   * false when no EAM covers it. map4to6 gives the same address whenever this finds one.
   */
  eam4to6(ipv4: number, out: Uint8Array, offset: number): boolean {
    for (let i = 0; i < this.eam4.length; i++) {
      const e = this.eam4[i].get((ipv4 & this.eam4Masks[i]) >>> 0);
      if (e === undefined) continue;
      out.set(e.ipv6, offset);
      // RFC 7757 §3.2: the suffix bits of the IPv4 address become the suffix of the IPv6 one.
      const tail = (read32(e.ipv6, 12) | (ipv4 & e.suffixMask)) >>> 0;
      out[offset + 12] = tail >>> 24;
      out[offset + 13] = (tail >>> 16) & 255;
      out[offset + 14] = (tail >>> 8) & 255;
      out[offset + 15] = tail & 255;
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
        if (samePrefix(e.ipv6, buf, offset, mask)) return (e.ipv4 | (read32(buf, offset + 12) & e.suffixMask)) >>> 0;
      }
    }
    return -1;
  }

  /** The first RFC 6052 prefix the IPv6 address at buf[offset..+16] lies in, or -1. */
  private prefixIndex(buf: Uint8Array, offset: number): number {
    for (let i = 0; i < this.prefixes.length; i++) {
      const p = this.prefixes[i];
      // All RFC 6052 lengths are whole bytes.
      let match = true;
      for (let b = 0; b < p.length >> 3; b++) if (p.prefix[b] !== buf[offset + b]) { match = false; break; }
      if (match) return i;
    }
    return -1;
  }

  /** RFC 6052 §2.2: the IPv4 address embedded in the IPv6 one by prefix `i` (-1 for none). */
  private extract(i: number, buf: Uint8Array, offset: number): number {
    if (i < 0) return -1;
    const s = this.scratch16;
    for (let b = 0; b < 16; b++) s[b] = buf[offset + b];
    return read32(extractIPv4(s, this.prefixes[i].length, this.scratch4), 0);
  }
}
