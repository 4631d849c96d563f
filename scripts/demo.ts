// The main job: the paper's two flows as live migrations of QEMU guests in the lab, with every
// mip46 process running for real. It brings the lab up; opens TCP sessions from the IPv4 and the
// IPv6 client to vm4 and live-migrates it from h4 (IPv4 network) into the IPv6 network and back
// (flow 3.1); then does the same for vm6 from h6 (IPv6 network) into the IPv4 network and back
// (flow 3.2). For each move it prints QEMU's downtime, the blackout a 1 kHz UDP probe saw (and
// the network's share of it), the agent's prepare and switch, and the path the packets took;
// then tears everything down. Exit status 0 when every session survived with every echo checked.
// The four handovers are also drawn (deploy/lab/chart.ts) into $MIP46_DEMO_OUT (default
// /tmp/mip46-demo): handover.svg, and handover.json with what it was drawn from.
import type { ChildProcess } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { LAB_ENDPOINTS } from "../deploy/lab/configs.js";
import { labMetrics, openLabRpc, REPO, startLab, type LabRpc, type RunningLab } from "../deploy/lab/lab.js";
import { destroyLab, spawnIn } from "../deploy/lab/netns.js";
import { handoverChart, type ChartMove } from "../deploy/lab/chart.js";
import { measuredMove, switchTimes } from "../deploy/lab/measure.js";

const PREFIX = "m46demo";
const say = (s = "") => process.stdout.write(`${s}\n`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const SESSION = join(REPO, "deploy/lab/apps/session.mjs");
const OUT = process.env.MIP46_DEMO_OUT ?? "/tmp/mip46-demo";
const charted: ChartMove[] = [];

interface Status { connected?: boolean; sent?: number; echoed?: number; mismatches?: number; maxGapMs?: number; local?: string; remote?: string; error?: string; summary?: boolean; listening?: number }

/** A lab app whose stdout is JSON lines; keeps the latest. */
function app(ns: Parameters<typeof spawnIn>[1], args: string[]): { child: ChildProcess; latest: () => Status; waitFor: (p: (s: Status) => boolean, ms: number) => Promise<Status> } {
  const child = spawnIn(PREFIX, ns, [process.execPath, SESSION, ...args], { stdio: ["ignore", "pipe", "inherit"] });
  let latest: Status = {};
  const waiters: { p: (s: Status) => boolean; resolve: (s: Status) => void }[] = [];
  createInterface({ input: child.stdout! }).on("line", (line) => {
    try {
      latest = JSON.parse(line) as Status;
    } catch {
      return;
    }
    for (const w of [...waiters]) if (w.p(latest)) {
      waiters.splice(waiters.indexOf(w), 1);
      w.resolve(latest);
    }
  });
  return {
    child,
    latest: () => latest,
    waitFor: (p, ms) => new Promise((resolve, reject) => {
      if (p(latest)) return resolve(latest);
      const timer = setTimeout(() => reject(new Error(`timed out waiting on ${ns} ${args.join(" ")}; last: ${JSON.stringify(latest)}`)), ms);
      waiters.push({ p, resolve: (s) => { clearTimeout(timer); resolve(s); } });
    }),
  };
}

function stopApp(a: { child: ChildProcess; waitFor: (p: (s: Status) => boolean, ms: number) => Promise<Status> }): Promise<Status> {
  const done = a.waitFor((s) => s.summary === true, 5000);
  a.child.kill("SIGTERM");
  return done;
}

type Counters = Record<string, number>;

/** Packet counts by action from every worker that lies on a path. */
async function counters(): Promise<Counters> {
  const names = { r1: LAB_ENDPOINTS.r1Metrics, r2: LAB_ENDPOINTS.r2Metrics, eng: LAB_ENDPOINTS.engineWorkerMetrics, h4: LAB_ENDPOINTS.h4Metrics, h6: LAB_ENDPOINTS.h6Metrics };
  const out: Counters = {};
  await Promise.all(Object.entries(names).map(async ([who, endpoint]) => {
    for (const [k, v] of await labMetrics(PREFIX, endpoint)) {
      const m = /^mip46_dataplane_action_packets_total\{action="([^"]+)"\}$/.exec(k);
      if (m) out[`${who} ${m[1]}`] = v;
      if (k.startsWith("mip46_home_agent_bindings{")) out[`${who} bindings`] = v;
    }
  }));
  return out;
}

const delta = (a: Counters, b: Counters, k: string) => (b[k] ?? 0) - (a[k] ?? 0);

interface Flow {
  name: string;
  vm: "vm4" | "vm6";
  home: "h4" | "h6";
  away: "h4" | "h6";
  /** The client of the VM's own family, which probes its UDP echo. */
  probe: { client: "c4" | "c6"; target: string };
  sessions: { label: string; client: "c4" | "c6"; target: string }[];
  /** The path away, as [what, counter] lines. */
  path: [string, string][];
  /** The home agent's tunnel counter, flat once home again. */
  homeAgentTunnel: string;
}

async function runFlow(f: Flow): Promise<boolean> {
  say(`\n== flow ${f.name}`);
  const sessions = f.sessions.map((x) => ({ ...x, app: app(x.client, ["client", x.target, "7000", "20"]) }));
  const opened = await Promise.all(sessions.map((x) => x.app.waitFor((s) => s.connected === true, 10_000)));
  for (const [i, x] of sessions.entries()) say(`   TCP session ${x.label}: ${opened[i].local} -> ${opened[i].remote}, a line every 20 ms, each echo checked`);
  await sleep(1000);
  let good = true;
  for (const [leg, to] of [["away", f.away], ["home", f.home]] as const) {
    const k0 = await counters();
    say(`\n-- ${f.vm} ${leg === "away" ? `from ${f.home} to ${f.away} (into the ${f.away === "h6" ? "IPv6" : "IPv4"} network)` : `home to ${f.home}`}: a QEMU live migration; ${f.probe.client} probes its UDP echo at 1 kHz`);
    const m = await measuredMove(PREFIX, { vm: f.vm, to, client: f.probe.client, target: f.probe.target }, { warmupMs: 300, afterMs: 2000, capture: true });
    const h = m.handover;
    if (m.move.status !== "completed" || h === null || h.ok !== true) throw new Error(`the move of ${f.vm} to ${to}: ${m.move.status}, handover ${JSON.stringify(h)}`);
    charted.push({ vm: f.vm, from: leg === "away" ? f.home : f.away, to, what: leg === "away" ? `into the ${to === "h6" ? "IPv6" : "IPv4"} network` : "home", m });
    const { activatedAt, switchMs } = switchTimes(h);
    const down = m.move.qemu.downtimeMs ?? 0;
    const blackout = m.blackout?.ms ?? 0;
    say(`   QEMU: ${m.move.qemu.totalTimeMs} ms in all, downtime ${down} ms (the guest paused)`);
    say(`   the client's blackout: ${blackout.toFixed(1)} ms, ${m.probe.lost} of ${m.probe.sent} probes lost; ${(blackout - down).toFixed(1)} ms beyond QEMU's downtime, of which`);
    const l = m.link;
    say(`     the network's share ${l?.networkShareMs?.toFixed(1) ?? "?"} ms (the guest's RARP on ${to}'s link to the first probe reaching it there, and the reply's way back)`);
    say(`     the guest's own wake-up ${l?.guestWakeMs?.toFixed(1) ?? "?"} ms (probes reaching it, no answer yet: a TCG guest resumes slowly), the rest before QEMU's pause`);
    if (leg === "away") {
      say(`   ${to}'s agent, during the pre-copy: care-of ${h.careOfIPv4} / ${h.careOfIPv6} at +${h.allocatedMs} ms, host rules +${h.hostRulesMs} ms, engine prepared +${h.engineRulesMs} ms after the tap appeared (nothing diverted)`);
    }
    say(`   activated on the guest's ${h.activation === "rarp" ? "RARP self-announce" : "first frame"} ${activatedAt === undefined ? "?" : (activatedAt - m.move.upAt).toFixed(0)} ms after the migration completed; switch done ${switchMs ?? "?"} ms later`);
    await sleep(300);
    const k1 = await counters();
    if (leg === "away") {
      say("   the path now (packets while the probe ran):");
      for (const [what, key] of f.path) say(`     ${String(delta(k0, k1, key)).padStart(6)}  ${what}`);
      good = good && delta(k0, k1, f.homeAgentTunnel) > 0;
    } else {
      await sleep(1000);
      const k2 = await counters();
      const tunnelled = delta(k1, k2, f.homeAgentTunnel);
      say(`   home: the home agent tunnelled ${tunnelled} packets in the last second (the direct path is back)`);
      good = good && tunnelled === 0;
    }
  }
  for (const x of sessions) {
    const e = await stopApp(x.app);
    const o = opened[sessions.indexOf(x)];
    const unbroken = e.connected === true && e.mismatches === 0 && e.local === o.local;
    say(`   ${x.label}: ${unbroken ? "unbroken" : "BROKEN"}: one connection, ${e.sent} lines sent, ${e.echoed} echoed, ${e.mismatches} wrong, longest wait for an echo ${e.maxGapMs} ms`);
    good = good && unbroken;
  }
  return good;
}

let lab: RunningLab | undefined;
let rpc: LabRpc | undefined;
let ok = false;
const interrupted = () => {
  void destroyLab(PREFIX).finally(() => process.exit(130));
};
process.on("SIGINT", interrupted);
process.on("SIGTERM", interrupted);
try {
  say("== mip46 demo: live migration of QEMU guests between the IPv4 and the IPv6 network (paper, flows 3.1 and 3.2)");
  say("   lab addresses as in shared/paper.md; every process is the real mip46 executable");
  say();
  await destroyLab(PREFIX);
  const t0 = performance.now();
  lab = await startLab({ prefix: PREFIX, say: (s) => say(`   ${s}`) });
  say(`   lab up in ${((performance.now() - t0) / 1000).toFixed(1)} s; logs in ${lab.dir}`);
  rpc = openLabRpc(PREFIX);
  const c6 = await rpc.call<{ ipv4Address: string }>("mapCorrespondent", { ipv6Address: "2001:db8:c::10" });
  const vm6 = await rpc.call<{ ipv4Address: string }>("mapCorrespondent", { ipv6Address: "2001:db8:1::2" });
  say(`   the engine maps the IPv6 client 2001:db8:c::10 to ${c6.ipv4Address} and vm6 2001:db8:1::2 to ${vm6.ipv4Address} (RFC 7757 EAM);`);
  say("   IPv6 clients reach vm4 192.0.2.1 at 2001:db8:64::c000:201 (RFC 6052). The guests serve a TCP and a UDP echo on port 7000.");
  const ok31 = await runFlow({
    name: "3.1: vm4 (IPv4, home 192.0.2.1 on h4) into the IPv6 network and back", vm: "vm4", home: "h4", away: "h6",
    probe: { client: "c4", target: "192.0.2.1" },
    sessions: [{ label: "IPv4 client c4 -> vm4", client: "c4", target: "192.0.2.1" }, { label: "IPv6 client c6 -> vm4 (translated)", client: "c6", target: "2001:db8:64::c000:201" }],
    path: [
      ["r1 answers for 192.0.2.1 and tunnels IPv4-in-IPv4 to the pool care-of address", "r1 encap-4in4"],
      ["the engine re-wraps them IPv4-in-IPv6 to h6's care-of address", "eng reencap-4in4-4in6"],
      ["h6 unwraps them for vm4", "h6 decap"],
      ["h6 wraps vm4's answers IPv4-in-IPv6 to the engine", "h6 encap-4in6"],
      ["the engine translates the IPv6 client's packets 6->4", "eng translate-6to4"],
      ["and vm4's answers to it 4->6", "eng translate-4to6"],
    ],
    homeAgentTunnel: "r1 encap-4in4",
  });
  const ok32 = await runFlow({
    name: "3.2: vm6 (IPv6, home 2001:db8:1::2 on h6) into the IPv4 network and back", vm: "vm6", home: "h6", away: "h4",
    probe: { client: "c6", target: "2001:db8:1::2" },
    sessions: [{ label: "IPv6 client c6 -> vm6", client: "c6", target: "2001:db8:1::2" }, { label: `IPv4 client c4 -> vm6 (at ${vm6.ipv4Address}, translated)`, client: "c4", target: vm6.ipv4Address }],
    path: [
      ["r2 tunnels IPv6-in-IPv6 to vm6's IPv6 care-of address (until route optimisation)", "r2 encap-6in6"],
      ["the engine re-wraps them IPv6-in-IPv4 to h4's care-of address", "eng reencap-6in6-6in4"],
      ["route optimisation: the engine, as the IPv6 client's correspondent router, sends IPv6-in-IPv4 straight to h4", "eng encap-6in4"],
      ["h4 unwraps them for vm6", "h4 decap"],
      ["h4 wraps vm6's answers IPv6-in-IPv4 to the engine", "h4 encap-6in4"],
      ["the engine translates the IPv4 client's packets 4->6", "eng translate-4to6"],
      ["and vm6's answers to it 6->4", "eng translate-6to4"],
    ],
    homeAgentTunnel: "r2 encap-6in6",
  });
  ok = ok31 && ok32;
  mkdirSync(OUT, { recursive: true });
  writeFileSync(join(OUT, "handover.json"), JSON.stringify(charted, null, 1));
  writeFileSync(join(OUT, "handover.svg"), handoverChart("mip46 demo: four live migrations between the IPv4 and the IPv6 network", charted));
  say(`\n   the four handovers, drawn: ${join(OUT, "handover.svg")} (the data: handover.json)`);
  say(`\n-- result: flow 3.1 ${ok31 ? "OK" : "FAILED"}, flow 3.2 ${ok32 ? "OK" : "FAILED"}`);
  say(ok ? "OK: every session survived both live migrations of both flows, there and back" : "FAILED: see above");
} catch (e) {
  say(`\nFAILED: ${(e as Error).message}`);
} finally {
  say("\n-- tearing the lab down");
  rpc?.close();
  await (lab?.stop() ?? destroyLab(PREFIX));
}
process.exit(ok ? 0 : 1);
