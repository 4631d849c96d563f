// One live migration measured from a client: a 1 kHz UDP probe (apps/probe.mjs) runs from before
// the migration to after it, and the longest interval with no reply that ends after the
// migration began is the blackout the client saw. Beside it: QEMU's own figures and the agent's
// handover record. The demo (scripts/demo.ts) and the handover benchmark (bench/handover.ts)
// both measure their moves with this.
import { existsSync, rmSync, statSync } from "node:fs";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { handoverLines, REPO } from "./lab.js";
import { run, spawnIn } from "./netns.js";
import { migrate, readGuest, type Migration, type MigrateOptions } from "./qemu.js";
import { bridgeFor, GUEST_SERVICES, labDir, type HostRole, type LabNamespace } from "./topology.js";

const PROBE = join(REPO, "deploy/lab/apps/probe.mjs");

/** What probe.mjs prints at its end (with --replies). */
export interface ProbeResult {
  sent: number;
  received: number;
  lost: number;
  duplicates: number;
  reordered: number;
  sendErrors: number;
  longestLostRun: number;
  firstReplyAfterMs: number | null;
  startedAt: number;
  endedAt: number;
  gaps: { ms: number; from: number; to: number }[];
  rttMs: { p50: number | null; p99: number | null; max: number | null };
  replies: { firstMs: number | null; deltasUs: number[] };
}

/** The agent's "handover" log record (clients/agent/timeline.ts HandoverTimeline); ms are from seenAtMs. */
export interface AgentHandover {
  vmId: string;
  direction: string;
  seenAtMs: number;
  ok: boolean;
  allocatedMs?: number;
  hostRulesMs?: number;
  engineRulesMs?: number;
  activatedMs?: number;
  activation?: string;
  /** A move between two visited hosts: the care-of lease granted after the activation (the source no longer listed the VM). */
  leaseTakenOverMs?: number;
  migrationRegisteredMs?: number;
  registeredMs?: number;
  registrationAttempts?: number;
  aborted?: boolean;
  careOfIPv4?: string;
  careOfIPv6?: string;
  error?: string;
}

export interface MeasuredMove {
  move: Migration;
  probe: ProbeResult;
  /** The longest interval without a reply that ends after the migration began, ms from its start. */
  blackout: { ms: number; fromMs: number; toMs: number } | null;
  /** The longest such interval before the migration: what the shared machine adds on its own. */
  baselineMaxGapMs: number;
  /** Replies came in the 100 ms before the migration (else an earlier outage is still on). */
  reachableBefore: boolean;
  /** Replies came again after the guest ran at the destination, and to the end of the probe. */
  recovered: boolean;
  /** The destination agent's record of this arrival, or null if it logged none in 5 s. */
  handover: AgentHandover | null;
  /** What the destination's VM link saw (with `capture`), epoch ms; absent where it saw nothing. */
  link?: LinkTimes;
}

/**
 * The VM's link at the destination (a capture on its bridge): when the guest ran there (QEMU's
 * first RARP), when the first probe reached it, and when the guest sent its first reply. They
 * split the blackout into the hypervisor's part and the network's:
 *   network share = (first probe on the link − RARP) + (first reply at the client − reply sent);
 *   guest wake-up = reply sent − first probe on the link (the guest resumed but not yet answering).
 */
export interface LinkTimes {
  rarpAt?: number;
  firstProbeAt?: number;
  firstReplySentAt?: number;
  /** The first reply the client got after firstReplySentAt. */
  firstReplyBackAt?: number;
  networkShareMs?: number;
  guestWakeMs?: number;
}

export interface MeasureOptions {
  rateHz?: number;
  /** Probe time before the migration begins. */
  warmupMs?: number;
  /** Probe time after it (from the migration's start). */
  afterMs?: number;
  migrate?: MigrateOptions;
  /** Capture the destination's VM link (dumpcap) to split the blackout (LinkTimes). */
  capture?: boolean;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const round3 = (x: number) => Math.round(x * 1000) / 1000;

/** Live-migrates `vm` to `to` while `client` probes `target` (the guest's UDP echo). */
export async function measuredMove(prefix: string, c: { vm: string; to: HostRole; client: LabNamespace; target: string }, o: MeasureOptions = {}): Promise<MeasuredMove> {
  const rate = o.rateHz ?? 1000, warmup = o.warmupMs ?? 500, after = o.afterMs ?? 2500;
  const child = spawnIn(prefix, c.client, [process.execPath, PROBE, "send", c.target, String(GUEST_SERVICES.udpEcho), String(rate), String(warmup + after), "--replies"], { stdio: ["ignore", "pipe", "pipe"] });
  let stderr = "";
  child.stderr!.on("data", (d) => (stderr += d));
  const lines = createInterface({ input: child.stdout! })[Symbol.asyncIterator]();
  const next = async (): Promise<Record<string, unknown>> => {
    const r = await lines.next();
    if (r.done) throw new Error(`probe ${c.client} → ${c.target} ended without output: ${stderr.trim()}`);
    return JSON.parse(r.value) as Record<string, unknown>;
  };
  const capture = o.capture ? await startCapture(prefix, c.vm, c.to) : undefined;
  try {
    await next();
    await sleep(warmup);
    const move = await migrate(prefix, c.vm, c.to, o.migrate);
    const probe = (await next()) as unknown as ProbeResult;
    const handover = move.status === "completed" ? await handoverAfter(prefix, c.to, c.vm, move.startedAt) : null;
    const measured: MeasuredMove = { move, probe, handover, ...blackoutOf(probe, move) };
    if (capture) measured.link = linkTimes(await capture.stop(), move, replyTimes(probe), readGuest(prefix, c.vm).spec.mac);
    return measured;
  } finally {
    if (child.exitCode === null) child.kill("SIGKILL");
    await capture?.stop();
  }
}

interface LinkFrame { at: number; src: string; dst: string; type: number; toVm: boolean; fromVm: boolean }

/** dumpcap on the bridge the VM's tap joins at `host`: the guest's UDP echo traffic and RARPs. */
async function startCapture(prefix: string, vm: string, host: HostRole): Promise<{ stop: () => Promise<LinkFrame[]> }> {
  const g = readGuest(prefix, vm);
  const address = g.spec.homeAddress.split("/")[0];
  const file = join(labDir(prefix), `measure-${vm}-${host}.pcap`);
  rmSync(file, { force: true });
  const child = spawnIn(prefix, host, ["dumpcap", "-q", "-P", "-i", bridgeFor(g.family, host), "-f", `udp port ${GUEST_SERVICES.udpEcho} or ether proto 0x8035`, "-w", file], { stdio: "ignore" });
  // The pcap header is written once the capture runs.
  for (let i = 0; i < 100 && !(existsSync(file) && statSync(file).size >= 24); i++) await sleep(20);
  await sleep(100);
  let frames: Promise<LinkFrame[]> | undefined;
  return {
    stop: () => (frames ??= (async () => {
      if (child.exitCode === null) {
        child.kill("SIGINT");
        await new Promise((r) => child.once("exit", r));
      }
      if (!existsSync(file)) return [];
      const ip = g.family === 4 ? "ip" : "ipv6";
      const { stdout } = await run(["tshark", "-r", file, "-T", "fields", "-e", "frame.time_epoch", "-e", "eth.src", "-e", "eth.dst", "-e", "eth.type", "-e", `${ip}.src`, "-e", `${ip}.dst`]);
      rmSync(file, { force: true });
      return stdout.trim().split("\n").filter((l) => l !== "").map((l) => {
        const [t, src, dst, type, from, to] = l.split("\t");
        return { at: Number(t) * 1000, src, dst, type: Number(type), toVm: to === address, fromVm: from === address };
      });
    })()),
  };
}

function linkTimes(frames: LinkFrame[], move: Migration, replies: number[], mac: string): LinkTimes {
  const rarp = frames.find((f) => f.at >= move.startedAt && f.type === 0x8035 && f.src === mac);
  if (rarp === undefined) return {};
  // Only a probe addressed to the guest's own MAC reaches it.
  const probe = frames.find((f) => f.at >= rarp.at && f.toVm && f.dst === mac);
  const reply = frames.find((f) => f.at >= rarp.at && f.fromVm);
  const back = reply && replies.find((t) => t >= reply.at);
  const out: LinkTimes = { rarpAt: rarp.at, firstProbeAt: probe?.at, firstReplySentAt: reply?.at, firstReplyBackAt: back };
  if (probe && reply && back !== undefined) {
    out.networkShareMs = round3(probe.at - rarp.at + (back - reply.at));
    out.guestWakeMs = round3(reply.at - probe.at);
  }
  return out;
}

function replyTimes(p: ProbeResult): number[] {
  const times: number[] = [];
  if (p.replies.firstMs !== null) {
    times.push(p.replies.firstMs);
    for (const d of p.replies.deltasUs) times.push(times[times.length - 1] + d / 1000);
  }
  return times;
}

function blackoutOf(p: ProbeResult, move: Migration): Pick<MeasuredMove, "blackout" | "baselineMaxGapMs" | "reachableBefore" | "recovered"> {
  const times = replyTimes(p);
  const end = Math.max(p.endedAt, times.at(-1) ?? 0);
  // From the first send: a probe that got nothing back before the move has its blackout start there.
  const edges = [p.startedAt, ...times, end];
  let worst: { ms: number; from: number; to: number } | null = null;
  let baseline = 0;
  for (let i = 1; i < edges.length; i++) {
    const ms = edges[i] - edges[i - 1];
    if (edges[i] <= move.startedAt) baseline = Math.max(baseline, ms);
    else if (worst === null || ms > worst.ms) worst = { ms, from: edges[i - 1], to: edges[i] };
  }
  return {
    blackout: worst && { ms: round3(worst.ms), fromMs: round3(worst.from - move.startedAt), toMs: round3(worst.to - move.startedAt) },
    baselineMaxGapMs: round3(baseline),
    reachableBefore: times.some((t) => t <= move.startedAt && t > move.startedAt - 100),
    recovered: times.length > 0 && times.at(-1)! > move.upAt && end - times.at(-1)! < 50,
  };
}

/** The destination agent's handover record for an arrival seen after `startedAt`. */
async function handoverAfter(prefix: string, host: HostRole, vm: string, startedAt: number): Promise<AgentHandover | null> {
  const deadline = Date.now() + 5_000;
  for (;;) {
    // seenAtMs is Date.now(): whole ms, so it can read up to 1 ms before startedAt.
    const h = handoverLines(labDir(prefix), host).find((r) => r.vmId === vm && (r.seenAtMs as number) >= startedAt - 1);
    if (h !== undefined) return h as unknown as AgentHandover;
    if (Date.now() > deadline) return null;
    await sleep(50);
  }
}

/**
 * The agent's steps in epoch ms: the prepare (during the pre-copy) and the switch (from the
 * activation signal to the registration acknowledged, or, coming home, to the engine told).
 */
export function switchTimes(h: AgentHandover): { activatedAt?: number; switchMs?: number } {
  if (h.activatedMs === undefined) return {};
  const done = h.direction === "home" ? Math.max(h.registeredMs ?? 0, h.engineRulesMs ?? 0) : h.registeredMs;
  return { activatedAt: h.seenAtMs + h.activatedMs, switchMs: done === undefined ? undefined : done - h.activatedMs };
}
