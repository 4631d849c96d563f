// The identification counters (dataplane/packet/identification.ts): alone, 1, 2, 3, ... with the
// 16-bit or 32-bit wrap; as the threads of one worker, interleaved and never the same value.
import test from "ava";
import { IdentificationCounter } from "../../../dataplane/packet/identification.js";

test("one counter: from 1 up, 16-bit and 32-bit wrap to 0", (t) => {
  const c = new IdentificationCounter(16);
  t.deepEqual([c.take(), c.take(), c.take()], [1, 2, 3]);
  const w = new IdentificationCounter(16, 65535);
  t.deepEqual([w.take(), w.take()], [65535, 0]);
  const f = new IdentificationCounter(32, 2 ** 32 - 1);
  t.deepEqual([f.take(), f.take()], [2 ** 32 - 1, 0]);
});

test("three threads: interleaved, and over several wraps of 16 bits no value is handed out by two of them", (t) => {
  const threads = [0, 1, 2].map((i) => new IdentificationCounter(16, i + 1, 3));
  t.deepEqual(threads.map((c) => c.take()), [1, 2, 3]);
  t.deepEqual(threads.map((c) => c.take()), [4, 5, 6]);
  const owner = new Map<number, number>();
  const shared: string[] = [];
  threads.forEach((c, i) => {
    for (let n = 0; n < 3 * 65536; n++) {
      const id = c.take();
      if (!(id >= 0 && id < 65536) || (owner.get(id) ?? i) !== i) shared.push(`${id}: threads ${owner.get(id)} and ${i}`);
      owner.set(id, i);
    }
  });
  t.deepEqual(shared.slice(0, 5), []);
  t.true(owner.size > 65000, "between them they use nearly the whole space");
});
