// The privileged-VM agent's configuration (YAML): who the host is, where the engine replicas are,
// the hypervisor's bridges and inventory of VMs, and the data-plane worker it runs (the worker's
// keys: workerId, interfaces, routes, metricsListen, capture, tickMs). MN–HA keys come from a
// separate file (mode 0600), in the home agents' format, and are never logged.
import { ConfigFieldError, integer, list, parseShape, readYamlFile, strict, text, z } from "../../lib/config/schema.js";
import { dirname } from "node:path";
import { parseAddress } from "../../lib/net/address.js";
import { engineList, WORKER_KEYS, workerConfig, type WorkerConfig } from "../../dataplane/worker/config.js";
import { configuredKeys, type MnHaKey } from "../../mobility/keys.js";

export class AgentConfigError extends ConfigFieldError {
  override name = "AgentConfigError";
}

export interface VmInventoryEntry {
  id: string;
  /**
   * The VM's port on the host (the hypervisor's tap or veth), when its name is fixed (the lab's
   * `vp-<vm>`). Absent, the VM is known by its MAC: the port whose own MAC is the VM's, or the VM's
   * with its first octet 0xfe (what libvirt gives the host side of a guest's tap).
   */
  port?: string;
  homeAddress: string;
  family: 4 | 6;
  /** r1 or r2: same family as the home address. */
  homeAgent: string;
  /** The host whose network is the VM's home network. */
  homeHost: string;
  /** The VM's MAC: announced for its home address when it comes home (RFC 5944 §4.6, RFC 6275 §11.5.4). */
  mac: string;
  /** The VM's network namespace (a lab VM): its processes' CPU and memory go into Heartbeat. */
  namespace?: string;
  /** The file the VM's hypervisor process (QEMU) writes its pid to: that process's CPU and memory go into Heartbeat. */
  pidFile?: string;
}

export interface AgentConfig {
  hostId: string;
  engines: string[];
  heartbeatIntervalMs: number;
  hypervisor: {
    /** The bridge that joins VMs to the host's own network (VMs at home). */
    homeBridge: string;
    /** The bridge of VMs from the other protocol, served by the worker's visitor interface. */
    visitorBridge: string;
    pollMs: number;
    /** Migration advice is carried out by running this ({vm} and {host} are replaced); absent: advice is logged only. */
    migrateCommand?: string[];
    /** The unix socket the hypervisor's hook (deploy/libvirt) reports its phases to; absent: none. */
    eventSocket?: string;
    /** Ports on the bridges that are no VM's (the host's own links to them); never reported. */
    ignorePorts: string[];
  };
  network: {
    /** The worker's interface on the host's network: its addresses say which protocol the network speaks. */
    uplink: string;
    /** The worker's interface toward visiting VMs. */
    visitor: string;
    /** The engine's tunnel endpoints (paper: 2::1 / 172.168.2.1; lab 2001:db8:2::1 and 192.0.2.254). */
    engineIPv4: string;
    engineIPv6: string;
  };
  registration: { lifetimeS: number; firstRetransmitMs: number; maxAttempts: number };
  vms: VmInventoryEntry[];
  keys: MnHaKey[];
  worker: WorkerConfig;
}

function address(v: string, field: string, family?: 4 | 6): { text: string; family: 4 | 6 } {
  try {
    const a = parseAddress(v, field);
    if (family !== undefined && a.family !== family) throw new AgentConfigError(`${field}: must be an IPv${family} address`);
    return a;
  } catch (e) {
    if (e instanceof AgentConfigError) throw e;
    throw new AgentConfigError((e as Error).message);
  }
}

const ENGINES = "required, a list of HOST:PORT, [IPv6]:PORT or unix:PATH (every engine replica)";

const AGENT_FILE = strict({
  ...WORKER_KEYS,
  hostId: text(),
  engines: engineList(ENGINES).refine((l) => l.length > 0, ENGINES),
  heartbeatIntervalMs: integer(100, 600_000).default(1000),
  hypervisor: strict({
    homeBridge: text(),
    visitorBridge: text(),
    pollMs: integer(1, 10_000).default(10),
    migrateCommand: list(z.string(), "must be a non-empty list of strings").min(1, "must be a non-empty list of strings").optional(),
    eventSocket: text("a socket path").optional(),
    ignorePorts: list(text("a port name"), "must be a list of port names").default([]),
  }),
  network: strict({ uplink: text(), visitor: text(), engineIPv4: text("an IPv4 address"), engineIPv6: text("an IPv6 address") }),
  registration: strict({
    lifetimeS: integer(4, 65535).default(300),
    firstRetransmitMs: integer(1, 10_000).default(50),
    maxAttempts: integer(1, 100).default(8),
  }).prefault({}),
  vms: list(strict({
    id: text(), port: text().optional(), homeAddress: text("an IP address"), homeAgent: text("an IP address"), homeHost: text(),
    mac: text("a MAC address"), namespace: text().optional(), pidFile: text("a file path").optional(),
  })),
  keysFile: text("a file path").optional(),
  /** Inline keys, for tests: checked by parseKeys. */
  keys: z.unknown().optional(),
});

export function parseAgentConfig(value: unknown, baseDir = "."): AgentConfig {
  const { hostId, engines, heartbeatIntervalMs, hypervisor, network, registration, vms, keysFile, keys, ...rest } =
    parseShape(AGENT_FILE, value, (m, f) => new AgentConfigError(m, f));
  // The agent's worker takes its rules from the agent, not from the engines.
  const worker = workerConfig({ ...rest, engines: [] });
  const { uplink, visitor } = network;
  for (const [f, n] of [["network.uplink", uplink], ["network.visitor", visitor]]) {
    if (!worker.interfaces.some((i) => i.name === n)) throw new AgentConfigError(`${f}: no worker interface is named '${n}'`);
  }
  const ids = new Set<string>();
  const taken = new Map<string, string>();
  const once = (what: string, value: string, field: string) => {
    const other = taken.get(`${what}:${value}`);
    if (other !== undefined) throw new AgentConfigError(`${field}: ${what} '${value}' is also ${other}'s`);
    taken.set(`${what}:${value}`, field);
  };
  const inventory = vms.map((v, i): VmInventoryEntry => {
    const f = `vms[${i}]`;
    const id = v.id;
    if (ids.has(id)) throw new AgentConfigError(`${f}.id: '${id}' is listed twice`);
    ids.add(id);
    const home = address(v.homeAddress, `${f}.homeAddress`);
    const mac = v.mac;
    if (!/^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$/.test(mac)) throw new AgentConfigError(`${f}.mac: '${mac}' is not a MAC address`);
    if ((parseInt(mac.slice(0, 2), 16) & 1) !== 0) throw new AgentConfigError(`${f}.mac: '${mac}' is a multicast address, not a VM's`);
    once("MAC", mac.toLowerCase(), `${f}.mac`);
    const port = v.port;
    if (port !== undefined) once("port", port, `${f}.port`);
    return {
      id, ...(port === undefined ? {} : { port }), homeAddress: home.text, family: home.family,
      homeAgent: address(v.homeAgent, `${f}.homeAgent`, home.family).text, homeHost: v.homeHost, mac: mac.toLowerCase(),
      ...(v.namespace === undefined ? {} : { namespace: v.namespace }),
      ...(v.pidFile === undefined ? {} : { pidFile: v.pidFile }),
    };
  });
  let keyList: MnHaKey[];
  try {
    keyList = configuredKeys({ keysFile, keys }, baseDir, "any");
  } catch (e) {
    throw new AgentConfigError((e as Error).message);
  }
  for (const [i, v] of inventory.entries()) {
    if (!keyList.some((k) => k.homeAddress === v.homeAddress)) throw new AgentConfigError(`vms[${i}]: no key for home address ${v.homeAddress} (keysFile)`);
  }
  return {
    hostId, engines, heartbeatIntervalMs,
    hypervisor: {
      homeBridge: hypervisor.homeBridge, visitorBridge: hypervisor.visitorBridge, pollMs: hypervisor.pollMs, migrateCommand: hypervisor.migrateCommand,
      ...(hypervisor.eventSocket === undefined ? {} : { eventSocket: hypervisor.eventSocket }),
      ignorePorts: hypervisor.ignorePorts,
    },
    network: {
      uplink, visitor,
      engineIPv4: address(network.engineIPv4, "network.engineIPv4", 4).text,
      engineIPv6: address(network.engineIPv6, "network.engineIPv6", 6).text,
    },
    registration,
    vms: inventory,
    keys: keyList,
    worker,
  };
}

export function loadAgentConfig(path: string): AgentConfig {
  return parseAgentConfig(readYamlFile(path, (m) => new AgentConfigError(m)), dirname(path));
}
