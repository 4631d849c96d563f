// The lab's plan as data: the paper's topology (shared/paper.md, "Addresses") laid out in network
// namespaces, with every name, address and MAC the lab uses. netns.ts turns it into `ip`
// commands; configurations of the engine, workers, home agents and agents are generated from
// LAB_PLAN so that no address is written down twice.
//
//             mgmt (br0 2001:db8:ff::ff/64, the management network: gRPC, metrics)
//     mg0 ::1 / ::2 / ::3 / ::4 / ::5 in eng, r1, r2, h4, h6
//
//   c4 ──c4┐                 ┌e4── net4 (br0) ──eth0 r1        h4: up ─ brh ─ pv0br─pv0
//          eng (the engine)                     ──up   h4          vp-<vm> ─┘
//   c6 ──c6┘                 └e6── net6 (br0) ──eth0 r2             brv ─ pv1br─pv1
//                                                ──up   h6      (h6 the same on net6)
//
// A VM is a QEMU guest (qemu.ts) run in a host namespace, its tap `vp-<name>` on brh or brv; a
// migration is a QEMU live migration to a QEMU started in the other host.
//
// On request (createLab / startLab { thirdHost: true }, `mip46-lab up --third-host`) a third host
// h6b joins net6: an IPv6 host like h6 (mgmt ::6, pv0 2001:db8:1::7, pv1 the visitors' gateway),
// for moves between two visited hosts (vm4 from h6 to h6b).
import { createHash } from "node:crypto";
import { parseCidr4, parseCidr6, parseIPv4, parseIPv6, prefixContains } from "../../lib/net/address.js";

export const DEFAULT_PREFIX = "m46";

export type Family = 4 | 6;
export type SwitchRole = "mgmt" | "net4" | "net6";
export type ControlRole = "eng" | "r1" | "r2" | "h4" | "h6" | "h6b";
export type HostRole = "h4" | "h6" | "h6b";
/** The optional third host: a second IPv6 host on net6, made only when a lab is asked for it. */
export const THIRD_HOST = "h6b" as const;
export type ThirdHostRole = typeof THIRD_HOST;
export const HOST_ROLES: readonly HostRole[] = ["h4", "h6", THIRD_HOST];
export type ClientRole = "c4" | "c6";
export type NodeRole = SwitchRole | ControlRole | ClientRole;
/** What exec/spawnIn accept: a node role (VMs are QEMU guests, not namespaces). */
export type LabNamespace = NodeRole;

export const SWITCH_ROLES: readonly SwitchRole[] = ["mgmt", "net4", "net6"];
/** The control namespaces of every lab (the third host is not among them: it is optional). */
export const CONTROL_ROLES: readonly ControlRole[] = ["eng", "r1", "r2", "h4", "h6"];
export const CLIENT_ROLES: readonly ClientRole[] = ["c4", "c6"];
/** The namespaces of every lab; a lab with the third host has THIRD_HOST too. */
export const NODE_ROLES: readonly NodeRole[] = [...SWITCH_ROLES, ...CONTROL_ROLES, ...CLIENT_ROLES];
const ALL_ROLES: readonly NodeRole[] = [...NODE_ROLES, THIRD_HOST];

/** A VM: a QEMU guest attached to a host through its tap `vp-<name>`. */
export interface VmSpec {
  /** 1–12 of [a-z0-9]: "vp-" + name must fit the 15 characters of an interface name. */
  name: string;
  family: Family;
  /** Interface form, e.g. "192.0.2.1/24" or "2001:db8:1::2/64". */
  homeAddress: string;
  /** The default route's next hop, inside homeAddress's prefix. */
  gateway: string;
  /** The host it starts on. */
  host: HostRole;
  /** eth0's MAC; default vmMac(name). */
  mac?: string;
}

/** A data-plane worker's interface: no kernel address; `addresses` are the worker's own. */
export interface WorkerInterfacePlan {
  readonly name: string;
  readonly mac: string;
  readonly addresses: readonly string[];
}

export const LAB_PLAN = {
  mgmt: {
    network: "2001:db8:ff::/64",
    bridge: "br0",
    bridgeAddress: "2001:db8:ff::ff/64",
    /** The interface in each control namespace, and its kernel address. */
    interface: "mg0",
    addresses: {
      eng: "2001:db8:ff::1/64",
      r1: "2001:db8:ff::2/64",
      r2: "2001:db8:ff::3/64",
      h4: "2001:db8:ff::4/64",
      h6: "2001:db8:ff::5/64",
      h6b: "2001:db8:ff::6/64",
    },
  },
  /** The two switched networks; `ports` maps each attached namespace to its interface there. */
  networks: {
    net4: { family: 4, prefix: "192.0.2.0/24", bridge: "br0", ports: { eng: "e4", r1: "eth0", h4: "up" } },
    net6: { family: 6, prefix: "2001:db8:1::/64", bridge: "br0", ports: { eng: "e6", r2: "eth0", h6: "up" } },
  },
  engine: {
    interfaces: {
      e4: { name: "e4", mac: "02:46:01:00:00:04", addresses: ["192.0.2.254/24", "198.51.100.1/32"] },
      e6: { name: "e6", mac: "02:46:01:00:00:06", addresses: ["2001:db8:1::fe/64", "2001:db8:2::1/128"] },
      c4: { name: "c4", mac: "02:46:01:00:00:c4", addresses: ["203.0.113.1/24"] },
      c6: { name: "c6", mac: "02:46:01:00:00:c6", addresses: ["2001:db8:c::1/64"] },
    },
    /** The engine's IPv4 pool (flows 3.1 c, 3.2 with an IPv4 CN). */
    pool4: "198.51.100.0/24",
    /** The prefix the engine gives the IPv4 segment (flow 3.2 c). */
    segmentPrefix6: "2001:db8:3::/96",
    /** The translation prefix (RFC 6052 /96) behind which IPv4 hosts appear to IPv6. */
    translationPrefix6: "2001:db8:64::/96",
  },
  homeAgents: {
    r1: { family: 4, interface: { name: "eth0", mac: "02:46:02:00:00:01", addresses: ["192.0.2.2/24"] } },
    r2: { family: 6, interface: { name: "eth0", mac: "02:46:03:00:00:01", addresses: ["2001:db8:1::1/64"] } },
  },
  hosts: {
    h4: {
      family: 4, network: "net4", homeAgent: "r1", uplink: "up", homeBridge: "brh", visitorBridge: "brv",
      // pv0 speaks for the privileged VM on the host's own network; pv1 faces visiting VMs of the
      // other family and answers their (home) gateway. The addresses are a proposal for the agents.
      pv0: { name: "pv0", peer: "pv0br", mac: "02:46:04:00:00:00", addresses: ["192.0.2.4/24"] },
      pv1: { name: "pv1", peer: "pv1br", mac: "02:46:04:00:00:01", addresses: ["2001:db8:1::fe/64"] },
    },
    h6: {
      family: 6, network: "net6", homeAgent: "r2", uplink: "up", homeBridge: "brh", visitorBridge: "brv",
      pv0: { name: "pv0", peer: "pv0br", mac: "02:46:05:00:00:00", addresses: ["2001:db8:1::6/64"] },
      pv1: { name: "pv1", peer: "pv1br", mac: "02:46:05:00:00:01", addresses: ["192.0.2.254/24"] },
    },
    /**
     * The optional third host (THIRD_HOST), a second IPv6 host on net6: its uplink "up" is a port
     * of net6's bridge like h6's (not in networks.net6.ports, which every lab has); pv1 answers
     * the visitors' gateway as h6's does.
     */
    h6b: {
      family: 6, network: "net6", homeAgent: "r2", uplink: "up", homeBridge: "brh", visitorBridge: "brv",
      pv0: { name: "pv0", peer: "pv0br", mac: "02:46:08:00:00:00", addresses: ["2001:db8:1::7/64"] },
      pv1: { name: "pv1", peer: "pv1br", mac: "02:46:08:00:00:01", addresses: ["192.0.2.254/24"] },
    },
  },
  clients: {
    c4: { family: 4, interface: "eth0", mac: "02:46:06:00:00:01", address: "203.0.113.10/24", gateway: "203.0.113.1", engineInterface: "c4" },
    c6: { family: 6, interface: "eth0", mac: "02:46:07:00:00:01", address: "2001:db8:c::10/64", gateway: "2001:db8:c::1", engineInterface: "c6" },
  },
  vms: {
    vm4: { name: "vm4", family: 4, homeAddress: "192.0.2.1/24", gateway: "192.0.2.254", host: "h4", mac: "02:46:76:00:00:04" },
    vm6: { name: "vm6", family: 6, homeAddress: "2001:db8:1::2/64", gateway: "2001:db8:1::fe", host: "h6", mac: "02:46:76:00:00:06" },
  },
} as const;

export type LabPlan = typeof LAB_PLAN;

/** What every lab guest serves (deploy/lab/guest/init): a TCP echo and a UDP echo (probe.mjs's). */
export const GUEST_SERVICES = { tcpEcho: 7000, udpEcho: 7000 } as const;

/** The lab's folder: configurations, logs, QEMU sockets and the guests' records. */
export function labDir(prefix: string): string {
  return `/run/mip46-lab/${checkPrefix(prefix)}`;
}

/** The VMs createLab makes unless told otherwise. */
export const DEFAULT_VMS: readonly VmSpec[] = [LAB_PLAN.vms.vm4, LAB_PLAN.vms.vm6];

/** The interfaces a data-plane worker captures on, per namespace of every lab (set up per dataplane.yaml). */
export const WORKER_INTERFACES: Readonly<Record<Exclude<ControlRole, ThirdHostRole>, readonly WorkerInterfacePlan[]>> = {
  eng: Object.values(LAB_PLAN.engine.interfaces),
  r1: [LAB_PLAN.homeAgents.r1.interface],
  r2: [LAB_PLAN.homeAgents.r2.interface],
  h4: [LAB_PLAN.hosts.h4.pv0, LAB_PLAN.hosts.h4.pv1],
  h6: [LAB_PLAN.hosts.h6.pv0, LAB_PLAN.hosts.h6.pv1],
};

/** A control namespace's worker interfaces, the third host's included. */
export function workerInterfaces(role: ControlRole): readonly WorkerInterfacePlan[] {
  return role === THIRD_HOST ? [LAB_PLAN.hosts.h6b.pv0, LAB_PLAN.hosts.h6b.pv1] : WORKER_INTERFACES[role];
}

export class LabError extends Error {
  override name = "LabError";
}

/** One of [a-z0-9] runs joined by "-", no run equal to "vm" (so "<prefix>-vm-<name>" stays unambiguous). */
export function checkPrefix(prefix: string): string {
  if (!/^[a-z0-9]+(-[a-z0-9]+)*$/.test(prefix) || prefix.length > 32 || prefix.split("-").includes("vm")) {
    throw new LabError(`lab prefix '${prefix}' must be up to 32 of [a-z0-9-], no "vm" part`);
  }
  return prefix;
}

export function checkVmName(name: string): string {
  if (!/^[a-z0-9]{1,12}$/.test(name)) throw new LabError(`VM name '${name}' must be 1-12 of [a-z0-9]`);
  return name;
}

export function namespaceName(prefix: string, ns: LabNamespace): string {
  if (!(ALL_ROLES as readonly string[]).includes(ns)) throw new LabError(`no lab namespace '${ns}'`);
  return `${checkPrefix(prefix)}-${ns}`;
}

/** The VM's port in its host namespace. */
export function vmPort(vmName: string): string {
  return `vp-${checkVmName(vmName)}`;
}

/**
 * True for exactly the namespace names a lab with this prefix makes, and no other lab's; also
 * "vm-<name>", the VM namespaces of labs from before the VMs were QEMU guests, so that
 * destroyLab still clears those.
 */
export function isLabNamespace(prefix: string, name: string): boolean {
  const head = `${checkPrefix(prefix)}-`;
  if (!name.startsWith(head)) return false;
  const rest = name.slice(head.length);
  return (ALL_ROLES as readonly string[]).includes(rest) || /^vm-[a-z0-9]{1,12}$/.test(rest);
}

export function hostFamily(host: HostRole): Family {
  return LAB_PLAN.hosts[host].family;
}

/** A VM of the host network's own family is on its home link (brh); any other is a visitor (brv). */
export function bridgeFor(vmFamily: Family, host: HostRole): string {
  const plan = LAB_PLAN.hosts[host];
  return vmFamily === plan.family ? plan.homeBridge : plan.visitorBridge;
}

export function otherHost(host: HostRole): HostRole {
  return host === "h4" ? "h6" : "h4";
}

/** A fixed, locally administered MAC for a VM not in LAB_PLAN: 02:46:76 and 24 bits of the name's hash. */
export function vmMac(name: string): string {
  const known = Object.values(LAB_PLAN.vms).find((vm) => vm.name === name);
  if (known) return known.mac;
  const h = createHash("sha256").update(name).digest();
  return ["02", "46", "76", ...[h[0], h[1], h[2]].map((b) => b.toString(16).padStart(2, "0"))].join(":");
}

/** Checks a VM spec; returns it with its MAC filled in. */
export function checkVm(vm: VmSpec): Required<VmSpec> {
  checkVmName(vm.name);
  const field = `VM ${vm.name}`;
  if (vm.host !== "h4" && vm.host !== "h6") throw new LabError(`${field}: host must be h4 or h6`);
  const home = vm.family === 4 ? parseCidr4(vm.homeAddress, `${field} homeAddress`, false)
    : vm.family === 6 ? parseCidr6(vm.homeAddress, `${field} homeAddress`, false)
    : undefined;
  if (!home) throw new LabError(`${field}: family must be 4 or 6`);
  const gateway = vm.family === 4 ? parseIPv4(vm.gateway, `${field} gateway`) : parseIPv6(vm.gateway, `${field} gateway`);
  if (!prefixContains(home.network.bytes, home.length, gateway.bytes)) {
    throw new LabError(`${field}: gateway ${vm.gateway} is outside ${vm.homeAddress}`);
  }
  const mac = vm.mac ?? vmMac(vm.name);
  if (!/^02:46(:[0-9a-f]{2}){4}$/.test(mac)) throw new LabError(`${field}: MAC ${mac} must be 02:46:xx:xx:xx:xx`);
  return { ...vm, mac };
}

export interface LabNames {
  prefix: string;
  /** Role → namespace name, for the namespaces of every lab. */
  namespaces: Record<Exclude<NodeRole, ThirdHostRole>, string>;
  /** The third host's namespace, in a lab that has it. */
  thirdHost?: string;
  /** VM name → its tap on the host (vp-<name>), for the VMs given (the default VMs unless told). */
  vms: Record<string, string>;
  plan: LabPlan;
}

export function labNames(prefix: string = DEFAULT_PREFIX, vms: readonly VmSpec[] = DEFAULT_VMS, thirdHost = false): LabNames {
  checkPrefix(prefix);
  const namespaces = Object.fromEntries(NODE_ROLES.map((r) => [r, namespaceName(prefix, r)])) as LabNames["namespaces"];
  return { prefix, namespaces, ...(thirdHost ? { thirdHost: namespaceName(prefix, THIRD_HOST) } : {}), vms: Object.fromEntries(vms.map((vm) => [vm.name, vmPort(vm.name)])), plan: LAB_PLAN };
}
