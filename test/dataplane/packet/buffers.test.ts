import test from "ava";
import { allocPacket, copyBytes, PrefixViews } from "../../../dataplane/packet/buffers.js";
import { patternBytes } from "./fixtures.js";

test("PrefixViews.of(n) is buf[0..n), the same object for the same length, over the buffer's memory", (t) => {
  const buf = patternBytes(100);
  const v = new PrefixViews(buf);
  const a = v.of(60);
  t.is(a.length, 60);
  t.is(a.buffer, buf.buffer);
  t.is(a.byteOffset, buf.byteOffset);
  t.is(v.of(60), a);
  t.not(v.of(61), a);
  t.is(v.of(61).length, 61);
  buf[5] = 0xab;
  t.is(a[5], 0xab);
  t.is(v.of(0).length, 0);
  t.is(v.of(100).length, 100);
});

test("PrefixViews.holds is true for the views it handed out, and for no other view of the same memory", (t) => {
  const buf = new Uint8Array(64);
  const views = new PrefixViews(buf);
  const v = views.of(20);
  t.true(views.holds(v));
  t.true(views.holds(views.of(0)));
  t.false(views.holds(buf.subarray(0, 20)), "the same bytes, another object");
  t.false(views.holds(buf.subarray(0, 30)), "a length it has not handed out");
  t.false(views.holds(new Uint8Array(20)));
});

test("PrefixViews.of refuses a length outside the buffer", (t) => {
  const v = new PrefixViews(new Uint8Array(10));
  t.throws(() => v.of(11), { instanceOf: RangeError });
  t.throws(() => v.of(-1), { instanceOf: RangeError });
});

test("copyBytes copies as set(subarray) does, short and long, and leaves the bytes around alone", (t) => {
  const src = patternBytes(3000);
  for (const [from, length, at] of [[0, 0, 0], [3, 1, 7], [10, 64, 5], [10, 65, 5], [100, 1500, 40], [0, 3000, 0]]) {
    const want = new Uint8Array(3100).fill(0xee);
    want.set(src.subarray(from, from + length), at);
    const got = new Uint8Array(3100).fill(0xee);
    copyBytes(got, at, src, from, length);
    t.deepEqual(got, want, `from ${from}, ${length} bytes, at ${at}`);
  }
});

test("allocPacket hands out zeroed plain Uint8Arrays that share no byte, across slabs and above a slab's quarter", (t) => {
  const taken: Uint8Array[] = [];
  // 200 KiB in all: several slabs of 64 KiB.
  for (let i = 0; i < 400; i++) {
    const p = allocPacket(i % 2 === 0 ? 60 : 1000 + i);
    t.is(p.length, i % 2 === 0 ? 60 : 1000 + i);
    t.is(Object.getPrototypeOf(p), Uint8Array.prototype);
    t.true(p.every((b) => b === 0), `packet ${i} is zeroed`);
    p.fill(0xa5);
    taken.push(p);
  }
  // Each still holds only what was written into it: none was handed out over another.
  for (const [i, p] of taken.entries()) {
    p.fill(i & 0xff);
  }
  for (const [i, p] of taken.entries()) t.true(p.every((b) => b === (i & 0xff)), `packet ${i} kept its bytes`);
  const big = allocPacket(40_000);
  t.is(big.length, 40_000);
  t.is(big.byteOffset, 0);
  t.true(big.every((b) => b === 0));
});
