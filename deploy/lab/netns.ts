// The lab of topology.ts made real with iproute2: namespaces, veths, bridges, kernel addresses,
// routes and sysctls. The VMs are QEMU guests on top of it (qemu.ts); mip46 processes are
// started on top of it with spawnIn.
//
// Order matters in three places:
// - sysctls that later interfaces inherit (`default.disable_ipv6`, `accept_ra`, `accept_dad`) are
//   written right after `ip netns add`, before any interface exists: a veth made or moved into a
//   namespace takes that namespace's defaults, so no bridge port, worker interface or moved VM port
//   ever gets a link-local address or sends DAD, router solicitations or MLD reports. Only `mg0`,
//   the management bridge and the IPv6 client/VM interfaces are switched back on.
// - links are made from the root namespace with both ends placed straight into lab namespaces
//   (`ip link add ... netns A ... peer ... netns B`), so no lab interface is ever linked to the
//   root namespace and nothing can route out of the lab;
// - a link is up before a route through it is added (IPv4 refuses a next hop on a down device).
import { execFile, spawn, type ChildProcess, type SpawnOptions } from "node:child_process";
import { setTimeout as sleep } from "node:timers/promises";
import { stopLabGuests } from "./qemu.js";
import {
  CLIENT_ROLES, CONTROL_ROLES, DEFAULT_PREFIX, DEFAULT_VMS, LAB_PLAN, LabError, THIRD_HOST,
  checkPrefix, checkVm, isLabNamespace, labNames, namespaceName, workerInterfaces,
  type ControlRole, type HostRole, type LabNamespace, type LabNames, type VmSpec,
} from "./topology.js";

export interface ExecResult { stdout: string; stderr: string }
export interface RunOptions { input?: string; timeoutMs?: number }

/** A command that exited non-zero (or timed out); `stderr` is what it said. */
export class CommandError extends Error {
  override name = "CommandError";
  constructor(readonly argv: readonly string[], readonly stderr: string, options?: { cause?: unknown }) {
    super(`${argv.join(" ")} failed: ${stderr.trim() || String((options?.cause as Error | undefined)?.message)}`, options);
  }
}

/** Runs a command and resolves with its output; rejects with CommandError when it fails. */
export function run(argv: readonly string[], options: RunOptions = {}): Promise<ExecResult> {
  return new Promise((resolve, reject) => {
    const child = execFile(argv[0], argv.slice(1), { timeout: options.timeoutMs ?? 30_000, maxBuffer: 64 << 20 }, (err, stdout, stderr) => {
      if (err) reject(new CommandError(argv, stderr, { cause: err }));
      else resolve({ stdout, stderr });
    });
    if (options.input !== undefined) child.stdin!.end(options.input);
  });
}

/** Runs argv inside a lab namespace (a role such as "eng", or "vm-<name>"). */
export async function exec(prefix: string, ns: LabNamespace, argv: readonly string[], options: RunOptions = {}): Promise<ExecResult> {
  return run(["ip", "netns", "exec", namespaceName(prefix, ns), ...argv], options);
}

/** child_process.spawn of argv inside a lab namespace. */
export function spawnIn(prefix: string, ns: LabNamespace, argv: readonly string[], options: SpawnOptions = {}): ChildProcess {
  return spawn("ip", ["netns", "exec", namespaceName(prefix, ns), ...argv], options);
}

/** The namespaces of this lab that exist in the kernel now. */
export async function labNamespaces(prefix: string = DEFAULT_PREFIX): Promise<string[]> {
  checkPrefix(prefix);
  const { stdout } = await run(["ip", "netns", "list"]);
  return stdout.split("\n").map((l) => l.split(" ")[0]).filter((n) => n && isLabNamespace(prefix, n));
}

/**
 * What one build step does, gathered so that each namespace costs a few processes, not one per
 * command: namespaces to add, sysctls before links, links made from the root namespace, sysctls
 * after links, then `ip -batch` per namespace, then ethtool.
 */
class Build {
  readonly namespaces: string[] = [];
  readonly inheritedSysctls = new Map<string, string[]>();
  readonly links: string[] = [];
  readonly interfaceSysctls = new Map<string, string[]>();
  readonly commands = new Map<string, string[]>();
  readonly offloadOff = new Map<string, string[]>();

  constructor(readonly prefix: string) {}

  ns(role: LabNamespace): string {
    return namespaceName(this.prefix, role);
  }

  addNamespace(name: string, sysctls: string[]): void {
    this.namespaces.push(name);
    this.inheritedSysctls.set(name, sysctls);
    this.cmd(name, "link set dev lo up");
  }

  veth(nsA: string, ifA: string, nsB: string, ifB: string, macA?: string, macB?: string): void {
    const end = (ns: string, ifName: string, mac?: string) => `name ${ifName}${mac ? ` address ${mac}` : ""} netns ${ns}`;
    this.links.push(`link add ${end(nsA, ifA, macA)} type veth peer ${end(nsB, ifB, macB)}`);
  }

  bridge(ns: string, name: string): void {
    // No STP: ports forward as soon as they are up. No multicast snooping: without a querier in
    // the lab it would be guesswork, and the workers must see every neighbour solicitation.
    this.links.push(`link add name ${name} netns ${ns} type bridge stp_state 0 mcast_snooping 0`);
    this.cmd(ns, `link set dev ${name} up`);
  }

  cmd(ns: string, line: string): void {
    this.commands.set(ns, [...(this.commands.get(ns) ?? []), line]);
  }

  sysctl(ns: string, setting: string): void {
    this.interfaceSysctls.set(ns, [...(this.interfaceSysctls.get(ns) ?? []), setting]);
  }

  /** The VM or client kernel sends through a worker, which needs complete checksums and MTU-sized frames. */
  noOffload(ns: string, ifName: string): void {
    this.offloadOff.set(ns, [...(this.offloadOff.get(ns) ?? []), ifName]);
  }

  async apply(): Promise<void> {
    if (this.namespaces.length) await run(["ip", "-batch", "-"], { input: this.namespaces.map((n) => `netns add ${n}\n`).join("") });
    await Promise.all([...this.inheritedSysctls].map(([ns, s]) => s.length ? run(["ip", "netns", "exec", ns, "sysctl", "-q", "-w", ...s]) : undefined));
    if (this.links.length) await run(["ip", "-batch", "-"], { input: this.links.map((l) => `${l}\n`).join("") });
    await Promise.all([...this.interfaceSysctls].map(([ns, s]) => run(["ip", "netns", "exec", ns, "sysctl", "-q", "-w", ...s])));
    await Promise.all([...this.commands].map(([ns, lines]) => run(["ip", "-n", ns, "-batch", "-"], { input: lines.map((l) => `${l}\n`).join("") })));
    await Promise.all([...this.offloadOff].flatMap(([ns, ifs]) => ifs.map((i) =>
      run(["ip", "netns", "exec", ns, "ethtool", "-K", i, "tx", "off", "tso", "off", "gso", "off"]))));
  }
}

const QUIET_IPV6 = ["net.ipv6.conf.all.accept_ra=0", "net.ipv6.conf.default.accept_ra=0",
  "net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0"];
const NO_FORWARDING = ["net.ipv4.ip_forward=0", "net.ipv6.conf.all.forwarding=0"];
const NO_IPV6_BY_DEFAULT = ["net.ipv6.conf.default.disable_ipv6=1"];

function planNodes(b: Build, thirdHost: boolean): void {
  const controls: readonly ControlRole[] = thirdHost ? [...CONTROL_ROLES, THIRD_HOST] : CONTROL_ROLES;
  const hosts: readonly HostRole[] = thirdHost ? ["h4", "h6", THIRD_HOST] : ["h4", "h6"];
  const mgmt = b.ns("mgmt");
  b.addNamespace(mgmt, [...NO_IPV6_BY_DEFAULT, ...QUIET_IPV6, ...NO_FORWARDING]);
  b.bridge(mgmt, LAB_PLAN.mgmt.bridge);
  b.sysctl(mgmt, `net.ipv6.conf.${LAB_PLAN.mgmt.bridge}.disable_ipv6=0`);
  b.cmd(mgmt, `addr add ${LAB_PLAN.mgmt.bridgeAddress} dev ${LAB_PLAN.mgmt.bridge} nodad`);

  for (const net of ["net4", "net6"] as const) {
    const ns = b.ns(net);
    b.addNamespace(ns, [...NO_IPV6_BY_DEFAULT, ...QUIET_IPV6, ...NO_FORWARDING]);
    b.bridge(ns, LAB_PLAN.networks[net].bridge);
  }

  for (const role of controls) {
    const ns = b.ns(role);
    // The worker interfaces per deploy/examples/dataplane.yaml HOST SET-UP: no IPv6 (inherited, and
    // written again per interface for the worker's start-up check), no addresses, no forwarding.
    b.addNamespace(ns, [...NO_IPV6_BY_DEFAULT, ...QUIET_IPV6, ...NO_FORWARDING]);
    const mg = LAB_PLAN.mgmt.interface;
    b.veth(ns, mg, mgmt, `mg-${role}`);
    b.sysctl(ns, `net.ipv6.conf.${mg}.disable_ipv6=0`);
    b.cmd(ns, `link set dev ${mg} up`);
    b.cmd(ns, `addr add ${LAB_PLAN.mgmt.addresses[role]} dev ${mg} nodad`);
    b.cmd(mgmt, `link set dev mg-${role} master ${LAB_PLAN.mgmt.bridge} up`);
    for (const w of workerInterfaces(role)) b.sysctl(ns, `net.ipv6.conf.${w.name}.disable_ipv6=1`);
  }

  // Switch ports: the network's bridge gets a port "p-<role>" per attached namespace.
  const macOf = (role: string, ifName: string) =>
    (controls as readonly string[]).includes(role) ? workerInterfaces(role as ControlRole).find((w) => w.name === ifName)?.mac : undefined;
  for (const net of ["net4", "net6"] as const) {
    const sw = b.ns(net);
    for (const [role, ifName] of Object.entries(LAB_PLAN.networks[net].ports)) {
      b.veth(b.ns(role as LabNamespace), ifName, sw, `p-${role}`, macOf(role, ifName));
      b.cmd(sw, `link set dev p-${role} master ${LAB_PLAN.networks[net].bridge} up`);
    }
  }
  if (thirdHost) {
    // The third host's uplink, a port of its network's switch like h6's.
    const h = LAB_PLAN.hosts[THIRD_HOST];
    const sw = b.ns(h.network);
    b.veth(b.ns(THIRD_HOST), h.uplink, sw, `p-${THIRD_HOST}`);
    b.cmd(sw, `link set dev p-${THIRD_HOST} master ${LAB_PLAN.networks[h.network].bridge} up`);
  }
  for (const w of Object.values(LAB_PLAN.engine.interfaces)) b.cmd(b.ns("eng"), `link set dev ${w.name} up`);
  for (const r of ["r1", "r2"] as const) b.cmd(b.ns(r), `link set dev ${LAB_PLAN.homeAgents[r].interface.name} up`);

  for (const host of hosts) {
    const ns = b.ns(host);
    const plan = LAB_PLAN.hosts[host];
    b.bridge(ns, plan.homeBridge);
    b.bridge(ns, plan.visitorBridge);
    b.cmd(ns, `link set dev ${plan.uplink} master ${plan.homeBridge} up`);
    for (const [pv, bridge] of [[plan.pv0, plan.homeBridge], [plan.pv1, plan.visitorBridge]] as const) {
      b.veth(ns, pv.name, ns, pv.peer, pv.mac);
      b.cmd(ns, `link set dev ${pv.peer} master ${bridge} up`);
      b.cmd(ns, `link set dev ${pv.name} up`);
    }
  }

  for (const role of CLIENT_ROLES) {
    const ns = b.ns(role);
    const c = LAB_PLAN.clients[role];
    b.addNamespace(ns, [...(c.family === 4 ? NO_IPV6_BY_DEFAULT : []), ...QUIET_IPV6, ...NO_FORWARDING]);
    b.veth(b.ns("eng"), c.engineInterface, ns, c.interface, LAB_PLAN.engine.interfaces[c.engineInterface].mac, c.mac);
    b.cmd(ns, `link set dev ${c.interface} up`);
    b.cmd(ns, `addr add ${c.address} dev ${c.interface}${c.family === 6 ? " nodad" : ""}`);
    b.cmd(ns, `route add ${c.family === 4 ? "0.0.0.0/0" : "::/0"} via ${c.gateway} dev ${c.interface}`);
    b.noOffload(ns, c.interface);
  }
}

/**
 * Builds the lab (with `thirdHost`, the third host h6b on net6 too). Fails without touching
 * anything when a namespace of this lab already exists; on any other failure it removes what it
 * made and rethrows.
 */
export async function createLab(options: { prefix?: string; vms?: readonly VmSpec[]; thirdHost?: boolean } = {}): Promise<LabNames> {
  const prefix = checkPrefix(options.prefix ?? DEFAULT_PREFIX);
  const vms = options.vms ?? DEFAULT_VMS;
  const seen = new Set<string>();
  for (const vm of vms) {
    checkVm(vm);
    if (seen.has(vm.name)) throw new LabError(`VM ${vm.name} given twice`);
    seen.add(vm.name);
  }
  const existing = await labNamespaces(prefix);
  if (existing.length) throw new LabError(`lab '${prefix}' exists (${existing.join(", ")}); destroyLab('${prefix}') first`);
  try {
    const b = new Build(prefix);
    planNodes(b, options.thirdHost ?? false);
    await b.apply();
  } catch (err) {
    await destroyLab(prefix).catch(() => undefined);
    throw err;
  }
  return labNames(prefix, vms, options.thirdHost ?? false);
}

/** Kills what runs in a namespace (TERM, then KILL after a grace) and deletes it. */
async function removeNamespace(ns: string, graceMs = 1_000): Promise<void> {
  const pids = async () => (await run(["ip", "netns", "pids", ns]).catch(() => ({ stdout: "" }))).stdout.split(/\s+/).filter(Boolean).map(Number);
  const signal = (list: number[], sig: NodeJS.Signals) => list.forEach((p) => { try { process.kill(p, sig); } catch { /* gone */ } });
  signal(await pids(), "SIGTERM");
  const deadline = Date.now() + graceMs;
  let left = await pids();
  while (left.length && Date.now() < deadline) {
    await sleep(50);
    left = await pids();
  }
  signal(left, "SIGKILL");
  // A process still inside would keep the namespace and its interfaces alive after `netns del`.
  await run(["ip", "netns", "del", ns]).catch((err: CommandError) => {
    if (!/No such file/.test(err.stderr)) throw err;
  });
}

/**
 * Removes every namespace of this lab (and only those: exact role names and "vm-<name>" after
 * the prefix), with whatever runs in them. Idempotent; works on a half-built lab. Returns the
 * names removed.
 */
export async function destroyLab(prefix: string = DEFAULT_PREFIX): Promise<string[]> {
  // The guests first, by the pids the lab recorded: their taps go with them.
  await stopLabGuests(prefix);
  const names = await labNamespaces(prefix);
  await Promise.all(names.map((n) => removeNamespace(n)));
  return names;
}
