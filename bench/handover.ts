// The handover benchmark (issues 4 and 9): a 1 kHz UDP probe from a client to a QEMU guest while
// the lab live-migrates it between the IPv4 and the IPv6 network and back, repeated, with a TCP
// session open beside it. Per migration: the client's blackout (the longest interval with no
// reply, from the migration on), QEMU's own downtime, their difference (the network's share),
// the probes lost, and the agent's timeline (the prepare during the pre-copy; the activation and
// the switch). A capture on the destination's VM link (dumpcap) splits what QEMU's downtime
// leaves out into the network's share (from the guest's first RARP there to the first probe
// reaching it, plus the reply's way back) and the guest's own wake-up (probes reaching it, no
// answer yet). At the end: TCP sessions reset (must be 0). Runs the whole lab; needs root.
//
//   npx tsx bench/handover.ts [--migrations 10] [--out /tmp/mip46-handover.json] [--rate 1000]
//        [--warmup-ms 500] [--after-ms 2500] [--settle-ms 1000] [--prefix m46hbNNN] [--only vm4,vm6]
//        [--logs /tmp/mip46-handover-logs]   (the lab's logs are copied there before teardown)
//        [--third-host]   (the lab with h6b: vm4 goes h4 → h6 → h6b → h4, see below)
//
// Flow 3.1: probe c4 → vm4 (192.0.2.1), vm4 h4 → h6 (away) and h6 → h4 (home).
// Flow 3.2: probe c6 → vm6 (2001:db8:1::2), vm6 h6 → h4 (away) and h4 → h6 (home).
// With --third-host, vm4's round is h4 → h6 (away), h6 → h6b (visited: a move between two visited
// hosts, the care-of addresses the same at both) and h6b → h4 (home); the report sets the visited
// move's blackout against the away move's of the same run.
import type { ChildProcess } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, readdirSync, writeFileSync } from "node:fs";
import { loadavg } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { parseArgs } from "node:util";
import { labDir, labRpc, REPO, startLab, type RunningLab } from "../deploy/lab/lab.js";
import { measuredMove, switchTimes, type AgentHandover } from "../deploy/lab/measure.js";
import { destroyLab, spawnIn } from "../deploy/lab/netns.js";
import { vmHost } from "../deploy/lab/qemu.js";
import { GUEST_SERVICES, type HostRole, type LabNamespace } from "../deploy/lab/topology.js";

const { values: args } = parseArgs({
  options: {
    migrations: { type: "string", default: "10" },
    out: { type: "string", default: "/tmp/mip46-handover.json" },
    rate: { type: "string", default: "1000" },
    "warmup-ms": { type: "string", default: "500" },
    "after-ms": { type: "string", default: "2500" },
    "settle-ms": { type: "string", default: "1000" },
    prefix: { type: "string" },
    only: { type: "string" },
    logs: { type: "string", default: "/tmp/mip46-handover-logs" },
    "third-host": { type: "boolean", default: false },
  },
});
const ROUNDS = Math.max(1, Number(args.migrations));
const RATE = Number(args.rate);
const WARMUP_MS = Number(args["warmup-ms"]);
const AFTER_MS = Number(args["after-ms"]);
const SETTLE_MS = Number(args["settle-ms"]);
// Digits only after "m46hb": a lab prefix must not contain "vm".
const PREFIX = args.prefix ?? `m46hb${process.pid % 1000}`;
const SESSION = join(REPO, "deploy/lab/apps/session.mjs");
const REFERENCES = [
  { name: "the namespace move before QEMU guests (network share)", ms: 52 },
  { name: "LISP VM mobility (blackout)", ms: 300 },
];
/** Issue 9: the network's share of the blackout, beyond QEMU's own downtime, at most this (median). */
const TARGET_SHARE_MS = 10;

interface Case {
  vm: "vm4" | "vm6";
  flow: string;
  client: LabNamespace;
  target: string;
  home: HostRole;
  away: HostRole;
  /** A second visited host the VM moves on to from `away` before it comes home (--third-host). */
  visited?: HostRole;
  /** The direction the agent logs for an arrival away from home. */
  awayDirection: "4to6" | "6to4";
}

const THIRD_HOST = args["third-host"] === true;
const CASES: Case[] = [
  { vm: "vm4", flow: "3.1", client: "c4", target: "192.0.2.1", home: "h4", away: "h6", ...(THIRD_HOST ? { visited: "h6b" } : {}), awayDirection: "4to6" },
  { vm: "vm6", flow: "3.2", client: "c6", target: "2001:db8:1::2", home: "h6", away: "h4", awayDirection: "6to4" },
].filter((c) => !args.only || args.only.split(",").includes(c.vm)) as Case[];

/** away: home → away; visited: away → the second visited host (--third-host); home: back. */
type Leg = "away" | "visited" | "home";

/** A leg's hosts. */
function legHosts(c: Case, leg: Leg): { from: HostRole; to: HostRole } {
  if (leg === "away") return { from: c.home, to: c.away };
  if (leg === "visited") return { from: c.away, to: c.visited! };
  return { from: c.visited ?? c.away, to: c.home };
}

interface Measurement {
  round: number;
  vm: string;
  flow: string;
  leg: Leg;
  from: HostRole;
  to: HostRole;
  startedAt: number;
  upAt: number;
  /** The client's blackout: the longest interval without a reply that ends after the migration began. */
  blackoutMs: number | null;
  blackoutFromMs: number | null; // relative to startedAt
  blackoutToMs: number | null;
  /** QEMU's own downtime (query-migrate): the guest paused between source and destination. */
  qemuDowntimeMs: number | undefined;
  /** blackout − QEMU's downtime: all that QEMU's own figure leaves out. */
  beyondDowntimeMs: number | undefined;
  /** The network's share, from the destination link (LinkTimes): traffic kept from where the guest runs. */
  networkShareMs: number | undefined;
  /** The guest resumed, probes reaching it, before it answered (the hypervisor's, not in QEMU's downtime). */
  guestWakeMs: number | undefined;
  baselineMaxGapMs: number;
  reachableBefore: boolean;
  recovered: boolean;
  load1: number;
  lost: number;
  sent: number;
  breakdown: Record<string, number | undefined>;
  agent: AgentHandover | null;
}

const say = (s: string) => process.stdout.write(`${s}\n`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const children = new Set<ChildProcess>();

/** A TCP session (apps/session.mjs) from the case's client for the whole run: a reset ends it. */
function tcpSession(c: Case): { child: ChildProcess; closed: () => Record<string, unknown> | undefined } {
  const child = spawnIn(PREFIX, c.client, [process.execPath, SESSION, "client", c.target, String(GUEST_SERVICES.tcpEcho), "20"], { stdio: ["ignore", "pipe", "ignore"] });
  children.add(child);
  let summary: Record<string, unknown> | undefined;
  createInterface({ input: child.stdout! }).on("line", (l) => {
    const j = JSON.parse(l) as Record<string, unknown>;
    if (j.summary === true) summary = j;
  });
  return { child, closed: () => summary };
}

async function measure(round: number, c: Case, leg: Leg): Promise<Measurement> {
  const { from, to } = legHosts(c, leg);
  const load1 = loadavg()[0];
  const m = await measuredMove(PREFIX, { vm: c.vm, to, client: c.client, target: c.target }, { rateHz: RATE, warmupMs: WARMUP_MS, afterMs: AFTER_MS, capture: true });
  if (m.move.from !== from) throw new Error(`${c.vm} was on ${m.move.from}, expected ${from}`);
  const agent = m.handover;
  const downtime = m.move.qemu.downtimeMs;
  const b: Record<string, number | undefined> = { migrationMs: m.move.upAt - m.move.startedAt, qemuTotalMs: m.move.qemu.totalTimeMs };
  if (agent) {
    const { activatedAt, switchMs } = switchTimes(agent);
    b.portSeenMs = agent.seenAtMs - m.move.startedAt;
    if (leg !== "home") {
      b.allocationMs = agent.allocatedMs;
      b.hostRulesMs = diff(agent.hostRulesMs, agent.allocatedMs);
      b.prepareMs = diff(agent.engineRulesMs, agent.hostRulesMs);
    }
    b.activatedAfterUpMs = activatedAt === undefined ? undefined : activatedAt - m.move.upAt;
    b.leaseWaitMs = diff(agent.leaseTakenOverMs, agent.activatedMs);
    b.switchMs = switchMs;
  }
  return {
    round, vm: c.vm, flow: c.flow, leg, from, to, startedAt: m.move.startedAt, upAt: m.move.upAt,
    blackoutMs: m.blackout?.ms ?? null, blackoutFromMs: m.blackout?.fromMs ?? null, blackoutToMs: m.blackout?.toMs ?? null,
    qemuDowntimeMs: downtime, beyondDowntimeMs: m.blackout && downtime !== undefined ? round3(m.blackout.ms - downtime) : undefined,
    networkShareMs: m.link?.networkShareMs, guestWakeMs: m.link?.guestWakeMs,
    baselineMaxGapMs: m.baselineMaxGapMs, reachableBefore: m.reachableBefore, recovered: m.recovered, load1,
    lost: m.probe.lost, sent: m.probe.sent, breakdown: b, agent,
  };
}

function diff(a: number | undefined, b: number | undefined): number | undefined {
  return a === undefined || b === undefined ? undefined : a - b;
}

function round3(x: number): number {
  return Math.round(x * 1000) / 1000;
}

/** Nearest-rank percentile. */
function pct(values: number[], p: number): number | undefined {
  if (values.length === 0) return undefined;
  const s = [...values].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(p * s.length) - 1))];
}

function fmt(x: number | undefined, digits = 1): string {
  return x === undefined ? "-" : x.toFixed(digits);
}

function report(all: Measurement[], resets: Map<string, number>): void {
  const groups = new Map<string, Measurement[]>();
  for (const m of all) {
    const key = `${m.vm} ${m.leg} (${m.from}→${m.to}, flow ${m.flow}${m.leg === "home" ? ", return" : m.leg === "visited" ? ", between visited hosts" : ""})`;
    groups.set(key, [...(groups.get(key) ?? []), m]);
  }
  const shares: number[] = [];
  for (const [key, ms] of groups) {
    const unreachable = ms.filter((m) => !m.reachableBefore).length;
    say(`\n${key}: ${ms.length} migrations, ${ms.filter((m) => m.agent?.ok).length} handovers ok, ${ms.filter((m) => m.recovered).length} recovered` +
      (unreachable ? `; ${unreachable} unreachable before the move (left out of blackout and loss)` : ""));
    const rows: [string, (m: Measurement) => number | undefined][] = [
      ["client blackout ms", (m) => (m.reachableBefore ? m.blackoutMs ?? undefined : undefined)],
      ["QEMU downtime ms (query-migrate)", (m) => m.qemuDowntimeMs],
      ["blackout / QEMU downtime", (m) => (m.reachableBefore && m.blackoutMs !== null && m.qemuDowntimeMs ? m.blackoutMs / m.qemuDowntimeMs : undefined)],
      ["blackout beyond QEMU's downtime ms", (m) => (m.reachableBefore ? m.beyondDowntimeMs : undefined)],
      ["  network share ms (on the link)", (m) => (m.reachableBefore ? m.networkShareMs : undefined)],
      ["  guest wake-up ms (probes in, no answer)", (m) => m.guestWakeMs],
      ["probes lost", (m) => (m.reachableBefore ? m.lost : undefined)],
      ["baseline gap ms (before the move)", (m) => m.baselineMaxGapMs],
      ["machine load (1 min)", (m) => m.load1],
      ["QEMU live migration ms (start → guest up)", (m) => m.breakdown.migrationMs],
      ["port seen ms (after the start)", (m) => m.breakdown.portSeenMs],
      ...(ms[0].leg !== "home"
        ? ([
            ["  allocation ms (AllocateCareOf)", (m) => m.breakdown.allocationMs],
            ["  host rules ms", (m) => m.breakdown.hostRulesMs],
            ["  engine prepare ms (PrepareMigration)", (m) => m.breakdown.prepareMs],
          ] as [string, (m: Measurement) => number | undefined][])
        : []),
      ["activation ms after the guest is up", (m) => m.breakdown.activatedAfterUpMs],
      ["switch ms (activation → registered)", (m) => m.breakdown.switchMs],
      ...(ms[0].leg === "visited" ? ([["  of which the lease's wait ms (activation → taken over)", (m) => m.breakdown.leaseWaitMs]] as [string, (m: Measurement) => number | undefined][]) : []),
    ];
    say(`  ${"".padEnd(42)} ${"median".padStart(8)} ${"p90".padStart(8)} ${"max".padStart(8)}   n`);
    for (const [name, get] of rows) {
      const v = ms.map(get).filter((x): x is number => x !== undefined);
      say(`  ${name.padEnd(42)} ${fmt(pct(v, 0.5)).padStart(8)} ${fmt(pct(v, 0.9)).padStart(8)} ${fmt(pct(v, 1)).padStart(8)}  ${String(v.length).padStart(2)}`);
    }
    shares.push(...ms.filter((m) => m.reachableBefore && m.networkShareMs !== undefined).map((m) => m.networkShareMs!));
    const failed = ms.filter((m) => !m.agent?.ok);
    for (const m of failed.slice(0, 3)) say(`  round ${m.round}: agent ${m.agent ? `failed: ${m.agent.error}` : "logged no handover"}`);
  }
  const median = pct(shares, 0.5);
  const blackouts = all.filter((m) => m.reachableBefore && m.blackoutMs !== null).map((m) => m.blackoutMs!);
  const downtimes = all.map((m) => m.qemuDowntimeMs).filter((x): x is number => x !== undefined);
  say(`\nall ${all.length} migrations: median blackout ${fmt(pct(blackouts, 0.5))} ms, median QEMU downtime ${fmt(pct(downtimes, 0.5))} ms` +
    ` (${fmt((pct(blackouts, 0.5) ?? 0) / (pct(downtimes, 0.5) || 1), 2)}×), median beyond it ${fmt(pct(all.filter((m) => m.reachableBefore && m.beyondDowntimeMs !== undefined).map((m) => m.beyondDowntimeMs!), 0.5))} ms`);
  say(`  of which the network's share (on the link) median ${fmt(median)} ms, p90 ${fmt(pct(shares, 0.9))} ms (${shares.length} measured); goal ≤ ${TARGET_SHARE_MS} ms: ${median !== undefined && median <= TARGET_SHARE_MS ? "met" : "NOT met"};` +
    ` the guest's wake-up median ${fmt(pct(all.map((m) => m.guestWakeMs).filter((x): x is number => x !== undefined), 0.5))} ms`);
  if (median !== undefined) say(`  for reference: ${REFERENCES.map((r) => `${r.name} ${r.ms} ms`).join("; ")}`);
  if (all.some((m) => m.leg === "visited")) {
    // The baseline is the same run's away move (h4 → h6): the same VM, client and probe.
    const blackoutOf = (leg: Leg) => pct(all.filter((m) => m.leg === leg && m.reachableBefore && m.blackoutMs !== null).map((m) => m.blackoutMs!), 0.5);
    const beyondOf = (leg: Leg) => pct(all.filter((m) => m.leg === leg && m.reachableBefore && m.beyondDowntimeMs !== undefined).map((m) => m.beyondDowntimeMs!), 0.5);
    const [v, a] = [blackoutOf("visited"), blackoutOf("away")];
    say(`between visited hosts (h6→h6b) against away (h4→h6), same run: median blackout ${fmt(v)} against ${fmt(a)} ms (${fmt((v ?? 0) / (a || 1), 2)}×),` +
      ` beyond QEMU's downtime ${fmt(beyondOf("visited"))} against ${fmt(beyondOf("away"))} ms`);
  }
  say(`TCP sessions reset: ${[...resets].map(([vm, n]) => `${vm} ${n}`).join(", ")} (must be 0)`);
}

let lab: RunningLab | undefined;
let stopping: Promise<void> | undefined;
/** Once, whoever asks first (the signal handler or the end of the run); every caller waits for it. */
function teardown(): Promise<void> {
  stopping ??= doTeardown();
  return stopping;
}
async function doTeardown(): Promise<void> {
  for (const c of children) c.kill("SIGKILL");
  // The lab's folder goes with the lab: keep its logs for a look at what happened.
  const dir = labDir(PREFIX);
  if (existsSync(dir)) {
    mkdirSync(args.logs!, { recursive: true });
    for (const f of readdirSync(dir).filter((f) => f.endsWith(".log"))) copyFileSync(join(dir, f), join(args.logs!, f));
    say(`lab logs: ${args.logs}`);
  }
  if (lab) await lab.stop().catch((e) => say(`teardown: ${(e as Error).message}`));
  else await destroyLab(PREFIX).catch(() => {});
}
for (const sig of ["SIGINT", "SIGTERM"] as const) {
  process.once(sig, () => {
    say(`\n${sig}: tearing the lab down`);
    void teardown().finally(() => process.exit(130));
  });
}

const all: Measurement[] = [];
const resets = new Map<string, number>();
let failed = false;
try {
  say(`== handover benchmark: lab '${PREFIX}', ${ROUNDS} rounds, probe ${RATE} Hz, ${WARMUP_MS} ms before and ${AFTER_MS} ms after each move`);
  lab = await startLab({ prefix: PREFIX, thirdHost: THIRD_HOST, say: (s) => say(`  ${s}`) });
  const c6 = await labRpc(PREFIX, "mapCorrespondent", { ipv6Address: "2001:db8:c::10" });
  const h6 = await labRpc(PREFIX, "mapCorrespondent", { ipv6Address: "2001:db8:1::2" });
  say(`  correspondents: c6 2001:db8:c::10 → ${String(c6.ipv4Address)}, vm6 2001:db8:1::2 → ${String(h6.ipv4Address)}`);
  for (const c of CASES) {
    // A TCP session beside the probe, for the whole run: a reset (or any close) is counted.
    let session = tcpSession(c);
    resets.set(c.vm, 0);
    await sleep(SETTLE_MS);
    for (let round = 1; round <= ROUNDS; round++) {
      for (const leg of (c.visited ? ["away", "visited", "home"] : ["away", "home"]) as Leg[]) {
        await sleep(SETTLE_MS);
        const m = await measure(round, c, leg);
        all.push(m);
        const b = m.breakdown;
        const closed = session.closed();
        if (closed) {
          resets.set(c.vm, resets.get(c.vm)! + 1);
          say(`  the TCP session ${c.client} → ${c.vm} closed: ${JSON.stringify(closed)}; a new one`);
          session = tcpSession(c);
        }
        say(`round ${String(round).padStart(2)} ${c.vm} ${leg.padEnd(4)} ${m.from}→${m.to}: blackout ${fmt(m.blackoutMs ?? undefined)} ms, QEMU downtime ${fmt(m.qemuDowntimeMs)} ms, network ${fmt(m.networkShareMs)} ms, guest wake-up ${fmt(m.guestWakeMs)} ms, lost ${m.lost}/${m.sent}` +
          ` | migration ${fmt(b.migrationMs, 0)} activated +${fmt(b.activatedAfterUpMs, 0)} switch ${fmt(b.switchMs, 0)} (${m.agent?.activation ?? "-"})` +
          `${m.agent?.ok ? "" : ` | agent: ${m.agent?.error ?? "no handover logged"}`}${m.reachableBefore ? "" : " | unreachable before"}${m.recovered ? "" : " | NOT RECOVERED"}`);
      }
      if ((await vmHost(PREFIX, c.vm)) !== c.home) throw new Error(`${c.vm} is not home after round ${round}`);
    }
    session.child.kill("SIGTERM");
  }
  report(all, resets);
} catch (e) {
  failed = true;
  say(`handover benchmark failed: ${(e as Error).stack ?? e}`);
} finally {
  writeFileSync(args.out!, JSON.stringify({ prefix: PREFIX, rounds: ROUNDS, rateHz: RATE, warmupMs: WARMUP_MS, afterMs: AFTER_MS, at: new Date().toISOString(), resets: Object.fromEntries(resets), migrations: all }, null, 1));
  say(`raw data: ${args.out}`);
  await teardown();
}
process.exit(failed ? 1 : 0);
