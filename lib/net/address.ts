// Strict address parsing for everything that crosses an API or a configuration file, built on
// `ip-address`, plus the byte forms the data plane works with.
import { Address4, Address6 } from "ip-address";

/** A value that did not parse; `field` names where it came from (an RPC field or config key). */
/** A value as error messages quote it: at most 64 characters, so a huge input is not echoed back whole. */
export function quoted(value: string): string {
  return value.length <= 64 ? `'${value}'` : `'${value.slice(0, 64)}…' (${value.length} characters)`;
}

export class AddressError extends Error {
  override name = "AddressError";
  constructor(readonly field: string, message: string) {
    super(`${field}: ${message}`);
  }
}

export interface IPv4 {
  family: 4;
  /** Canonical dotted-quad text. */
  text: string;
  bytes: Uint8Array;
  /** The address as an unsigned 32-bit integer. */
  value: number;
}

export interface IPv6 {
  family: 6;
  /** Canonical text (RFC 5952). */
  text: string;
  bytes: Uint8Array;
}

export type IPAddress = IPv4 | IPv6;

export interface Cidr4 { address: IPv4; length: number; network: IPv4 }
export interface Cidr6 { address: IPv6; length: number; network: IPv6 }
export type Cidr = Cidr4 | Cidr6;

function required(text: string | undefined, field: string): string {
  if (text === undefined || text === "") throw new AddressError(field, "is required");
  return text;
}

export function ipv4FromBytes(bytes: Uint8Array): IPv4 {
  const b = Uint8Array.from(bytes.subarray(0, 4));
  return { family: 4, text: `${b[0]}.${b[1]}.${b[2]}.${b[3]}`, bytes: b, value: ((b[0] << 24) | (b[1] << 16) | (b[2] << 8) | b[3]) >>> 0 };
}

export function ipv4FromValue(value: number): IPv4 {
  const v = value >>> 0;
  return ipv4FromBytes(Uint8Array.of(v >>> 24, (v >>> 16) & 255, (v >>> 8) & 255, v & 255));
}

export function ipv6FromBytes(bytes: Uint8Array): IPv6 {
  const b = Uint8Array.from(bytes.subarray(0, 16));
  return { family: 6, text: Address6.fromUnsignedByteArray(Array.from(b)).correctForm(), bytes: b };
}

/** An IPv4 address with no prefix length. */
export function parseIPv4(text: string | undefined, field: string): IPv4 {
  const t = required(text, field);
  if (t.includes("/")) throw new AddressError(field, `${quoted(t)} must be an address, not a prefix`);
  if (t.includes(":")) throw new AddressError(field, `${quoted(t)} is IPv6; an IPv4 address is required`);
  let a: Address4;
  try {
    a = new Address4(t);
  } catch (e) {
    throw new AddressError(field, `${quoted(t)} is not a valid IPv4 address (${(e as Error).message})`);
  }
  return ipv4FromBytes(Uint8Array.from(a.toArray()));
}

/** An IPv6 address with no prefix length and no zone. */
export function parseIPv6(text: string | undefined, field: string): IPv6 {
  const t = required(text, field);
  if (t.includes("/")) throw new AddressError(field, `${quoted(t)} must be an address, not a prefix`);
  if (t.includes("%")) throw new AddressError(field, `${quoted(t)} must not carry a zone`);
  if (!t.includes(":")) throw new AddressError(field, `${quoted(t)} is not IPv6; an IPv6 address is required`);
  let a: Address6;
  try {
    a = new Address6(t);
  } catch (e) {
    throw new AddressError(field, `${quoted(t)} is not a valid IPv6 address (${(e as Error).message})`);
  }
  return ipv6FromBytes(Uint8Array.from(padTo16(a.toUnsignedByteArray())));
}

function padTo16(bytes: number[]): number[] {
  // ip-address drops leading zero bytes from its unsigned byte array.
  const out = new Array<number>(16).fill(0);
  for (let i = 0; i < bytes.length; i++) out[16 - bytes.length + i] = bytes[i];
  return out;
}

export function parseAddress(text: string | undefined, field: string): IPAddress {
  const t = required(text, field);
  return t.includes(":") ? parseIPv6(t, field) : parseIPv4(t, field);
}

function maskBytes(bytes: Uint8Array, length: number): Uint8Array {
  const out = Uint8Array.from(bytes);
  for (let i = 0; i < out.length; i++) {
    const bits = Math.max(0, Math.min(8, length - i * 8));
    out[i] &= (0xff << (8 - bits)) & 0xff;
  }
  return out;
}

function splitCidr(text: string | undefined, field: string, max: number): [string, number] {
  const t = required(text, field);
  const slash = t.indexOf("/");
  if (slash < 0) throw new AddressError(field, `${quoted(t)} needs a prefix length (CIDR form, e.g. ${max === 32 ? "192.0.2.0/24" : "2001:db8::/64"})`);
  const lenText = t.slice(slash + 1);
  if (!/^\d{1,3}$/.test(lenText) || Number(lenText) > max) {
    throw new AddressError(field, `${quoted(t)} has an invalid prefix length`);
  }
  return [t.slice(0, slash), Number(lenText)];
}

/**
 * A prefix in CIDR form. With `strict`, the host bits must be zero (a network, such as a
 * segment or a translation prefix); without it, an interface address such as 192.0.2.10/24.
 */
export function parseCidr4(text: string | undefined, field: string, strict = true): Cidr4 {
  const [addr, length] = splitCidr(text, field, 32);
  const address = parseIPv4(addr, field);
  const network = ipv4FromBytes(maskBytes(address.bytes, length));
  if (strict && network.value !== address.value) {
    throw new AddressError(field, `${quoted(text ?? "")} has host bits set; did you mean ${network.text}/${length}?`);
  }
  return { address, length, network };
}

export function parseCidr6(text: string | undefined, field: string, strict = true): Cidr6 {
  const [addr, length] = splitCidr(text, field, 128);
  const address = parseIPv6(addr, field);
  const network = ipv6FromBytes(maskBytes(address.bytes, length));
  if (strict && network.text !== address.text) {
    throw new AddressError(field, `${quoted(text ?? "")} has host bits set; did you mean ${network.text}/${length}?`);
  }
  return { address, length, network };
}

export function parseCidr(text: string | undefined, field: string, strict = true): Cidr {
  const t = required(text, field);
  return t.includes(":") ? parseCidr6(t, field, strict) : parseCidr4(t, field, strict);
}

export function cidrText(c: Cidr): string {
  return `${c.network.text}/${c.length}`;
}

/** Whether `address` lies inside the prefix `network/length` (same family). */
export function prefixContains(network: Uint8Array, length: number, address: Uint8Array): boolean {
  return network.length === address.length && prefixContainsAt(network, length, address, 0);
}

/**
 * Whether the address at buf[offset..] (of network's family) lies in network/length: the same
 * test as prefixContains, on an address read in place from a packet.
 */
export function prefixContainsAt(network: Uint8Array, length: number, buf: Uint8Array, offset: number): boolean {
  const whole = length >> 3;
  for (let i = 0; i < whole; i++) if (network[i] !== buf[offset + i]) return false;
  const rest = length & 7;
  if (rest === 0) return true;
  const mask = (0xff << (8 - rest)) & 0xff;
  return (network[whole] & mask) === (buf[offset + whole] & mask);
}

/** Whether two prefixes share any address. */
export function prefixesOverlap(a: Cidr, b: Cidr): boolean {
  if (a.network.family !== b.network.family) return false;
  const shorter = Math.min(a.length, b.length);
  return prefixContains(a.network.bytes, shorter, b.network.bytes);
}

/**
 * Why `a` cannot be a node's own unicast address (a VM's home address, a home agent, a
 * correspondent), or undefined if it can: unspecified, loopback, multicast, broadcast and
 * reserved IPv4 (RFC 1122 §3.2.1.3, RFC 1112 §4), and for IPv6 unspecified, loopback
 * (RFC 4291 §2.5.2, §2.5.3), multicast (§2.7), link-local (§2.5.6) and IPv4-mapped (§2.5.5.2).
 */
export function notUnicast(a: IPAddress): string | undefined {
  if (a.family === 4) {
    const first = a.value >>> 24;
    if (first === 0) return "is in 0.0.0.0/8 ('this network', RFC 1122 §3.2.1.3)";
    if (first === 127) return "is a loopback address (RFC 1122 §3.2.1.3)";
    if (a.value === 0xffffffff) return "is the limited broadcast address (RFC 1122 §3.2.1.3)";
    if (first >= 224 && first <= 239) return "is a multicast address (RFC 1112 §4)";
    if (first >= 240) return "is in the reserved 240.0.0.0/4 (RFC 1112 §4)";
    return undefined;
  }
  const b = a.bytes;
  const zeroTo = (n: number) => b.subarray(0, n).every((x) => x === 0);
  if (zeroTo(16)) return "is the unspecified address (RFC 4291 §2.5.2)";
  if (zeroTo(15) && b[15] === 1) return "is the loopback address (RFC 4291 §2.5.3)";
  if (b[0] === 0xff) return "is a multicast address (RFC 4291 §2.7)";
  if (b[0] === 0xfe && (b[1] & 0xc0) === 0x80) return "is a link-local address (RFC 4291 §2.5.6)";
  if (zeroTo(10) && b[10] === 0xff && b[11] === 0xff) return "is an IPv4-mapped address (RFC 4291 §2.5.5.2); give the IPv4 address";
  return undefined;
}

/** parseAddress, then notUnicast: an address a node may hold as its own. */
export function parseUnicast(text: string | undefined, field: string): IPAddress {
  const a = parseAddress(text, field);
  const why = notUnicast(a);
  if (why !== undefined) throw new AddressError(field, `${quoted(a.text)} ${why}`);
  return a;
}

/** parseIPv6, then notUnicast. */
export function parseUnicast6(text: string | undefined, field: string): IPv6 {
  const a = parseIPv6(text, field);
  const why = notUnicast(a);
  if (why !== undefined) throw new AddressError(field, `${quoted(a.text)} ${why}`);
  return a;
}
