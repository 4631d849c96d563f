// What the gRPC adapter reads through the engine (services/api/ reaches the store only through
// these): the prefix of a segment, the leases, bindings, pools, migrations, where a VM is, the
// advice given, the lease a ReleaseCareOf names (to authorise it), and an online backup. The hosts
// are read in heartbeats.ts, the rule table in rules.ts.
import type { Cidr4, IPv4 } from "../../lib/net/address.js";
import { AddressError, cidrText, parseIPv4 } from "../../lib/net/address.js";
import { FailedPreconditionError, NotFoundError } from "../errors.js";
import { BackupUnsupportedError } from "../store/store.js";
import type { BindingRecord, LeaseRecord, MigrationCursor, PoolUsage } from "../store/store.js";
import type { EngineCore } from "./core.js";
import type { AdviceEntry, MigrationPage, VmPlace } from "./history.js";

export class EngineReads {
  constructor(private readonly core: EngineCore) {}

  /** RequestPrefix: the IPv6 prefix of an attached IPv4 segment. */
  requestPrefix(segment: Cidr4): string {
    const seg = this.core.plan.segmentFor(cidrText(segment));
    if (!seg) {
      const known = this.core.plan.segments.map((s) => cidrText(s.network)).join(", ") || "none";
      throw new NotFoundError(`ipv4_segment: ${cidrText(segment)} is not a segment attached to this engine (known: ${known})`);
    }
    if (!seg.prefix) throw new FailedPreconditionError(`ipv4_segment: ${cidrText(segment)} has no IPv6 prefix assigned`);
    return `${seg.prefix.network.text}/${seg.prefix.length}`;
  }

  /** The lease on one address; NotFoundError when none holds it. */
  async getLease(address: IPv4): Promise<LeaseRecord> {
    const l = await this.core.store.leaseByAddress(address.text);
    if (!l) throw new NotFoundError(`address: no lease holds ${address.text}`);
    return l;
  }

  /** A VM's binding; NotFoundError for a VM that is not away (at home, or unknown). */
  async getBinding(vmId: string): Promise<BindingRecord> {
    const b = await this.core.store.getBinding(vmId);
    if (!b) throw new NotFoundError(`vm_id: vm ${vmId} has no binding: it is at home, or unknown (mipctl where ${vmId})`);
    return b;
  }

  poolUsage(): Promise<PoolUsage[]> {
    return this.core.store.poolUsage(this.core.now());
  }

  /** The leases, those of one host or holder when given. */
  async listLeases(f: { hostId?: string; holder?: string } = {}): Promise<LeaseRecord[]> {
    return (await this.core.store.listLeases()).filter((l) => (!f.hostId || l.hostId === f.hostId) && (!f.holder || l.holder === f.holder));
  }

  /** The bindings, those of one host or VM when given. */
  async listBindings(f: { hostId?: string; vmId?: string } = {}): Promise<BindingRecord[]> {
    return (await this.core.store.listBindings()).filter((b) => (!f.hostId || b.hostId === f.hostId) && (!f.vmId || b.vmId === f.vmId));
  }

  /** A page of the migrations, newest first: `pageSize` of them (0: MIGRATIONS_LISTED; at most that), after `after`. */
  listMigrations(pageSize = 0, after?: MigrationCursor): Promise<MigrationPage> {
    return this.core.history.migrations(pageSize, after);
  }

  /** Where a VM is and how it got there; NotFoundError for a VM the engine knows nothing of. */
  getVm(vmId: string): Promise<VmPlace> {
    return this.core.history.vm(vmId);
  }

  /** The advice given, newest first, with what became of each. */
  listAdvice(vmId?: string): Promise<AdviceEntry[]> {
    return this.core.history.advice(vmId);
  }

  /** An online backup of the store into a new file at `path`; FailedPreconditionError on a store that backs up on its own (etcd). */
  async backup(path: string): Promise<{ revision: bigint }> {
    try {
      return await this.core.store.backup(path);
    } catch (e) {
      if (e instanceof BackupUnsupportedError) throw new FailedPreconditionError(e.message);
      throw e;
    }
  }

  /**
   * The lease a ReleaseCareOf names: the lease on an address (one lookup by key, not a scan of
   * every lease), or a VM's care-of lease. Text that is no IPv4 address has no lease; the call
   * itself then answers INVALID_ARGUMENT.
   */
  async leaseToRelease(sel: { address: string } | { vmId: string }): Promise<LeaseRecord | undefined> {
    if ("vmId" in sel) return this.core.store.getLease(sel.vmId, "care-of");
    const address = tryParseIPv4(sel.address);
    return address ? this.core.store.leaseByAddress(address.text) : undefined;
  }
}

function tryParseIPv4(text: string): IPv4 | undefined {
  try {
    return parseIPv4(text, "address");
  } catch (e) {
    if (e instanceof AddressError) return undefined;
    throw e;
  }
}
