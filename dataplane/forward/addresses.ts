// Address text → bytes for rule tables and worker configuration. A 100,000-rule snapshot holds
// ~200,000 addresses and the strict parser of lib/net/address (ip-address) costs ~20 µs per IPv6
// address, seconds per snapshot; so plain forms (dotted quad, hex groups with one "::") are
// parsed here directly, and anything else, errors included, goes to the strict parser so the
// accepted language and the error messages stay those of lib/net/address.
import { parseCidr4, parseCidr6, parseIPv4, parseIPv6 } from "../../lib/net/address.js";

function fast4(text: string): Uint8Array | undefined {
  const out = new Uint8Array(4);
  let part = 0;
  let value = 0;
  let digits = 0;
  for (let i = 0; i <= text.length; i++) {
    const c = i < text.length ? text.charCodeAt(i) : 46;
    if (c === 46) {
      // Empty parts, leading zeros and values over 255 go to the strict parser.
      if (digits === 0 || part > 3 || value > 255 || (digits > 1 && text.charCodeAt(i - digits) === 48)) return undefined;
      out[part++] = value;
      value = 0;
      digits = 0;
    } else if (c >= 48 && c <= 57 && digits < 3) {
      value = value * 10 + (c - 48);
      digits++;
    } else {
      return undefined;
    }
  }
  return part === 4 ? out : undefined;
}

function hexDigit(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  if (c >= 97 && c <= 102) return c - 87;
  if (c >= 65 && c <= 70) return c - 55;
  return -1;
}

/** Hex groups with at most one "::"; anything else (embedded IPv4, zones) → undefined. */
const words = new Uint16Array(8);

function fast6(text: string): Uint8Array | undefined {
  let n = 0;
  let gap = -1;
  let i = 0;
  const len = text.length;
  if (len < 2) return undefined;
  if (text.charCodeAt(0) === 58) {
    if (text.charCodeAt(1) !== 58) return undefined;
    gap = 0;
    i = 2;
    if (i === len) return new Uint8Array(16);
  }
  while (i < len) {
    let value = 0;
    let digits = 0;
    for (; i < len; i++) {
      const d = hexDigit(text.charCodeAt(i));
      if (d < 0) break;
      if (++digits > 4) return undefined;
      value = (value << 4) | d;
    }
    if (digits === 0 || n === 8) return undefined;
    words[n++] = value;
    if (i === len) break;
    if (text.charCodeAt(i) !== 58) return undefined;
    i++;
    if (i < len && text.charCodeAt(i) === 58) {
      if (gap >= 0) return undefined;
      gap = n;
      i++;
      if (i === len) break;
    } else if (i === len) {
      return undefined;
    }
  }
  if (gap < 0 ? n !== 8 : n > 7) return undefined;
  const out = new Uint8Array(16);
  const tail = gap < 0 ? 0 : n - gap;
  for (let k = 0; k < n; k++) {
    const at = gap < 0 || k < gap ? k : 8 - tail + (k - gap);
    out[2 * at] = words[k] >> 8;
    out[2 * at + 1] = words[k] & 0xff;
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
