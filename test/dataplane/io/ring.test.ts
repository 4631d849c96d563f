// The ring backend on real veth pairs: batches of 1, 2 and 512 frames sent with sendmmsg arrive
// in order; a frame at the MTU arrives, one longer than a ring frame is counted and dropped; the
// sender never sees its own frames (PACKET_IGNORE_OUTGOING); a ring opened while other interfaces
// are busy reads from the right place; a burst over the ring is counted as drops; a link that goes
// down and comes back is read again; two ports in a fanout group share the flows; the pipeline fed
// views into the ring gives the bytes it gives when fed copies.
import test from "ava";
import { join } from "node:path";
import { NetnsLab, netnsAvailable, run } from "../../../harness/netns.js";

const SCHED_OTHER = 0;
const SCHED_BATCH = 3;

// The forwarding thread's scheduling (bench/README.md, "Issue 12, latency"): no privilege, no
// namespace, a process of its own (it changes the policy of every thread of the process).
test("forwardingScheduling on the main thread makes every other thread SCHED_BATCH and leaves itself SCHED_OTHER; on a worker thread it changes nothing", async (t) => {
  const { stdout } = await run([process.execPath, "--import", "tsx", SCHEDULING_PROBE], { timeoutMs: 60_000 });
  const r = JSON.parse(stdout.trim().split("\n").pop()!);
  const main = String(r.pid);
  const others = Object.keys(r.before).filter((tid) => tid !== main);
  t.true(others.length >= 4, "V8's platform workers are there before anything is called");
  t.true(Object.values(r.before).every((p) => p === SCHED_OTHER), "nothing is batched before the call");
  t.is(r.afterMain[main], SCHED_OTHER, "the calling thread stays SCHED_OTHER");
  t.deepEqual(Object.entries(r.afterMain).filter(([tid, p]) => tid !== main && p !== SCHED_BATCH), [], "every other thread is SCHED_BATCH");
  t.is(r.main.helpersBatched, Object.keys(r.afterMain).length - 1, "the answer counts the threads it batched");
  t.is(r.fromThread.answer, 0, "on a worker thread: no thread batched");
  t.is(r.afterThread[String(r.fromThread.tid)], SCHED_OTHER, "a thread started after the call keeps its creator's SCHED_OTHER");
  t.is(r.afterThread[main], SCHED_OTHER, "the worker thread's call did not batch the main thread");
  t.deepEqual(Object.entries(r.afterThread).filter(([tid, p]) => tid in r.afterMain && p !== r.afterMain[tid]), [], "and changed no other thread");
});

// Real packet sockets on veths: root only.
const live = netnsAvailable() ? test : test.skip;

const PROBE = join(import.meta.dirname, "ring-probe.ts");
const REOPEN_PROBE = join(import.meta.dirname, "ring-reopen-probe.ts");
const FAULTS_PROBE = join(import.meta.dirname, "ring-faults-probe.ts");
const FANOUT_PROBE = join(import.meta.dirname, "ring-fanout-probe.ts");
const PIPELINE_PROBE = join(import.meta.dirname, "ring-pipeline-probe.ts");
const SENDFULL_PROBE = join(import.meta.dirname, "ring-sendfull-probe.ts");
const SCHEDULING_PROBE = join(import.meta.dirname, "ring-scheduling-probe.ts");

live("batches of 1, 2 and 512 frames, frames at and over the MTU, own frames left out, each frame with its packet view", async (t) => {
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
  t.true(r.packetsSeen >= 516, "every frame came with its view past the Ethernet header");
  t.is(r.packetsBad, 0, "each packet view is its frame's bytes from offset 14");
});

// The fault behind the live tests' rare "no packets through the worker": a packet socket opened
// with ETH_P_ALL takes in every interface's frames before bind(), which moved the kernel's ring head
// away from ours; every frame then waited a whole turn of the ring.
live("a ring opened while another interface is flooded gets the first frame sent to it", async (t) => {
  const lab = NetnsLab.create(t);
  const ns = await lab.addNamespace("m46io");
  await lab.addVethPair(ns, "ra", ns, "rb", 1500);
  await lab.addVethPair(ns, "rc", ns, "rd", 1500);
  const { stdout } = await lab.exec(ns, [process.execPath, "--import", "tsx", REOPEN_PROBE, "30"], { timeoutMs: 90_000 });
  const r = JSON.parse(stdout.trim().split("\n").pop()!);
  t.is(r.rounds, 30);
  t.deepEqual(r.missed, [], "every reopened ring received the frame sent right after it opened");
});

live("a burst that overruns the ring is counted as drops, and a link that goes down and comes back is read again", async (t) => {
  const lab = NetnsLab.create(t);
  const ns = await lab.addNamespace("m46io");
  await lab.addVethPair(ns, "ra", ns, "rb", 1500);
  const { stdout } = await lab.exec(ns, [process.execPath, "--import", "tsx", FAULTS_PROBE], { timeoutMs: 60_000 });
  const r = JSON.parse(stdout.trim().split("\n").pop()!);
  t.true(r.burst.received >= 1 && r.burst.received < 1024, `part of the burst arrived (${r.burst.received})`);
  t.is(r.burst.unique, r.burst.received, "no frame was handed over twice");
  t.true(r.burst.stats.captureDrops > 0, "the ring counted what it dropped");
  t.true(r.burst.received + r.burst.stats.captureDrops <= 1024 + 8, "drops and arrivals add up to no more than was sent (a few kernel frames aside)");
  t.true(r.afterBurst, "the ring took frames again after the burst");
  t.true(r.socketErrorsWhileDown >= 1, "the link going down was counted");
  // A busy loop on the socket's error would take the whole second.
  t.true(r.cpuWhileDownMs < 600, `no busy loop while the link was down (${r.cpuWhileDownMs} ms CPU in 1 s)`);
  t.true(r.afterUp, "a frame sent after the link came back arrived");
});

live("two ports in one fanout group share an interface: each flow on one port, in order, no datagram twice or lost", async (t) => {
  const lab = NetnsLab.create(t);
  const ns = await lab.addNamespace("m46io");
  await lab.addVethPair(ns, "ra", ns, "rb", 1500);
  const { stdout } = await lab.exec(ns, [process.execPath, "--import", "tsx", FANOUT_PROBE], { timeoutMs: 60_000 });
  const r = JSON.parse(stdout.trim().split("\n").pop()!) as { flows: number; perFlow: number; got: string[][] };
  const all = [...r.got[0], ...r.got[1]];
  t.is(all.length, r.flows * r.perFlow, "every datagram was taken");
  t.is(new Set(all).size, all.length, "no datagram was taken by both ports");
  const portOf = new Map<string, Set<number>>();
  r.got.forEach((list, port) => {
    for (const item of list) {
      const flow = item.split(":")[0];
      if (!portOf.has(flow)) portOf.set(flow, new Set());
      portOf.get(flow)!.add(port);
    }
  });
  t.true([...portOf.values()].every((s) => s.size === 1), "each flow stayed on one port");
  t.true(r.got[0].length > 0 && r.got[1].length > 0, "both ports took flows");
  for (const list of r.got) {
    const last = new Map<string, number>();
    for (const item of list) {
      const [flow, seq] = item.split(":").map(Number);
      t.true((last.get(String(flow)) ?? -1) < seq, `flow ${flow} in order`);
      last.set(String(flow), seq);
    }
  }
});

live("the pipeline fed views into the ring gives the same bytes as fed copies: 6,000 seeded mutations of every kind of frame", async (t) => {
  const lab = NetnsLab.create(t);
  const ns = await lab.addNamespace("m46io");
  await lab.addVethPair(ns, "ra", ns, "rb", 1500);
  await lab.addVethPair(ns, "rc", ns, "rd", 1500);
  const { stdout } = await lab.exec(ns, [process.execPath, "--import", "tsx", PIPELINE_PROBE], { timeoutMs: 120_000 });
  const r = JSON.parse(stdout.trim().split("\n").pop()!);
  t.is(r.drops, 0, "the rings dropped nothing");
  t.true(r.received >= r.sent, `every frame sent was received (${r.received} of ${r.sent})`);
  t.true(r.emitted > 1000, `the pipeline sent frames (${r.emitted})`);
  t.true(r.toResolvedNeighbour >= 1, "packets held for a neighbour went out after its ARP reply");
  t.is(r.emitted, r.emittedFromCopies);
  t.is(r.firstDifference, -1, "every output frame is the same, byte for byte");
  t.is(r.internalErrors, 0, "nothing threw inside the pipeline");
});

live("a send that finds the device queue full (ENOBUFS) is counted, the rest of the batch is tried once more, and the rest dropped: one retry per batch, never a spin", async (t) => {
  const lab = NetnsLab.create(t);
  const ns = await lab.addNamespace("m46io");
  await lab.addVethPair(ns, "ra", ns, "rb", 1500);
  // A queue of 1,600 bytes (one of our frames) that drains at 8 kbit/s: the second frame or so of a batch is refused.
  await lab.exec(ns, ["tc", "qdisc", "add", "dev", "ra", "root", "tbf", "rate", "8kbit", "burst", "1600", "limit", "1600"]);
  const { stdout } = await lab.exec(ns, [process.execPath, "--import", "tsx", SENDFULL_PROBE], { timeoutMs: 60_000 });
  const { after } = JSON.parse(stdout.trim().split("\n").pop()!) as { after: { sent: number; sendErrors: number; sendRetries: number }[] };
  after.forEach((s, batch) => {
    t.is(s.sendRetries, batch + 1, `one retry per batch (after batch ${batch + 1})`);
    t.is(s.sent + s.sendErrors, 64 * (batch + 1), "every frame is either sent or counted as an error");
  });
  t.true(after[2].sent >= 1 && after[2].sent < 64 * 3, `some frames went, most were refused (${after[2].sent} sent)`);
  t.true(after[2].sendErrors > 0);
});
