// The lab's VMs as QEMU guests (issue 9, parts 1 and 2), with every mip46 process running: a
// guest answers ping, the TCP echo and the UDP echo from the client namespaces; a live migration
// between h4 and h6 keeps a TCP connection to it open, every echo checked, and reports QEMU's
// figures; a cancelled and a failed migration leave the guest running at its source and nothing
// behind at the destination (no QEMU, no tap, no socket).
import anyTest, { type TestFn } from "ava";
import { existsSync, readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { exec } from "../../deploy/lab/netns.js";
import { migrate, readGuest, vmHost } from "../../deploy/lab/qemu.js";
import { Qmp } from "../../deploy/lab/qmp.js";
import { GUEST_SERVICES, LAB_PLAN } from "../../deploy/lab/topology.js";
import { REPO } from "../../deploy/lab/lab.js";
import { SessionClient, SoftChecks, checkSession, endSessions, labUnavailable, sleep, useLab, type LabHandle } from "../helpers/lab.js";

const test = anyTest as TestFn<unknown>;
const unavailable = labUnavailable();
if (unavailable) console.log(`test/lab/guest: skipped, ${unavailable}`);
const live = unavailable ? test.serial.skip : test.serial;
const handle: LabHandle | undefined = unavailable ? undefined : useLab(test);

const VM4 = LAB_PLAN.vms.vm4.homeAddress.split("/")[0];
const VM6 = LAB_PLAN.vms.vm6.homeAddress.split("/")[0];
const PROBE = join(REPO, "deploy/lab/apps/probe.mjs");
const alive = (pid: number) => existsSync(`/proc/${pid}`);

async function udpReplies(ns: "c4" | "c6", host: string): Promise<{ sent: number; received: number }> {
  const { stdout } = await exec(handle!.prefix, ns, [process.execPath, PROBE, "send", host, String(GUEST_SERVICES.udpEcho), "100", "500"], { timeoutMs: 15_000 });
  return JSON.parse(stdout.trim().split("\n").at(-1)!) as { sent: number; received: number };
}

async function tapsOf(host: "h4" | "h6"): Promise<string> {
  return (await exec(handle!.prefix, host, ["ip", "-o", "link", "show"])).stdout;
}

live("the guests answer ping, the TCP echo and the UDP echo from the client namespaces", async (test) => {
  const t = new SoftChecks(test);
  const h = handle!;
  await exec(h.prefix, "c4", ["ping", "-n", "-c", "2", "-W", "3", VM4]).then(() => t.true(true, ""), (e: Error) => t.true(false, `c4 pings vm4: ${e.message}`));
  await exec(h.prefix, "c6", ["ping", "-6", "-n", "-c", "2", "-W", "3", VM6]).then(() => t.true(true, ""), (e: Error) => t.true(false, `c6 pings vm6: ${e.message}`));
  for (const [ns, host] of [["c4", VM4], ["c6", VM6]] as const) {
    const c = await SessionClient.start(h, ns, host, GUEST_SERVICES.tcpEcho);
    const first = await c.fresh();
    const next = await c.fresh();
    checkSession(t, `TCP echo ${ns} → ${host}`, c, first, next);
    await endSessions(t, [{ label: `TCP echo ${ns} → ${host}`, client: c }]);
    const u = await udpReplies(ns, host);
    t.true(u.sent > 0 && u.received >= u.sent - 2, `UDP echo ${ns} → ${host}: ${u.received}/${u.sent} replies`);
  }
  t.done();
});

live("a live migration of vm4 to h6 and back keeps a TCP connection open and reports QEMU's figures", async (test) => {
  const t = new SoftChecks(test);
  const h = handle!;
  const c = await SessionClient.start(h, "c4", VM4, GUEST_SERVICES.tcpEcho);
  const before = await c.fresh();
  for (const to of ["h6", "h4"] as const) {
    const m = await migrate(h.prefix, "vm4", to);
    test.log(`vm4 → ${to}: ${JSON.stringify(m.qemu)}, destination up ${(m.destinationUpAt - m.startedAt).toFixed(1)} ms after the start`);
    t.is(m.status, "completed", `vm4 → ${to}: completed`);
    t.true((m.qemu.totalTimeMs ?? 0) > 0 && typeof m.qemu.downtimeMs === "number" && typeof m.qemu.setupTimeMs === "number", `vm4 → ${to}: QEMU's figures ${JSON.stringify(m.qemu)}`);
    t.is(await vmHost(h.prefix, "vm4"), to, `vm4 runs on ${to}`);
    t.true(!(await tapsOf(to === "h6" ? "h4" : "h6")).includes("vp-vm4"), `vm4's tap left ${to === "h6" ? "h4" : "h6"}`);
    const a = await c.fresh(5_000);
    const b = await c.fresh(5_000);
    checkSession(t, `c4's session after vm4 → ${to}`, c, a, b);
  }
  t.true((await c.fresh()).echoed > before.echoed, "more echoes than before");
  await endSessions(t, [{ label: "c4 → vm4", client: c }]);
  t.done();
});

// One VM per abort. This is the hypervisor's side (QEMU and the lab); the agents' side of an
// abort (the destination prepares, then undoes it, and nothing is diverted or left) is
// test/lab/live-migration.test.ts.
const ABORTS = [
  { mode: "cancel", vm: "vm6", home: "h6", dest: "h4", client: "c6", address: VM6 },
  { mode: "fail", vm: "vm4", home: "h4", dest: "h6", client: "c4", address: VM4 },
] as const;
for (const { mode, vm, home, dest, client, address } of ABORTS) {
  live(`a ${mode === "cancel" ? "cancelled" : "failed"} migration of ${vm} leaves it running at ${home} and nothing at ${dest}`, async (test) => {
    const t = new SoftChecks(test);
    const h = handle!;
    const source = readGuest(h.prefix, vm);
    const c = await SessionClient.start(h, client, address, GUEST_SERVICES.tcpEcho);
    const before = await c.fresh();
    const m = await migrate(h.prefix, vm, dest, mode === "cancel" ? { cancelAfterMs: 300 } : { failAfterMs: 300 });
    t.is(m.status, mode === "cancel" ? "cancelled" : "failed", `the migration was ${mode === "cancel" ? "cancelled" : "failed"}: ${JSON.stringify(m)}`);
    t.is(await vmHost(h.prefix, vm), home, `${vm} is still on ${home}`);
    t.is(readGuest(h.prefix, vm).pid, source.pid, "the same QEMU runs it");
    const q = await Qmp.open(source.qmp);
    t.is((await q.execute<{ status: string }>("query-status")).status, "running", "the source guest runs");
    q.close();
    t.true(!(await tapsOf(dest)).includes(`vp-${vm}`), `no tap for ${vm} on ${dest}`);
    const left = readdirSync(h.lab.dir).filter((f) => f.endsWith(`${vm}-${dest}.sock`) || f.endsWith(`${vm}-${dest}.pid`) || f === `migrate-${vm}.sock`);
    t.deepEqual(left, [], "no socket or pid file of a destination QEMU");
    t.true(readdirSync("/proc").filter((p) => /^\d+$/.test(p) && alive(Number(p))).every((p) => {
      try { return !cmdline(Number(p)).includes(join(h.lab.dir, `qmp-${vm}-${dest}.sock`)); } catch { return true; }
    }), "no destination QEMU process");
    await sleep(500);
    const after = await c.fresh();
    checkSession(t, `${client}'s session through the ${mode}`, c, before, after);
    await endSessions(t, [{ label: `${client} → ${vm}`, client: c }]);
    t.done();
  });
}

function cmdline(pid: number): string {
  return readFileSync(`/proc/${pid}/cmdline`, "utf8");
}
