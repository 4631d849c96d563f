// The YAML configurations of the home agent (homeagent/config.ts) and of the privileged-VM agent
// (clients/agent/config.ts), and the MN–HA keys both read (mobility/keys.ts): every error
// names the field at fault, the keys file must be private (mode 0600), and a key's value never
// appears in an error message.
import test from "ava";
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { HomeAgentConfigError, loadHomeAgentConfig, parseHomeAgentConfig } from "../../homeagent/config.js";
import { KeyConfigError, loadKeysFile, parseKeys } from "../../mobility/keys.js";
import { AgentConfigError, parseAgentConfig } from "../../clients/agent/config.js";

const KEY4 = "00112233445566778899aabbccddeeff";
const KEY6 = "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c";
/** A value that must never show up in an error: 17 bytes of hex plus one odd nibble. */
const SECRET = "deadbeefcafef00d0123456789abcdef42f";

function tempDir(t: { teardown(fn: () => void): void }): string {
  const dir = mkdtempSync(join(tmpdir(), "mip46-config-"));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

function keysFile(dir: string, body: string, mode = 0o600, name = "keys.yaml"): string {
  const path = join(dir, name);
  writeFileSync(path, body);
  chmodSync(path, mode);
  return path;
}

const WORKER = {
  workerId: "r1",
  interfaces: [{ name: "eth1", addresses: ["192.0.2.2/24"] }, { name: "eth2", addresses: ["2001:db8:1::1/64"] }],
};

function ha4(over: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    ...structuredClone(WORKER),
    homeAgent: {
      protocol: "mip4", address: "192.0.2.2", homeNetwork: "192.0.2.0/24", interface: "eth1",
      keys: [{ homeAddress: "192.0.2.1", spi: 256, algorithm: "hmac-sha256", key: KEY4 }],
      ...over,
    },
  };
}

/** The message of what `fn` throws, checked to be `cls`. */
function message(t: { fail(m: string): void }, fn: () => unknown, cls: new (...a: never[]) => Error): string {
  try {
    fn();
  } catch (e) {
    if (!(e instanceof cls)) {
      t.fail(`threw ${(e as Error).name}: ${(e as Error).message}`);
      return "";
    }
    return e.message;
  }
  t.fail("did not throw");
  return "";
}

// ---------------------------------------------------------------- home agent

test("a valid mip4 home agent configuration parses, with defaults", (t) => {
  const c = parseHomeAgentConfig(ha4());
  t.is(c.homeAgent.protocol, "mip4");
  t.is(c.homeAgent.address, "192.0.2.2");
  t.is(c.homeAgent.homeNetwork, "192.0.2.0/24");
  t.is(c.homeAgent.maxLifetimeS, 600);
  t.is(c.homeAgent.replayToleranceS, 7);
  t.is(c.homeAgent.keys.length, 1);
  t.is(c.homeAgent.keys[0].spi, 256);
  t.is(Buffer.from(c.homeAgent.keys[0].key).toString("hex"), KEY4);
  t.is(c.worker.workerId, "r1");
});

test("parseHomeAgentConfig names the field at fault", (t) => {
  t.regex(message(t, () => parseHomeAgentConfig(ha4({ protocol: "mip5" })), HomeAgentConfigError), /^homeAgent\.protocol: /);
  t.regex(message(t, () => parseHomeAgentConfig(ha4({ address: "2001:db8:1::1" })), HomeAgentConfigError), /^homeAgent\.address: must be an IPv4 address/);
  t.regex(message(t, () => parseHomeAgentConfig(ha4({ protocol: "mip6", homeNetwork: "2001:db8:1::/64", keys: [] })), HomeAgentConfigError), /^homeAgent\.address: must be an IPv6 address/);
  t.regex(message(t, () => parseHomeAgentConfig(ha4({ homeNetwork: "2001:db8:1::/64" })), HomeAgentConfigError), /^homeAgent\.homeNetwork: must be an IPv4 prefix/);
  t.regex(message(t, () => parseHomeAgentConfig(ha4({ address: "192.0.2.300" })), HomeAgentConfigError), /homeAgent\.address/);
  t.regex(message(t, () => parseHomeAgentConfig(ha4({ interface: "eth9" })), HomeAgentConfigError), /^homeAgent\.interface: no worker interface is named 'eth9'/);
  t.regex(message(t, () => parseHomeAgentConfig(ha4({ colour: "blue" })), HomeAgentConfigError), /^homeAgent\.colour: unknown key/);
  t.regex(message(t, () => parseHomeAgentConfig(ha4({ maxLifetimeS: 2 })), HomeAgentConfigError), /^homeAgent\.maxLifetimeS: /);
  t.regex(message(t, () => parseHomeAgentConfig(ha4({ keys: undefined })), HomeAgentConfigError), /^homeAgent\.keysFile: required/);
  t.regex(message(t, () => parseHomeAgentConfig({ ...ha4(), homeAgent: undefined }), HomeAgentConfigError), /^homeAgent: required/);
  // The worker's own keys are checked by the worker's parser, and reported as home agent config errors.
  t.regex(message(t, () => parseHomeAgentConfig({ ...ha4(), workerId: "" }), HomeAgentConfigError), /^workerId: /);
});

test("keys: the field of each bad entry is named, and the key's value never appears", (t) => {
  const bad = (entry: Record<string, unknown>, protocol: "mip4" | "mip6" | "any" = "mip4") => message(t, () => parseKeys([entry], "homeAgent.keys", protocol), KeyConfigError);
  for (const key of [SECRET, SECRET.slice(0, 30), `${KEY4}zz`, `${KEY4}${KEY4}${KEY4}${KEY4}${KEY4}`]) {
    const m = bad({ homeAddress: "192.0.2.1", spi: 256, key });
    t.regex(m, /^homeAgent\.keys\[0\]\.key: /);
    t.false(m.includes(key), "the bad value is not echoed");
    t.false(m.toLowerCase().includes(key.slice(0, 8).toLowerCase()), "not even its start");
  }
  // A key YAML read as a number (all digits) is refused without showing it either.
  const m = bad({ homeAddress: "192.0.2.1", spi: 256, key: 12345678901234567890 });
  t.regex(m, /\.key: /);
  t.false(m.includes("1234567890"));
  t.regex(bad({ homeAddress: "192.0.2.1", spi: 255, key: KEY4 }), /^homeAgent\.keys\[0\]\.spi: .*256/);
  t.regex(bad({ homeAddress: "192.0.2.1", spi: 256, algorithm: "sha1", key: KEY4 }), /^homeAgent\.keys\[0\]\.algorithm: /);
  t.regex(bad({ homeAddress: "2001:db8:1::50", spi: 256, key: KEY4 }, "mip4"), /^homeAgent\.keys\[0\]\.homeAddress: must be an IPv4 address/);
  t.regex(bad({ homeAddress: "192.0.2.1", spi: 256, key: KEY4 }, "mip6"), /^homeAgent\.keys\[0\]\.homeAddress: must be an IPv6 address/);
  t.regex(message(t, () => parseKeys([{ homeAddress: "192.0.2.1", spi: 256, key: KEY4 }, { homeAddress: "192.0.2.1", spi: 257, key: KEY4 }], "homeAgent.keys", "mip4"), KeyConfigError), /^homeAgent\.keys\[1\]\.homeAddress: 192\.0\.2\.1 has two keys/);
  // Defaults: HMAC-MD5 for IPv4 (RFC 5944 §3.5.1), the RFC 4285 algorithm for IPv6.
  const ks = parseKeys([{ homeAddress: "192.0.2.1", spi: 256, key: KEY4 }, { homeAddress: "2001:db8:1::50", spi: 300, key: KEY6 }], "keys", "any");
  t.deepEqual(ks.map((k) => k.algorithm), ["hmac-md5", "hmac-sha256"]);
});

test("keys: an entry without an SPI is refused (there is no default SPI)", (t) => {
  t.regex(message(t, () => parseKeys([{ homeAddress: "192.0.2.1", key: KEY4 }], "homeAgent.keys", "mip4"), KeyConfigError), /^homeAgent\.keys\[0\]\.spi: /);
});

test("a keys file readable by group or others is refused, naming the field; mode 0600 is accepted", (t) => {
  const dir = tempDir(t);
  const body = `- { homeAddress: 192.0.2.1, spi: 256, algorithm: hmac-sha256, key: ${KEY4} }\n`;
  for (const mode of [0o644, 0o640, 0o604]) {
    const path = keysFile(dir, body, mode, `keys-${mode.toString(8)}.yaml`);
    const m = message(t, () => loadKeysFile(path, "mip4"), KeyConfigError);
    t.regex(m, /^homeAgent\.keysFile: .* readable by group or others \(mode 6\d\d\); chmod 600 it/, mode.toString(8));
    t.false(m.includes(KEY4));
  }
  const ok = keysFile(dir, body, 0o600, "private.yaml");
  t.is(loadKeysFile(ok, "mip4")[0].spi, 256);
  t.is(loadKeysFile(keysFile(dir, body, 0o400, "readonly.yaml"), "mip4").length, 1);
});

test("a keys file: not YAML, missing, or a bad key: the message names the file and never quotes it", (t) => {
  const dir = tempDir(t);
  const notYaml = keysFile(dir, `- { homeAddress: 192.0.2.1, key: ${SECRET}\n  - ]]\n`, 0o600, "broken.yaml");
  const m1 = message(t, () => loadKeysFile(notYaml, "mip4"), KeyConfigError);
  t.regex(m1, /^homeAgent\.keysFile: .*broken\.yaml is not YAML/);
  t.false(m1.includes(SECRET));
  t.false(m1.includes(SECRET.slice(0, 10)));
  const m2 = message(t, () => loadKeysFile(join(dir, "absent.yaml"), "mip4"), KeyConfigError);
  t.regex(m2, /^homeAgent\.keysFile: .*ENOENT/);
  const badKey = keysFile(dir, `- { homeAddress: 192.0.2.1, spi: 256, key: ${SECRET} }\n`, 0o600, "badkey.yaml");
  const m3 = message(t, () => loadKeysFile(badKey, "mip4"), KeyConfigError);
  t.regex(m3, /^homeAgent\.keysFile\(.*badkey\.yaml\)\[0\]\.key: /);
  t.false(m3.includes(SECRET));
});

test("loadHomeAgentConfig: keysFile relative to the configuration file; a wrong mode stops the load", (t) => {
  const dir = tempDir(t);
  keysFile(dir, `- { homeAddress: 192.0.2.1, spi: 256, key: ${KEY4} }\n`, 0o600);
  const cfg = join(dir, "ha.yaml");
  writeFileSync(cfg, [
    "workerId: r1",
    "interfaces:",
    "  - { name: eth1, addresses: [192.0.2.2/24] }",
    "homeAgent:",
    "  protocol: mip4",
    "  address: 192.0.2.2",
    "  homeNetwork: 192.0.2.0/24",
    "  interface: eth1",
    "  keysFile: keys.yaml",
    "",
  ].join("\n"));
  const c = loadHomeAgentConfig(cfg);
  t.is(c.homeAgent.keys[0].homeAddress, "192.0.2.1");
  t.is(c.homeAgent.keys[0].algorithm, "hmac-md5");
  chmodSync(join(dir, "keys.yaml"), 0o644);
  t.regex(message(t, () => loadHomeAgentConfig(cfg), HomeAgentConfigError), /^homeAgent\.keysFile: /);
});

test("a mip6 home agent takes only IPv6 keys", (t) => {
  const base = { protocol: "mip6", address: "2001:db8:1::1", homeNetwork: "2001:db8:1::/64", interface: "eth2" };
  const c = parseHomeAgentConfig(ha4({ ...base, keys: [{ homeAddress: "2001:db8:1::50", spi: 300, key: KEY6 }] }));
  t.is(c.homeAgent.keys[0].homeAddress, "2001:db8:1::50");
  t.regex(message(t, () => parseHomeAgentConfig(ha4({ ...base })), HomeAgentConfigError), /^homeAgent\.keys\[0\]\.homeAddress: must be an IPv6 address/);
});

// ---------------------------------------------------------------- privileged-VM agent (clients/agent/config.ts)

function agent(over: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    hostId: "h6",
    engines: ["[2001:db8:2::1]:50046"],
    hypervisor: { homeBridge: "br-home", visitorBridge: "br-visit" },
    network: { uplink: "pv0", visitor: "pv1", engineIPv4: "192.0.2.254", engineIPv6: "2001:db8:2::1" },
    vms: [
      { id: "v4", port: "tap-v4", homeAddress: "192.0.2.1", homeAgent: "192.0.2.2", homeHost: "h4", mac: "02:00:00:00:aa:01" },
      { id: "v6", port: "tap-v6", homeAddress: "2001:db8:1::50", homeAgent: "2001:db8:1::1", homeHost: "h6", mac: "02:00:00:00:aa:02" },
    ],
    keys: [
      { homeAddress: "192.0.2.1", spi: 256, algorithm: "hmac-sha256", key: KEY4 },
      { homeAddress: "2001:db8:1::50", spi: 300, key: KEY6 },
    ],
    workerId: "pv-h6",
    interfaces: [{ name: "pv0", addresses: ["2001:db8:1::6/64"] }, { name: "pv1", addresses: ["192.0.2.254/24"] }],
    routes: [{ prefix: "::/0", interface: "pv0", via: "2001:db8:1::fe" }],
    ...over,
  };
}

test("a valid agent configuration parses, with defaults; the worker gets no engines of its own", (t) => {
  const c = parseAgentConfig(agent());
  t.is(c.hostId, "h6");
  t.deepEqual(c.vms.map((v) => [v.id, v.family]), [["v4", 4], ["v6", 6]]);
  t.is(c.registration.lifetimeS, 300);
  t.is(c.heartbeatIntervalMs, 1000);
  t.deepEqual(c.worker.engines, []);
  t.deepEqual(c.worker.forwarder.routes, [{ prefix: "::/0", interface: "pv0", via: "2001:db8:1::fe" }]);
});

test("agent: a VM in the inventory without a key is refused, naming vms[i]", (t) => {
  const m = message(t, () => parseAgentConfig(agent({ keys: [{ homeAddress: "192.0.2.1", spi: 256, key: KEY4 }] })), AgentConfigError);
  t.regex(m, /^vms\[1\]: no key for home address 2001:db8:1::50/);
  t.regex(message(t, () => parseAgentConfig(agent({ keys: undefined })), AgentConfigError), /^vms\[0\]: no key/);
});

test("agent: network.uplink and network.visitor must be worker interfaces", (t) => {
  t.regex(message(t, () => parseAgentConfig(agent({ network: { uplink: "eth0", visitor: "pv1", engineIPv4: "192.0.2.254", engineIPv6: "2001:db8:2::1" } })), AgentConfigError), /^network\.uplink: no worker interface is named 'eth0'/);
  t.regex(message(t, () => parseAgentConfig(agent({ network: { uplink: "pv0", visitor: "pv9", engineIPv4: "192.0.2.254", engineIPv6: "2001:db8:2::1" } })), AgentConfigError), /^network\.visitor: /);
  t.regex(message(t, () => parseAgentConfig(agent({ network: { uplink: "pv0", visitor: "pv1", engineIPv4: "2001:db8:2::1", engineIPv6: "2001:db8:2::1" } })), AgentConfigError), /^network\.engineIPv4: must be an IPv4 address/);
});

test("agent: other fields are named", (t) => {
  const vm = (o: Record<string, unknown>) => agent({ vms: [{ id: "v4", port: "tap-v4", homeAddress: "192.0.2.1", homeAgent: "192.0.2.2", homeHost: "h4", mac: "02:00:00:00:aa:01", ...o }] });
  t.regex(message(t, () => parseAgentConfig(vm({ homeAgent: "2001:db8:1::1" })), AgentConfigError), /^vms\[0\]\.homeAgent: must be an IPv4 address/);
  t.regex(message(t, () => parseAgentConfig(vm({ mac: "02:00:00" })), AgentConfigError), /^vms\[0\]\.mac: /);
  t.regex(message(t, () => parseAgentConfig(vm({ port: "" })), AgentConfigError), /^vms\[0\]\.port: /);
  t.regex(message(t, () => parseAgentConfig(vm({ mac: "03:00:00:00:aa:01" })), AgentConfigError), /^vms\[0\]\.mac: .*multicast/);
  t.is(parseAgentConfig(vm({ port: undefined })).vms[0].port, undefined, "a VM without a port is known by its MAC");
  t.regex(message(t, () => parseAgentConfig(agent({ engines: [] })), AgentConfigError), /^engines: /);
  t.regex(message(t, () => parseAgentConfig(agent({ hypervisor: { homeBridge: "a", visitorBridge: "b", migrateCommand: [] } })), AgentConfigError), /^hypervisor\.migrateCommand: /);
  t.regex(message(t, () => parseAgentConfig(agent({ registration: { lifetimeS: 1 } })), AgentConfigError), /^registration\.lifetimeS: /);
  t.regex(message(t, () => parseAgentConfig(agent({ colour: "blue" })), AgentConfigError), /^colour: unknown key/);
});

test("agent: a mixed-family keys file (mode 0600) is accepted; 0644 is refused naming keysFile; a bad key is not shown", (t) => {
  const dir = tempDir(t);
  keysFile(dir, [
    `- { homeAddress: 192.0.2.1, spi: 256, algorithm: hmac-sha256, key: ${KEY4} }`,
    `- { homeAddress: "2001:db8:1::50", spi: 300, key: ${KEY6} }`,
    "",
  ].join("\n"));
  const c = parseAgentConfig(agent({ keys: undefined, keysFile: "keys.yaml" }), dir);
  t.deepEqual(c.keys.map((k) => [k.homeAddress, k.spi, k.algorithm]), [["192.0.2.1", 256, "hmac-sha256"], ["2001:db8:1::50", 300, "hmac-sha256"]]);
  chmodSync(join(dir, "keys.yaml"), 0o644);
  t.regex(message(t, () => parseAgentConfig(agent({ keys: undefined, keysFile: "keys.yaml" }), dir), AgentConfigError), /^keysFile: .*readable by group or others/);
  keysFile(dir, `- { homeAddress: 192.0.2.1, spi: 256, key: ${SECRET} }\n`, 0o600, "bad.yaml");
  const m = message(t, () => parseAgentConfig(agent({ keys: undefined, keysFile: join(dir, "bad.yaml") })), AgentConfigError);
  t.regex(m, /^keysFile\(.*bad\.yaml\)\[0\]\.key: /);
  t.false(m.includes(SECRET));
});
