// The privileged-VM agent's configuration (YAML): who the host is, where the engine replicas are,
// the hypervisor's bridges and inventory of VMs, and the data-plane worker it runs (the worker's
// keys: workerId, interfaces, routes, metricsListen, capture, tickMs). MN–HA keys come from a
// separate file (mode 0600), in the home agents' format, and are never logged.
import { fieldReaders, isObject } from "../../lib/config/fields.js";
import { readFileSync } from "node:fs";
import { parse } from "yaml";
import { parseAddress } from "../../lib/net/address.js";
import { parseWorkerConfig, WorkerConfigError, type WorkerConfig } from "../../dataplane/worker/config.js";
import { loadKeysFile, parseKeys, type MnHaKey } from "../../mobility/keys.js";

const VM_KEYS = new Set(["id", "port", "homeAddress", "homeAgent", "homeHost", "mac", "namespace", "pidFile"]);

export class AgentConfigError extends Error {
  override name = "AgentConfigError";
}

const { text, integer } = fieldReaders((m) => new AgentConfigError(m));

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




function address(v: unknown, field: string, family?: 4 | 6): { text: string; family: 4 | 6 } {
  try {
    const a = parseAddress(text(v, field), field);
    if (family !== undefined && a.family !== family) throw new AgentConfigError(`${field}: must be an IPv${family} address`);
    return a;
  } catch (e) {
    if (e instanceof AgentConfigError) throw e;
    throw new AgentConfigError((e as Error).message);
  }
}

export function parseAgentConfig(value: unknown, baseDir = "."): AgentConfig {
  if (!isObject(value)) throw new AgentConfigError("the configuration must be a YAML mapping");
  const { hostId, engines, heartbeatIntervalMs, hypervisor, network, registration, vms, keysFile, keys, ...rest } = value;
  let worker: WorkerConfig;
  try {
    worker = parseWorkerConfig({ ...rest, engines: [] });
  } catch (e) {
    if (e instanceof WorkerConfigError) throw new AgentConfigError(e.message);
    throw e;
  }
  if (!Array.isArray(engines) || engines.length === 0 || engines.some((e) => typeof e !== "string" || !/^((\[[^\]]+\]|[^:\s]+):\d+|unix:\S+)$/.test(e))) {
    throw new AgentConfigError("engines: required, a list of HOST:PORT, [IPv6]:PORT or unix:PATH (every engine replica)");
  }
  if (!isObject(hypervisor)) throw new AgentConfigError("hypervisor: required, a mapping (homeBridge, visitorBridge)");
  if (!isObject(network)) throw new AgentConfigError("network: required, a mapping (uplink, visitor, engineIPv4, engineIPv6)");
  const reg = registration ?? {};
  if (!isObject(reg)) throw new AgentConfigError("registration: must be a mapping");
  const uplink = text(network.uplink, "network.uplink");
  const visitor = text(network.visitor, "network.visitor");
  for (const [f, n] of [["network.uplink", uplink], ["network.visitor", visitor]]) {
    if (!worker.interfaces.some((i) => i.name === n)) throw new AgentConfigError(`${f}: no worker interface is named '${n}'`);
  }
  let migrateCommand: string[] | undefined;
  if (hypervisor.migrateCommand !== undefined) {
    if (!Array.isArray(hypervisor.migrateCommand) || hypervisor.migrateCommand.length === 0 || hypervisor.migrateCommand.some((a) => typeof a !== "string")) {
      throw new AgentConfigError("hypervisor.migrateCommand: must be a non-empty list of strings");
    }
    migrateCommand = hypervisor.migrateCommand as string[];
  }
  const ignorePorts = hypervisor.ignorePorts ?? [];
  if (!Array.isArray(ignorePorts) || ignorePorts.some((p) => typeof p !== "string" || p === "")) {
    throw new AgentConfigError("hypervisor.ignorePorts: must be a list of port names");
  }
  if (!Array.isArray(vms)) throw new AgentConfigError("vms: required, a list (the hypervisor's inventory)");
  const ids = new Set<string>();
  const taken = new Map<string, string>();
  const once = (what: string, value: string, field: string) => {
    const other = taken.get(`${what}:${value}`);
    if (other !== undefined) throw new AgentConfigError(`${field}: ${what} '${value}' is also ${other}'s`);
    taken.set(`${what}:${value}`, field);
  };
  const inventory = vms.map((v, i): VmInventoryEntry => {
    const f = `vms[${i}]`;
    if (!isObject(v)) throw new AgentConfigError(`${f}: must be a mapping`);
    const unknown = Object.keys(v).filter((k) => !VM_KEYS.has(k));
    if (unknown.length > 0) throw new AgentConfigError(`${f}.${unknown[0]}: unknown key (known: ${[...VM_KEYS].join(", ")})`);
    const id = text(v.id, `${f}.id`);
    if (ids.has(id)) throw new AgentConfigError(`${f}.id: '${id}' is listed twice`);
    ids.add(id);
    const home = address(v.homeAddress, `${f}.homeAddress`);
    const mac = text(v.mac, `${f}.mac`);
    if (!/^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$/.test(mac)) throw new AgentConfigError(`${f}.mac: '${mac}' is not a MAC address`);
    if ((parseInt(mac.slice(0, 2), 16) & 1) !== 0) throw new AgentConfigError(`${f}.mac: '${mac}' is a multicast address, not a VM's`);
    once("MAC", mac.toLowerCase(), `${f}.mac`);
    const port = v.port === undefined ? undefined : text(v.port, `${f}.port`);
    if (port !== undefined) once("port", port, `${f}.port`);
    return {
      id, ...(port === undefined ? {} : { port }), homeAddress: home.text, family: home.family,
      homeAgent: address(v.homeAgent, `${f}.homeAgent`, home.family).text, homeHost: text(v.homeHost, `${f}.homeHost`), mac: mac.toLowerCase(),
      ...(v.namespace === undefined ? {} : { namespace: text(v.namespace, `${f}.namespace`) }),
      ...(v.pidFile === undefined ? {} : { pidFile: text(v.pidFile, `${f}.pidFile`) }),
    };
  });
  let keyList: MnHaKey[] = [];
  try {
    if (keysFile !== undefined) {
      const path = text(keysFile, "keysFile");
      keyList = loadKeysFile(path.startsWith("/") ? path : `${baseDir}/${path}`, "any", "keysFile");
    } else if (keys !== undefined) {
      keyList = parseKeys(keys, "keys", "any");
    }
  } catch (e) {
    throw new AgentConfigError((e as Error).message);
  }
  for (const [i, v] of inventory.entries()) {
    if (!keyList.some((k) => k.homeAddress === v.homeAddress)) throw new AgentConfigError(`vms[${i}]: no key for home address ${v.homeAddress} (keysFile)`);
  }
  return {
    hostId: text(hostId, "hostId"),
    engines: engines as string[],
    heartbeatIntervalMs: integer(heartbeatIntervalMs, "heartbeatIntervalMs", 1000, 100, 600_000),
    hypervisor: {
      homeBridge: text(hypervisor.homeBridge, "hypervisor.homeBridge"),
      visitorBridge: text(hypervisor.visitorBridge, "hypervisor.visitorBridge"),
      pollMs: integer(hypervisor.pollMs, "hypervisor.pollMs", 10, 1, 10_000),
      migrateCommand,
      ...(hypervisor.eventSocket === undefined ? {} : { eventSocket: text(hypervisor.eventSocket, "hypervisor.eventSocket") }),
      ignorePorts: ignorePorts as string[],
    },
    network: {
      uplink, visitor,
      engineIPv4: address(network.engineIPv4, "network.engineIPv4", 4).text,
      engineIPv6: address(network.engineIPv6, "network.engineIPv6", 6).text,
    },
    registration: {
      lifetimeS: integer(reg.lifetimeS, "registration.lifetimeS", 300, 4, 65535),
      firstRetransmitMs: integer(reg.firstRetransmitMs, "registration.firstRetransmitMs", 50, 1, 10_000),
      maxAttempts: integer(reg.maxAttempts, "registration.maxAttempts", 8, 1, 100),
    },
    vms: inventory,
    keys: keyList,
    worker,
  };
}

export function loadAgentConfig(path: string): AgentConfig {
  let value: unknown;
  try {
    value = parse(readFileSync(path, "utf8"));
  } catch (e) {
    throw new AgentConfigError(`${path}: ${(e as Error).message}`);
  }
  return parseAgentConfig(value, path.includes("/") ? path.slice(0, path.lastIndexOf("/")) : ".");
}
