// Live: the worker with `workers: 2`, two forwarding threads sharing each interface by
// PACKET_FANOUT (dataplane/worker/threads.ts), on real veths between real sockets.
// - 16 TCP connections through it: each one's segments leave in order and none twice, both
//   threads carry connections, and the frames the threads took add up to the frames the interface
//   received (none handled twice, none lost);
// - with a real engine: a revision is acknowledged only once both threads applied it; a thread
//   ended as a crash would is started again with the latest table, and while it is down the other
//   thread forwards every flow, its own and the dead one's.
import { spawn, execFileSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { createInterface } from "node:readline";
import anyTest, { type ExecutionContext, type TestFn } from "ava";
import { NetnsLab, netnsAvailable } from "../../../harness/netns.js";
import { sleep, until as waitUntil } from "./wait.js";
import { engineOnSocket } from "./engine-lab.js";
import {
  captureFrames, configureHost, createTopology, FRAMES_PY, metricValue, parseMac, startLines, startWorker, SYSTEM_PYTHON, workerMetricsText,
} from "../../../harness/topology.js";
import { buildEthernetFrame, ETHERTYPE } from "../../../dataplane/packet/ethernet.js";
import { buildUdp4 } from "../../../dataplane/packet/udp.js";
import { parseIPv4 as parseAddress4 } from "../../../lib/net/address.js";
import { TABLE, WORKER_CONFIG } from "./static-lab.js";

const test = anyTest as TestFn;
const live = netnsAvailable() ? test.serial : test.serial.skip;
const TCP_FLOWS = join(import.meta.dirname, "tcp-flows.py");
const PROBE = join(import.meta.dirname, "threads-probe.ts");
const until = (what: string, check: () => boolean | Promise<boolean>) => waitUntil(what, check, 20_000, 50);

/**
 * The static lab's worker with two threads, the sender at 203.0.113.10 and the receiver at 192.0.2.1,
 * IPv4 only on the sender: no IPv6 chatter (MLD reports, DAD) on w0 while its frames are counted.
 */
async function twoThreads(t: ExecutionContext) {
  const topo = await createTopology(t);
  await topo.lab.sysctl(topo.sender, "net.ipv6.conf.s0.disable_ipv6", "1");
  await configureHost(topo, topo.sender, "s0", ["203.0.113.10/24"], [["default", "via", "203.0.113.1"]]);
  await configureHost(topo, topo.receiver, "r0", ["192.0.2.1/24"], [["default", "via", "192.0.2.254"]]);
  return { topo, worker: await startWorker(topo, { ...WORKER_CONFIG, workers: 2 }, TABLE) };
}

live("16 TCP connections through two threads: each in order, no segment twice, both threads used, the threads' frames add up to the interface's", async (t) => {
  const { topo, worker } = await twoThreads(t);
  const flows = 16;
  const bytes = 64 * 1024;
  // A first exchange resolves the receiver (ARP), so that the counts below are the TCP traffic's.
  await topo.lab.exec(topo.sender, ["ping", "-c", "2", "-i", "0.2", "-W", "2", "192.0.2.1"]);
  // The counts are read when nothing is on the way (the last reply had time to arrive).
  await sleep(500);
  const before = { w0: await topo.lab.counters(topo.worker, "w0"), metrics: await workerMetricsText(topo, worker.metricsPort) };

  const listener = await startLines(topo, topo.receiver, [SYSTEM_PYTHON, TCP_FLOWS, "listen", "192.0.2.1", "5001", String(flows), "60"]);
  const capture = await startLines(topo, topo.receiver, [SYSTEM_PYTHON, TCP_FLOWS, "capture", "r0", "90"]);
  await topo.lab.exec(topo.sender, [SYSTEM_PYTHON, TCP_FLOWS, "send", "203.0.113.10", "192.0.2.1", "5001", String(flows), String(bytes)], { timeoutMs: 90_000 });
  const lines = await listener.done;
  await sleep(500);
  await NetnsLab.stop(capture.child, 100);
  await sleep(500);
  const got = JSON.parse(lines[0]) as { bytes: number[]; intact: boolean[] };
  t.deepEqual(got.bytes, Array(flows).fill(bytes), "every connection delivered all its bytes");
  t.deepEqual(got.intact, Array(flows).fill(true), "and in order, as sent");

  // On the wire, after the worker, per connection: the sender numbers its segments (the IPv4
  // identification of a connected socket goes up by one per segment, a retransmission included),
  // and the worker routes them without touching it: so each connection's identifications must go
  // up from frame to frame, none repeated (a frame sent twice) and none back (reordered).
  const byPort = new Map<number, number[]>();
  for (const line of capture.lines) {
    const [port, id] = line.split(" ").map(Number);
    if (!byPort.has(port)) byPort.set(port, []);
    byPort.get(port)!.push(id);
  }
  t.is(byPort.size, flows, "segments of every connection were seen");
  const forward = (from: number, to: number) => ((to - from) & 0xffff) > 0 && ((to - from) & 0xffff) < 0x8000;
  const out = [...byPort].filter(([, ids]) => ids.some((id, i) => i > 0 && !forward(ids[i - 1], id))).map(([port, ids]) => {
    const i = ids.findIndex((id, n) => n > 0 && !forward(ids[n - 1], id));
    return `${port}: ${ids.slice(Math.max(0, i - 3), i + 3).join(" ")}`;
  });
  const after = { w0: await topo.lab.counters(topo.worker, "w0"), metrics: await workerMetricsText(topo, worker.metricsPort) };
  const m = (text: string, series: string) => metricValue(text, series) ?? 0;
  const drops = m(after.metrics, 'mip46_dataplane_capture_drops_total{interface="w0"}');
  t.deepEqual(out, [], `no connection's segments out of order or repeated (capture drops: ${drops})`);

  // Every frame w0 received was taken by exactly one thread.
  const taken = m(after.metrics, 'mip46_dataplane_packets_total{interface="w0",direction="in"}') - m(before.metrics, 'mip46_dataplane_packets_total{interface="w0",direction="in"}');
  t.is(taken + drops, after.w0.rxPackets - before.w0.rxPackets, "the threads' frames on w0 are the frames w0 received");
  const perThread = [0, 1].map((n) => m(after.metrics, `mip46_dataplane_thread_packets_total{thread="${n}",direction="in"}`) - m(before.metrics, `mip46_dataplane_thread_packets_total{thread="${n}",direction="in"}`));
  t.true(perThread[0] > 0 && perThread[1] > 0, `both threads took frames (${perThread.join(", ")})`);
  t.is(m(after.metrics, "mip46_dataplane_threads"), 2);
  t.true(m(after.metrics, 'mip46_dataplane_thread_cpu_seconds_total{thread="1"}') > 0, "each thread's CPU time is reported");
  const promtool = execFileSync("sh", ["-c", "promtool check metrics 2>&1 || true"], { input: after.metrics, encoding: "utf8" });
  t.is(promtool, "", "promtool check metrics has nothing to say");
});

live("IPv4 fragments go through two threads as fragments: a 4,000-byte datagram from a real socket reaches the receiver's socket whole", async (t) => {
  const { topo, worker } = await twoThreads(t);
  const text = "m46-frag-" + "x".repeat(4000);
  const listener = await startLines(topo, topo.receiver, [SYSTEM_PYTHON, FRAMES_PY, "udp-listen", "4", "0.0.0.0", "4030", "1", "10"]);
  // The sender's kernel fragments it at the link's MTU (1500): three fragments, one datagram.
  await topo.lab.exec(topo.sender, [SYSTEM_PYTHON, FRAMES_PY, "udp-send", "4", "203.0.113.10", "192.0.2.1", "4030", "5", "0.2", text]);
  const got = (await listener.done).map((l) => JSON.parse(l) as { data: string });
  const m = await workerMetricsText(topo, worker.metricsPort);
  t.true(got.length >= 1, `the datagram arrived (truncated frames at the worker: ${metricValue(m, 'mip46_dataplane_capture_truncated_total{interface="w0"}')})`);
  t.is(got[0]?.data, text);
});

live("a revision is acknowledged once both threads applied it; a thread that dies is started again with the latest table, and meanwhile the other forwards every flow", async (t) => {
  const topo = await createTopology(t);
  const { socket, migrate } = await engineOnSocket(t, topo);
  const r1 = await migrate("vm-a", "192.0.2.50");

  await configureHost(topo, topo.sender, "s0", ["203.0.113.10/24"], [["default", "via", "203.0.113.1"]]);
  await configureHost(topo, topo.receiver, "r0", ["192.0.2.1/24"], [["default", "via", "192.0.2.254"]]);
  const config = {
    workerId: "live-threads", engines: [`unix:${socket}`], workers: 2, metricsListen: "127.0.0.1:0",
    interfaces: [{ name: "w0", addresses: ["203.0.113.1/24"] }, { name: "w1", addresses: ["192.0.2.254/24", "2001:db8:1::fe/64"] }],
  };
  const input = join(topo.dir, "probe.json");
  writeFileSync(input, JSON.stringify({ config, minBackoffMs: 3000 }));
  const probe = spawn("ip", ["netns", "exec", topo.worker, process.execPath, "--import", "tsx", PROBE, input], { stdio: ["pipe", "pipe", "inherit"] });
  topo.lab.track(probe);
  const events: Record<string, unknown>[] = [];
  createInterface({ input: probe.stdout! }).on("line", (l) => events.push(JSON.parse(l)));
  const seen = (pred: (e: Record<string, unknown>) => boolean) => events.findIndex(pred);
  await until("both threads and the first acknowledgement", () => seen((e) => e.event === "ack" && Number(e.revision) >= Number(r1)) >= 0);

  // 16 UDP flows (source ports 7000..7015), 50 frames a second, for the whole test.
  const frames = Array.from({ length: 1500 }, (_, i) => buildEthernetFrame(parseMac(topo.macs.w0), parseMac(topo.macs.s0), ETHERTYPE.IPV4,
    buildUdp4({ src: parseAddress4("203.0.113.10", "t").bytes, dst: parseAddress4("192.0.2.1", "t").bytes, srcPort: 7000 + (i % 16), dstPort: 4020 }, new TextEncoder().encode(`m46-thr-${String(i).padStart(5, "0")}`))));
  const capture = await captureFrames(topo, new TextEncoder().encode("m46-thr-"), 2000, 60);
  const stream = spawn("ip", ["netns", "exec", topo.sender, SYSTEM_PYTHON, FRAMES_PY, "stream", "s0", "0.02"], { stdio: ["pipe", "ignore", "ignore"] });
  topo.lab.track(stream);
  stream.stdin!.end(frames.map((f) => Buffer.from(f).toString("hex")).join("\n") + "\n");
  await until("frames through both threads", () => capture.lines.length >= 40);

  probe.stdin!.write("kill 1\n");
  await until("thread 1 to end", () => seen((e) => e.event === "exit" && e.thread === 1) >= 0);
  const atExit = capture.lines.length;
  const r2 = await migrate("vm-b", "192.0.2.51");
  await until("the acknowledgement of the revision made while thread 1 was down", () => seen((e) => e.event === "ack" && e.revision === Number(r2)) >= 0);
  const atAck = capture.lines.length;

  const exit = seen((e) => e.event === "exit" && e.thread === 1);
  const restarted = seen((e) => e.event === "ready" && e.thread === 1 && e.restart === true);
  const ack = seen((e) => e.event === "ack" && e.revision === Number(r2));
  const appliedByThread0 = events.slice(exit, restarted).some((e) => e.event === "applied" && e.thread === 0);
  t.true(restarted > exit, "thread 1 was started again");
  t.true(appliedByThread0, "thread 0 applied the new revision while thread 1 was down");
  t.true(ack > restarted, `the revision was acknowledged only after thread 1 was back with it (events: ${JSON.stringify(events.slice(exit))})`);

  // While thread 1 was down, thread 0 took every flow: the frames captured meanwhile cover all 16.
  const flowsWhileDown = new Set(capture.lines.slice(atExit, atAck).map((hex) => {
    const f = Uint8Array.from(Buffer.from(hex, "hex"));
    return (f[14 + 20] << 8) | f[14 + 21];
  }));
  t.is(flowsWhileDown.size, 16, `every flow went on through thread 0 (${capture.lines.length - atExit} frames since the exit)`);

  // The restarted thread takes its share again, with the table of the latest revision.
  const stats = async () => {
    const n = events.length;
    probe.stdin!.write("stats\n");
    await until("the probe's stats", () => events.slice(n).some((e) => "stats" in e));
    return events.slice(n).find((e) => "stats" in e) as unknown as { stats: (number[] | null)[]; revisions: number[] };
  };
  const s0 = await stats();
  await until("frames through the restarted thread", async () => ((await stats()).stats[1]?.[0] ?? 0) > (s0.stats[1]?.[0] ?? 0));
  t.deepEqual((await stats()).revisions, [Number(r2), Number(r2)], "both threads hold the latest revision");
  const seqs = capture.lines.map((hex) => Number(Buffer.from(hex, "hex").toString("latin1").match(/m46-thr-(\d{5})/)![1]));
  t.is(new Set(seqs).size, seqs.length, "no frame was forwarded twice");
  probe.stdin!.write("stop\n");
  await until("the probe to stop", () => seen((e) => e.event === "stopped") >= 0);
  await NetnsLab.stop(stream, 100);
});
