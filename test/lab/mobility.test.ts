// The four cases of the paper end to end in the lab (issue 4, "How it is checked"): a TCP session
// opened before a live migration keeps running after it, the same connection with every byte
// echoed back in order, while the home agent tunnels it; and a migration back home restores the
// direct path: no binding left in the engine or the home agent, and the home agent's tunnel
// counter stops while the session goes on.
//   3.1 (vm4, IPv4, from h4 to h6) with the IPv4 client c4 and the IPv6 client c6;
//   3.2 (vm6, IPv6, from h6 to h4) with the IPv6 client c6 and the IPv4 client c4.
// Both clients of a case run against the VM at once. Route optimisation is not tested here.
import anyTest, { type ExecutionContext, type TestFn } from "ava";
import { migrate } from "../../deploy/lab/qemu.js";
import { GUEST_SERVICES, LAB_PLAN } from "../../deploy/lab/topology.js";
import { ipv6FromBytes, parseCidr6, parseIPv4 } from "../../lib/net/address.js";
import { embedIPv4 } from "../../lib/net/rfc6052.js";
import {
  LAB_ENDPOINTS, SoftChecks, SessionClient, checkSession, endSessions, labUnavailable, logPath, logSize, metric, readMetrics, sleep, useLab, waitFor,
  waitForHandover, type LabHandle,
} from "../helpers/lab.js";

const test = anyTest as TestFn<unknown>;
const unavailable = labUnavailable();
if (unavailable) console.log(`test/lab/mobility: skipped, ${unavailable}`);
const live = unavailable ? test.serial.skip : test.serial;
const handle: LabHandle | undefined = unavailable ? undefined : useLab(test);

interface Binding { vmId: string; hostId: string; careOfIpv4: string; careOfIpv6: string }

const listBindings = async () => (await handle!.rpc<{ bindings?: Binding[] }>("listBindings")).bindings ?? [];

interface VmCase {
  vm: "vm4" | "vm6";
  away: "h4" | "h6";
  home: "h4" | "h6";
  homeAgent: { metrics: string; protocol: "mip4" | "mip6"; encap: "encap-4in4" | "encap-6in6" };
  port: number;
  clients: { label: string; ns: "c4" | "c6"; host: () => Promise<string> }[];
}

const VM4 = LAB_PLAN.vms.vm4.homeAddress.split("/")[0];
const VM6 = LAB_PLAN.vms.vm6.homeAddress.split("/")[0];
const C6 = LAB_PLAN.clients.c6.address.split("/")[0];

/** A session's state after the handover, against one taken earlier in the same session. */

async function encapCount(c: VmCase): Promise<number> {
  return metric(await readMetrics(handle!.prefix, c.homeAgent.metrics), "mip46_dataplane_action_packets_total", { action: c.homeAgent.encap });
}

async function runCase(test: ExecutionContext, c: VmCase): Promise<void> {
  const t = new SoftChecks(test);
  const h = handle!;
  const started = Date.now();
  const step = (what: string) => test.log(`${((Date.now() - started) / 1000).toFixed(1)} s: ${what}`);
  const { prefix, lab } = h;
  // The guest serves the TCP echo itself (deploy/lab/guest/init).
  const clients = await Promise.all(c.clients.map(async (spec) => {
    const host = await spec.host();
    return { label: `${spec.label} (${spec.ns} → ${host})`, client: await SessionClient.start(h, spec.ns, host, c.port) };
  }));
  step("sessions open");
  await sleep(1_000);
  const beforeMove = await Promise.all(clients.map((x) => x.client.fresh()));
  for (const [i, x] of clients.entries()) t.true(beforeMove[i].echoed > 0 && beforeMove[i].mismatches === 0, `${x.label}: runs before the migration (${JSON.stringify(beforeMove[i])})`);
  const encapAtHome = await encapCount(c);

  // Away: the destination agent allocates, registers through the engine, and the session goes on.
  const awayLog = logSize(logPath(lab, `agent-${c.away}`));
  await migrate(prefix, c.vm, c.away);
  const arrival = await waitForHandover(lab, c.away, c.vm, awayLog);
  t.true(arrival.ok === true, `${c.vm}: the handover on ${c.away} is done: ${JSON.stringify(arrival)}`);
  step("handover done");
  const afterHandover = await Promise.all(clients.map((x) => x.client.fresh()));
  await sleep(2_000);
  const away = await Promise.all(clients.map((x) => x.client.fresh()));
  for (const [i, x] of clients.entries()) {
    checkSession(t, `${x.label}, away on ${c.away}`, x.client, afterHandover[i], away[i]);
    t.true(away[i].echoed > beforeMove[i].echoed, `${x.label}: more echoes than before the migration`);
  }
  step("sessions checked away");
  const bindings = await listBindings();
  t.is(bindings.find((b) => b.vmId === c.vm)?.hostId, c.away, `the engine binds ${c.vm} on ${c.away}: ${JSON.stringify(bindings)}`);
  const haAway = await readMetrics(prefix, c.homeAgent.metrics);
  t.is(metric(haAway, "mip46_home_agent_bindings", { protocol: c.homeAgent.protocol }), 1, "the home agent holds one binding");
  const encapAway = metric(haAway, "mip46_dataplane_action_packets_total", { action: c.homeAgent.encap });
  t.true(encapAway > encapAtHome, `away, the session passes the home agent (${c.homeAgent.encap}: ${encapAtHome} then ${encapAway})`);

  // Home again: deregistered, the engine's binding gone, the home agent out of the path.
  const homeLog = logSize(logPath(lab, `agent-${c.home}`));
  await migrate(prefix, c.vm, c.home);
  const back = await waitForHandover(lab, c.home, c.vm, homeLog);
  t.true(back.ok === true && back.direction === "home", `${c.vm}: the home-coming on ${c.home} is done: ${JSON.stringify(back)}`);
  step("home-coming handled");
  await t.wait(waitFor(`the engine to drop ${c.vm}'s binding`, async () => !(await listBindings()).some((b) => b.vmId === c.vm), 3_000));
  await t.wait(waitFor("the home agent to hold no binding", async () => metric(await readMetrics(prefix, c.homeAgent.metrics), "mip46_home_agent_bindings", { protocol: c.homeAgent.protocol }) === 0, 3_000));
  step("bindings checked");
  // Let what was already in flight through the tunnel drain before counting.
  await sleep(300);
  const homeStart = await Promise.all(clients.map((x) => x.client.fresh()));
  const encapHomeStart = await encapCount(c);
  await sleep(1_500);
  const homeEnd = await Promise.all(clients.map((x) => x.client.fresh()));
  const encapHomeEnd = await encapCount(c);
  t.is(encapHomeEnd, encapHomeStart, `home again, nothing passes the home agent's tunnel (${c.homeAgent.encap}: ${encapHomeStart} then ${encapHomeEnd})`);
  for (const [i, x] of clients.entries()) checkSession(t, `${x.label}, home again`, x.client, homeStart[i], homeEnd[i]);

  await endSessions(t, clients);
  step("done");
  t.done();
}

live("3.1: vm4 moves from the IPv4 network to the IPv6 network and back, with an IPv4 and an IPv6 client", async (t) => {
  await runCase(t, {
    vm: "vm4", away: "h6", home: "h4", port: GUEST_SERVICES.tcpEcho,
    homeAgent: { metrics: LAB_ENDPOINTS.r1Metrics, protocol: "mip4", encap: "encap-4in4" },
    clients: [
      { label: "3.1 IPv4 client", ns: "c4", host: async () => VM4 },
      {
        label: "3.1 IPv6 client", ns: "c6",
        host: async () => {
          // The engine maps the IPv6 client first; it then reaches vm4 at the translation prefix.
          await handle!.rpc("mapCorrespondent", { ipv6Address: C6 });
          const prefix6 = parseCidr6(LAB_PLAN.engine.translationPrefix6, "translationPrefix6");
          return ipv6FromBytes(embedIPv4(prefix6.network.bytes, prefix6.length, parseIPv4(VM4, "vm4").bytes)).text;
        },
      },
    ],
  });
});

live("3.2: vm6 moves from the IPv6 network to the IPv4 network and back, with an IPv6 and an IPv4 client", async (t) => {
  await runCase(t, {
    vm: "vm6", away: "h4", home: "h6", port: GUEST_SERVICES.tcpEcho,
    homeAgent: { metrics: LAB_ENDPOINTS.r2Metrics, protocol: "mip6", encap: "encap-6in6" },
    clients: [
      { label: "3.2 IPv6 client", ns: "c6", host: async () => VM6 },
      {
        label: "3.2 IPv4 client", ns: "c4",
        // The pool address the engine gives vm6; RegisterMigration keeps it when vm6 moves.
        host: async () => (await handle!.rpc<{ ipv4Address: string }>("mapCorrespondent", { ipv6Address: VM6 })).ipv4Address,
      },
    ],
  });
});
