// The worker restart benchmark (issue 11 §6): a 1 kHz UDP probe through a live worker
// (mip46-dataplane in its namespace, its table from a real engine on a unix socket), restarted
// N times by stop-then-start (SIGTERM, wait for the exit, start again: what `systemctl restart`
// does) and N times by --takeover (dataplane/worker/takeover.ts), in the same run on the same
// topology. Per restart: the gap (the longest interval between two probes reaching the receiver,
// from just before the restart to a second after it was done) and the probes lost; per way:
// median and max, and the ratio takeover / stop-start; first the same window with no restart (the
// floor: the sender's pacing and the veths' own jitter). Needs root (network namespaces).
//
//   npx tsx bench/restart.ts [--restarts 5] [--workers 1] [--settle-ms 1500] [--out /tmp/mip46-restart.json]
import { spawn, type ChildProcess } from "node:child_process";
import { writeFileSync } from "node:fs";
import { loadavg } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { parseArgs } from "node:util";
import { stringify } from "yaml";
import { connectControl } from "../clients/control.js";
import { silentLogger } from "../lib/log.js";
import { parseConfig } from "../services/config/config.js";
import { runEngine } from "../services/engine/run.js";
import { hostOn, labConfig } from "../harness/engine.js";
import { configureHost, createTopology, SYSTEM_PYTHON } from "../harness/topology.js";
import { NetnsLab } from "../harness/netns.js";

const { values: args } = parseArgs({
  options: {
    restarts: { type: "string", default: "5" },
    workers: { type: "string", default: "1" },
    "settle-ms": { type: "string", default: "1500" },
    out: { type: "string", default: "/tmp/mip46-restart.json" },
  },
});
const RESTARTS = Number(args.restarts);
const SETTLE_MS = Number(args["settle-ms"]);
const WORKER = join(import.meta.dirname, "../bin/mip46-dataplane.js");

// The probe: a UDP frame every millisecond (paced on a deadline, not by sleep alone), numbered;
// the receiver prints "SEQ SECONDS" per probe it sees on r0, with the kernel's arrival time
// (SO_TIMESTAMPNS, socket(7)), so that a receiver short of CPU does not show as a gap.
const SENDER = `
import socket, struct, sys, time
ifname, dst_mac, src_mac = sys.argv[1], bytes.fromhex(sys.argv[2].replace(":", "")), bytes.fromhex(sys.argv[3].replace(":", ""))
src, dst = socket.inet_aton("203.0.113.10"), socket.inet_aton("192.0.2.1")
def csum(b):
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16: s = (s & 0xffff) + (s >> 16)
    return ~s & 0xffff
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((ifname, 0))
seq, t = 0, time.monotonic()
while True:
    payload = b"m46-rst-%08d" % seq
    udp = struct.pack("!HHHH", 7000, 4040, 8 + len(payload), 0) + payload
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), seq & 0xffff, 0, 64, 17, 0, src, dst)
    ip = ip[:10] + struct.pack("!H", csum(ip)) + ip[12:]
    s.send(dst_mac + src_mac + b"\\x08\\x00" + ip + udp)
    seq += 1
    t += 0.001
    d = t - time.monotonic()
    if d > 0: time.sleep(d)
`;
const RECEIVER = `
import socket, struct, sys
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
s.bind(("r0", 0))
s.setsockopt(socket.SOL_SOCKET, 35, 1)  # SO_TIMESTAMPNS: the kernel's arrival time, not this process's
print("ready", flush=True)
while True:
    frame, anc, flags, addr = s.recvmsg(65535, 64)
    if addr[2] == socket.PACKET_OUTGOING: continue
    i = frame.find(b"m46-rst-")
    if i < 0: continue
    sec, nsec = struct.unpack("qq", anc[0][2][:16])
    print(int(frame[i + 8:i + 16]), "%d.%09d" % (sec, nsec), flush=True)
`;

interface Worker { child: ChildProcess; exited: Promise<void>; log(): string }
interface Restart { way: "none" | "stop-start" | "takeover"; gapMs: number; lost: number; restartMs: number }

async function main(): Promise<void> {
  const topo = await createTopology();
  let engine: Awaited<ReturnType<typeof runEngine>> | undefined;
  const children: ChildProcess[] = [];
  try {
    const socket = join(topo.dir, "engine.sock");
    engine = await runEngine(parseConfig(labConfig(topo.dir, { listen: `unix:${socket}` })), silentLogger);
    const control = connectControl(`unix:${socket}`);
    await control.heartbeat(hostOn(6, "h6"));
    const c = await control.allocateCareOf({ hostId: "h6", vmId: "vm-a", homeAddress: "192.0.2.50" });
    await control.registerMigration({ vmId: "vm-a", homeAddress: "192.0.2.50", homeAgent: "192.0.2.2", sourceHostId: "h4", destinationHostId: "h6", careOfIpv4: c.careOfIpv4, careOfIpv6: c.careOfIpv6 });
    control.close();

    await topo.lab.sysctl(topo.sender, "net.ipv6.conf.s0.disable_ipv6", "1");
    await configureHost(topo, topo.sender, "s0", ["203.0.113.10/24"], [["default", "via", "203.0.113.1"]]);
    await configureHost(topo, topo.receiver, "r0", ["192.0.2.1/24"], [["default", "via", "192.0.2.254"]]);
    const config = join(topo.dir, "dataplane.yaml");
    writeFileSync(config, stringify({
      workerId: "bench-restart", engines: [`unix:${socket}`], metricsListen: "127.0.0.1:9047", workers: Number(args.workers),
      takeover: { socket: join(topo.dir, "takeover.sock") },
      interfaces: [{ name: "w0", addresses: ["203.0.113.1/24"] }, { name: "w1", addresses: ["192.0.2.254/24"] }],
    }));
    const start = async (flags: string[] = []): Promise<Worker> => {
      const s = await topo.lab.spawnUntilReady(topo.worker, [process.execPath, WORKER, "--config", config, ...flags], "dataplane started");
      children.push(s.child);
      const exited = new Promise<void>((r) => (s.child.exitCode !== null ? r() : s.child.once("exit", () => r())));
      return { child: s.child, exited, log: s.log };
    };

    const arrivals: { seq: number; t: number }[] = [];
    const receiver = spawn("ip", ["netns", "exec", topo.receiver, SYSTEM_PYTHON, "-c", RECEIVER], { stdio: ["ignore", "pipe", "inherit"] });
    children.push(receiver);
    await new Promise<void>((resolve) => {
      createInterface({ input: receiver.stdout! }).on("line", (l) => {
        if (l === "ready") return resolve();
        const [seq, t] = l.split(" ");
        arrivals.push({ seq: Number(seq), t: Number(t) });
      });
    });
    let worker = await start();
    const sender = spawn("ip", ["netns", "exec", topo.sender, SYSTEM_PYTHON, "-c", SENDER, "s0", topo.macs.w0, topo.macs.s0], { stdio: "ignore" });
    children.push(sender);
    await sleep(SETTLE_MS);
    if (arrivals.length === 0) throw new Error("no probe reached the receiver through the first worker");

    const results: Restart[] = [];
    const measure = async (way: Restart["way"], restart: () => Promise<void>) => {
      const from = arrivals.length;
      const t0 = Date.now();
      await restart();
      const restartMs = Date.now() - t0;
      await sleep(1000);
      const window = arrivals.slice(Math.max(0, from - 1));
      let gap = 0;
      for (let i = 1; i < window.length; i++) gap = Math.max(gap, window[i].t - window[i - 1].t);
      const seqs = window.map((a) => a.seq);
      const lost = seqs.length > 0 ? seqs[seqs.length - 1] - seqs[0] + 1 - new Set(seqs).size : 0;
      results.push({ way, gapMs: Math.round(gap * 10_000) / 10, lost, restartMs });
      process.stderr.write(`${way}: gap ${results.at(-1)!.gapMs} ms, ${lost} probes lost, restart took ${restartMs} ms\n`);
      await sleep(SETTLE_MS);
    };
    // The floor: the same window with no restart (the sender's and the veths' own jitter).
    for (let i = 0; i < RESTARTS; i++) await measure("none", () => sleep(600));
    for (let i = 0; i < RESTARTS; i++) {
      await measure("stop-start", async () => {
        worker.child.kill("SIGTERM");
        await worker.exited;
        worker = await start();
      });
    }
    for (let i = 0; i < RESTARTS; i++) {
      await measure("takeover", async () => {
        const old = worker;
        worker = await start(["--takeover"]);
        await old.exited;
      });
    }
    const seqs = arrivals.map((a) => a.seq);
    const duplicates = seqs.length - new Set(seqs).size;
    const summary = (way: Restart["way"]) => {
      const r = results.filter((x) => x.way === way);
      const gaps = r.map((x) => x.gapMs).sort((a, b) => a - b);
      return { medianGapMs: gaps[Math.floor(gaps.length / 2)], maxGapMs: gaps.at(-1)!, lostTotal: r.reduce((a, x) => a + x.lost, 0), medianRestartMs: r.map((x) => x.restartMs).sort((a, b) => a - b)[Math.floor(r.length / 2)] };
    };
    const out = {
      loadAverage1m: Math.round(loadavg()[0] * 10) / 10,
      restarts: RESTARTS, workers: Number(args.workers), rateHz: 1000, probes: arrivals.length, duplicates,
      none: summary("none"), stopStart: summary("stop-start"), takeover: summary("takeover"), results,
    };
    const ratio = out.takeover.medianGapMs / out.stopStart.medianGapMs;
    writeFileSync(args.out!, JSON.stringify({ ...out, medianGapRatio: ratio }, null, 2));
    console.log(`| way | median gap (ms) | max gap (ms) | probes lost (${RESTARTS} restarts) | median restart (ms) |`);
    console.log("|---|---|---|---|---|");
    for (const [name, s] of [["no restart (floor)", out.none], ["stop-start", out.stopStart], ["takeover", out.takeover]] as const) {
      console.log(`| ${name} | ${s.medianGapMs} | ${s.maxGapMs} | ${s.lostTotal} | ${s.medianRestartMs} |`);
    }
    console.log(`\ntakeover / stop-start, median gap: ${ratio.toFixed(3)}; probes received ${arrivals.length}, duplicated ${duplicates}; load average ${out.loadAverage1m}; ${args.out}`);
  } finally {
    for (const c of children) await NetnsLab.stop(c, 1000);
    await engine?.stop();
    await topo.destroy();
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

await main();
