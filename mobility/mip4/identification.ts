// The Identification field used as a timestamp (RFC 5944 §5.7): a 64-bit NTP timestamp, seconds
// since 1900 in the high 32 bits and the fraction of a second in the low 32 bits. Pure
// arithmetic on times handed in; nothing here reads a clock.
import { randomInt } from "node:crypto";

/** Seconds from the NTP epoch (1900-01-01) to the Unix epoch (RFC 5905 §6). */
export const NTP_UNIX_OFFSET_S = 2_208_988_800;

const TWO_32 = 0x1_0000_0000;
const MASK_64 = (1n << 64n) - 1n;
const HALF_64 = 1n << 63n;
/** Fraction units in one millisecond: the part of the fraction a millisecond clock cannot fill. */
const UNITS_PER_MS = Math.floor(TWO_32 / 1000);

/**
 * The NTP timestamp of a Unix time in milliseconds. The seconds wrap at 2^32 as NTP era 1 does
 * (February 2036). RFC 5944 §5.7 asks that the fraction bits a clock does not supply come from a
 * good random source: `subMillisecond` fills them (default random); give 0 for a fixed value.
 */
export function ntpFromUnixMs(ms: number, subMillisecond: number = randomInt(UNITS_PER_MS)): bigint {
  const whole = Math.floor(ms);
  const seconds = (Math.floor(whole / 1000) + NTP_UNIX_OFFSET_S) % TWO_32;
  const fraction = Math.floor(((whole % 1000 + 1000) % 1000) * TWO_32 / 1000) + (subMillisecond % UNITS_PER_MS);
  return (BigInt(seconds) << 32n) | BigInt(fraction);
}

/**
 * The Unix time (ms) an NTP timestamp stands for. The 32-bit seconds alone cannot tell 1900 from
 * 2036: given `nearMs`, the era that puts it nearest; without, RFC 4330 §3's rule (high bit set:
 * 1968–2036; clear: 2036–2104).
 */
export function unixMsFromNtp(ntp: bigint, nearMs?: number): number {
  const seconds = Number((ntp >> 32n) & 0xffffffffn);
  const fractionMs = Number(ntp & 0xffffffffn) * 1000 / TWO_32;
  const inEra0 = (seconds - NTP_UNIX_OFFSET_S) * 1000 + fractionMs;
  const eraMs = TWO_32 * 1000;
  if (nearMs === undefined) return seconds >= TWO_32 / 2 ? inEra0 : inEra0 + eraMs;
  return inEra0 + Math.round((nearMs - inEra0) / eraMs) * eraMs;
}

/**
 * Seconds from `nowMs` to the time in `identification`, signed, taken modulo the 2^32-second NTP
 * era so that the comparison keeps working across the 2036 wrap.
 */
export function identificationSkewS(identification: bigint, nowMs: number): number {
  const now = ntpFromUnixMs(nowMs, 0);
  const seconds = Number(((identification >> 32n) - (now >> 32n)) & 0xffffffffn);
  const signedSeconds = seconds >= TWO_32 / 2 ? seconds - TWO_32 : seconds;
  return signedSeconds + (Number(identification & 0xffffffffn) - Number(now & 0xffffffffn)) / TWO_32;
}

/**
 * Whether `identification` is later than `previous` (RFC 5944 §5.7: a new request's timestamp must
 * be greater than the last accepted one), compared modulo 2^64 in serial-number style, again for
 * the era wrap.
 */
export function isNewerIdentification(identification: bigint, previous: bigint): boolean {
  const d = (identification - previous) & MASK_64;
  return d !== 0n && d < HALF_64;
}

/**
 * The Identification of a Registration Reply code 133 (RFC 5944 §5.7): the home agent's own time
 * in the high 32 bits, so the mobile node can resynchronise, and the request's low 32 bits, so it
 * can match the reply to its request.
 */
export function resyncIdentification(requestIdentification: bigint, nowMs: number): bigint {
  return (ntpFromUnixMs(nowMs, 0) & ~0xffffffffn & MASK_64) | (requestIdentification & 0xffffffffn);
}
