// A VM visiting this host from the other protocol's network, the host's side of its tunnels
// (3.1 f, k, l; 3.2 d, k), and how a port is known as a VM's.
import { parseAddress, prefixContains, type Cidr } from "../../lib/net/address.js";
import type { Rule } from "../../lib/rules/rules.js";
import type { Emit, Forwarder } from "../../dataplane/forward/index.js";
import type { LocalRules } from "../../dataplane/worker/local.js";
import type { CareOfAddresses } from "../../mobility/index.js";
import type { AgentConfig, VmInventoryEntry } from "./config.js";
import type { HandoverTimeline } from "./timeline.js";

export interface Visit extends CareOfAddresses {
  vm: VmInventoryEntry;
  /** prepared: the VM still runs at its source and nothing of its traffic comes here; active: it runs here. */
  phase: "prepared" | "active";
  /** The engine holds the VM's rules for this host already (PrepareMigration). */
  enginePrepared: boolean;
  timeline: HandoverTimeline;
  /** The care-of lease's lifetime (AllocateCareOf); the lease is renewed with the registration. */
  leaseLifetimeS: number;
  refresh?: NodeJS.Timeout;
  /** Ends the visit's timers and waits: the VM left, was prepared anew, or the agent stopped. */
  ended: AbortController;
}

/** The host's side of a visit: its care-of address local, and what the VM sends wrapped to the engine. */
export class HostSide {
  constructor(private readonly cfg: AgentConfig, private readonly forwarder: Forwarder, private readonly rules: LocalRules) {}

  install(v: Visit, old: Visit | undefined): void {
    const { engineIPv4, engineIPv6 } = this.cfg.network;
    const k = (what: string) => `vm/${v.vm.id}/${what}`;
    const rules: Rule[] = [];
    if (v.vm.family === 4) {
      // 3.1 f, l: what the VM sends goes IPv4-in-IPv6 from its IPv6 care-of address to the engine;
      // k: the engine's tunnel ends at that address.
      this.forwarder.setLocal(v.careOfIPv6, true);
      rules.push({ key: k("out"), kind: "encapsulate", tunnel: "4in6", remote: engineIPv6, local: v.careOfIPv6, innerSource: `${v.vm.homeAddress}/32` });
    } else {
      // 3.2 d, k: IPv6-in-IPv4 from the IPv4 care-of address; the binding updates come from the
      // IPv6 care-of address (RFC 6275 §11.7.1), the data from the home address (reverse tunnelling).
      this.forwarder.setLocal(v.careOfIPv4, true);
      rules.push({ key: k("out"), kind: "encapsulate", tunnel: "6in4", remote: engineIPv4, local: v.careOfIPv4, innerSource: `${v.vm.homeAddress}/128` });
      rules.push({ key: k("out-care-of"), kind: "encapsulate", tunnel: "6in4", remote: engineIPv4, local: v.careOfIPv4, innerSource: `${v.careOfIPv6}/128` });
    }
    if (old && old !== v) this.remove(old, rules.map((r) => r.key));
    this.rules.apply(rules);
  }

  /**
   * The VM runs here: its care-of address on the uplink is announced as this host's (an
   * unsolicited Neighbor Advertisement with the Override flag, RFC 4861 §7.2.6; a gratuitous ARP
   * for an IPv4 address, RFC 5227 §3). A move between two hosts of one network keeps the address
   * (the network's prefix + the home address, or the same pool address): the engine's worker's
   * neighbour entry must move to this host. §7.2.6 allows up to MAX_NEIGHBOR_ADVERTISEMENT (3),
   * RetransTimer (1 s) apart: a second one follows a second later, in case the first was lost.
   */
  announce(v: Visit, emit: Emit): void {
    const address = v.vm.family === 4 ? v.careOfIPv6 : v.careOfIPv4;
    if (!address) return;
    const send = () => this.forwarder.announce(this.cfg.network.uplink, address, emit);
    send();
    const again = setTimeout(() => {
      if (!v.ended.signal.aborted) send();
    }, 1000);
    v.ended.signal.addEventListener("abort", () => clearTimeout(again), { once: true });
  }

  /** Ends the visit and takes its rules away, but for `keep` (the same keys installed anew). */
  remove(v: Visit, keep: string[] = []): void {
    v.ended.abort();
    const keys = [`vm/${v.vm.id}/out`, `vm/${v.vm.id}/out-care-of`].filter((k) => !keep.includes(k));
    this.rules.apply([], keys);
    this.forwarder.setLocal(v.vm.family === 4 ? v.careOfIPv6 : v.careOfIPv4, false);
  }
}

/** The VMs of the configuration, known by port name or MAC. */
export class Inventory {
  private readonly byPort: Map<string, VmInventoryEntry>;
  private readonly byMac: Map<string, VmInventoryEntry>;

  constructor(private readonly vms: VmInventoryEntry[]) {
    this.byPort = new Map(vms.filter((v) => v.port !== undefined).map((v) => [v.port!, v]));
    this.byMac = new Map(vms.map((v) => [v.mac, v]));
  }

  /** The VM a port belongs to: by its configured name, else by the port's MAC (the VM's, or libvirt's 0xfe form of it). */
  identify(port: string, mac: string | undefined): VmInventoryEntry | undefined {
    const byName = this.byPort.get(port);
    if (byName !== undefined || mac === undefined) return byName;
    const exact = this.byMac.get(mac);
    if (exact !== undefined && exact.port === undefined) return exact;
    if (!mac.startsWith("fe:")) return undefined;
    for (const v of this.vms) if (v.port === undefined && v.mac.slice(2) === mac.slice(2)) return v;
    return undefined;
  }

  /** A VM of a hypervisor's domain, by its tap's name or the guest's MAC as the domain XML has it. */
  ofInterface(dev: string | undefined, mac: string): VmInventoryEntry | undefined {
    return (dev === undefined ? undefined : this.byPort.get(dev)) ?? this.byMac.get(mac);
  }
}

/** Whether an address (text, from the engine) lies in `prefix`; a malformed one does not. */
export function inPrefix(address: string, prefix: Cidr): boolean {
  try {
    return prefixContains(prefix.network.bytes, prefix.length, parseAddress(address, "address").bytes);
  } catch {
    return false;
  }
}
