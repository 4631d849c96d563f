// A handover that survives an engine outage (issue 11 §5), on QEMU guests with every process
// running: the engine is killed (-9), vm4 is live-migrated to h6, and the engine started again;
// h6's agent, which kept asking, completes the handover and the TCP session opened before goes on.
// Then the engine is killed again and vm4 comes home: the VM is reachable at home while the
// engine is still away (the deregistration goes straight to r1), and once the engine is back the
// agent's RegisterMigration removes the binding.
import anyTest, { type TestFn } from "ava";
import { join } from "node:path";
import { REPO, startLabProcess } from "../../deploy/lab/lab.js";
import { alive, migrate } from "../../deploy/lab/qemu.js";
import { GUEST_SERVICES, LAB_PLAN } from "../../deploy/lab/topology.js";
import {
  LAB_ENDPOINTS, SessionClient, SoftChecks, checkSession, endSessions, labUnavailable, logPath, logSize, metric, readMetrics, sleep, useLab,
  waitFor, waitForHandover, type LabHandle, type SessionStatus,
} from "../helpers/lab.js";

const test = anyTest as TestFn<unknown>;
const unavailable = labUnavailable();
if (unavailable) console.log(`test/lab/engine-outage: skipped, ${unavailable}`);
const live = unavailable ? test.serial.skip : test.serial;
const handle: LabHandle | undefined = unavailable ? undefined : useLab(test);

const VM4 = LAB_PLAN.vms.vm4.homeAddress.split("/")[0];

/** Kills the lab's engine (-9) and waits until it is gone. */
async function killEngine(): Promise<void> {
  const lab = handle!.lab;
  const p = lab.processes.find((x) => x.name === "engine")!;
  process.kill(p.pid, "SIGKILL");
  await waitFor("the engine to end", () => !alive(p.pid), 10_000);
}

/** Starts the engine again on its store, as the lab started it; resolves when it serves. */
async function restartEngine(): Promise<number> {
  const lab = handle!.lab;
  const p = await startLabProcess(lab.prefix, "eng", "engine", [process.execPath, join(REPO, "bin/mip46-engine.js"), "--config", lab.files.engine], "engine started", join(lab.dir, "engine.log"));
  const i = lab.processes.findIndex((x) => x.name === "engine");
  lab.processes[i] = p;
  return Date.now();
}

/**
 * Waits until the session echoes again after an outage: TCP backs its retransmissions off
 * (1, 2, 4, 8 s ...), so the first echo may come seconds after the path is back.
 */
async function echoesAgain(c: SessionClient, after: number): Promise<SessionStatus> {
  return waitFor("the session to echo again", async () => {
    const s = await c.fresh(5_000);
    return s.echoed > after ? s : undefined;
  }, 45_000, 0);
}

const bindingOf = async (vm: string) => ((await handle!.rpc<{ bindings?: { vmId: string; hostId: string }[] }>("listBindings")).bindings ?? []).find((b) => b.vmId === vm);

live("vm4 moved while the engine is down: the handover completes once the engine is back, and the session goes on; home again with the engine down, it is reachable at once and unbound once the engine answers", async (test) => {
  const t = new SoftChecks(test);
  const h = handle!;
  const c = await SessionClient.start(h, "c4", VM4, GUEST_SERVICES.tcpEcho);
  const before = await c.fresh();

  // Away, with no engine.
  await killEngine();
  const awayFrom = logSize(logPath(h.lab, "agent-h6"));
  const m = await migrate(h.prefix, "vm4", "h6");
  t.is(m.status, "completed", "the live migration completed");
  await sleep(2_000);
  // The count once the session has stalled (vm4 runs at h6, nothing is registered yet).
  const stalled = (await c.fresh()).echoed;
  t.true(!(await readMetrics(h.prefix, LAB_ENDPOINTS.r1Metrics).then((r1) => metric(r1, "mip46_home_agent_bindings", { protocol: "mip4" }) > 0)), "no binding at r1 while the engine is away");
  const back = await restartEngine();
  const arrival = await waitForHandover(h.lab, "h6", "vm4", awayFrom, 30_000);
  const doneAt = (arrival.seenAtMs as number) + (arrival.registeredMs as number);
  test.log(`away: the handover completed ${doneAt - back} ms after the engine served again`);
  t.true(arrival.ok === true, `the handover on h6 completed: ${JSON.stringify(arrival)}`);
  t.is((await bindingOf("vm4"))?.hostId, "h6", "the engine binds vm4 at h6");
  // After a long outage the session comes back in bursts (TCP's backoff, then its slow start):
  // "goes on" is more echoes again after the first ones, each within the wait.
  const a = await echoesAgain(c, stalled);
  const b = await echoesAgain(c, a.echoed);
  checkSession(t, "c4 → vm4 after the outage, away", c, a, b);
  t.true(b.echoed > before.echoed, "echoes after the move");

  // Home, with no engine.
  await killEngine();
  const homeFrom = logSize(logPath(h.lab, "agent-h4"));
  await migrate(h.prefix, "vm4", "h4");
  await sleep(1_000);
  const h1 = await echoesAgain(c, (await c.fresh()).echoed);
  const h2 = await echoesAgain(c, h1.echoed);
  checkSession(t, "c4 → vm4 at home while the engine is still away", c, h1, h2);
  const back2 = await restartEngine();
  const home = await waitForHandover(h.lab, "h4", "vm4", homeFrom, 30_000);
  test.log(`home: RegisterMigration answered ${(home.seenAtMs as number) + (home.engineRulesMs as number) - back2} ms after the engine served again`);
  t.true(home.ok === true && home.direction === "home", `the home-coming completed: ${JSON.stringify(home)}`);
  t.is(await bindingOf("vm4"), undefined, "no binding left for vm4");
  t.is(metric(await readMetrics(h.prefix, LAB_ENDPOINTS.r1Metrics), "mip46_home_agent_bindings", { protocol: "mip4" }), 0, "r1 holds no binding");
  await endSessions(t, [{ label: "c4 → vm4", client: c }]);
  t.done();
});
