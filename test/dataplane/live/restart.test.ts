// Live: the worker takes its table from a real engine through the rule push, is killed in the
// middle of a stream of tunnel packets, is started again, gets its table back from the engine and
// forwards again; then the engine goes away and the worker keeps forwarding with its last table.
// The engine runs in this process on a unix socket, which the worker in its network namespace
// reaches through the file system (a TCP loopback address of the root namespace it could not).
import { spawn } from "node:child_process";
import { join } from "node:path";
import test from "ava";
import { connectControl } from "../../../clients/control.js";
import { silentLogger } from "../../../lib/log.js";
import { parseConfig } from "../../../services/config/config.js";
import { runEngine } from "../../../services/engine/run.js";
import { hostOn, labConfig } from "../../../harness/engine.js";
import { NetnsLab, netnsAvailable } from "../../../harness/netns.js";
import { until } from "./wait.js";
import { scapyBuild } from "../../helpers/scapy.js";
import { captureFrames, configureHost, createTopology, FRAMES_PY, metricValue, startWorker, SYSTEM_PYTHON, workerMetricsText } from "../../../harness/topology.js";

const live = netnsAvailable() ? test : test.skip;

live("a restarted worker gets its table back from the engine and forwards again; without the engine it keeps its table", async (t) => {
  const topo = await createTopology(t);
  const socket = join(topo.dir, "engine.sock");
  const engine = await runEngine(parseConfig(labConfig(topo.dir, { listen: `unix:${socket}` })), silentLogger);
  let engineStopped = false;
  t.teardown(async () => {
    if (!engineStopped) await engine.stop();
  });
  const control = connectControl(`unix:${socket}`);
  t.teardown(() => control.close());

  // Flow 3.1: the IPv4 VM 192.0.2.1 moved onto an IPv6 host; r1 (192.0.2.2) tunnels to its pool address.
  await control.heartbeat(hostOn(6, "h6"));
  const careOf = await control.allocateCareOf({ hostId: "h6", vmId: "vm-a", homeAddress: "192.0.2.1" });
  await control.registerMigration({
    vmId: "vm-a", homeAddress: "192.0.2.1", homeAgent: "192.0.2.2", sourceHostId: "h4", destinationHostId: "h6",
    careOfIpv4: careOf.careOfIpv4, careOfIpv6: careOf.careOfIpv6,
  });
  const revision = Number((await control.getRuleTable({})).revision);
  t.true(revision > 0);

  await configureHost(topo, topo.sender, "s0", ["192.0.2.2/24"]);
  await configureHost(topo, topo.receiver, "r0", [`${careOf.careOfIpv6}/64`]);
  const config = {
    workerId: "live-restart", engines: [`unix:${socket}`],
    interfaces: [{ name: "w0", addresses: ["192.0.2.254/24"] }, { name: "w1", addresses: ["2001:db8:1::fe/64"] }],
    served: ["198.51.100.0/24"],
  };
  const applied = (log: string) => log.includes(`"msg":"rule table applied"`) && log.includes(`"source":"engine","revision":"${revision}"`);
  const first = await startWorker(topo, config, undefined, "first");
  await until("the first worker's table", () => applied(first.log()));

  // 1,200 frames at 20 per second: a minute of stream, so that a loaded machine still has some left
  // for the second worker and the engine's absence.
  const frames = scapyBuild(Array.from({ length: 1200 }, (_, i) =>
    `Ether(src='${topo.macs.s0}', dst='${topo.macs.w0}')/IP(src='192.0.2.2', dst='${careOf.careOfIpv4}')/IP(src='203.0.113.10', dst='192.0.2.1')/UDP(sport=5555, dport=4010)/Raw(b'm46-stream-${String(i).padStart(4, "0")}')`));
  const capture = await captureFrames(topo, new TextEncoder().encode("m46-stream-"), 1300, 90);
  const stream = spawn("ip", ["netns", "exec", topo.sender, SYSTEM_PYTHON, FRAMES_PY, "stream", "s0", "0.05"], { stdio: ["pipe", "ignore", "ignore"] });
  topo.lab.track(stream);
  stream.stdin!.end(frames.map((f) => Buffer.from(f).toString("hex")).join("\n") + "\n");

  await until("packets through the first worker", () => capture.lines.length >= 5);
  first.child.kill("SIGKILL");
  await new Promise((r) => first.child.once("exit", r));
  const atKill = capture.lines.length;

  const second = await startWorker(topo, config, undefined, "second");
  await until("the second worker's table from the engine", () => applied(second.log()));
  const atRestart = capture.lines.length;
  await until("packets through the second worker", () => capture.lines.length >= atRestart + 5);
  t.true(atKill >= 5 && capture.lines.length >= atRestart + 5, `packets through both workers: ${atKill} before the kill, ${atRestart} when the new worker had its table, ${capture.lines.length} now`);

  await engine.stop();
  engineStopped = true;
  const atEngineGone = capture.lines.length;
  await until("packets with the engine gone", () => capture.lines.length >= atEngineGone + 5);
  let m = "";
  await until("the worker to notice the engine is gone", async () => {
    m = await workerMetricsText(topo, second.metricsPort);
    return metricValue(m, "mip46_dataplane_engine_connected") === 0;
  });
  t.is(metricValue(m, "mip46_dataplane_rules_revision"), revision, "the last table is kept");
  const atNoticed = capture.lines.length;
  await until("packets after the worker noticed", () => capture.lines.length >= atNoticed + 5);
  t.true((metricValue(m, 'mip46_dataplane_action_packets_total{action="reencap-4in4-4in6"}') ?? 0) >= 10);

  // Every frame that arrived is the re-encapsulated stream, in order, without duplicates.
  const seqs = capture.lines.map((hex) => Number(/6d34362d73747265616d2d([0-9a-f]{8})/.exec(hex)![1].match(/../g)!.map((h) => String.fromCharCode(parseInt(h, 16))).join("")));
  t.deepEqual(seqs, [...seqs].sort((a, b) => a - b));
  t.is(new Set(seqs).size, seqs.length);
  await NetnsLab.stop(stream, 100);
});
