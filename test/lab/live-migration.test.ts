// Live migrations of QEMU guests followed by the agents (issue 9, part 3 and its tests):
//   - during the pre-copy nothing is diverted: the VM still answers at its source, the home agent
//     holds no binding and its tunnel counter, like the engine's, stays flat while the session's
//     echoes grow; the destination agent has prepared (care-of lease, rules that wait);
//   - a cancelled and a failed migration: the VM stays reachable at its source throughout (no
//     echo gap over 100 ms), the destination agent aborts, and nothing is left: the engine's
//     leases, rules and bindings and the home agents' bindings are what they were before;
//   - five round trips of one VM: its sessions from both clients survive every move, and the
//     same state is back at the end.
import anyTest, { type TestFn } from "ava";
import { migrate, vmHost, type Migration } from "../../deploy/lab/qemu.js";
import { GUEST_SERVICES, LAB_PLAN, type HostRole } from "../../deploy/lab/topology.js";
import { ipv6FromBytes, parseCidr6, parseIPv4 } from "../../lib/net/address.js";
import { embedIPv4 } from "../../lib/net/rfc6052.js";
import {
  LAB_ENDPOINTS, SessionClient, SoftChecks, checkSession, endSessions, labUnavailable, logPath, logSize, metric, readLog, readMetrics, sleep, useLab,
  waitFor, waitForHandover, waitForLog, type LabHandle,
} from "../helpers/lab.js";

const test = anyTest as TestFn<unknown>;
const unavailable = labUnavailable();
if (unavailable) console.log(`test/lab/live-migration: skipped, ${unavailable}`);
const live = unavailable ? test.serial.skip : test.serial;
const handle: LabHandle | undefined = unavailable ? undefined : useLab(test);

const VM4 = LAB_PLAN.vms.vm4.homeAddress.split("/")[0];
const VM6 = LAB_PLAN.vms.vm6.homeAddress.split("/")[0];
const C6 = LAB_PLAN.clients.c6.address.split("/")[0];

/** vm4 as the IPv6 client reaches it: its address embedded in the translation prefix (RFC 6052). */
async function vm4FromC6(): Promise<string> {
  await handle!.rpc("mapCorrespondent", { ipv6Address: C6 });
  const p = parseCidr6(LAB_PLAN.engine.translationPrefix6, "translationPrefix6");
  return ipv6FromBytes(embedIPv4(p.network.bytes, p.length, parseIPv4(VM4, "vm4").bytes)).text;
}

/**
 * What a migration may change and must give back when it is undone or reversed: the engine's
 * leases, rule table and bindings, the home agents' bindings, and the rules each host's worker
 * holds. Expiry and update times are left out; they move on their own.
 */
async function state(): Promise<Record<string, unknown>> {
  const h = handle!;
  const leases = ((await h.rpc<{ leases?: Record<string, unknown>[] }>("listLeases")).leases ?? [])
    .map((l) => `${String(l.address)} ${String(l.holder)} ${String(l.purpose)} ${String(l.hostId ?? "")}`).sort();
  const rules = ((await h.rpc<{ rules?: Record<string, unknown>[] }>("getRuleTable")).rules ?? []).map((r) => JSON.stringify(r)).sort();
  const bindings = ((await h.rpc<{ bindings?: Record<string, unknown>[] }>("listBindings")).bindings ?? [])
    .map(({ updatedAtMs: _, ...b }) => JSON.stringify(b)).sort();
  const r1 = await readMetrics(h.prefix, LAB_ENDPOINTS.r1Metrics);
  const r2 = await readMetrics(h.prefix, LAB_ENDPOINTS.r2Metrics);
  const h4 = await readMetrics(h.prefix, LAB_ENDPOINTS.h4Metrics);
  const h6 = await readMetrics(h.prefix, LAB_ENDPOINTS.h6Metrics);
  return {
    leases, rules, bindings,
    homeAgentBindings: { r1: metric(r1, "mip46_home_agent_bindings", { protocol: "mip4" }), r2: metric(r2, "mip46_home_agent_bindings", { protocol: "mip6" }) },
    hostWorkerRules: { h4: metric(h4, "mip46_dataplane_rules"), h6: metric(h6, "mip46_dataplane_rules") },
  };
}

/** Waits until the state is `wanted` again (the engine and agents settle within a second or two). */
async function stateBack(t: SoftChecks, label: string, wanted: Record<string, unknown>): Promise<void> {
  let last: Record<string, unknown> = {};
  const ok = await waitFor(`${label}: the state as before`, async () => {
    last = await state();
    return JSON.stringify(last) === JSON.stringify(wanted);
  }, 5_000, 200).then(() => true, () => false);
  if (!ok) t.deepEqual(last, wanted, `${label}: leases, rules, bindings and home-agent bindings as before`);
}

async function counters() {
  const h = handle!;
  const r1 = await readMetrics(h.prefix, LAB_ENDPOINTS.r1Metrics);
  const eng = await readMetrics(h.prefix, LAB_ENDPOINTS.engineWorkerMetrics);
  const action = (m: Map<string, number>, a: string) => metric(m, "mip46_dataplane_action_packets_total", { action: a });
  return { r1Encap4in4: action(r1, "encap-4in4"), r1Bindings: metric(r1, "mip46_home_agent_bindings", { protocol: "mip4" }), engineEncap4in6: action(eng, "encap-4in6"), engineReencap: action(eng, "reencap-4in4-4in6") };
}

const pending = <T>(p: Promise<T>) => {
  let done = false;
  p.then(() => (done = true), () => (done = true));
  return () => !done;
};

live("during the pre-copy nothing is diverted: vm4 answers at h4, r1 holds no binding, and no tunnel counter moves", async (test) => {
  const t = new SoftChecks(test);
  const h = handle!;
  const c = await SessionClient.start(h, "c4", VM4, GUEST_SERVICES.tcpEcho);
  await c.fresh();
  const destLog = logPath(h.lab, "agent-h6");
  const from = logSize(destLog);
  // The pre-copy is held until the window is counted (QEMU's downtime-limit 0, see holdPreCopy):
  // a guest's memory is mostly zero pages, so no bandwidth limit alone makes it last. (At
  // 2 MiB/s, QEMU 7.2 under TCG twice left the guest's virtio-net transmit queue broken at the
  // destination with TCP traffic running: "output.0:id 0 is not a head!"; 8 MiB/s is kept.)
  let release!: () => void;
  const counted = new Promise<void>((r) => (release = r));
  const move = migrate(h.prefix, "vm4", "h6", { maxBandwidth: 8 << 20, holdPreCopy: counted });
  const migrating = pending(move);
  const prepared = await waitForLog(destLog, "vm4 prepared on h6", (r) => r.msg === "migration prepared" && r.vmId === "vm4", from, 10_000);
  t.true(migrating(), "the migration is still in its pre-copy when h6 has prepared");
  t.true(typeof prepared.careOfIPv6 === "string" && prepared.engineRules === true, `h6 took a care-of address and the engine prepared its rules: ${JSON.stringify(prepared)}`);
  const s0 = await c.fresh();
  const k0 = await counters();
  // Samples over up to 1.5 s; only those read wholly inside the pre-copy count (migrating() is read
  // after each). The hold above usually keeps the pre-copy going the whole time, but QEMU may
  // still converge in a moment when the guest dirtied no page.
  let last: { s: Awaited<ReturnType<typeof c.fresh>>; k: Awaited<ReturnType<typeof counters>>; bindings: { vmId: string }[] } | undefined;
  for (const until = Date.now() + 1_500; Date.now() < until;) {
    await sleep(150);
    const sample = { s: await c.fresh(), k: await counters(), bindings: (await h.rpc<{ bindings?: { vmId: string }[] }>("listBindings")).bindings ?? [] };
    if (!migrating()) break;
    last = sample;
  }
  t.true(last !== undefined && last.s.echoed - s0.echoed >= 10, `the counting window lay inside the pre-copy and saw at least 10 echoes (${last ? last.s.echoed - s0.echoed : 0}); else it proves nothing`);
  const { s: s1, k: k1, bindings } = last ?? { s: s0, k: k0, bindings: [] };
  checkSession(t, "c4 → vm4 during the pre-copy", c, s0, s1);
  t.is(k1.r1Bindings, 0, "r1 holds no binding during the pre-copy");
  t.is(k1.r1Encap4in4 - k0.r1Encap4in4, 0, `r1 tunnels nothing to a care-of address (encap-4in4 ${k0.r1Encap4in4} then ${k1.r1Encap4in4})`);
  t.is(k1.engineReencap - k0.engineReencap, 0, "the engine re-encapsulates nothing toward h6");
  t.is(k1.engineEncap4in6 - k0.engineEncap4in6, 0, "the engine sends nothing IPv4-in-IPv6 toward h6");
  t.true(!bindings.some((b) => b.vmId === "vm4"), `the engine binds vm4 nowhere yet: ${JSON.stringify(bindings)}`);
  test.log(`pre-copy window: ${s1.echoed - s0.echoed} echoes at h4, r1 encap-4in4 +${k1.r1Encap4in4 - k0.r1Encap4in4}, engine encap-4in6 +${k1.engineEncap4in6 - k0.engineEncap4in6}`);

  release();
  const m = await move;
  t.is(m.status, "completed", "the migration completed");
  const arrival = await waitForHandover(h.lab, "h6", "vm4", from, 10_000);
  t.true(arrival.ok === true && arrival.activation === "rarp", `h6 activated vm4 on its RARP: ${JSON.stringify(arrival)}`);
  const a = await c.fresh(5_000);
  const b = await c.fresh();
  checkSession(t, "c4 → vm4 after the switch", c, a, b);
  t.true((await counters()).r1Bindings === 1, "r1 holds vm4's binding after the switch");

  const homeFrom = logSize(logPath(h.lab, "agent-h4"));
  await migrate(h.prefix, "vm4", "h4");
  const back = await waitForHandover(h.lab, "h4", "vm4", homeFrom);
  t.true(back.ok === true && back.direction === "home", `vm4 is home: ${JSON.stringify(back)}`);
  await endSessions(t, [{ label: "c4 → vm4", client: c }]);
  t.done();
});

// vm6 is cancelled on its way to h4, vm4 fails on its way to h6 (its destination QEMU killed).
const ABORTS = [
  { mode: "cancel", vm: "vm6", home: "h6", dest: "h4", client: "c6", address: VM6 },
  { mode: "fail", vm: "vm4", home: "h4", dest: "h6", client: "c4", address: VM4 },
] as const;
for (const { mode, vm, home, dest, client, address } of ABORTS) {
  live(`a ${mode === "cancel" ? "cancelled" : "failed"} migration of ${vm}: reachable at ${home} throughout, the agent on ${dest} aborts, nothing is left`, async (test) => {
    const t = new SoftChecks(test);
    const h = handle!;
    const before = await state();
    const c = await SessionClient.start(h, client, address, GUEST_SERVICES.tcpEcho);
    const first = await c.fresh();
    const mark = c.lines.length;
    const destLog = logPath(h.lab, `agent-${dest}`);
    const from = logSize(destLog);
    const m: Migration = await migrate(h.prefix, vm, dest, mode === "cancel" ? { cancelAfterMs: 800 } : { failAfterMs: 800 });
    t.is(m.status, mode === "cancel" ? "cancelled" : "failed", `the migration was ${mode === "cancel" ? "cancelled" : "failed"}`);
    t.is(await vmHost(h.prefix, vm), home, `${vm} still runs at ${home}`);
    const records = readLog(destLog, from);
    t.true(records.some((r) => r.msg === "migration prepared" && r.vmId === vm), `${dest} had prepared ${vm} before the abort`);
    await t.wait(waitForLog(destLog, `${vm} aborted on ${dest}`, (r) => r.msg === "migration aborted" && r.vmId === vm, from, 10_000));
    const rec = await waitForHandover(h.lab, dest, vm, from);
    t.true(rec.aborted === true && rec.ok === false && rec.activatedMs === undefined, `${dest} never activated ${vm}: ${JSON.stringify(rec)}`);
    await sleep(500);
    const last = await c.fresh();
    checkSession(t, `${client} → ${vm} through the ${mode}`, c, first, last);
    const gap = c.gapSince(mark);
    test.log(`longest echo gap from the migration's start to 0.5 s after the abort: ${gap} ms (QEMU: ${JSON.stringify(m.qemu)})`);
    // Diverted traffic would stay lost until the abort undid the rules, 800 ms or more after the
    // start; an echo gap under half of that says the VM stayed reachable where it ran. (100 ms was
    // too tight for a loaded machine, where a TCG guest's echo can pause 130 ms on its own.)
    t.true(gap <= 400, `no echo gap over 400 ms while the migration ran and was undone (longest ${gap} ms)`);
    await endSessions(t, [{ label: `${client} → ${vm}`, client: c }]);
    await stateBack(t, `after the ${mode}`, before);
    t.done();
  });
}

live("five round trips of vm4 between h4 and h6: both clients' sessions survive every move, and nothing is left after", async (test) => {
  const t = new SoftChecks(test);
  const h = handle!;
  const via6 = await vm4FromC6();
  const before = await state();
  const clients = [
    { label: "c4 → vm4", client: await SessionClient.start(h, "c4", VM4, GUEST_SERVICES.tcpEcho) },
    { label: `c6 → vm4 (${via6})`, client: await SessionClient.start(h, "c6", via6, GUEST_SERVICES.tcpEcho) },
  ];
  let last = await Promise.all(clients.map((x) => x.client.fresh()));
  const moves: string[] = [];
  for (let round = 1; round <= 5; round++) {
    for (const to of ["h6", "h4"] as HostRole[]) {
      const from = logSize(logPath(h.lab, `agent-${to}`));
      const m = await migrate(h.prefix, "vm4", to);
      const rec = await waitForHandover(h.lab, to, "vm4", from);
      t.true(m.status === "completed" && rec.ok === true, `round ${round}, vm4 → ${to}: ${m.status}, handover ${JSON.stringify(rec)}`);
      moves.push(`${to} (QEMU downtime ${m.qemu.downtimeMs} ms)`);
      const now = await Promise.all(clients.map((x) => x.client.fresh(5_000)));
      for (const [i, x] of clients.entries()) checkSession(t, `${x.label}, round ${round} at ${to}`, x.client, last[i], now[i]);
      last = now;
    }
  }
  test.log(`moves: ${moves.join(", ")}`);
  await endSessions(t, clients);
  await stateBack(t, "after five round trips", before);
  t.done();
});
