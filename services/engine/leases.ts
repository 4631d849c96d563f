// The engine's lease calls: AllocateCareOf (with the takeover of a VM's lease held for another
// host), MapCorrespondent, and the expiry of the leases not renewed. ReleaseCareOf is in release.ts.
import type { IPAddress, IPv6 } from "../../lib/net/address.js";
import { cidrText, parseIPv4, prefixContains } from "../../lib/net/address.js";
import { FailedPreconditionError, InvalidArgumentError } from "../errors.js";
import type { HostNetwork } from "../prefix/plan.js";
import { correspondentOwner, correspondentRules } from "../rules/compile.js";
import { vmOwner } from "../store/store.js";
import type { HostRecord, LeaseRecord, Store } from "../store/store.js";
import type { EngineCore, EngineEvents } from "./core.js";

export interface CareOf {
  careOfIPv4: string;
  careOfIPv6: string;
  lifetimeSeconds: number;
  pool: string;
  expiresAtMs: number;
}

export class Leases {
  constructor(private readonly core: EngineCore, private readonly events: EngineEvents) {}

  async allocateCareOf(hostId: string, vmId: string, home: IPAddress): Promise<CareOf> {
    const host = await this.core.host(hostId);
    if (!host) throw new FailedPreconditionError(`host ${hostId} is unknown: its agent must send a Heartbeat with its addresses first`);
    // The network was worked out from the host's addresses when it last beat.
    const net = this.core.plan.networkByCidr(host.network);
    if (!net) throw new FailedPreconditionError(`host ${hostId} is on no network the engine serves (addresses ${host.addresses.join(", ") || "none"})`);
    const pool = this.careOfPool(net, vmId, home);
    const nowMs = this.core.now();
    const lifetimeSeconds = this.core.config.leases.lifetimeSeconds;
    const base = { holder: vmId, purpose: "care-of" as const, hostId, pool, nowMs, expiresAtMs: nowMs + lifetimeSeconds * 1000, cooldownMs: this.core.cooldownMs };
    // Flow 3.1 b-c: an IPv4 VM in the IPv6 network gets a pool address, and an IPv6 care-of
    // address of the host network's prefix + its home address. Flow 3.2 b-c: the segment's range
    // stands in for its DHCP; the IPv6 care-of address is the segment's prefix + that address. An
    // IPv4 VM on a foreign IPv4 segment gets a co-located care-of address the same way (RFC 5944 §1.2).
    const held = await this.core.store.getLease(vmId, "care-of");
    const lease = held && held.hostId !== hostId
      ? await this.core.exclusive(async () => this.core.store.acquireLease({ ...base, hostId: await this.takeOver(hostId, vmId, pool, nowMs) }))
      : await this.core.store.acquireLease(base);
    const v6 = this.core.plan.careOfIPv6(net, home, parseIPv4(lease.address, "care_of_ipv4"))?.text ?? "";
    return { careOfIPv4: lease.address, careOfIPv6: v6, lifetimeSeconds, pool: lease.pool, expiresAtMs: lease.expiresAtMs! };
  }

  /** The pool a VM's care-of address on `net` comes from; FailedPreconditionError where it needs none or can have none. */
  private careOfPool(net: HostNetwork, vmId: string, home: IPAddress): string {
    if (home.family === 4 && net.family === 6) return this.core.config.pool.name;
    if (net.family === 4) {
      const seg = net.segment;
      if (home.family === 4 && prefixContains(seg.network.network.bytes, seg.network.length, home.bytes)) {
        throw new FailedPreconditionError(`vm ${vmId} is on its home network ${cidrText(seg.network)}: it needs no care-of address`);
      }
      if (!seg.careOfPool) throw new FailedPreconditionError(`segment ${seg.name} has no careOfRange configured`);
      if (home.family === 6 && !seg.prefix) throw new FailedPreconditionError(`segment ${seg.name} has no IPv6 prefix, so an IPv6 VM cannot have a care-of address there`);
      return seg.careOfPool.name;
    }
    throw new FailedPreconditionError(
      `vm ${vmId} is an IPv6 VM on IPv6 network ${net.name}: it forms its care-of address itself (RFC 6275 §11.5); the engine serves cross-protocol moves`);
  }

  /**
   * A VM's care-of lease held for another host B, asked for by host H (issue 11 §1). The lease is
   * where the engine knows the VM is or is going: bound at B with it, or in a migration to B
   * prepared with it. H takes it over only when a migration to H is under way as far as the engine
   * can know: it advised the move to H, or B is down, or (for a VM bound at B) B's heartbeat no
   * longer lists the VM. Anything else is FAILED_PRECONDITION naming B and the binding. A
   * migration prepared for B is superseded (its rules go). Taken over into another pool, the
   * address cools down, so a binding that points at it goes too (as on expiry: a binding cannot
   * outlive its care-of address); refused while the VM still runs at the binding's host.
   *
   * The host the VM is bound at, renewing while the lease is already the destination's, renews it
   * for the destination (the same address): its agent goes on renewing the VM's registration
   * until the VM leaves. Resolves the host the lease is to be held for.
   */
  private async takeOver(hostId: string, vmId: string, pool: string, nowMs: number): Promise<string> {
    const lease = await this.core.store.getLease(vmId, "care-of");
    if (!lease || lease.hostId === hostId) return hostId;
    const b = await this.core.store.getBinding(vmId);
    const uses = b !== undefined && b.careOfIPv4 === lease.address;
    if (uses && b.hostId === hostId && lease.pool === pool) return lease.hostId;
    const boundThere = uses && b.hostId === lease.hostId;
    const holder = await this.core.host(lease.hostId);
    const down = !holder || holder.state === "down";
    const advised = (await this.core.history.causeOf(vmId, hostId, nowMs)).advice !== undefined;
    // A host runs the VM when its heartbeat lists it, or when the VM was bound there after that
    // host's last beat: a VM that moves on within a heartbeat of its activation is not yet listed.
    const runsAt = (h: HostRecord | undefined) => h !== undefined && h.state !== "down"
      && (h.vms.some((v) => v.vmId === vmId) || (b !== undefined && b.hostId === h.hostId && b.updatedAtMs > h.lastSeenMs));
    if (!advised && !down) {
      if (boundThere && runsAt(holder)) {
        const why = holder!.vms.some((v) => v.vmId === vmId) ? "that host's heartbeat lists it" : "it was bound there after that host's last heartbeat";
        throw new FailedPreconditionError(`vm_id: vm ${vmId} is bound at host ${b.hostId} (migration ${b.migrationId}) with care-of address ${lease.address}, and ${why}: `
          + `host ${hostId} takes the lease over only for a migration to it the engine knows of (its advice), or once ${b.hostId} is down or no longer lists the VM`, "VM_RUNS_AT_SOURCE");
      }
      if (!boundThere) {
        throw new FailedPreconditionError(`vm_id: vm ${vmId}'s care-of address ${lease.address} is held for host ${lease.hostId}, where its migration is prepared${b ? ` (from its binding at ${b.hostId})` : ""}: `
          + `one migration per VM at a time; ${lease.hostId} aborts it (AbortMigration) or it lapses with the lease, unless the engine advised the move to ${hostId} or ${lease.hostId} is down`);
      }
    }
    const dropBinding = uses && lease.pool !== pool;
    if (dropBinding) {
      if (runsAt(await this.core.host(b.hostId))) {
        throw new FailedPreconditionError(`vm_id: vm ${vmId}'s binding at host ${b.hostId} (migration ${b.migrationId}) uses care-of address ${lease.address} of pool ${lease.pool}, and host ${hostId} takes from pool ${pool}: `
          + `the binding would point at an address cooling down while the VM runs at ${b.hostId}; the lease is taken over once ${b.hostId} no longer lists the VM`, "VM_RUNS_AT_SOURCE");
      }
      await this.core.store.deleteBinding(vmId);
      await this.core.store.releaseLease({ holder: vmId, purpose: "translation" }, nowMs, this.core.cooldownMs);
    }
    if (!b) await this.core.store.replaceRules(vmOwner(vmId), []);
    this.core.log.warn("care-of lease taken over", {
      vmId, from: lease.hostId, to: hostId, address: lease.address, why: advised ? "advice" : down ? "host down" : "no longer listed", bindingRemoved: dropBinding, preparedSuperseded: !b,
    });
    return hostId;
  }

  /** Answers the mapping's lease, and the lease before (undefined for a new mapping), for the audit log. */
  mapCorrespondent(ipv6: IPv6): Promise<{ lease: LeaseRecord; before?: LeaseRecord }> {
    const xlat = this.core.config.translationPrefix;
    // An address inside our own translation prefix stands for an IPv4 node already (RFC 6052):
    // mapping it too would give one IPv4 node two IPv6 names, and loop the translator.
    if (xlat && prefixContains(xlat.network.bytes, xlat.length, ipv6.bytes)) {
      return Promise.reject(new InvalidArgumentError("ipv6_address", `'${ipv6.text}' is inside the engine's translation prefix ${cidrText(xlat)}: it already stands for an IPv4 address`));
    }
    return this.core.exclusive(async () => {
      const nowMs = this.core.now();
      const before = await this.core.store.getLease(ipv6.text, "correspondent");
      const lease = await this.core.store.acquireLease({
        pool: this.core.config.pool.name, holder: ipv6.text, purpose: "correspondent", hostId: "", nowMs,
        expiresAtMs: nowMs + this.core.config.leases.correspondentLifetimeSeconds * 1000, cooldownMs: this.core.cooldownMs,
      });
      await this.core.store.replaceRules(correspondentOwner(ipv6.text), correspondentRules(ipv6.text, lease.address));
      return { lease, before };
    });
  }

  /**
   * Ends the leases that were not renewed, with what used them: a binding on its care-of address,
   * the rules of a migration prepared with it, a correspondent's mapping. A leader duty, in the
   * engine's queue, written through the leader's guarded `store`.
   */
  async expire(store: Store): Promise<void> {
    const nowMs = this.core.now();
    const expired = await store.expireLeases(nowMs, this.core.cooldownMs);
    if (expired.length > 0) this.events.leasesExpired(expired.length);
    for (const lease of expired) {
      this.core.log.info("lease expired", { ...lease });
      if (lease.purpose === "care-of") {
        // A binding cannot outlive the care-of address it points at: the address may go to another VM.
        const b = await store.getBinding(lease.holder);
        if (b && b.careOfIPv4 === lease.address) {
          await store.deleteBinding(lease.holder);
          await store.releaseLease({ holder: lease.holder, purpose: "translation" }, nowMs, this.core.cooldownMs);
        } else if (!b) {
          // Nor do the rules of a migration prepared with it that never arrived.
          await store.replaceRules(vmOwner(lease.holder), []);
          await store.releaseLease({ holder: lease.holder, purpose: "translation" }, nowMs, this.core.cooldownMs);
        }
      } else if (lease.purpose === "correspondent") {
        await store.replaceRules(correspondentOwner(lease.holder), []);
      }
    }
  }
}
