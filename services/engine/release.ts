// ReleaseCareOf: a lease given back, and with `force` the binding that used it (issue 11 §2).
import type { IPv4 } from "../../lib/net/address.js";
import { ConflictError, FailedPreconditionError, NotFoundError } from "../errors.js";
import { correspondentOwner } from "../rules/compile.js";
import { vmOwner } from "../store/store.js";
import type { BindingRecord, CoolingRecord, LeaseRecord } from "../store/store.js";
import type { EngineCore } from "./core.js";

/** What a release did: the named lease, cooling down, and what it found and released. */
export interface Released extends CoolingRecord {
  /** The lease as it was. */
  lease: LeaseRecord;
  /** The binding a forced release removed. */
  binding?: BindingRecord;
  /** Every lease released (the named one, and a forced release's translation lease). */
  released: CoolingRecord[];
}

export class Releases {
  constructor(private readonly core: EngineCore) {}

  /**
   * Gives a lease back. A binding cannot outlive the address it points at (as on expiry): a lease
   * that a binding uses is refused, unless `force`; then the binding, its rules and its own
   * translation lease (or, for a correspondent's lease, the mapping) go with the lease, in one
   * store transaction. Answers what was there before and what was released, for the audit log.
   */
  release(sel: { address: IPv4 } | { vmId: string }, force = false): Promise<Released> {
    return this.core.exclusive(async () => {
      const nowMs = this.core.now();
      const lease = "address" in sel ? await this.core.store.leaseByAddress(sel.address.text) : await this.core.store.getLease(sel.vmId, "care-of");
      if (!lease) throw new NotFoundError("address" in sel ? `no lease holds ${sel.address.text}` : `vm ${sel.vmId} holds no care-of lease`);
      const b = await this.bindingUsing(lease);
      if (b && !force) {
        const use = b.careOfIPv4 === lease.address ? "care-of address" : "translated address";
        throw new FailedPreconditionError(`address: ${lease.address} is the ${use} of vm ${b.vmId}'s binding at ${b.hostId} (migration ${b.migrationId}); it is released when the VM comes home or moves on, or with force, which removes the binding`);
      }
      if (b) {
        const addresses = [lease.address];
        const own = await this.core.store.getLease(b.vmId, "translation");
        if (own && own.address !== lease.address && own.address === b.translatedIPv4) addresses.push(own.address);
        const owners = [vmOwner(b.vmId), ...(lease.purpose === "correspondent" ? [correspondentOwner(lease.holder)] : [])];
        const { released } = await this.core.store.forceRelease(b.vmId, owners, addresses, nowMs, this.core.cooldownMs);
        const cooling = released.find((r) => r.address === lease.address);
        if (!cooling) throw new ConflictError(`address: the lease on ${lease.address} changed during the release; try again`);
        this.core.log.warn("binding removed by a forced release", { vmId: b.vmId, hostId: b.hostId, migrationId: b.migrationId, released: released.map((r) => r.address) });
        return { ...cooling, lease, binding: b, released };
      }
      const cooling = await this.core.store.releaseLease({ address: lease.address }, nowMs, this.core.cooldownMs);
      if (!cooling) throw new NotFoundError(`no lease holds ${lease.address}`);
      // A correspondent's address mapping (RFC 7757) goes with its lease, as on expiry; so do
      // the rules of a migration prepared with a care-of address that never arrived.
      if (cooling.purpose === "correspondent") await this.core.store.replaceRules(correspondentOwner(cooling.holder), []);
      if (cooling.purpose === "care-of" && !(await this.core.store.getBinding(cooling.holder))) await this.core.store.replaceRules(vmOwner(cooling.holder), []);
      return { ...cooling, lease, released: [cooling] };
    });
  }

  /** The binding that points at a lease's address: its VM's (care-of, translation), or one whose home the correspondent mapping names. */
  private async bindingUsing(lease: LeaseRecord): Promise<BindingRecord | undefined> {
    if (lease.purpose === "correspondent") return (await this.core.store.bindingsWithHome(lease.holder)).find((b) => b.translatedIPv4 === lease.address);
    const b = await this.core.store.getBinding(lease.holder);
    return b && (b.careOfIPv4 === lease.address || b.translatedIPv4 === lease.address) ? b : undefined;
  }
}
