import test from "ava";
import {
  checksumOk, fold, internetChecksum, pseudoHeaderSum4, pseudoHeaderSum4At, pseudoHeaderSum6, pseudoHeaderSum6At, sum16,
  updateChecksum16, updateChecksumBytes, updateChecksumSum,
} from "../../../dataplane/packet/checksum.js";
import { buildUdp4, buildUdp6 } from "../../../dataplane/packet/udp.js";
import { a4, a6, patternBytes } from "./fixtures.js";

test("RFC 1071 §3 example: the sum of 00 01 f2 03 f4 f5 f6 f7 folds to ddf2", (t) => {
  const b = Uint8Array.of(0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7);
  t.is(fold(sum16(b, 0, b.length)), 0xddf2);
  t.is(internetChecksum(b, 0, b.length), 0x220d);
});

test("an odd last byte is padded with zero on the right (RFC 1071 §4.1)", (t) => {
  const odd = Uint8Array.of(0x12, 0x34, 0x56);
  const even = Uint8Array.of(0x12, 0x34, 0x56, 0x00);
  t.is(sum16(odd, 0, 3), sum16(even, 0, 4));
  t.is(sum16(odd, 0, 3), 0x1234 + 0x5600);
});

test("sum16 gives the same result for every start alignment and length", (t) => {
  const b = patternBytes(301, 7);
  for (const [s, e] of [[0, 301], [1, 300], [2, 299], [3, 7], [5, 5], [4, 5]]) {
    let slow = 0;
    for (let i = s; i < e; i += 2) slow += (b[i] << 8) | (i + 1 < e ? b[i + 1] : 0);
    t.is(sum16(b, s, e), slow, `range ${s}..${e}`);
  }
});

test("a buffer with its checksum inserted verifies", (t) => {
  const b = patternBytes(64, 3);
  b[10] = 0;
  b[11] = 0;
  const c = internetChecksum(b, 0, b.length);
  b[10] = c >> 8;
  b[11] = c & 0xff;
  t.true(checksumOk(b, 0, b.length));
  b[20] ^= 0x40;
  t.false(checksumOk(b, 0, b.length));
});

test("RFC 1624 eqn. 3 update of one word equals recomputation, over many changes", (t) => {
  const b = patternBytes(40, 11);
  b[0] = 0;
  b[1] = 0;
  let c = internetChecksum(b, 0, b.length);
  const words = patternBytes(400, 5);
  for (let i = 0; i < 200; i++) {
    const at = 2 + 2 * (i % 19);
    const oldWord = (b[at] << 8) | b[at + 1];
    const newWord = (words[2 * i] << 8) | words[2 * i + 1];
    b[at] = newWord >> 8;
    b[at + 1] = newWord & 0xff;
    c = updateChecksum16(c, oldWord, newWord);
    t.is(c, internetChecksum(b, 0, b.length), `step ${i}`);
  }
});

test("RFC 1624 §3: eqn. 3 gives 0x0000, as recomputation does, where eqn. 2 would give 0xFFFF", (t) => {
  // The covered words sum to 0xFFFF after the change, so the recomputed checksum is 0x0000.
  const before = Uint8Array.of(0, 0, 0x12, 0x34);
  const c = internetChecksum(before, 0, 4);
  const updated = updateChecksum16(c, 0x1234, 0xffff);
  t.is(updated, internetChecksum(Uint8Array.of(0, 0, 0xff, 0xff), 0, 4));
  t.is(updated, 0x0000);
});

test("replacing an address updates a UDP checksum like recomputation (sum form and bytes form)", (t) => {
  const p = buildUdp4({ src: a4("192.0.2.1"), dst: a4("198.51.100.7"), srcPort: 5000, dstPort: 53 }, patternBytes(33, 2));
  const c = (p[26] << 8) | p[27];
  const newSrc = a4("203.0.113.200");
  const bySum = updateChecksumSum(c, sum16(p, 12, 16), sum16(newSrc, 0, 4));
  const byBytes = updateChecksumBytes(c, p, 12, newSrc, 0, 4);
  const q = buildUdp4({ src: newSrc, dst: a4("198.51.100.7"), srcPort: 5000, dstPort: 53 }, patternBytes(33, 2));
  t.is(bySum, (q[26] << 8) | q[27]);
  t.is(byBytes, bySum);
});

test("an IPv4 address replaced by an IPv6 one moves the UDP checksum to the IPv6 pseudo-header value", (t) => {
  // What a translator does: swap the pseudo-header sums instead of re-summing the payload.
  const payload = patternBytes(50, 9);
  const v4 = buildUdp4({ src: a4("192.0.2.1"), dst: a4("198.51.100.7"), srcPort: 1, dstPort: 2 }, payload);
  const v6 = buildUdp6({ src: a6("2001:db8::c000:201"), dst: a6("2001:db8::c633:6407"), srcPort: 1, dstPort: 2 }, payload);
  const c4 = (v4[26] << 8) | v4[27];
  const oldSum = pseudoHeaderSum4At(v4, 0, 17, 58);
  const newSum = pseudoHeaderSum6At(v6, 0, 17, 58);
  t.is(updateChecksumSum(c4, oldSum, newSum), (v6[46] << 8) | v6[47]);
});

test("pseudo-header sums: the At forms agree with the explicit forms", (t) => {
  const v4 = buildUdp4({ src: a4("192.0.2.1"), dst: a4("198.51.100.7"), srcPort: 1, dstPort: 2 }, new Uint8Array(3));
  t.is(pseudoHeaderSum4At(v4, 0, 17, 11), pseudoHeaderSum4(a4("192.0.2.1"), 0, a4("198.51.100.7"), 0, 17, 11));
  const v6 = buildUdp6({ src: a6("2001:db8::1"), dst: a6("2001:db8::2"), srcPort: 1, dstPort: 2 }, new Uint8Array(3));
  t.is(pseudoHeaderSum6At(v6, 0, 17, 0x12345), pseudoHeaderSum6(a6("2001:db8::1"), 0, a6("2001:db8::2"), 0, 17, 0x12345));
});

test("fold handles sums above 2^32", (t) => {
  t.is(fold(0x1_0000_0000), 1);
  t.is(fold(0xffff * 100000), fold((0xffff * 100000) % 0xffff) || 0xffff);
});
