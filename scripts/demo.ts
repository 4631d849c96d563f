// The main job: a live migration of an IPv4 VM into the IPv6 network (paper, flow 3.1) in the
// lab, with every mip46 process running for real. It brings the lab up, starts a service in
// vm4, opens TCP sessions to it from the IPv4 client and from the IPv6 client (through the
// translator), migrates vm4 from h4 (IPv4 network) to h6 (IPv6 network), shows the sessions going
// on and the path they now take, prints the handover's timeline, brings vm4 home again, and tears
// everything down. Exit status 0 when both sessions survived with every byte checked.
import type { ChildProcess } from "node:child_process";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { LAB_ENDPOINTS } from "../deploy/lab/configs.js";
import { handoverLines, labMetrics, openLabRpc, REPO, startLab, type LabRpc, type RunningLab } from "../deploy/lab/lab.js";
import { destroyLab, spawnIn } from "../deploy/lab/netns.js";
import { migrate } from "../deploy/lab/qemu.js";

const PREFIX = "m46demo";
const say = (s = "") => process.stdout.write(`${s}\n`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const SESSION = join(REPO, "deploy/lab/apps/session.mjs");

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

async function counters(): Promise<Record<string, number>> {
  const [r1, eng, h6] = await Promise.all([LAB_ENDPOINTS.r1Metrics, LAB_ENDPOINTS.engineWorkerMetrics, LAB_ENDPOINTS.h6Metrics].map((e) => labMetrics(PREFIX, e)));
  const a = (m: Map<string, number>, action: string) => m.get(`mip46_dataplane_action_packets_total{action="${action}"}`) ?? 0;
  return {
    r1Encap: a(r1, "encap-4in4"), r1Bindings: r1.get(`mip46_home_agent_bindings{protocol="mip4"}`) ?? 0,
    engReencap: a(eng, "reencap-4in4-4in6"), engDecap: a(eng, "decap"), eng64: a(eng, "translate-6to4"), eng46: a(eng, "translate-4to6"),
    h6Decap: a(h6, "decap"), h6Encap: a(h6, "encap-4in6"),
  };
}

const fmt = (ms: number | undefined) => (ms === undefined ? "   -  " : `${ms.toFixed(1).padStart(6)} ms`);

let lab: RunningLab | undefined;
let rpc: LabRpc | undefined;
let ok = false;
const interrupted = () => {
  void destroyLab(PREFIX).finally(() => process.exit(130));
};
process.on("SIGINT", interrupted);
process.on("SIGTERM", interrupted);
try {
  say("== mip46 demo: live migration of an IPv4 VM into the IPv6 network (paper, flow 3.1)");
  say("   lab addresses as in shared/paper.md; every process is the real mip46 executable");
  say();
  await destroyLab(PREFIX);
  const t0 = performance.now();
  lab = await startLab({ prefix: PREFIX, say: (s) => say(`   ${s}`) });
  say(`   lab up in ${((performance.now() - t0) / 1000).toFixed(1)} s; logs in ${lab.dir}`);
  rpc = openLabRpc(PREFIX);
  const mapped = await rpc.call<{ ipv4Address: string }>("mapCorrespondent", { ipv6Address: "2001:db8:c::10" });
  say(`   the engine gives the IPv6 client 2001:db8:c::10 the pool address ${mapped.ipv4Address} (RFC 7757 EAM)`);

  say("\n-- a service in vm4 (home 192.0.2.1, on host h4 in the IPv4 network 192.0.2.0/24)");
  say("   the guest's own TCP echo (busybox nc) listens on 192.0.2.1:7000");

  say("\n-- TCP sessions: from the IPv4 client 203.0.113.10, and from the IPv6 client 2001:db8:c::10");
  say("   through the translator at 2001:db8:64::c000:201 (RFC 6052); a line every 20 ms, each echo checked");
  const c4 = app("c4", ["client", "192.0.2.1", "7000", "20"]);
  const c6 = app("c6", ["client", "2001:db8:64::c000:201", "7000", "20"]);
  const before4 = await c4.waitFor((s) => s.connected === true, 10_000);
  const before6 = await c6.waitFor((s) => s.connected === true, 10_000);
  say(`   IPv4 session ${before4.local} -> ${before4.remote}`);
  say(`   IPv6 session [${before6.local}] -> [${before6.remote}]`);
  await sleep(1500);
  say(`   before: IPv4 session ${c4.latest().echoed} lines echoed; IPv6 session ${c6.latest().echoed}`);

  const k0 = await counters();
  say("\n-- migrate vm4 from h4 (IPv4 network) to h6 (IPv6 network): a QEMU live migration of the guest");
  const m = await migrate(PREFIX, "vm4", "h6");
  say(`   live migration done in ${(m.upAt - m.startedAt).toFixed(1)} ms (QEMU: total ${m.qemu.totalTimeMs} ms, downtime ${m.qemu.downtimeMs} ms); agents take over`);
  let handover: Record<string, unknown> | undefined;
  for (let i = 0; i < 200 && handover === undefined; i++) {
    handover = handoverLines(lab.dir, "h6").find((h) => h.vmId === "vm4" && (h.seenAtMs as number) >= Math.floor(m.startedAt) - 1);
    if (handover === undefined) await sleep(25);
  }
  if (handover === undefined || handover.ok !== true) throw new Error(`no successful handover logged by h6's agent: ${JSON.stringify(handover)}`);
  await sleep(2000);
  const after4 = c4.latest();
  const after6 = c6.latest();
  const k1 = await counters();

  say("\n-- the sessions after the migration");
  for (const [name, b, a] of [["IPv4", before4, after4], ["IPv6", before6, after6]] as const) {
    const same = a.local === b.local && a.remote === b.remote && a.connected === true;
    say(`   ${name}: ${same ? "same connection" : "CONNECTION CHANGED"} ${a.local} -> ${a.remote}; ${a.echoed} lines echoed, ${a.mismatches} wrong; longest wait for an echo ${a.maxGapMs} ms`);
  }
  const bindings = await rpc.call<{ bindings: { vmId: string; careOfIpv4: string; careOfIpv6: string; hostId: string }[] }>("listBindings");
  const b = bindings.bindings.find((x) => x.vmId === "vm4");
  say("\n-- the path it takes now (packet counts over the last 2 s from each worker's /metrics)");
  say(`   engine binding: vm4 at ${b?.hostId}, IPv4 care-of ${b?.careOfIpv4} (pool), IPv6 care-of ${b?.careOfIpv6}`);
  say(`   c4 -> engine -> 192.0.2.1 on the IPv4 network: r1 answers for it (proxy ARP) and tunnels IPv4-in-IPv4 to ${b?.careOfIpv4}: ${k1.r1Encap - k0.r1Encap} packets`);
  say(`   engine: ${b?.careOfIpv4} is a pool address in use, re-wrapped IPv4-in-IPv6 to ${b?.careOfIpv6}: ${k1.engReencap - k0.engReencap} packets`);
  say(`   h6's privileged VM unwraps them for vm4: ${k1.h6Decap - k0.h6Decap} packets`);
  say(`   vm4's answers: h6 wraps them IPv4-in-IPv6 to the engine (${k1.h6Encap - k0.h6Encap}), the engine unwraps them (${k1.engDecap - k0.engDecap}) and sends them on;`);
  say(`   for the IPv6 client, translated 4->6 on the way out (${k1.eng46 - k0.eng46}) and 6->4 on the way in (${k1.eng64 - k0.eng64})`);

  say("\n-- handover timeline (ms from the start of the migration)");
  const seen = handover.seenAtMs as number;
  const base = m.startedAt;
  const rows: [string, number | undefined][] = [
    ["destination QEMU up on h6, its tap on brv", m.destinationUpAt - base],
    ["guest runs on h6 (migration completed)", m.upAt - base],
    ["detected by h6's agent (port on the visitor bridge)", seen - base],
    ["care-of addresses allocated (AllocateCareOf)", seen - base + (handover.allocatedMs as number)],
    ["host tunnel rules installed on h6's worker", seen - base + (handover.hostRulesMs as number)],
    ["engine rules compiled and pushed (RegisterMigration)", seen - base + (handover.engineRulesMs as number)],
    [`registered with r1 through the tunnel (${handover.registrationAttempts} attempt(s))`, seen - base + (handover.registeredMs as number)],
  ];
  for (const [what, ms] of rows) say(`   ${fmt(ms)}  ${what}`);
  say(`   care-of addresses: ${handover.careOfIPv4} and ${handover.careOfIPv6}`);
  say(`   the sessions' longest wait for an echo, whole run: IPv4 ${after4.maxGapMs} ms, IPv6 ${after6.maxGapMs} ms (a line every 20 ms)`);

  say("\n-- vm4 comes home to h4: deregistered, the direct path is back");
  const back = await migrate(PREFIX, "vm4", "h4");
  for (let i = 0; i < 200; i++) {
    const bs = await rpc.call<{ bindings: { vmId: string }[] }>("listBindings");
    if (!bs.bindings.some((x) => x.vmId === "vm4")) break;
    await sleep(50);
  }
  await sleep(1000);
  const k2 = await counters();
  await sleep(1000);
  const k3 = await counters();
  say(`   migrated back in ${(back.upAt - back.startedAt).toFixed(1)} ms (QEMU downtime ${back.qemu.downtimeMs} ms); engine binding gone; r1 bindings ${k3.r1Bindings}; r1 tunnelled ${k3.r1Encap - k2.r1Encap} packets in the last second`);

  const end4 = await stopApp(c4);
  const end6 = await stopApp(c6);

  say("\n-- result");
  for (const [name, b, e] of [["IPv4", before4, end4], ["IPv6", before6, end6]] as const) {
    const good = e.connected === true && e.mismatches === 0 && e.local === b.local && (e.echoed ?? 0) > (after4.echoed ?? 0) / 2;
    say(`   ${name} session: ${good ? "unbroken" : "BROKEN"}: ${e.sent} lines sent, ${e.echoed} echoed, ${e.mismatches} wrong, one connection ${e.local} -> ${e.remote}`);
  }
  ok = end4.connected === true && end6.connected === true && end4.mismatches === 0 && end6.mismatches === 0 && end4.local === before4.local && end6.local === before6.local
    && (k1.r1Encap - k0.r1Encap) > 0 && (k3.r1Encap - k2.r1Encap) === 0;
  say(ok ? "\nOK: the sessions survived the migration from IPv4 to IPv6 and back" : "\nFAILED: see above");
} catch (e) {
  say(`\nFAILED: ${(e as Error).message}`);
} finally {
  say("\n-- tearing the lab down");
  rpc?.close();
  await (lab?.stop() ?? destroyLab(PREFIX));
}
process.exit(ok ? 0 : 1);
