// The configuration files of every mip46 process in the lab, generated from LAB_PLAN so that no
// address is written twice: the engine, its data-plane worker, the home agents r1 and r2, and the
// agents of the hosts h4 and h6 (and h6b in a lab with the third host), with the MN–HA keys
// (fresh random keys per lab, mode 0600).
import { randomBytes } from "node:crypto";
import { chmodSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { stringify } from "yaml";
import { LAB_PLAN, THIRD_HOST, vmPort, type HostRole } from "./topology.js";

const P = LAB_PLAN;
const mgmtAddress = (role: keyof typeof P.mgmt.addresses) => P.mgmt.addresses[role].split("/")[0];
const hostPort = (role: keyof typeof P.mgmt.addresses, port: number) => `[${mgmtAddress(role)}]:${port}`;

/** Management-network endpoints (gRPC and Prometheus) of the lab's processes. */
export const LAB_ENDPOINTS = {
  engineGrpc: hostPort("eng", 50046),
  engineMetrics: hostPort("eng", 9046),
  engineWorkerMetrics: hostPort("eng", 9047),
  r1Metrics: hostPort("r1", 9048),
  r2Metrics: hostPort("r2", 9049),
  h4Metrics: hostPort("h4", 9050),
  h6Metrics: hostPort("h6", 9051),
} as const;

/** The third host's endpoints, in a lab that has it (not in LAB_ENDPOINTS, which every lab serves). */
export const THIRD_HOST_ENDPOINTS = {
  h6bMetrics: hostPort(THIRD_HOST, 9052),
} as const;

/** A host agent's metrics endpoint. */
export function hostMetrics(host: HostRole): string {
  return host === THIRD_HOST ? THIRD_HOST_ENDPOINTS.h6bMetrics : LAB_ENDPOINTS[`${host}Metrics`];
}

/** The engine's tunnel endpoints: the paper's "engine, IPv4 side" and "IPv6 side". */
export const ENGINE_TUNNEL = { ipv4: "198.51.100.1", ipv6: "2001:db8:2::1" } as const;

/** The VMs' security associations with their home agents (RFC 5944 §3.5.1, RFC 4285). */
export const VM_SECURITY = {
  vm4: { spi: 0x1001, algorithm: "hmac-sha256" },
  vm6: { spi: 0x1002, algorithm: "hmac-sha256" },
} as const;

export interface LabConfigFiles {
  engine: string;
  engineWorker: string;
  r1: string;
  r2: string;
  h4: string;
  h6: string;
  /** In a lab with the third host only. */
  h6b?: string;
}

function write(dir: string, name: string, value: unknown, secret = false): string {
  const path = join(dir, name);
  writeFileSync(path, stringify(value), { mode: secret ? 0o600 : 0o644 });
  if (secret) chmodSync(path, 0o600);
  return path;
}

function worker(iface: { name: string; mac: string; addresses: readonly string[] }, extra: Record<string, unknown> = {}) {
  return { name: iface.name, mac: iface.mac, addresses: [...iface.addresses], ...extra };
}

/**
 * Writes every configuration into `dir`. `migrateCommand` is the hypervisor hook the agents run
 * on migration advice ({vm} and {host} are filled in); without it the agents take no advice.
 */
export function writeLabConfigs(dir: string, prefix: string, migrateCommand?: string[], thirdHost = false): LabConfigFiles {
  const keys = {
    vm4: { homeAddress: P.vms.vm4.homeAddress.split("/")[0], ...VM_SECURITY.vm4, key: randomBytes(32).toString("hex") },
    vm6: { homeAddress: P.vms.vm6.homeAddress.split("/")[0], ...VM_SECURITY.vm6, key: randomBytes(32).toString("hex") },
  };
  const r1Keys = write(dir, "keys-r1.yaml", [keys.vm4], true);
  const r2Keys = write(dir, "keys-r2.yaml", [keys.vm6], true);
  const agentKeys = write(dir, "keys-agents.yaml", [keys.vm4, keys.vm6], true);
  const e = P.engine.interfaces;

  const engine = write(dir, "engine.yaml", {
    listen: LAB_ENDPOINTS.engineGrpc,
    metricsListen: LAB_ENDPOINTS.engineMetrics,
    store: { kind: "sqlite", path: join(dir, "engine.db"), sync: "full" },
    pool: { name: "engine", prefix: P.engine.pool4, exclude: [ENGINE_TUNNEL.ipv4] },
    segments: [{ name: "ipv4-lab", network: P.networks.net4.prefix, prefix: P.engine.segmentPrefix6, careOfRange: "192.0.2.100-192.0.2.199" }],
    ipv6Networks: [{ name: "ipv6-lab", network: P.networks.net6.prefix }],
    translation: { prefix: P.engine.translationPrefix6, icmpErrorSource: ENGINE_TUNNEL.ipv4 },
    leases: { lifetimeSeconds: 600, cooldownSeconds: 5, correspondentLifetimeSeconds: 86400 },
    hosts: { heartbeatIntervalSeconds: 1, downAfterSeconds: 5 },
    migration: { highWatermark: 0.95, lowWatermark: 0.8, windowSeconds: 10, vmCooldownSeconds: 60 },
  });

  const engineWorker = write(dir, "engine-dataplane.yaml", {
    workerId: "eng",
    engines: [LAB_ENDPOINTS.engineGrpc],
    metricsListen: LAB_ENDPOINTS.engineWorkerMetrics,
    capture: { bufferBytes: 8 << 20 },
    tickMs: 100,
    interfaces: [worker(e.e4), worker(e.e6), worker(e.c4), worker(e.c6)],
    served: [P.engine.pool4, P.engine.segmentPrefix6, P.engine.translationPrefix6],
    translator: { icmpErrorSource4: ENGINE_TUNNEL.ipv4 },
    tunnels: { source4: ENGINE_TUNNEL.ipv4, source6: ENGINE_TUNNEL.ipv6 },
    // Route optimisation: the engine keeps the correspondents' binding cache (flow 3.2 k–m).
    correspondentRouter: true,
  });

  const homeAgent = (role: "r1" | "r2", keysFile: string, metrics: string) => {
    const i = P.homeAgents[role].interface;
    const v4 = role === "r1";
    return write(dir, `home-agent-${role}.yaml`, {
      homeAgent: {
        protocol: v4 ? "mip4" : "mip6", address: i.addresses[0].split("/")[0], homeNetwork: (v4 ? P.networks.net4 : P.networks.net6).prefix,
        interface: i.name, maxLifetimeS: 600, keysFile,
      },
      workerId: role,
      metricsListen: metrics,
      capture: { bufferBytes: 8 << 20 },
      tickMs: 100,
      interfaces: [worker(i)],
      routes: [{ prefix: v4 ? "0.0.0.0/0" : "::/0", interface: i.name, via: (v4 ? e.e4 : e.e6).addresses[0].split("/")[0] }],
    });
  };
  const r1 = homeAgent("r1", r1Keys, LAB_ENDPOINTS.r1Metrics);
  const r2 = homeAgent("r2", r2Keys, LAB_ENDPOINTS.r2Metrics);

  // pidFile: the QEMU of this VM on this host writes its pid there (qemu.ts guestPidFile), for
  // the agent's per-VM resource sampling; the file exists only while the guest runs on the host.
  const vms = (host: HostRole) => Object.values(P.vms).map((vm) => ({
    id: vm.name, port: vmPort(vm.name), homeAddress: vm.homeAddress.split("/")[0],
    homeAgent: (vm.family === 4 ? P.homeAgents.r1 : P.homeAgents.r2).interface.addresses[0].split("/")[0],
    homeHost: vm.host, mac: vm.mac, pidFile: join(dir, `qemu-${vm.name}-${host}.pid`),
  }));
  const agent = (role: HostRole, metrics: string) => {
    const h = P.hosts[role];
    // The visitor port answers as the visitors' own home gateway, with that gateway's MAC (an
    // "anycast gateway", as EVPN fabrics give moving VMs): a VM's neighbour cache stays right
    // when it moves, in both directions, without anything being sent on its behalf.
    const gatewayMac = h.family === 4 ? e.e6.mac : e.e4.mac;
    const uplinkGateway = h.family === 4 ? e.e4.addresses[0].split("/")[0] : e.e6.addresses[0].split("/")[0];
    return write(dir, `agent-${role}.yaml`, {
      hostId: role,
      engines: [LAB_ENDPOINTS.engineGrpc],
      heartbeatIntervalMs: 1000,
      hypervisor: { homeBridge: h.homeBridge, visitorBridge: h.visitorBridge, pollMs: 5, ignorePorts: ["up", h.pv0.peer, h.pv1.peer], ...(migrateCommand ? { migrateCommand } : {}) },
      network: { uplink: h.pv0.name, visitor: h.pv1.name, engineIPv4: ENGINE_TUNNEL.ipv4, engineIPv6: ENGINE_TUNNEL.ipv6 },
      registration: { lifetimeS: 600, firstRetransmitMs: 80, maxAttempts: 8 },
      vms: vms(role),
      keysFile: agentKeys,
      workerId: role,
      metricsListen: metrics,
      capture: { bufferBytes: 8 << 20 },
      tickMs: 100,
      interfaces: [worker(h.pv0), worker(h.pv1, { mac: gatewayMac, promiscuous: true })],
      routes: [{ prefix: h.family === 4 ? "0.0.0.0/0" : "::/0", interface: h.pv0.name, via: uplinkGateway }],
    });
  };
  return {
    engine, engineWorker, r1, r2, h4: agent("h4", LAB_ENDPOINTS.h4Metrics), h6: agent("h6", LAB_ENDPOINTS.h6Metrics),
    ...(thirdHost ? { h6b: agent(THIRD_HOST, THIRD_HOST_ENDPOINTS.h6bMetrics) } : {}),
  };
}
