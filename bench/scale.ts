// The control plane at cloud scale (issue 15): one engine as its own process on its durable SQLite
// store (sync=full), and N simulated hypervisor hosts, gRPC clients sending realistic Heartbeats
// (an address, resources, 20-50 VMs with their load) each at the heartbeat interval, spread evenly.
// The host counts are run in one engine, growing: the hosts of a smaller run stay known and keep
// beating in the next. For each count, two windows:
//   A  heartbeats only: the engine's CPU per heartbeat (utime + stime from /proc/PID/stat over the
//      window, divided by the heartbeats answered in it), heartbeat p50/p99, the share of one core;
//   B  the same heartbeats, and AllocateCareOf + RegisterMigration pairs, one at a time, at a
//      steady rate from a process of their own: the pair's p50/p99 under that load, the
//      heartbeats' p99 again, and the engine's own p99 of each (its handling-time histogram).
// Then the engine's RSS and the store's size (database + WAL). The load generator shares the
// machine with the engine, so the engine's own CPU is the figure to compare across counts.
//
// With --store etcd --replicas R: R engine replicas on a 3-member etcd cluster (harness/etcd.ts),
// the hosts spread over the replicas (host n beats at replica n % R); the CPU is the sum over the
// replicas, the RSS the largest replica's, the store etcd's database; and etcd's writes per
// second (keys put and deleted, from its own mvcc counters on /metrics) in window A.
//
// The engines and what is read of them (CPU, RSS, store size, /metrics) are in scale/deployment.ts.
//
//   node --import tsx bench/scale.ts [--hosts 100,1000,5000] [--interval 5] [--seconds 10]
//        [--pairs-per-second 20] [--channels 4] [--store sqlite|etcd] [--replicas 3]
//        [--json out.json] [--profile DIR (the engine under --cpu-prof)]
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { spawn, type ChildProcess } from "node:child_process";
import { createInterface } from "node:readline";
import { Client, credentials, Metadata } from "@grpc/grpc-js";
import { connectControl } from "../clients/control.js";
import { HeartbeatRequest, type VmReport } from "../gen/mip46/v1/control.js";
import { etcdOps } from "../harness/etcd.js";
import { seededRandom } from "../lib/random.js";
import { adviceGiven, cpuMs, deploy, etcdCpuMs, handling, rssMiB, serverQuantileMs, sum, written } from "./scale/deployment.js";

const { values } = parseArgs({
  options: {
    hosts: { type: "string" }, interval: { type: "string" }, seconds: { type: "string" },
    "pairs-per-second": { type: "string" }, channels: { type: "string" }, json: { type: "string" }, profile: { type: "string" },
    "pair-client": { type: "string" }, store: { type: "string" }, replicas: { type: "string" },
  },
});
const LEVELS = (values.hosts ?? "100,1000,5000").split(",").map(Number).sort((a, b) => a - b);
const INTERVAL_S = Number(values.interval ?? 5);
const WINDOW_S = Number(values.seconds ?? 10);
const PAIRS_PER_S = Number(values["pairs-per-second"] ?? 20);
const STORE = (values.store ?? "sqlite") as "sqlite" | "etcd";
if (STORE !== "sqlite" && STORE !== "etcd") throw new Error(`--store: '${STORE}' is not sqlite or etcd`);
const REPLICAS = STORE === "etcd" ? Number(values.replicas ?? 3) : 1;
if (!Number.isInteger(REPLICAS) || REPLICAS < 1) throw new Error(`--replicas: '${values.replicas}' is not a whole number of replicas`);
/** Channels to each replica: host n beats on channel n % all, at replica n % REPLICAS. */
const CHANNELS = Math.ceil(Number(values.channels ?? 4) / REPLICAS) * REPLICAS;
/** Window A lasts long enough for at least this many heartbeats, so 10 ms CPU ticks do not matter. */
const MIN_BEATS = 600;
const GIB = 1n << 30n;
const HEARTBEAT = "/mip46.v1.ControlEngine/Heartbeat";

/** The issue's figures for the engine before this work (same machine, 20 VMs per host, 32 in flight). */
const BASELINE = [
  { hosts: 100, cpuMs: 3.5, perSecond: 251 },
  { hosts: 1000, cpuMs: 15.6, perSecond: 65 },
  { hosts: 5000, cpuMs: 139, perSecond: 8 },
];

// --- simulated hosts -------------------------------------------------------------------------

const rnd = seededRandom(15);

interface SimHost {
  n: number;
  hostId: string;
  /** Even hosts are on the lab's IPv6 network, odd ones on its IPv4 segment (documentation ranges). */
  address: string;
  /** The share of the host its VMs use: 1 host in 100 runs hot. */
  target: number;
  vms: { vmId: string; homeAddress: string; cpu: number; memGiB: number }[];
  next: number;
  /**
   * Two encoded reports with different loads, sent in turn: the generator shares the engine's
   * two cores, so it encodes a host's report again only when its VM list changes.
   */
  encoded: Buffer[];
  beats: number;
}

const CPU_TOTAL = 64;
const MEM_TOTAL_GIB = 512;

function newHost(n: number): SimHost {
  const count = 20 + Math.floor(rnd() * 31);
  const target = n % 100 === 99 ? 0.9 : 0.2 + rnd() * 0.45;
  const vms = Array.from({ length: count }, (_, i) => newVm(n, i));
  return {
    n, hostId: `host-${n}`, target, vms, next: count, encoded: [], beats: 0,
    address: n % 2 === 0 ? `2001:db8:1::${(0x1000 + n).toString(16)}/64` : `192.0.2.${(n % 250) + 2}/24`,
  };
}

function newVm(n: number, i: number) {
  return { vmId: `host-${n}-vm-${i}`, homeAddress: `192.0.2.${(i % 250) + 2}`, cpu: 0.25 + rnd() * 1.75, memGiB: 2 + Math.floor(rnd() * 7) };
}

/** This beat's report, encoded; now and then (1 beat in 200) a VM comes or goes. */
function nextReport(h: SimHost): Buffer {
  const r = rnd();
  let changed = h.encoded.length === 0;
  if (r < 0.0025 && h.vms.length < 50) {
    h.vms.push(newVm(h.n, h.next++));
    changed = true;
  } else if (r < 0.005 && h.vms.length > 20) {
    h.vms.pop();
    changed = true;
  }
  if (changed) h.encoded = [0, 1].map(() => Buffer.from(HeartbeatRequest.encode(report(h)).finish()));
  return h.encoded[h.beats++ % h.encoded.length];
}

/** A report: the VMs' load moves by up to ±10%, scaled to the host's target. */
function report(h: SimHost): HeartbeatRequest {
  const loads = h.vms.map((v) => v.cpu * (0.9 + rnd() * 0.2));
  const sum = loads.reduce((a, b) => a + b, 0);
  const scale = (h.target * CPU_TOTAL) / sum;
  const vms: VmReport[] = h.vms.map((v, i) => ({ vmId: v.vmId, homeAddress: v.homeAddress, cpuUsedCores: loads[i] * scale, memoryUsedBytes: BigInt(v.memGiB) * GIB }));
  const mem = h.vms.reduce((a, v) => a + v.memGiB, 0);
  return {
    hostId: h.hostId, addresses: [h.address], vms,
    resources: { cpuUsedCores: h.target * CPU_TOTAL, cpuTotalCores: CPU_TOTAL, memoryUsedBytes: BigInt(Math.min(mem, MEM_TOTAL_GIB)) * GIB, memoryTotalBytes: BigInt(MEM_TOTAL_GIB) * GIB },
  };
}

// --- load ------------------------------------------------------------------------------------

interface Sample { at: number; ms: number }

class HeartbeatLoad {
  readonly hosts: SimHost[] = [];
  readonly samples: Sample[] = [];
  errors = 0;
  inFlight = 0;
  private timer?: NodeJS.Timeout;
  private cursor = 0;
  /** Heartbeats due and not sent yet. */
  private credit = 0;
  private last = 0;

  constructor(private readonly channels: Client[]) {}

  /** Every host beats once per interval, at evenly spread times; hosts added later join the round. */
  start(): void {
    this.last = performance.now();
    this.timer = setInterval(() => this.tick(), 5);
  }

  stop(): void {
    clearInterval(this.timer);
  }

  private tick(): void {
    const now = performance.now();
    this.credit += ((now - this.last) / 1000 / INTERVAL_S) * this.hosts.length;
    this.last = now;
    for (; this.credit >= 1; this.credit--) {
      const h = this.hosts[this.cursor];
      this.cursor = (this.cursor + 1) % this.hosts.length;
      void this.beat(h);
    }
  }

  async beat(h: SimHost): Promise<void> {
    const t = performance.now();
    this.inFlight++;
    try {
      const body = nextReport(h);
      await new Promise((resolve, reject) => {
        this.channels[h.n % this.channels.length].makeUnaryRequest(HEARTBEAT, (b: Buffer) => b, (b: Buffer) => b, body, new Metadata(), { deadline: Date.now() + 30_000 },
          (err, res) => (err ? reject(err) : resolve(res)));
      });
      this.samples.push({ at: performance.now(), ms: performance.now() - t });
    } catch {
      this.errors++;
    } finally {
      this.inFlight--;
    }
  }
}

function quantile(xs: number[], p: number): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(p * s.length))];
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Level {
  hosts: number; vms: number; beatsPerSecond: number; engineCpuMsPerBeat: number; netCpuMsPerBeat: number; engineCoreShare: number;
  beatP50: number; beatP99: number; beatP99UnderPairs: number; pairs: number; pairP50: number; pairP99: number;
  /** Engine-side handling time (histogram bucket bounds, ms) in window B. */
  scrapeMs: number; loopDelayP99: number; loopDelayMax: number; serverBeatP99: number; serverAllocateP99: number; serverRegisterP99: number;
  rssMiB: number; storeMiB: number; errors: number; windowSeconds: number;
  /** On etcd: keys written (put or deleted) per second in window A, and the share of one core etcd's 3 members used. */
  etcdWritesPerSecond?: number; etcdCoreShare?: number;
  /** Migration advice given per second in window A (on etcd each is a history key, and a pending key put and deleted for a host at a non-leader). */
  advicePerSecond: number;
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "mip46-scale-"));
  const d = await deploy(dir, { store: STORE, replicas: REPLICAS, intervalSeconds: INTERVAL_S, profile: values.profile });
  const engineCpuMs = () => sum(d.pids.map(cpuMs));
  for (const sig of ["SIGINT", "SIGTERM"] as const) {
    process.once(sig, () => {
      // Interrupted: the engines go, and their store with them.
      d.kill();
      rmSync(dir, { recursive: true, force: true });
      process.exit(130);
    });
  }
  process.stdout.write(`${STORE === "etcd" ? `${REPLICAS} engine replicas on a 3-member etcd cluster` : "one engine on SQLite (sync=full)"}, ${CHANNELS} channels\n`);
  const channels = Array.from({ length: CHANNELS }, (_, i) => new Client(d.addresses[i % REPLICAS], credentials.createInsecure(), { "grpc.enable_channelz": 0 }));
  const load = new HeartbeatLoad(channels);
  // The pairs go to the first replica; its histograms give the engine-side p99.
  const metricsPort = d.metricsPorts[0];
  const pairsFrom = new PairClient(d.addresses[0]);
  await pairsFrom.ready();
  const results: Level[] = [];
  let pairCount = 0;
  let idleMsPerS = 0;
  try {
    // The engine's own background (sweep timer, metrics, GC) with no load, to tell it apart.
    await sleep(2000);
    const idle0 = engineCpuMs();
    const idleT = performance.now();
    await sleep(5000);
    idleMsPerS = (engineCpuMs() - idle0) / ((performance.now() - idleT) / 1000);
    process.stdout.write(`engine idle: ${idleMsPerS.toFixed(1)} ms CPU per second\n`);
    for (const n of LEVELS) {
      // The new hosts report once (each a durable write: a host the engine did not know), 64 at a
      // time, while the hosts already known keep beating.
      const added = Array.from({ length: n - load.hosts.length }, (_, i) => newHost(load.hosts.length + i));
      let next = 0;
      await Promise.all(Array.from({ length: 64 }, async () => { while (next < added.length) await load.beat(added[next++]); }));
      load.hosts.push(...added);
      if (n === LEVELS[0]) load.start();
      await sleep(3000); // warm-up, and the hot hosts' window
      const rate = n / INTERVAL_S;
      const windowA = Math.max(WINDOW_S, Math.min(30, MIN_BEATS / rate));
      load.samples.length = 0;
      const errorsBefore = load.errors;
      const ops0 = d.etcd ? await etcdOps(d.etcd) : undefined;
      const advice0 = await adviceGiven(d);
      const etcdCpu0 = etcdCpuMs(d.etcd);
      const cpu0 = engineCpuMs();
      const t0 = performance.now();
      await sleep(windowA * 1000);
      const cpuA = engineCpuMs() - cpu0;
      const wallA = (performance.now() - t0) / 1000;
      const etcdCpuA = etcdCpuMs(d.etcd) - etcdCpu0;
      const ops1 = d.etcd ? await etcdOps(d.etcd) : undefined;
      const adviceA = (await adviceGiven(d)) - advice0;
      const beatsA = load.samples.filter((s) => s.at >= t0).map((s) => s.ms);

      // B: the same load, and allocation + registration pairs at a steady rate, one at a time.
      load.samples.length = 0;
      const scrapeAt = performance.now();
      const h0 = await handling(metricsPort);
      const scrapeMs = performance.now() - scrapeAt;
      const t1 = performance.now();
      const pairs = await pairsFrom.run({ hosts: n, first: pairCount });
      pairCount += pairs.length;
      const beatsB = load.samples.filter((s) => s.at >= t1).map((s) => s.ms);
      const h1 = await handling(metricsPort);
      const r: Level = {
        hosts: n, vms: load.hosts.reduce((a, h) => a + h.vms.length, 0), beatsPerSecond: beatsA.length / wallA,
        engineCpuMsPerBeat: cpuA / beatsA.length, netCpuMsPerBeat: (cpuA - idleMsPerS * wallA) / beatsA.length, engineCoreShare: cpuA / 1000 / wallA,
        beatP50: quantile(beatsA, 0.5), beatP99: quantile(beatsA, 0.99), beatP99UnderPairs: quantile(beatsB, 0.99),
        pairs: pairs.length, pairP50: quantile(pairs, 0.5), pairP99: quantile(pairs, 0.99),
        scrapeMs, loopDelayP99: h1.get("eventLoopDelay")!.get(0.99)!, loopDelayMax: h1.get("eventLoopDelay")!.get(1)!, serverBeatP99: serverQuantileMs(h0, h1, "Heartbeat", 0.99), serverAllocateP99: serverQuantileMs(h0, h1, "AllocateCareOf", 0.99),
        serverRegisterP99: serverQuantileMs(h0, h1, "RegisterMigration", 0.99),
        advicePerSecond: adviceA / wallA, rssMiB: Math.max(...d.pids.map(rssMiB)), storeMiB: await d.storeMiB(), errors: load.errors - errorsBefore, windowSeconds: wallA,
        ...(ops0 && ops1 ? {
          etcdWritesPerSecond: (written(ops1) - written(ops0)) / wallA, etcdCoreShare: etcdCpuA / 1000 / wallA,
        } : {}),
      };
      results.push(r);
      process.stdout.write(`hosts=${n} vms=${r.vms} ${r.beatsPerSecond.toFixed(0)} heartbeats/s (offered ${rate.toFixed(0)}/s) over ${wallA.toFixed(0)} s  engine CPU ${(r.engineCpuMsPerBeat * 1000).toFixed(0)} us/heartbeat, ${(r.netCpuMsPerBeat * 1000).toFixed(0)} over idle (${(r.engineCoreShare * 100).toFixed(0)}% of a core)  heartbeat p50 ${r.beatP50.toFixed(2)} p99 ${r.beatP99.toFixed(2)} ms  with pairs p99 ${r.beatP99UnderPairs.toFixed(2)} ms  allocate+register p50 ${r.pairP50.toFixed(2)} p99 ${r.pairP99.toFixed(2)} ms (${r.pairs}; engine side p99 Heartbeat ≤ ${r.serverBeatP99} AllocateCareOf ≤ ${r.serverAllocateP99} RegisterMigration ≤ ${r.serverRegisterP99} ms; event-loop delay p99 ${r.loopDelayP99.toFixed(1)} max ${r.loopDelayMax.toFixed(1)} ms; a /metrics scrape ${r.scrapeMs.toFixed(0)} ms)  RSS ${r.rssMiB.toFixed(0)} MiB  store ${r.storeMiB.toFixed(1)} MiB  errors ${r.errors}  advice ${r.advicePerSecond.toFixed(1)}/s${r.etcdWritesPerSecond !== undefined ? `  etcd: ${r.etcdWritesPerSecond.toFixed(1)} keys written/s, ${(r.etcdCoreShare! * 100).toFixed(0)}% of a core` : ""}\n`);
    }
  } finally {
    load.stop();
    for (const c of channels) c.close();
    pairsFrom.close();
    await d.stop();
    rmSync(dir, { recursive: true, force: true });
  }

  const base = results[0];
  process.stdout.write(`\n${"hosts".padStart(6)}  ${"heartbeats/s".padStart(12)}  ${"CPU us/beat".padStart(11)}  ${`× at ${base.hosts}`.padStart(9)}  ${"over idle".padStart(9)}  ${`× at ${base.hosts}`.padStart(9)}  ${"core share".padStart(10)}  ${"beat p50".padStart(8)}  ${"beat p99".padStart(8)}  ${"pair p50".padStart(8)}  ${"pair p99".padStart(8)}  ${"RSS MiB".padStart(7)}  ${"store MiB".padStart(9)}${d.etcd ? `  ${"etcd w/s".padStart(8)}  ${"advice/s".padStart(8)}  ${"before".padStart(6)}  ${"etcd core".padStart(9)}` : ""}\n`);
  for (const r of results) {
    process.stdout.write(`${String(r.hosts).padStart(6)}  ${r.beatsPerSecond.toFixed(0).padStart(12)}  ${(r.engineCpuMsPerBeat * 1000).toFixed(0).padStart(11)}  ${(r.engineCpuMsPerBeat / base.engineCpuMsPerBeat).toFixed(2).padStart(9)}  ${(r.netCpuMsPerBeat * 1000).toFixed(0).padStart(9)}  ${(r.netCpuMsPerBeat / base.netCpuMsPerBeat).toFixed(2).padStart(9)}  ${(r.engineCoreShare * 100).toFixed(0).padStart(9)}%  ${r.beatP50.toFixed(2).padStart(8)}  ${r.beatP99.toFixed(2).padStart(8)}  ${r.pairP50.toFixed(2).padStart(8)}  ${r.pairP99.toFixed(2).padStart(8)}  ${r.rssMiB.toFixed(0).padStart(7)}  ${r.storeMiB.toFixed(1).padStart(9)}${r.etcdWritesPerSecond !== undefined ? `  ${r.etcdWritesPerSecond.toFixed(1).padStart(8)}  ${r.advicePerSecond.toFixed(1).padStart(8)}  ${r.beatsPerSecond.toFixed(0).padStart(6)}  ${(r.etcdCoreShare! * 100).toFixed(0).padStart(8)}%` : ""}\n`);
  }
  if (d.etcd) {
    process.stdout.write("\netcd w/s: keys put or deleted per second in window A (etcd_mvcc_put_total + etcd_mvcc_delete_total); advice/s: advice given to the hot hosts (1 in 100; each is up to 3 keys: its history, and a pending key put and deleted when the host beats at a non-leader); before: what the engine wrote before this work, one put of hosts/<id> per heartbeat (and a read of the host and its cordon), i.e. the heartbeats/s; etcd core: the CPU of etcd's 3 members, as a share of one core.\n");
  }
  process.stdout.write("\nBefore (the issue's figures, 20 VMs per host, 32 calls in flight, not measured here):\n");
  process.stdout.write(`${"hosts".padStart(6)}  ${"CPU ms/beat".padStart(11)}  ${"heartbeats/s".padStart(12)}\n`);
  for (const b of BASELINE) process.stdout.write(`${String(b.hosts).padStart(6)}  ${b.cpuMs.toFixed(1).padStart(11)}  ${String(b.perSecond).padStart(12)}\n`);
  if (values.json) writeFileSync(values.json, JSON.stringify(results, null, 2));
}

interface PairJob { hosts: number; first: number }

/**
 * AllocateCareOf + RegisterMigration pairs come from a process of their own (this script again,
 * with --pair-client ADDRESS), so their latency is the engine's answer, not the queue of the
 * heartbeat generator. It takes one job per line on stdin and answers with the latencies.
 */
class PairClient {
  private readonly child: ChildProcess;
  private readonly lines: AsyncIterator<string>;

  constructor(address: string) {
    this.child = spawn(process.execPath, ["--import", "tsx", new URL(import.meta.url).pathname, ...process.argv.slice(2), "--pair-client", address],
      { stdio: ["pipe", "pipe", "inherit"] });
    this.lines = createInterface({ input: this.child.stdout! })[Symbol.asyncIterator]();
  }

  async ready(): Promise<void> {
    await this.lines.next();
  }

  async run(job: PairJob): Promise<number[]> {
    this.child.stdin!.write(JSON.stringify(job) + "\n");
    const line = await this.lines.next();
    if (line.done) throw new Error("the pair client ended");
    return JSON.parse(line.value) as number[];
  }

  close(): void {
    this.child.stdin!.end();
  }
}

async function pairClient(address: string): Promise<void> {
  const control = connectControl(address, 30_000);
  process.stdout.write("ready\n");
  for await (const line of createInterface({ input: process.stdin })) {
    const job = JSON.parse(line) as PairJob;
    const t0 = performance.now();
    const pairs: number[] = [];
    while (performance.now() - t0 < WINDOW_S * 1000) {
      const due = t0 + (pairs.length * 1000) / PAIRS_PER_S;
      if (performance.now() < due) await sleep(due - performance.now());
      const i = job.first + pairs.length;
      // To an IPv6 host (even number) from an IPv4 one: an IPv4 VM away from home (flow 3.1).
      const dest = `host-${(i * 2) % job.hosts}`;
      const source = `host-${((i * 2) % job.hosts) + 1}`;
      const vmId = `moved-${i}`;
      // One home address per VM (the engine refuses a second VM with another's): 10.0.0.1 onwards,
      // on no network the engine serves, so its home agent is taken as given.
      const n = i + 1;
      const home = `10.${(n >> 16) & 255}.${(n >> 8) & 255}.${n & 255}`;
      const t = performance.now();
      const c = await control.allocateCareOf({ hostId: dest, vmId, homeAddress: home });
      await control.registerMigration({
        vmId, homeAddress: home, homeAgent: "192.0.2.1", sourceHostId: source, destinationHostId: dest, careOfIpv4: c.careOfIpv4, careOfIpv6: c.careOfIpv6,
      });
      pairs.push(performance.now() - t);
    }
    process.stdout.write(JSON.stringify(pairs) + "\n");
  }
  control.close();
}

if (values["pair-client"]) await pairClient(values["pair-client"]);
else await main();
