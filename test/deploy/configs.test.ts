// Every configuration an operator is shown (deploy/examples/) and every one the lab writes
// (deploy/lab/configs.ts) is accepted, by its loader and by its daemon's --check; and each of
// the five kinds of configuration (engine, worker, home agent, agent, offline table) refuses an
// unknown key and a value of the wrong type, naming the path of the field (lib/config/schema.ts).
import test from "ava";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parse, stringify } from "yaml";
import { writeLabConfigs } from "../../deploy/lab/configs.js";
import { loadConfig, parseConfig } from "../../services/config/config.js";
import { ConfigError } from "../../services/errors.js";
import { loadWorkerConfig, parseWorkerConfig, WorkerConfigError } from "../../dataplane/worker/config.js";
import { HomeAgentConfigError, loadHomeAgentConfig, parseHomeAgentConfig } from "../../homeagent/config.js";
import { AgentConfigError, loadAgentConfig, parseAgentConfig } from "../../clients/agent/config.js";
import { OfflineTableError, parseOfflineTable } from "../../dataplane/offline/table.js";
import { ConfigFieldError } from "../../lib/config/schema.js";

const dir = mkdtempSync(join(tmpdir(), "m46-configs-"));
test.after.always(() => rmSync(dir, { recursive: true, force: true }));
const lab = writeLabConfigs(dir, "m46-configs");

const EXAMPLES = "deploy/examples";
const engineExamples = [
  ...readdirSync(EXAMPLES).filter((f) => f.startsWith("engine")).map((f) => join(EXAMPLES, f)),
  ...readdirSync(join(EXAMPLES, "cluster")).filter((f) => f.startsWith("engine")).map((f) => join(EXAMPLES, "cluster", f)),
];

/** Each file with the daemon that reads it and that daemon's loader. */
const FILES: { file: string; daemon: string; load: (path: string) => unknown }[] = [
  ...engineExamples.map((file) => ({ file, daemon: "mip46-engine", load: loadConfig })),
  { file: join(EXAMPLES, "dataplane.yaml"), daemon: "mip46-dataplane", load: loadWorkerConfig },
  { file: lab.engine, daemon: "mip46-engine", load: loadConfig },
  { file: lab.engineWorker, daemon: "mip46-dataplane", load: loadWorkerConfig },
  { file: lab.r1, daemon: "mip46-home-agent", load: loadHomeAgentConfig },
  { file: lab.r2, daemon: "mip46-home-agent", load: loadHomeAgentConfig },
  { file: lab.h4, daemon: "mip46-agent", load: loadAgentConfig },
  { file: lab.h6, daemon: "mip46-agent", load: loadAgentConfig },
];

test("there are example configurations of the engine, replicated and not, and of the worker", (t) => {
  t.true(engineExamples.length >= 5, engineExamples.join(", "));
});

for (const { file, daemon, load } of FILES) {
  const name = file.startsWith(dir) ? `the lab's ${file.slice(dir.length + 1)}` : file;
  test(`${name} is accepted by its loader and by ${daemon} --check`, (t) => {
    t.notThrows(() => load(file));
    const r = spawnSync(process.execPath, [`bin/${daemon}.js`, "--check", "--config", file], { encoding: "utf8", timeout: 60_000 });
    t.is(r.status, 0, r.stderr);
    t.is(r.stdout, `configuration OK: ${file}\n`);
  });
}

const yaml = (path: string) => parse(readFileSync(path, "utf8")) as Record<string, any>;
const TABLE = "dataplane/offline/example-table.json";

/** One kind of configuration: a valid document (the lab's or the example's), its parser and its error class. */
const KINDS: { kind: string; doc: () => Record<string, any>; parse: (v: unknown) => unknown; error: new (...a: never[]) => Error }[] = [
  { kind: "engine", doc: () => yaml(lab.engine), parse: (v) => parseConfig(v), error: ConfigError },
  { kind: "worker", doc: () => yaml(lab.engineWorker), parse: parseWorkerConfig, error: WorkerConfigError },
  { kind: "home agent", doc: () => yaml(lab.r1), parse: (v) => parseHomeAgentConfig(v, dir), error: HomeAgentConfigError },
  { kind: "agent", doc: () => yaml(lab.h4), parse: (v) => parseAgentConfig(v, dir), error: AgentConfigError },
  { kind: "offline table", doc: () => JSON.parse(readFileSync(TABLE, "utf8")), parse: parseOfflineTable, error: OfflineTableError },
];

/** Per kind: a mistake, and the message that must start the error (the path, then the reason). */
const MISTAKES: Record<string, [string, (d: Record<string, any>) => void, RegExp][]> = {
  engine: [
    ["an unknown key in a list's entry", (d) => (d.segments[0].careofRange = d.segments[0].careOfRange), /^segments\[0\]\.careofRange: unknown key \(known: network, name, prefix, careOfRange, exclude, homeAgent\)$/],
    ["a number as text", (d) => (d.leases.cooldownSeconds = "5"), /^leases\.cooldownSeconds: must be a number from 0 to 86400$/],
    ["a mapping where a list goes", (d) => (d.ipv6Networks = { network: "2001:db8:1::/64" }), /^ipv6Networks: expected a list$/],
  ],
  worker: [
    ["an unknown key in an interface", (d) => (d.interfaces[1].colour = "blue"), /^interfaces\[1\]\.colour: unknown key \(known: name, mac, mtu, addresses, promiscuous\)$/],
    ["an unknown key in a forwarder section, found at --check", (d) => (d.translator.lowestIpv6mtu = 1280), /^translator\.lowestIpv6mtu: unknown key/],
    ["text where a number goes", (d) => (d.tickMs = "fast"), /^tickMs: must be a positive integer, got "fast"$/],
    ["a string where a boolean goes", (d) => (d.correspondentRouter = "yes"), /^correspondentRouter: must be true or false$/],
  ],
  "home agent": [
    ["an unknown key in the homeAgent section", (d) => (d.homeAgent.keysfile = d.homeAgent.keysFile), /^homeAgent\.keysfile: unknown key \(known: protocol, address, homeNetwork, interface, maxLifetimeS, replayToleranceS, keysFile, keys\)$/],
    ["an unknown key in a route", (d) => (d.routes[0].gateway = "192.0.2.254"), /^routes\[0\]\.gateway: unknown key \(known: prefix, interface, via\)$/],
    ["text where an integer goes", (d) => (d.homeAgent.maxLifetimeS = "600"), /^homeAgent\.maxLifetimeS: must be an integer in 4\.\.65535, not "600"$/],
  ],
  agent: [
    ["an unknown key in the hypervisor section", (d) => (d.hypervisor.homebridge = "br0"), /^hypervisor\.homebridge: unknown key \(known: homeBridge, visitorBridge, pollMs, migrateCommand, eventSocket, ignorePorts\)$/],
    ["an unknown key in a VM", (d) => (d.vms[1].homeaddress = "192.0.2.1"), /^vms\[1\]\.homeaddress: unknown key/],
    ["a list of numbers where port names go", (d) => (d.hypervisor.ignorePorts = [1]), /^hypervisor\.ignorePorts\[0\]: must be a port name$/],
    ["a number where text goes", (d) => (d.network.uplink = 7), /^network\.uplink: must be a non-empty string$/],
  ],
  "offline table": [
    ["an unknown key in the worker's settings", (d) => (d.worker.tunnels = { hoplimit: 64 }), /^worker\.tunnels\.hoplimit: unknown key \(known: hopLimit, source4, source6, icmpSource4, icmpSource6\)$/],
    ["a string where a boolean goes", (d) => (d.worker.interfaces[0].promiscuous = "no"), /^worker\.interfaces\[0\]\.promiscuous: must be true or false$/],
    ["a list where a MAC goes", (d) => (d.rawSourceMac = ["02:00:00:00:00:01"]), /^rawSourceMac: expected a string$/],
  ],
};

for (const { kind, doc, parse, error } of KINDS) {
  test(`${kind}: an unknown key and a wrong type are refused, naming the field's path`, (t) => {
    t.notThrows(() => parse(doc()), "the unchanged document is valid");
    for (const [what, mutate, message] of MISTAKES[kind]) {
      const d = doc();
      mutate(d);
      const e = t.throws(() => parse(d), { instanceOf: error }, what);
      t.regex(e?.message ?? "", message, what);
      if (e instanceof ConfigFieldError) t.is(e.field, e.message.slice(0, e.message.indexOf(": ")), `${what}: the field is the message's path`);
    }
  });
}

test("the four daemons: --check exits 1 naming the field, a usage error exits 2, --help exits 0", (t) => {
  const run = (daemon: string, args: string[]) => spawnSync(process.execPath, [`bin/${daemon}.js`, ...args], { encoding: "utf8", timeout: 60_000 });
  const cases: [string, string, Record<string, any>, RegExp][] = [
    ["mip46-engine", lab.engine, { ...yaml(lab.engine), colour: "blue" }, /^colour: unknown key/],
    ["mip46-dataplane", lab.engineWorker, { ...yaml(lab.engineWorker), tickMs: 0 }, /^tickMs: must be a positive integer/],
    ["mip46-home-agent", lab.r1, { ...yaml(lab.r1), homeAgent: { ...yaml(lab.r1).homeAgent, protocol: "mip5" } }, /^homeAgent\.protocol: must be mip4/],
    ["mip46-agent", lab.h4, { ...yaml(lab.h4), registration: { lifetimeS: "long" } }, /^registration\.lifetimeS: must be an integer in 4\.\.65535/],
  ];
  for (const [daemon, , bad, message] of cases) {
    const path = join(dir, `bad-${daemon}.yaml`);
    writeFileSync(path, stringify(bad));
    const r = run(daemon, ["--check", "--config", path]);
    t.is(r.status, 1, `${daemon}: ${r.stderr}`);
    t.is(r.stdout, "");
    const line = JSON.parse(r.stderr.trim().split("\n").at(-1)!) as { msg: string; error: string };
    t.is(line.msg, "configuration refused", daemon);
    t.regex(line.error, message, daemon);
    const usage = run(daemon, ["--colour"]);
    t.is(usage.status, 2, `${daemon} --colour`);
    t.regex(usage.stderr, new RegExp(`Usage: ${daemon} --config FILE`));
    const missing = run(daemon, []);
    t.is(missing.status, 2, `${daemon} without --config`);
    t.regex(missing.stderr, /^--config is required/);
    const help = run(daemon, ["--help"]);
    t.is(help.status, 0);
    t.regex(help.stdout, new RegExp(`^${daemon}: `));
  }
  const offline = run("mip46-dataplane", ["--offline", "--in", "x.pcap"]);
  t.is(offline.status, 2);
  t.regex(offline.stderr, /^--offline needs --in, --table and --out/);
});
