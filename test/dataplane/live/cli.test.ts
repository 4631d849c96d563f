// The worker executable and its pieces that need no namespace: --help, configuration errors that
// name the field, the offline mode through the command line, the host check, the table file.
import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import test from "ava";
import { parseWorkerConfig, WorkerConfigError } from "../../../dataplane/worker/config.js";
import { checkHost } from "../../../dataplane/worker/hostcheck.js";
import { loadRuleTableFile, RuleTableFileError } from "../../../dataplane/worker/table.js";
import { readPcap, writePcapFile, LINKTYPE_ETHERNET } from "../../helpers/pcap.js";
import { scapy } from "../../helpers/scapy.js";
import { decodeWithTshark, frameProtocols } from "../../helpers/tshark.js";

function runCli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, ["bin/mip46-dataplane.js", ...args], { timeout: 60_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === "number" ? err.code : 1) : 0, stdout, stderr });
    });
  });
}

function tempDir(t: { teardown(fn: () => void): void }): string {
  const dir = mkdtempSync(join(tmpdir(), "m46-cli-"));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

test("--help prints the usage and exits 0", async (t) => {
  const r = await runCli(["--help"]);
  t.is(r.code, 0);
  t.regex(r.stdout, /Usage: mip46-dataplane --config FILE/);
  t.regex(r.stdout, /--offline --in FILE --table FILE --out FILE/);
});

test("a configuration error names the key and exits 1", async (t) => {
  const dir = tempDir(t);
  const path = join(dir, "bad.yaml");
  writeFileSync(path, "workerId: w\nengines: ['not an address']\ninterfaces: [{ name: lo }]\n");
  const r = await runCli(["--config", path]);
  t.is(r.code, 1);
  t.regex(r.stderr, /"msg":"configuration refused".*engines: must be a list/);
});

test("parseWorkerConfig: defaults, pass-through of the forwarder settings, and field-named errors", (t) => {
  const c = parseWorkerConfig({
    workerId: "w", engines: ["[::1]:50046", "unix:/run/e.sock"], interfaces: [{ name: "eth1", addresses: ["192.0.2.254/24"] }],
    served: ["198.51.100.0/24"], translator: { lowestIpv6Mtu: 1280 },
  });
  t.deepEqual(c.capture, { backend: "ring", bufferBytes: 64 << 20, maxBatch: 1024 }, "the ring backend is the default");
  t.is(c.metricsListen, "127.0.0.1:9047");
  t.deepEqual(c.forwarder, { served: ["198.51.100.0/24"], translator: { lowestIpv6Mtu: 1280 } });
  t.throws(() => parseWorkerConfig({ interfaces: [{ name: "x" }] }), { instanceOf: WorkerConfigError, message: /^workerId:/ });
  t.throws(() => parseWorkerConfig({ workerId: "w", interfaces: [] }), { message: /^interfaces:/ });
  t.throws(() => parseWorkerConfig({ workerId: "w", interfaces: [{ name: "x" }], capture: { bufferBytes: -1 } }), { message: /^capture.bufferBytes:/ });
  t.throws(() => parseWorkerConfig({ workerId: "w", interfaces: [{ name: "x" }], rutes: [] }), { message: /^rutes: unknown key/ });
});

test("workers: 1 by default, 1..64 forwarding threads, anything else refused naming the key; a worker shared with a control plane refuses more than one", async (t) => {
  const base = { workerId: "w", interfaces: [{ name: "lo" }] };
  t.is(parseWorkerConfig(base).workers, 1);
  t.is(parseWorkerConfig({ ...base, workers: 4 }).workers, 4);
  t.false("workers" in parseWorkerConfig({ ...base, workers: 4 }).forwarder, "not passed on to the forwarder");
  for (const bad of [0, 65, 1.5, "2"]) {
    t.throws(() => parseWorkerConfig({ ...base, workers: bad }), { instanceOf: WorkerConfigError, message: /^workers: must be an integer in 1\.\.64/ }, JSON.stringify(bad));
  }
  // runWorker is the in-process worker a home agent or the agent shares: one thread only.
  const { runWorker } = await import("../../../dataplane/worker/worker.js");
  const { silentLogger } = await import("../../../lib/log.js");
  await t.throwsAsync(runWorker(parseWorkerConfig({ ...base, workers: 2 }), silentLogger, { skipHostCheck: true }), { instanceOf: WorkerConfigError, message: /^workers: .*needs workers: 1/ });
});

test("the host check reports forwarding, IPv6 and addresses on worker interfaces", (t) => {
  const sys: Record<string, string> = {
    "/proc/sys/net/ipv4/ip_forward": "1",
    "/proc/sys/net/ipv6/conf/all/forwarding": "0",
    "/proc/sys/net/ipv6/conf/eth1/disable_ipv6": "0",
    "/proc/sys/net/ipv6/conf/eth2/disable_ipv6": "1",
  };
  const problems = checkHost(["eth1", "eth2"], (p) => sys[p], (name) => (name === "eth2" ? ["192.0.2.254/24"] : []));
  t.deepEqual(problems.map((p) => [p.setting, p.interface, p.found]), [
    ["net.ipv4.ip_forward", undefined, "1"],
    ["net.ipv6.conf.eth1.disable_ipv6", "eth1", "0"],
    ["addresses", "eth2", "192.0.2.254/24"],
  ]);
  sys["/proc/sys/net/ipv4/ip_forward"] = "0";
  sys["/proc/sys/net/ipv6/conf/eth1/disable_ipv6"] = "1";
  t.deepEqual(checkHost(["eth1", "eth2"], (p) => sys[p], () => []), []);
});

test("a table file: revision and rules are read, a bad rule is refused with its index", (t) => {
  const dir = tempDir(t);
  const good = join(dir, "good.json");
  writeFileSync(good, JSON.stringify({ revision: 3, rules: [{ key: "p", kind: "translation-prefix", prefix: "2001:db8:64::/96" }] }));
  t.deepEqual(loadRuleTableFile(good), { revision: 3n, rules: [{ key: "p", kind: "translation-prefix", prefix: "2001:db8:64::/96" }] });
  const bad = join(dir, "bad.json");
  writeFileSync(bad, JSON.stringify({ revision: 3, rules: [{ key: "p", kind: "translation-prefix", prefix: "2001:db8:64::/95" }] }));
  t.throws(() => loadRuleTableFile(bad), { instanceOf: RuleTableFileError, message: /rules\[0\]/ });
});

test("--offline runs a pcap through the pipeline: flow 3.1 j out of a scapy-built IPv4-in-IPv4 frame", async (t) => {
  const dir = tempDir(t);
  const input = join(dir, "in.pcap");
  const output = join(dir, "out.pcap");
  writePcapFile(input, [scapy("Ether(src='02:00:00:00:04:10', dst='02:00:00:00:04:01')/IP(src='192.0.2.10', dst='198.51.100.10')/IP(src='203.0.113.10', dst='192.0.2.1')/UDP(sport=5555, dport=80)/Raw(b'offline')")], LINKTYPE_ETHERNET);
  const r = await runCli(["--offline", "--in", input, "--table", "dataplane/offline/example-table.json", "--out", output, "--ingress", "v4"]);
  t.is(r.code, 0, r.stderr);
  t.regex(r.stderr, /"msg":"offline run done".*"framesIn":1,"framesOut":1/);
  const out = readPcap(readFileSync(output));
  t.is(out.frames.length, 1);
  const decoded = decodeWithTshark(out.frames);
  t.deepEqual(decoded.problems, []);
  t.is(frameProtocols(decoded)[0], "eth:ethertype:ipv6:ip:udp:data");
});

test("--offline without --out is refused with the usage", async (t) => {
  const r = await runCli(["--offline", "--in", "x.pcap", "--table", "t.json"]);
  t.is(r.code, 2);
  t.regex(r.stderr, /--offline needs --in, --table and --out/);
});
