// Address text → bytes for rule tables and worker configuration. A 100,000-rule snapshot holds
// ~200,000 addresses and the strict parser of lib/net/address (ip-address) costs ~20 µs per IPv6
// address, seconds per snapshot; so plain forms (dotted quad, hex groups with one "::") are
// parsed here directly, and anything else, errors included, goes to the strict parser so the
// accepted language and the error messages stay those of lib/net/address.
import { parseCidr4, parseCidr6, parseIPv4, parseIPv6 } from "../../lib/net/address.js";

/** A dotted quad as a uint32, or -1 (empty parts, leading zeros, values over 255: the strict parser's job). */
export function fast4Value(text: string): number {
  let part = 0;
  let value = 0;
  let digits = 0;
  let out = 0;
  for (let i = 0; i <= text.length; i++) {
    const c = i < text.length ? text.charCodeAt(i) : 46;
    if (c === 46) {
      if (digits === 0 || part > 3 || value > 255 || (digits > 1 && text.charCodeAt(i - digits) === 48)) return -1;
      out = (out << 8) | value;
      part++;
      value = 0;
      digits = 0;
    } else if (c >= 48 && c <= 57 && digits < 3) {
      value = value * 10 + (c - 48);
      digits++;
    } else {
      return -1;
    }
  }
  return part === 4 ? out >>> 0 : -1;
}

function fast4(text: string): Uint8Array | undefined {
  const v = fast4Value(text);
  return v < 0 ? undefined : Uint8Array.of(v >>> 24, (v >>> 16) & 255, (v >>> 8) & 255, v & 255);
}

function hexDigit(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  if (c >= 97 && c <= 102) return c - 87;
  if (c >= 65 && c <= 70) return c - 55;
  return -1;
}

const groups = new Uint16Array(8);

/**
 * Hex groups with at most one "::" as four 32-bit words at out[at..at+4]; false for anything
 * else (embedded IPv4, zones, errors: the strict parser's job).
 */
export function fast6Words(text: string, out: Int32Array, at: number): boolean {
  let n = 0;
  let gap = -1;
  let i = 0;
  const len = text.length;
  if (len < 2) return false;
  if (text.charCodeAt(0) === 58) {
    if (text.charCodeAt(1) !== 58) return false;
    gap = 0;
    i = 2;
  }
  while (i < len) {
    let value = 0;
    let digits = 0;
    for (; i < len; i++) {
      const d = hexDigit(text.charCodeAt(i));
      if (d < 0) break;
      if (++digits > 4) return false;
      value = (value << 4) | d;
    }
    if (digits === 0 || n === 8) return false;
    groups[n++] = value;
    if (i === len) break;
    if (text.charCodeAt(i) !== 58) return false;
    i++;
    if (i < len && text.charCodeAt(i) === 58) {
      if (gap >= 0) return false;
      gap = n;
      i++;
      if (i === len) break;
    } else if (i === len) {
      return false;
    }
  }
  if (gap < 0 ? n !== 8 : n > 7) return false;
  out[at] = out[at + 1] = out[at + 2] = out[at + 3] = 0;
  const tail = gap < 0 ? 0 : n - gap;
  for (let k = 0; k < n; k++) {
    const g = gap < 0 || k < gap ? k : 8 - tail + (k - gap);
    out[at + (g >> 1)] |= (g & 1) === 0 ? groups[k] << 16 : groups[k];
  }
  return true;
}

const scratch6 = new Int32Array(4);

function fast6(text: string): Uint8Array | undefined {
  if (!fast6Words(text, scratch6, 0)) return undefined;
  const out = new Uint8Array(16);
  for (let w = 0; w < 4; w++) {
    const v = scratch6[w];
    out[4 * w] = v >>> 24; out[4 * w + 1] = (v >>> 16) & 255; out[4 * w + 2] = (v >>> 8) & 255; out[4 * w + 3] = v & 255;
  }
  return out;
}

/** An IPv4 address as 4 bytes; throws AddressError naming `field`. */
export function ipv4Bytes(text: unknown, field: string): Uint8Array {
  if (typeof text === "string") {
    const b = fast4(text);
    if (b !== undefined) return b;
  }
  return parseIPv4(text as string, field).bytes;
}

/** An IPv6 address as 16 bytes; throws AddressError naming `field`. */
export function ipv6Bytes(text: unknown, field: string): Uint8Array {
  if (typeof text === "string") {
    const b = fast6(text);
    if (b !== undefined) return b;
  }
  return parseIPv6(text as string, field).bytes;
}

/** An address of either family (4 or 16 bytes). */
export function addressBytes(text: unknown, field: string): Uint8Array {
  return typeof text === "string" && text.includes(":") ? ipv6Bytes(text, field) : ipv4Bytes(text, field);
}

export interface PrefixBytes {
  bytes: Uint8Array;
  length: number;
}

/** "a.b.c.d/n" or "x::/n" (strict: no host bits) or, with `host`, an interface address with its length. */
export function prefixBytes(text: unknown, field: string, strict = true): PrefixBytes {
  const t = text as string;
  if (typeof t === "string" && t.includes(":")) {
    const c = parseCidr6(t, field, strict);
    return { bytes: c.address.bytes, length: c.length };
  }
  const c = parseCidr4(t, field, strict);
  return { bytes: c.address.bytes, length: c.length };
}

/** An address, or an address with "/length" (a single address is /32 or /128). */
export function addressOrPrefix(text: unknown, field: string): PrefixBytes {
  if (typeof text === "string" && text.includes("/")) return prefixBytes(text, field, true);
  const bytes = addressBytes(text, field);
  return { bytes, length: bytes.length * 8 };
}

export function mask4(length: number): number {
  return length === 0 ? 0 : (0xffffffff << (32 - length)) >>> 0;
}

export function formatIPv4(v: number): string {
  return `${v >>> 24}.${(v >>> 16) & 255}.${(v >>> 8) & 255}.${v & 255}`;
}

/**
 * The IPv6 address of the four words at w[at..] in RFC 5952 §4 form: lower-case hex, no leading
 * zeros, the longest run of two or more zero groups (the first of equal runs) as "::".
 */
export function formatIPv6Words(w: Int32Array, at: number): string {
  const [best, bestLength] = zeroRun(w, at);
  let s = "";
  for (let g = 0; g < 8; g++) {
    if (g === best) {
      s += "::";
      g += bestLength - 1;
      continue;
    }
    if (s !== "" && !s.endsWith(":")) s += ":";
    s += group(w, at, g).toString(16);
  }
  return s;
}

/**
 * Whether `text` is formatIPv6Words(w, at), compared as it would be written, without making the
 * string (a snapshot checks 200,000 addresses: the table keeps none whose text it can rebuild).
 */
export function isIPv6Text(text: string, w: Int32Array, at: number): boolean {
  const [best, bestLength] = zeroRun(w, at);
  let i = 0;
  for (let g = 0; g < 8; g++) {
    if (g === best) {
      if (text.charCodeAt(i) !== 58 || text.charCodeAt(i + 1) !== 58) return false;
      i += 2;
      g += bestLength - 1;
      continue;
    }
    if (i > 0 && text.charCodeAt(i - 1) !== 58) {
      if (text.charCodeAt(i) !== 58) return false;
      i++;
    }
    const v = group(w, at, g);
    for (let shift = v >= 0x1000 ? 12 : v >= 0x100 ? 8 : v >= 0x10 ? 4 : 0; shift >= 0; shift -= 4) {
      const d = (v >> shift) & 15;
      if (text.charCodeAt(i++) !== (d < 10 ? 48 + d : 87 + d)) return false;
    }
  }
  return i === text.length;
}

/** The first longest run of two or more zero groups: [first group, length], or [-1, 1]. */
function zeroRun(w: Int32Array, at: number): [number, number] {
  let best = -1;
  let bestLength = 1;
  for (let g = 0; g < 8; ) {
    if (group(w, at, g) !== 0) {
      g++;
      continue;
    }
    let e = g;
    while (e < 8 && group(w, at, e) === 0) e++;
    if (e - g > bestLength) {
      best = g;
      bestLength = e - g;
    }
    g = e;
  }
  return [best, bestLength];
}

function group(w: Int32Array, at: number, g: number): number {
  const v = w[at + (g >> 1)];
  return (g & 1) === 0 ? v >>> 16 : v & 0xffff;
}
