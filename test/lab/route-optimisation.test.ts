// Route optimisation by counting (issue 4, "How it is checked"; paper flow 3.2 k–m): vm6 moves
// from the IPv6 network to h4 with an IPv6 client (c6) and an IPv4 client (c4) talking to it.
// The triangle through the home agent r2 comes first; once the agent's binding updates to both
// correspondents are accepted, the engine sends their packets IPv6-in-IPv4 straight to the VM:
// r2's 6in6 tunnel and the engine's re-encapsulation of it stop counting, while the engine's
// direct 6in4 tunnel counts at least the packets the sessions need. Back home, the shortcut ends
// with the engine's rules and the sessions go on, the same connections.
import anyTest, { type TestFn } from "ava";
import { migrate } from "../../deploy/lab/qemu.js";
import { GUEST_SERVICES, LAB_PLAN } from "../../deploy/lab/topology.js";
import { ipv6FromBytes, parseCidr6, parseIPv4 } from "../../lib/net/address.js";
import { embedIPv4 } from "../../lib/net/rfc6052.js";
import {
  LAB_ENDPOINTS, SoftChecks, SessionClient, checkSession, endSessions, labUnavailable, logPath, logSize, metric, readMetrics, sleep, useLab,
  waitForHandover, waitForLog, type LabHandle,
} from "../helpers/lab.js";

const test = anyTest as TestFn<unknown>;
const unavailable = labUnavailable();
if (unavailable) console.log(`test/lab/route-optimisation: skipped, ${unavailable}`);
const live = unavailable ? test.serial.skip : test.serial;
const handle: LabHandle | undefined = unavailable ? undefined : useLab(test);

const VM6 = LAB_PLAN.vms.vm6.homeAddress.split("/")[0];
const C6 = LAB_PLAN.clients.c6.address.split("/")[0];
const C4 = LAB_PLAN.clients.c4.address.split("/")[0];
/** The guest's own TCP echo (deploy/lab/guest/init). */
const PORT = GUEST_SERVICES.tcpEcho;
/** How long each counting window lasts. */
const WINDOW_MS = 1_500;

const ACTIONS = "mip46_dataplane_action_packets_total";

interface Counts {
  /** r2 tunnels to the care-of address: the triangle through the home agent. */
  haEncap6in6: number;
  /** The engine re-encapsulates r2's tunnel toward the VM's IPv4 care-of address. */
  engineReencap: number;
  /** The engine's own 6in4 tunnel to the VM: the shortcut (and the binding acknowledgements). */
  engineEncap6in4: number;
  /** Binding updates to correspondents the engine took. */
  engineBindings: number;
}

async function counts(prefix: string): Promise<Counts> {
  const [ha, engine] = await Promise.all([readMetrics(prefix, LAB_ENDPOINTS.r2Metrics), readMetrics(prefix, LAB_ENDPOINTS.engineWorkerMetrics)]);
  return {
    haEncap6in6: metric(ha, ACTIONS, { action: "encap-6in6" }),
    engineReencap: metric(engine, ACTIONS, { action: "reencap-6in6-6in4" }),
    engineEncap6in4: metric(engine, ACTIONS, { action: "encap-6in4" }),
    engineBindings: metric(engine, ACTIONS, { action: "correspondent-binding" }),
  };
}

/** A session's state at the end of a window, against its start. */

live("3.2 k–m: after the binding updates, vm6's correspondents reach it without passing the home agent", async (test) => {
  const t = new SoftChecks(test);
  const h = handle!;
  const { prefix, lab } = h;
  const started = Date.now();
  const step = (what: string) => test.log(`${((Date.now() - started) / 1000).toFixed(1)} s: ${what}`);

  // The engine maps both correspondents: c6 so that it can hold a binding for it, vm6 for the
  // pool address c4 reaches it at. c4's IPv6 form is its address behind the translation prefix.
  await h.rpc("mapCorrespondent", { ipv6Address: C6 });
  const pool = (await h.rpc<{ ipv4Address: string }>("mapCorrespondent", { ipv6Address: VM6 })).ipv4Address;
  const prefix6 = parseCidr6(LAB_PLAN.engine.translationPrefix6, "translationPrefix6");
  const c4As6 = ipv6FromBytes(embedIPv4(prefix6.network.bytes, prefix6.length, parseIPv4(C4, "c4").bytes)).text;

  const clients = [
    { label: `IPv6 client (c6 → ${VM6})`, client: await SessionClient.start(h, "c6", VM6, PORT) },
    { label: `IPv4 client (c4 → ${pool})`, client: await SessionClient.start(h, "c4", pool, PORT) },
  ];
  step("sessions open");
  const beforeMove = await Promise.all(clients.map((x) => x.client.fresh()));
  for (const [i, x] of clients.entries()) t.true(beforeMove[i].connected && beforeMove[i].mismatches === 0, `${x.label}: runs before the migration (${JSON.stringify(beforeMove[i])})`);
  const atHome = await counts(prefix);

  // Away on h4: the triangle through r2 first, then the binding updates to both correspondents.
  const agentLog = logPath(lab, "agent-h4");
  const from = logSize(agentLog);
  await migrate(prefix, "vm6", "h4");
  const arrival = await waitForHandover(lab, "h4", "vm6", from);
  t.true(arrival.ok === true, `vm6: the handover on h4 is done: ${JSON.stringify(arrival)}`);
  step("handover done");
  const optimised = (cn: string) => waitForLog(agentLog, `route optimisation for ${cn} accepted`, (r) => r.msg === "route optimisation" && r.vmId === "vm6" && r.correspondent === cn && r.result === "accepted", from);
  const [triangle] = await Promise.all([counts(prefix), t.wait(optimised(C6)), t.wait(optimised(c4As6))]);
  step("route optimisation accepted");
  // Read as soon as the handover was logged; the first packet from each correspondent has to come
  // through r2, since that packet is what makes the agent send the binding update.
  t.true(triangle.haEncap6in6 > atHome.haEncap6in6, `the triangle came first: r2 tunnelled vm6's packets (encap-6in6: ${atHome.haEncap6in6} then ${triangle.haEncap6in6})`);

  // Let what was already in r2's tunnel drain, then count. The echo window sits inside the
  // counter window (counters read before the first status line and after the last).
  await sleep(300);
  const optStart = await counts(prefix);
  const echoStart = await Promise.all(clients.map((x) => x.client.fresh()));
  await sleep(WINDOW_MS);
  const echoEnd = await Promise.all(clients.map((x) => x.client.fresh()));
  const optEnd = await counts(prefix);
  const echoes = echoEnd.reduce((n, s, i) => n + s.echoed - echoStart[i].echoed, 0);
  step(`counted away: ${JSON.stringify(optStart)} then ${JSON.stringify(optEnd)}, ${echoes} echoes`);
  for (const [i, x] of clients.entries()) checkSession(t, `${x.label}, away on h4`, x.client, echoStart[i], echoEnd[i]);
  t.is(optEnd.haEncap6in6, optStart.haEncap6in6, "optimised, nothing passes r2's tunnel (encap-6in6)");
  t.is(optEnd.engineReencap, optStart.engineReencap, "optimised, the engine re-encapsulates nothing from r2 (reencap-6in6-6in4)");
  // Each echo needs at least one packet from its client to the VM; half leaves room for the
  // segments TCP coalesces.
  const direct = optEnd.engineEncap6in4 - optStart.engineEncap6in4;
  t.true(direct > echoes / 2, `optimised, the correspondents' packets take the engine's direct tunnel (encap-6in4 +${direct} for ${echoes} echoes)`);
  t.true(optEnd.engineBindings >= 2, `the engine took a binding for each correspondent (correspondent-binding: ${optEnd.engineBindings})`);

  // Home again: the engine's rules for vm6 go, and with them the shortcut.
  const homeFrom = logSize(logPath(lab, "agent-h6"));
  await migrate(prefix, "vm6", "h6");
  const back = await waitForHandover(lab, "h6", "vm6", homeFrom);
  t.true(back.ok === true && back.direction === "home", `vm6: the home-coming on h6 is done: ${JSON.stringify(back)}`);
  step("home-coming done");
  await sleep(300);
  const homeStart = await counts(prefix);
  const homeEchoStart = await Promise.all(clients.map((x) => x.client.fresh()));
  await sleep(WINDOW_MS);
  const homeEchoEnd = await Promise.all(clients.map((x) => x.client.fresh()));
  const homeEnd = await counts(prefix);
  step(`counted home: ${JSON.stringify(homeStart)} then ${JSON.stringify(homeEnd)}`);
  t.is(homeEnd.engineEncap6in4, homeStart.engineEncap6in4, "home again, the shortcut ended (encap-6in4)");
  t.is(homeEnd.haEncap6in6, homeStart.haEncap6in6, "home again, nothing passes r2's tunnel (encap-6in6)");
  for (const [i, x] of clients.entries()) checkSession(t, `${x.label}, home again`, x.client, homeEchoStart[i], homeEchoEnd[i]);

  await endSessions(t, clients);
  step("done");
  t.done();
});
