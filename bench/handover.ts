// The handover benchmark of issue 4: a 1 kHz UDP probe from a client to a VM while the lab
// live-migrates the VM between the IPv4 and the IPv6 network and back, repeated. Per migration:
// the blackout (the longest interval with no reply delivered, from the migration on), the
// packets lost, and the agent's timeline of the handover (detection, allocation, host rules, the
// engine's rules, registration). Runs the whole lab (deploy/lab) for real; needs root.
//
//   npx tsx bench/handover.ts [--migrations 10] [--out /tmp/mip46-handover.json] [--rate 1000]
//        [--warmup-ms 500] [--after-ms 2500] [--settle-ms 1000] [--prefix m46hbNNN] [--only vm4,vm6]
//        [--logs /tmp/mip46-handover-logs]   (the lab's logs are copied there before teardown)
//
// Flow 3.1: probe c4 → vm4 (192.0.2.1), vm4 h4 → h6 (away) and h6 → h4 (home).
// Flow 3.2: probe c6 → vm6 (2001:db8:1::2), vm6 h6 → h4 (away) and h4 → h6 (home).
import { spawn, type ChildProcess } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { loadavg } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { parseArgs } from "node:util";
import { labDir, labRpc, REPO, startLab, type RunningLab } from "../deploy/lab/lab.js";
import { destroyLab } from "../deploy/lab/netns.js";
import { migrate, vmHost, type Migration } from "../deploy/lab/qemu.js";
import { GUEST_SERVICES, namespaceName, type HostRole, type LabNamespace } from "../deploy/lab/topology.js";

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
  },
});
const ROUNDS = Math.max(1, Number(args.migrations));
const RATE = Number(args.rate);
const WARMUP_MS = Number(args["warmup-ms"]);
const AFTER_MS = Number(args["after-ms"]);
const SETTLE_MS = Number(args["settle-ms"]);
// Digits only after "m46hb": a lab prefix must not contain "vm".
const PREFIX = args.prefix ?? `m46hb${process.pid % 1000}`;
const PORT = GUEST_SERVICES.udpEcho;
const PROBE = join(REPO, "deploy/lab/apps/probe.mjs");
const REFERENCES = [
  { name: "Mobile-IP VM migration prototypes", ms: 3000 },
  { name: "LISP VM mobility", ms: 300 },
  { name: "Xen live-migration downtime", ms: 60 },
];
const TARGET_MS = 100;

interface Case {
  vm: "vm4" | "vm6";
  flow: string;
  client: LabNamespace;
  target: string;
  home: HostRole;
  away: HostRole;
  /** The direction the agent logs for an arrival away from home. */
  awayDirection: "4to6" | "6to4";
}

const CASES: Case[] = [
  { vm: "vm4", flow: "3.1", client: "c4", target: "192.0.2.1", home: "h4", away: "h6", awayDirection: "4to6" },
  { vm: "vm6", flow: "3.2", client: "c6", target: "2001:db8:1::2", home: "h6", away: "h4", awayDirection: "6to4" },
].filter((c) => !args.only || args.only.split(",").includes(c.vm)) as Case[];

interface ProbeResult {
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

interface AgentHandover {
  vmId: string;
  direction: string;
  seenAtMs: number;
  ok: boolean;
  allocatedMs?: number;
  hostRulesMs?: number;
  engineRulesMs?: number;
  registeredMs?: number;
  registrationAttempts?: number;
  error?: string;
}

interface Measurement {
  round: number;
  vm: string;
  flow: string;
  leg: "away" | "home";
  direction: string;
  from: HostRole;
  to: HostRole;
  startedAt: number;
  upAt: number;
  /** Longest interval without a reply that ends after the migration began. */
  blackoutMs: number | null;
  blackoutFromMs: number | null; // relative to startedAt
  blackoutToMs: number | null;
  /** The longest such interval before the migration: what the shared machine adds on its own. */
  baselineMaxGapMs: number;
  /** Whether replies came in the 100 ms before the move; if not, the blackout began earlier (a broken previous handover). */
  reachableBefore: boolean;
  /** From the move's start to the first reply after it. */
  firstReplyAfterMoveMs: number | null;
  /** The machine's 1-minute load average when the migration began (it is shared). */
  load1: number;
  lost: number;
  sent: number;
  duplicates: number;
  reordered: number;
  recovered: boolean;
  breakdown: Record<string, number | undefined>;
  agent: AgentHandover | null;
  probe: ProbeResult;
}

const say = (s: string) => process.stdout.write(`${s}\n`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const children = new Set<ChildProcess>();

/** A process in a lab namespace whose stdout is JSON lines. */
function startIn(ns: LabNamespace, argv: string[]): { child: ChildProcess; lines: AsyncIterator<string> } {
  const child = spawn("ip", ["netns", "exec", namespaceName(PREFIX, ns), ...argv], { stdio: ["ignore", "pipe", "pipe"] });
  children.add(child);
  child.once("exit", () => children.delete(child));
  let err = "";
  child.stderr!.on("data", (d) => (err += d));
  child.once("exit", (code) => code && say(`  ${ns}: ${argv.slice(1).join(" ")} exited ${code}: ${err.trim()}`));
  return { child, lines: createInterface({ input: child.stdout! })[Symbol.asyncIterator]() };
}

async function nextJson(lines: AsyncIterator<string>, what: string): Promise<Record<string, unknown>> {
  const r = await lines.next();
  if (r.done) throw new Error(`${what}: ended without output`);
  return JSON.parse(r.value) as Record<string, unknown>;
}

/** The agent's handover line for the arrival this migration caused. */
async function agentLine(host: HostRole, vm: string, direction: string, startedAt: number): Promise<AgentHandover | null> {
  const log = join(labDir(PREFIX), `agent-${host}.log`);
  const deadline = Date.now() + 5_000;
  for (;;) {
    const lines = existsSync(log) ? readFileSync(log, "utf8").split("\n") : [];
    for (const line of lines) {
      if (!line.includes('"msg":"handover"')) continue;
      const h = JSON.parse(line) as AgentHandover;
      // seenAtMs is Date.now(): whole ms, so it can read up to 1 ms before startedAt.
      if (h.vmId === vm && h.direction === direction && h.seenAtMs >= startedAt - 1) return h;
    }
    if (Date.now() > deadline) return null;
    await sleep(100);
  }
}

function replyTimes(p: ProbeResult): number[] {
  if (p.replies.firstMs === null) return [];
  const out = [p.replies.firstMs];
  for (const d of p.replies.deltasUs) out.push(out[out.length - 1] + d / 1000);
  return out;
}

async function measure(round: number, c: Case, leg: "away" | "home"): Promise<Measurement> {
  const to = leg === "away" ? c.away : c.home;
  const from = leg === "away" ? c.home : c.away;
  const duration = WARMUP_MS + AFTER_MS;
  const probe = startIn(c.client, [process.execPath, PROBE, "send", c.target, String(PORT), String(RATE), String(duration), "--replies"]);
  await nextJson(probe.lines, "probe");
  await sleep(WARMUP_MS);
  const load1 = loadavg()[0];
  const move: Migration = await migrate(PREFIX, c.vm, to);
  if (move.from !== from) throw new Error(`${c.vm} was on ${move.from}, expected ${from}`);
  const result = (await nextJson(probe.lines, "probe")) as unknown as ProbeResult;
  const direction = leg === "away" ? c.awayDirection : "home";
  const agent = await agentLine(to, c.vm, direction, move.startedAt);

  const times = replyTimes(result);
  const end = Math.max(result.endedAt, times.at(-1) ?? 0);
  // From the first send: a probe that got nothing back before the move (the VM still
  // unreachable from the previous handover) has its blackout start there.
  const edges = [result.startedAt, ...times, end];
  let blackout: { ms: number; from: number; to: number } | null = null;
  let baseline = 0;
  for (let i = 1; i < edges.length; i++) {
    const ms = edges[i] - edges[i - 1];
    if (edges[i] <= move.startedAt) baseline = Math.max(baseline, ms);
    else if (blackout === null || ms > blackout.ms) blackout = { ms, from: edges[i - 1], to: edges[i] };
  }
  const after = times.find((t) => t > move.startedAt);
  const reachableBefore = times.some((t) => t <= move.startedAt && t > move.startedAt - 100);
  // Nothing came back after the move: the blackout lasts at least to the end of the probe.
  const recovered = times.length > 0 && times.at(-1)! > move.upAt && end - times.at(-1)! < 50;
  // portMoveMs: from the start of the QEMU live migration to the guest running at the destination.
  const b: Record<string, number | undefined> = { portMoveMs: move.upAt - move.startedAt, qemuTotalMs: move.qemu.totalTimeMs, qemuDowntimeMs: move.qemu.downtimeMs };
  if (agent) {
    b.detectionMs = agent.seenAtMs - move.startedAt;
    b.seenAfterUpMs = agent.seenAtMs - move.upAt;
    if (leg === "away") {
      b.allocationMs = agent.allocatedMs;
      b.hostRulesMs = diff(agent.hostRulesMs, agent.allocatedMs);
      b.rulePushMs = diff(agent.engineRulesMs, agent.hostRulesMs);
      b.registrationMs = diff(agent.registeredMs, agent.engineRulesMs);
      b.totalMs = agent.registeredMs === undefined ? undefined : b.detectionMs + agent.registeredMs;
    } else {
      // Coming home: the deregistration is sent, not awaited (its reply goes to the guest), then
      // the engine is told.
      b.registrationMs = agent.registeredMs;
      b.rulePushMs = diff(agent.engineRulesMs, agent.registeredMs);
      b.totalMs = agent.engineRulesMs === undefined ? undefined : b.detectionMs + agent.engineRulesMs;
    }
  }
  return {
    round, vm: c.vm, flow: c.flow, leg, direction, from, to, startedAt: move.startedAt, upAt: move.upAt,
    blackoutMs: blackout && round3(blackout.ms), blackoutFromMs: blackout && round3(blackout.from - move.startedAt), blackoutToMs: blackout && round3(blackout.to - move.startedAt),
    baselineMaxGapMs: round3(baseline), load1, reachableBefore,
    firstReplyAfterMoveMs: after === undefined ? null : round3(after - move.startedAt),
    lost: result.lost, sent: result.sent, duplicates: result.duplicates, reordered: result.reordered, recovered,
    breakdown: b, agent, probe: result,
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

function report(all: Measurement[]): void {
  const groups = new Map<string, Measurement[]>();
  for (const m of all) {
    const key = `${m.vm} ${m.leg} (${m.from}→${m.to}, flow ${m.flow}${m.leg === "home" ? ", return" : ""})`;
    groups.set(key, [...(groups.get(key) ?? []), m]);
  }
  for (const [key, ms] of groups) {
    const unreachable = ms.filter((m) => !m.reachableBefore).length;
    say(`\n${key}: ${ms.length} migrations, ${ms.filter((m) => m.agent?.ok).length} handovers ok, ${ms.filter((m) => m.recovered).length} recovered` +
      (unreachable ? `; ${unreachable} unreachable before the move (left out of blackout and loss)` : ""));
    const rows: [string, (m: Measurement) => number | undefined][] = [
      ["blackout ms", (m) => (m.reachableBefore ? m.blackoutMs ?? undefined : undefined)],
      ["packets lost", (m) => (m.reachableBefore ? m.lost : undefined)],
      ["delivery back at ms (after started)", (m) => (m.recovered ? m.blackoutToMs ?? undefined : undefined)],
      ["baseline gap ms (before the move)", (m) => m.baselineMaxGapMs],
      ["probe RTT p50 ms", (m) => m.probe.rttMs.p50 ?? undefined],
      ["machine load (1 min)", (m) => m.load1],
      ["detection ms (seen − started)", (m) => m.breakdown.detectionMs],
      ["  of which QEMU live migration ms (lab)", (m) => m.breakdown.portMoveMs],
      ["  QEMU downtime ms (query-migrate)", (m) => m.breakdown.qemuDowntimeMs],
      ["  of which seen after up ms", (m) => m.breakdown.seenAfterUpMs],
      ...(ms[0].leg === "away"
        ? ([
            ["allocation ms (AllocateCareOf)", (m) => m.breakdown.allocationMs],
            ["host rules ms", (m) => m.breakdown.hostRulesMs],
            ["rule push ms (RegisterMigration)", (m) => m.breakdown.rulePushMs],
            ["registration ms (to the reply)", (m) => m.breakdown.registrationMs],
          ] as [string, (m: Measurement) => number | undefined][])
        : ([
            ["deregistration sent ms", (m) => m.breakdown.registrationMs],
            ["rule push ms (RegisterMigration)", (m) => m.breakdown.rulePushMs],
          ] as [string, (m: Measurement) => number | undefined][])),
      ["handover total ms (started → done)", (m) => m.breakdown.totalMs],
    ];
    say(`  ${"".padEnd(36)} ${"median".padStart(8)} ${"p90".padStart(8)} ${"max".padStart(8)}   n`);
    for (const [name, get] of rows) {
      const v = ms.map(get).filter((x): x is number => x !== undefined);
      say(`  ${name.padEnd(36)} ${fmt(pct(v, 0.5)).padStart(8)} ${fmt(pct(v, 0.9)).padStart(8)} ${fmt(pct(v, 1)).padStart(8)}  ${String(v.length).padStart(2)}`);
    }
    const median = pct(ms.filter((m) => m.reachableBefore).map((m) => m.blackoutMs).filter((x): x is number => x !== null), 0.5);
    if (median !== undefined) {
      say(`  median blackout ${median.toFixed(1)} ms: ${REFERENCES.map((r) => `${(median / r.ms).toFixed(3)}× ${r.name} (${r.ms} ms)`).join("; ")}; aim < ${TARGET_MS} ms: ${median < TARGET_MS ? "met" : "NOT met"}`);
    }
    const failed = ms.filter((m) => !m.agent?.ok);
    for (const m of failed.slice(0, 3)) say(`  round ${m.round}: agent ${m.agent ? `failed: ${m.agent.error}` : "logged no handover"}`);
  }
  say("\nThe rule push is RegisterMigration until the engine answered; the engine pushes the rules to its worker in parallel, so the worker may apply them slightly later.");
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
let failed = false;
try {
  say(`== handover benchmark: lab '${PREFIX}', ${ROUNDS} rounds, probe ${RATE} Hz, ${WARMUP_MS} ms before and ${AFTER_MS} ms after each move`);
  lab = await startLab({ prefix: PREFIX, say: (s) => say(`  ${s}`) });
  const c6 = await labRpc(PREFIX, "mapCorrespondent", { ipv6Address: "2001:db8:c::10" });
  const h6 = await labRpc(PREFIX, "mapCorrespondent", { ipv6Address: "2001:db8:1::2" });
  say(`  correspondents: c6 2001:db8:c::10 → ${String(c6.ipv4Address)}, vm6 2001:db8:1::2 → ${String(h6.ipv4Address)}`);
  // The guests run the UDP echo themselves (deploy/lab/guest/udp-echo.c) on GUEST_SERVICES.udpEcho.
  // One probe each before measuring: neighbour caches and the engine's flows settle.
  for (const c of CASES) {
    const p = startIn(c.client, [process.execPath, PROBE, "send", c.target, String(PORT), String(RATE), "500"]);
    await nextJson(p.lines, "probe");
    const r = await nextJson(p.lines, "probe");
    say(`  ${c.client} → ${c.vm} before any move: ${r.received}/${r.sent} replies`);
  }
  for (let round = 1; round <= ROUNDS; round++) {
    for (const c of CASES) {
      for (const leg of ["away", "home"] as const) {
        await sleep(SETTLE_MS);
        const m = await measure(round, c, leg);
        all.push(m);
        const b = m.breakdown;
        say(`round ${String(round).padStart(2)} ${c.vm} ${leg.padEnd(4)} ${m.from}→${m.to}: blackout ${fmt(m.blackoutMs ?? undefined)} ms, lost ${m.lost}/${m.sent}` +
          ` | move ${fmt(b.portMoveMs)} detect ${fmt(b.detectionMs)} alloc ${fmt(b.allocationMs, 0)} host ${fmt(b.hostRulesMs, 0)} push ${fmt(b.rulePushMs, 0)} reg ${fmt(b.registrationMs, 0)}` +
          `${m.agent?.ok ? "" : ` | agent: ${m.agent?.error ?? "no handover logged"}`}${m.reachableBefore ? "" : " | unreachable before"}${m.recovered ? "" : " | NOT RECOVERED"}`);
      }
      if ((await vmHost(PREFIX, c.vm)) !== c.home) throw new Error(`${c.vm} is not home after round ${round}`);
    }
  }
  report(all);
} catch (e) {
  failed = true;
  say(`handover benchmark failed: ${(e as Error).stack ?? e}`);
} finally {
  writeFileSync(args.out!, JSON.stringify({ prefix: PREFIX, rounds: ROUNDS, rateHz: RATE, warmupMs: WARMUP_MS, afterMs: AFTER_MS, at: new Date().toISOString(), migrations: all }, null, 1));
  say(`raw data: ${args.out}`);
  await teardown();
}
process.exit(failed ? 1 : 0);
