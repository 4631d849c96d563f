// Throughput of the data-plane worker, live, in network namespaces: sender ns → middle ns →
// receiver ns over veth pairs. trafgen (netsniff-ng) in the sender offers small UDP packets as
// fast as it can; the receiver's veth counts what arrives. Per action of the worker, and, on an
// identical topology in the same run, TAYGA translating 6→4 and the kernel forwarding IPv4.
// What is reported is the forwarding rate under overload (RFC 2285 §3.6.1): packets delivered per
// second while more is offered than the middle can take.
//
//   node --import tsx bench/dataplane.ts [--seconds 3] [--repeat 2] [--warmup 1] [--only reencap-4in4-4in6,translate-6to4,...]
//        [--profile DIR]   (the worker runs under node --cpu-prof; profiles land in DIR/<case>/)
//   --backends ring,cap: every worker case on each capture backend, named CASE/BACKEND
//   --frame-bytes 64,512,1500: the translate and re-encapsulation cases and TAYGA again with frames
//        of these sizes (Ethernet header included), named CASE@BYTES; × TAYGA compares equal sizes
//   --workers 1,2: every worker case with each number of forwarding threads (`workers: N`, ring backend
//        only), named CASE/ring/wN; for N > 1 the notes give each thread's delivered kpps and CPU (its
//        /proc task) and the main thread's CPU
//   --flows N: the sender varies the (innermost) UDP source port over N values, so that PACKET_FANOUT's
//        flow hash spreads the load over the threads (default 1: one flow)
//   --latency-count N: after the throughput table, bench/latency.ts's one-way latency at 1 kpps
//        with N datagrams per case (0: none)
//        (cases: encap-4in6, decap-4in6, reencap-4in4-4in6, translate-6to4, translate-4to6, translate-4to6-pool6,
//         tayga-6to4, kernel-ipv4, ceiling-ring)
// ceiling-ring is bench/ceiling/forward.c (built here with cc): the worker's ring I/O and nothing
// else, so "× ceiling" is the share of the raw I/O rate each worker case reaches.
import { execFileSync } from "node:child_process";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { parseIPv4, parseIPv6 } from "../lib/net/address.js";
import { buildEthernetFrame, ETHERTYPE } from "../dataplane/packet/ethernet.js";
import { buildIPv4Packet } from "../dataplane/packet/ipv4.js";
import { buildIPv6Packet } from "../dataplane/packet/ipv6.js";
import { buildUdp4, buildUdp6 } from "../dataplane/packet/udp.js";
import { NetnsLab, netnsAvailable } from "../harness/netns.js";
import { ceilingBinary } from "./ceiling/build.js";
import { latencyTable } from "./latency.js";
import { createTopology, metricValue, parseMac, startWorker, workerMetricsText, type Topology } from "../harness/topology.js";

const { values: args } = parseArgs({
  options: { "frame-bytes": { type: "string" }, "latency-count": { type: "string", default: "3000" }, seconds: { type: "string", default: "3" }, repeat: { type: "string", default: "2" }, only: { type: "string" }, profile: { type: "string" }, backends: { type: "string", default: "ring,cap" }, workers: { type: "string", default: "1" }, flows: { type: "string", default: "1" }, warmup: { type: "string", default: "1" } },
});
const SECONDS = Number(args.seconds);
const WARMUP = Number(args.warmup);
const REPEAT = Math.max(1, Number(args.repeat));
const FLOWS = Math.max(1, Math.min(256, Number(args.flows)));
// 18 bytes: 60-byte IPv4 frames, 80-byte IPv6 frames; --frame-bytes sets it per case.
let payload = new Uint8Array(18).fill(0x6d);
/** The cases that --frame-bytes runs again at each size. */
const SIZED = new Set(["translate-6to4", "translate-4to6", "translate-4to6-pool6", "reencap-4in4-4in6", "tayga-6to4"]);

const v4 = (t: string) => parseIPv4(t, "bench").bytes;
const v6 = (t: string) => parseIPv6(t, "bench").bytes;
const udp4 = (src: string, dst: string) => buildUdp4({ src: v4(src), dst: v4(dst), srcPort: 40000, dstPort: 9 }, payload);
const udp6 = (src: string, dst: string) => buildUdp6({ src: v6(src), dst: v6(dst), srcPort: 40000, dstPort: 9 }, payload);

interface Scenario {
  name: string;
  what: string;
  /** Builds the frame the sender offers, addressed to the middle's w0. */
  frame(topo: Topology): Uint8Array;
  /** Sets the middle up and returns the pid doing the work (undefined: kernel softirq). */
  middle(topo: Topology): Promise<{ pid?: number; metricsPort?: number; tids?: number[]; stop?: () => Promise<void> }>;
  /** A worker case: run once per capture backend (--backends), named CASE/BACKEND. */
  worker?: boolean;
  backend?: string;
  /** Forwarding threads of a worker case (--workers). */
  threads?: number;
}

function eth(topo: Topology, etherType: number, packet: Uint8Array): Uint8Array {
  return buildEthernetFrame(parseMac(topo.macs.w0), parseMac(topo.macs.s0), etherType, packet);
}

function workerScenario(name: string, what: string, frame: Scenario["frame"], config: (topo: Topology) => Record<string, unknown>, rules: unknown[]): Scenario {
  return {
    name, what, frame, worker: true,
    async middle(this: Scenario, topo) {
      const cfg = { workerId: `bench-${name}`, ...config(topo), capture: { backend: this.backend ?? "ring" }, workers: this.threads ?? 1 };
      let argvPrefix: string[] | undefined;
      if (args.profile) {
        // One directory per case: node writes a profile per thread (tsx's loader has its own).
        mkdirSync(join(args.profile, name), { recursive: true });
        argvPrefix = ["--cpu-prof", `--cpu-prof-dir=${join(args.profile, name)}`];
      }
      const w = await startWorker(topo, cfg, { revision: 1, rules }, name, argvPrefix);
      // The forwarding threads' kernel ids, from the ready line (workers: N > 1).
      const started = w.log().split("\n").find((l) => l.includes(`"msg":"dataplane started"`));
      const tids = started ? (JSON.parse(started) as { threads?: number[] }).threads : undefined;
      return { pid: w.child.pid, metricsPort: w.metricsPort, tids, stop: () => NetnsLab.stop(w.child) };
    },
  };
}

const SCENARIOS: Scenario[] = [
  workerScenario("encap-4in6", "IPv4 from a VM's home address, wrapped IPv4-in-IPv6 toward the engine by an encapsulate rule (flow 3.1 l)",
    (topo) => eth(topo, ETHERTYPE.IPV4, udp4("192.0.2.1", "203.0.113.10")),
    (topo) => ({
      interfaces: [{ name: "w0", addresses: ["192.0.2.254/24"] }, { name: "w1", addresses: ["2001:db8:1::c000:201/64"] }],
      neighbours: [{ interface: "w1", address: "2001:db8:1::fe", mac: topo.macs.r0 }],
    }),
    [{ key: "peer", kind: "tunnel-peer", tunnel: "4in6", peer: "2001:db8:1::fe" },
      { key: "encap", kind: "encapsulate", tunnel: "4in6", remote: "2001:db8:1::fe", innerSource: "192.0.2.1", vmId: "vm" }]),
  workerScenario("decap-4in6", "IPv4-in-IPv6 from a privileged VM, decapsulated and forwarded (flow 3.1 m)",
    (topo) => eth(topo, ETHERTYPE.IPV6, buildIPv6Packet({ src: v6("2001:db8:1::c000:201"), dst: v6("2001:db8:c::1"), nextHeader: 4, hopLimit: 64 },
      udp4("192.0.2.1", "203.0.113.10"))),
    (topo) => ({
      interfaces: [{ name: "w0", addresses: ["2001:db8:c::1/64"] }, { name: "w1", addresses: ["203.0.113.1/24"] }],
      neighbours: [{ interface: "w1", address: "203.0.113.10", mac: topo.macs.r0 }],
    }),
    [{ key: "p", kind: "tunnel-peer", tunnel: "4in6", peer: "2001:db8:1::c000:201", innerSource: "192.0.2.1" }]),
  workerScenario("reencap-4in4-4in6", "IPv4-in-IPv4 from r1 for a pool address, out as IPv4-in-IPv6 (flow 3.1 j)",
    (topo) => eth(topo, ETHERTYPE.IPV4, buildIPv4Packet({ src: v4("203.0.113.2"), dst: v4("198.51.100.2"), protocol: 4, ttl: 64 },
      udp4("203.0.113.10", "192.0.2.1"))),
    (topo) => ({
      interfaces: [{ name: "w0", addresses: ["203.0.113.1/24"] }, { name: "w1", addresses: ["2001:db8:1::fe/64"] }],
      served: ["198.51.100.0/24"],
      neighbours: [{ interface: "w1", address: "2001:db8:1::c000:201", mac: topo.macs.r0 }],
    }),
    [{ key: "peer", kind: "tunnel-peer", tunnel: "4in4", peer: "203.0.113.2" },
      { key: "re", kind: "reencap-4in4-to-4in6", poolIPv4: "198.51.100.2", careOfIPv6: "2001:db8:1::c000:201", vmId: "vm" }]),
  workerScenario("translate-6to4", "IPv6 client to an IPv4 VM, SIIT 6→4 (RFC 7915 §5)",
    (topo) => eth(topo, ETHERTYPE.IPV6, udp6("2001:db8:c::10", "2001:db8:64::c000:201")),
    (topo) => ({
      interfaces: [{ name: "w0", addresses: ["2001:db8:c::1/64"] }, { name: "w1", addresses: ["192.0.2.254/24"] }],
      neighbours: [{ interface: "w1", address: "192.0.2.1", mac: topo.macs.r0 }],
    }),
    [{ key: "pfx", kind: "translation-prefix", prefix: "2001:db8:64::/96" },
      { key: "eam", kind: "address-mapping", ipv4: "198.51.100.7", ipv6: "2001:db8:c::10" }]),
  workerScenario("translate-4to6", "IPv4 client to an IPv6 VM, SIIT 4→6 (RFC 7915 §4)",
    (topo) => eth(topo, ETHERTYPE.IPV4, udp4("203.0.113.10", "198.51.100.20")),
    (topo) => ({
      interfaces: [{ name: "w0", addresses: ["203.0.113.1/24"] }, { name: "w1", addresses: ["2001:db8:1::fe/64"] }],
      served: ["198.51.100.0/24"],
      neighbours: [{ interface: "w1", address: "2001:db8:1::2", mac: topo.macs.r0 }],
    }),
    [{ key: "pfx", kind: "translation-prefix", prefix: "2001:db8:64::/96" },
      { key: "eam", kind: "address-mapping", ipv4: "198.51.100.20", ipv6: "2001:db8:1::2" }]),
  // The same topology and traffic, the destination IPv4-translatable (RFC 6052 §2) instead of an EAM:
  // the EAM lookup misses, then the prefix's list is tried; the RFC 6052 form goes by a route to r0.
  workerScenario("translate-4to6-pool6", "IPv4 client to an IPv4-translatable IPv6 node, SIIT 4→6 with the RFC 6052 prefix (RFC 6052 §2)",
    (topo) => eth(topo, ETHERTYPE.IPV4, udp4("203.0.113.10", "198.51.100.130")),
    (topo) => ({
      interfaces: [{ name: "w0", addresses: ["203.0.113.1/24"] }, { name: "w1", addresses: ["2001:db8:1::fe/64"] }],
      routes: [{ prefix: "2001:db8:64::/96", interface: "w1", via: "2001:db8:1::2" }],
      neighbours: [{ interface: "w1", address: "2001:db8:1::2", mac: topo.macs.r0 }],
    }),
    [{ key: "pfx", kind: "translation-prefix", prefix: "2001:db8:64::/96", ipv4Translatable: ["198.51.100.128/25"] },
      { key: "eam", kind: "address-mapping", ipv4: "198.51.100.20", ipv6: "2001:db8:1::2" }]),
  {
    name: "tayga-6to4", what: "baseline: TAYGA translating 6→4 (tun device, kernel forwarding around it)",
    frame: (topo) => eth(topo, ETHERTYPE.IPV6, udp6("2001:db8:c::10", "2001:db8:64::c000:201")),
    async middle(topo) {
      const { lab, worker: ns } = topo;
      await lab.sysctl(ns, "net.ipv4.ip_forward", "1");
      await lab.sysctl(ns, "net.ipv6.conf.all.forwarding", "1");
      await lab.sysctl(ns, "net.ipv6.conf.w0.disable_ipv6", "0");
      await lab.exec(ns, ["ip", "addr", "add", "2001:db8:c::1/64", "dev", "w0", "nodad"]);
      await lab.exec(ns, ["ip", "addr", "add", "192.0.2.254/24", "dev", "w1"]);
      await lab.exec(ns, ["ip", "neigh", "replace", "192.0.2.1", "lladdr", topo.macs.r0, "dev", "w1", "nud", "permanent"]);
      const conf = join(topo.dir, "tayga.conf");
      mkdirSync(join(topo.dir, "tayga"), { recursive: true });
      writeFileSync(conf, ["tun-device m46nat64", "ipv4-addr 198.51.100.1", "prefix 2001:db8:64::/96",
        "map 198.51.100.7 2001:db8:c::10", `data-dir ${join(topo.dir, "tayga")}`, ""].join("\n"));
      await lab.exec(ns, ["tayga", "-c", conf, "--mktun"]);
      await lab.exec(ns, ["ip", "link", "set", "m46nat64", "up"]);
      await lab.exec(ns, ["ip", "route", "add", "2001:db8:64::/96", "dev", "m46nat64"]);
      await lab.exec(ns, ["ip", "route", "add", "198.51.100.0/24", "dev", "m46nat64"]);
      const child = lab.spawn(ns, ["tayga", "-c", conf, "--nodetach"], "ignore");
      await new Promise((r) => setTimeout(r, 500));
      return { pid: child.pid, stop: () => NetnsLab.stop(child) };
    },
  },
  {
    name: "kernel-ipv4", what: "upper reference: the kernel forwarding IPv4 (ip_forward=1)",
    frame: (topo) => eth(topo, ETHERTYPE.IPV4, udp4("203.0.113.10", "192.0.2.1")),
    async middle(topo) {
      const { lab, worker: ns } = topo;
      await lab.sysctl(ns, "net.ipv4.ip_forward", "1");
      await lab.exec(ns, ["ip", "addr", "add", "203.0.113.1/24", "dev", "w0"]);
      await lab.exec(ns, ["ip", "addr", "add", "192.0.2.254/24", "dev", "w1"]);
      await lab.exec(ns, ["ip", "neigh", "replace", "192.0.2.1", "lladdr", topo.macs.r0, "dev", "w1", "nud", "permanent"]);
      return {};
    },
  },
  {
    name: "ceiling-ring", what: "I/O ceiling: bench/ceiling/forward.c, the same ring and sendmmsg in C, no packet work",
    frame: (topo) => eth(topo, ETHERTYPE.IPV4, udp4("203.0.113.10", "192.0.2.1")),
    async middle(topo) {
      const child = topo.lab.spawn(topo.worker, [ceilingBinary(), "w0", "w1", topo.macs.r0], "ignore");
      await sleep(200);
      return { pid: child.pid, stop: () => NetnsLab.stop(child) };
    },
  },
];

function cpuTicks(pid: number, tid?: number): number {
  const fields = readFileSync(tid === undefined ? `/proc/${pid}/stat` : `/proc/${pid}/task/${tid}/stat`, "utf8").split(") ")[1].split(" ");
  return Number(fields[11]) + Number(fields[12]); // utime + stime, fields 14 and 15 of proc(5)
}
const TICKS_PER_SECOND = Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim());

interface Result { name: string; what: string; pps: number; offeredPps: number; cpu?: number; bytes: number; extra: Record<string, number | undefined> }

/** The scenario's frame, padded (UDP payload) to `bytes` when asked. */
function sizedFrame(s: Scenario, topo: Topology, bytes?: number): Uint8Array {
  payload = new Uint8Array(bytes === undefined ? 18 : 0).fill(0x6d);
  if (bytes === undefined) return s.frame(topo);
  const overhead = s.frame(topo).length;
  if (bytes < overhead) throw new Error(`${s.name}: a frame of ${bytes} bytes cannot hold its headers (${overhead})`);
  payload = new Uint8Array(bytes - overhead).fill(0x6d);
  return s.frame(topo);
}

async function runScenario(s: Scenario, bytes?: number): Promise<Result> {
  const topo = await createTopology();
  try {
    // The receiver has no address for the destinations: its kernel counts the frame on r0 and
    // drops it (forwarding off), without answering.
    await topo.lab.sysctl(topo.receiver, "net.ipv6.conf.r0.disable_ipv6", "1");
    const mid = await s.middle(topo);
    const frame = sizedFrame(s, topo, bytes);
    const cfg = join(topo.dir, "trafgen.cfg");
    writeFileSync(cfg, trafgenConfig(frame));
    const total = WARMUP + SECONDS + 1;
    // -P 1: one sender process; --no-sock-mem/--notouch-irq: leave the host's socket memory and IRQ settings alone.
    const gen = topo.lab.spawn(topo.sender, ["timeout", "-s", "INT", String(total), "trafgen", "--dev", "s0", "--conf", cfg, "-P", "1", "--no-sock-mem", "--notouch-irq", "-n", "100000000"], "ignore");
    await sleep(WARMUP * 1000);
    const t1 = performance.now();
    const [r1, s1] = await Promise.all([topo.lab.counters(topo.receiver, "r0"), topo.lab.counters(topo.sender, "s0")]);
    const c1 = mid.pid ? cpuTicks(mid.pid) : 0;
    const tids = mid.tids ?? [];
    const perThread = async () => {
      const m = await workerMetricsText(topo, mid.metricsPort!);
      return tids.map((tid, n) => ({ cpu: cpuTicks(mid.pid!, tid), out: metricValue(m, `mip46_dataplane_thread_packets_total{thread="${n}",direction="out"}`) ?? 0 }));
    };
    const th1 = tids.length > 0 ? await perThread() : [];
    await sleep(SECONDS * 1000);
    const t2 = performance.now();
    const [r2, s2] = await Promise.all([topo.lab.counters(topo.receiver, "r0"), topo.lab.counters(topo.sender, "s0")]);
    const c2 = mid.pid ? cpuTicks(mid.pid) : 0;
    const th2 = tids.length > 0 ? await perThread() : [];
    const elapsed = (t2 - t1) / 1000;
    await new Promise((r) => (gen.exitCode !== null ? r(null) : gen.once("exit", r)));
    const extra: Record<string, number | undefined> = {};
    if (mid.metricsPort !== undefined) {
      const m = await workerMetricsText(topo, mid.metricsPort);
      extra.captureDrops = metricValue(m, 'mip46_dataplane_capture_drops_total{interface="w0"}');
      extra.batches = metricValue(m, 'mip46_dataplane_capture_batches_total{interface="w0"}');
      extra.packetsIn = metricValue(m, 'mip46_dataplane_packets_total{interface="w0",direction="in"}');
      extra.sendErrors = metricValue(m, 'mip46_dataplane_send_errors_total{interface="w1"}');
      if (extra.batches) extra.meanBatch = Math.round((extra.packetsIn ?? 0) / extra.batches);
    }
    // Per forwarding thread: frames it sent per second, and the share of a core it used; the main
    // thread (sync client, metrics, libuv's own threads) is the rest of the process's CPU.
    let threadsCpu = 0;
    th2.forEach((t, n) => {
      const cpu = (t.cpu - th1[n].cpu) / TICKS_PER_SECOND / elapsed;
      threadsCpu += cpu;
      extra[`t${n}Kpps`] = Math.round((t.out - th1[n].out) / elapsed / 1000);
      extra[`t${n}Cpu`] = Number(cpu.toFixed(2));
    });
    if (th2.length > 0) extra.restCpu = Number(((c2 - c1) / TICKS_PER_SECOND / elapsed - threadsCpu).toFixed(2));
    await mid.stop?.();
    return {
      name: s.name, what: s.what, bytes: frame.length, pps: (r2.rxPackets - r1.rxPackets) / elapsed, offeredPps: (s2.txPackets - s1.txPackets) / elapsed,
      cpu: mid.pid ? (c2 - c1) / TICKS_PER_SECOND / elapsed : undefined, extra,
    };
  } finally {
    await topo.destroy();
  }
}

/**
 * trafgen's packet: the frame's bytes; with --flows N > 1, the low byte of the innermost UDP
 * source port (through IP-in-IP tunnels, whose inner flow the kernel's flow hash reads) counts
 * through N values (dinc) and trafgen computes that UDP checksum (csumudp, csumudp6).
 */
function trafgenConfig(frame: Uint8Array): string {
  const bytes: string[] = Array.from(frame, (b) => "0x" + b.toString(16).padStart(2, "0"));
  let version = ((frame[12] << 8) | frame[13]) === ETHERTYPE.IPV4 ? 4 : 6;
  let ip = 14;
  for (;;) {
    const next = version === 4 ? frame[ip + 9] : frame[ip + 6];
    const payload = version === 4 ? ip + (frame[ip] & 15) * 4 : ip + 40;
    if (next === 4 || next === 41) {
      [ip, version] = [payload, next === 4 ? 4 : 6];
      continue;
    }
    if (FLOWS > 1 && next === 17) {
      bytes[payload + 1] = `dinc(0, ${FLOWS - 1})`;
      bytes[payload + 6] = version === 4 ? `csumudp(${ip}, ${payload})` : `csumudp6(${ip}, ${payload})`;
      bytes.splice(payload + 7, 1);
    }
    break;
  }
  return `{ ${bytes.join(", ")} }\n`;
}

function sleep(ms: number) {
  return new Promise((r) => setTimeout(r, ms));
}

async function main() {
  if (!netnsAvailable()) throw new Error("needs root (network namespaces)");
  try {
    execFileSync("sh", ["-c", "command -v trafgen"], { stdio: "ignore" });
  } catch {
    throw new Error("trafgen not found: apt-get install netsniff-ng");
  }
  const only = args.only?.split(",");
  const results: Result[] = [];
  // Each worker case runs on every backend, one after the other (interleaved, not in two blocks).
  const backends = args.backends!.split(",");
  const workerCounts = args.workers!.split(",").map(Number);
  // workers: N > 1 runs on the ring only; N = 1 keeps the old names (CASE/BACKEND).
  const variants = backends.flatMap((b) => workerCounts.filter((n) => n === 1 || b === "ring").map((n) => ({ backend: b, threads: n, tag: n === 1 ? b : `${b}/w${n}` })));
  const perBackend = (s: Scenario, suffix = "", bytes?: number) =>
    (s.worker ? variants.map((v) => ({ ...s, name: `${s.name}${suffix}/${v.tag}`, base: s.name, backend: v.backend, threads: v.threads, bytes })) : [{ ...s, name: `${s.name}${suffix}`, base: s.name, bytes }]);
  const sizes = args["frame-bytes"]?.split(",").map(Number) ?? [];
  const cases = SCENARIOS.flatMap((s) => [...perBackend(s), ...(SIZED.has(s.name) ? sizes.flatMap((n) => perBackend(s, `@${n}`, n)) : [])]);
  for (const s of cases) {
    if (only && !only.includes(s.base) && !only.includes(s.name)) continue;
    // The machine is shared: each case runs REPEAT times on a fresh topology and the best run
    // counts (the others lost CPU time to someone else).
    let best: Result | undefined;
    for (let i = 0; i < REPEAT; i++) {
      const r = await runScenario(s, s.bytes);
      process.stderr.write(`${s.name} #${i + 1}: ${Math.round(r.pps)} pps delivered, ${Math.round(r.offeredPps)} offered, cpu ${r.cpu?.toFixed(2) ?? "softirq"} ${JSON.stringify(r.extra)}\n`);
      if (!best || r.pps > best.pps) best = r;
    }
    results.push(best!);
  }
  const tayga = results.find((r) => r.name === "tayga-6to4");
  // × TAYGA compares frames of one size: CASE@BYTES against tayga-6to4@BYTES.
  const taygaFor = (r: Result) => (r.name.includes("@") ? results.find((t) => t.name === `tayga-6to4@${r.name.split("@")[1].split("/")[0]}`) : tayga);
  const kernel = results.find((r) => r.name === "kernel-ipv4")?.pps;
  const ceilingRun = results.find((r) => r.name === "ceiling-ring");
  const kpps = (n: number) => `${(n / 1000).toFixed(0)}`;
  // Delivered packets per CPU-second of the process doing the work: on a shared machine the
  // process does not always get a whole core, and this is the figure that does not depend on it.
  const perCore = (r: Result) => (r.cpu ? r.pps / r.cpu : undefined);
  const ceilingPerCore = ceilingRun && perCore(ceilingRun);
  const lines = [
    `# dataplane throughput, best of ${REPEAT} runs of ${SECONDS} s per case after ${WARMUP} s warm-up, 60/80-byte frames (18-byte UDP payload) unless the case says @BYTES${FLOWS > 1 ? `, ${FLOWS} UDP flows (source ports)` : ""}, ${new Date().toISOString()}`,
    "| case | kpps delivered | kpps offered | CPU of the process (cores) | kpps per CPU-second | × TAYGA (pps) | × TAYGA (per CPU-second) | × kernel (pps) | × ceiling (pps) | × ceiling (per CPU-second) | notes |",
    "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ...results.map((r) => {
      const pc = perCore(r);
      const t = taygaFor(r);
      const tc = t && perCore(t);
      return `| ${r.name} | ${kpps(r.pps)} | ${kpps(r.offeredPps)} | ${r.cpu?.toFixed(2) ?? "softirq"} | ${pc ? kpps(pc) : "-"} | ${t ? (r.pps / t.pps).toFixed(2) : "-"} | ${pc && tc ? (pc / tc).toFixed(2) : "-"} | ${kernel ? (r.pps / kernel).toFixed(2) : "-"} | ${ceilingRun ? (r.pps / ceilingRun.pps).toFixed(2) : "-"} | ${pc && ceilingPerCore ? (pc / ceilingPerCore).toFixed(2) : "-"} | ${Object.entries(r.extra).filter(([, v]) => v !== undefined).map(([k, v]) => `${k}=${v}`).join(" ")} |`;
    }),
  ];
  process.stdout.write(lines.join("\n") + "\n");
  const latencyCount = Number(args["latency-count"]);
  if (latencyCount > 0 && !only) process.stdout.write("\n" + (await latencyTable(latencyCount, 1000, backends)));
}

main().catch((e) => {
  process.stderr.write(`${(e as Error).stack ?? e}\n`);
  process.exit(1);
});
