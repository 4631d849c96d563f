import test from "ava";
import { copyBytes, PrefixViews } from "../../../dataplane/packet/buffers.js";
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
