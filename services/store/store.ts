// The engine's state behind one interface. SQLite is the embedded default (sqlite.ts); a replicated
// store (etcd) implements the same contract. Every method that changes state resolves only once
// the change is durable, and each is atomic: allocation never hands out one address twice.
import type { Rule } from "../../lib/rules/rules.js";

export type LeasePurpose = "care-of" | "translation" | "correspondent";

export interface LeaseRecord {
  address: string;
  pool: string;
  /** The VM id, or for a correspondent mapping the correspondent's IPv6 address. */
  holder: string;
  purpose: LeasePurpose;
  hostId: string;
  /** Unix ms; null for a lease held until it is released (translation addresses of a binding). */
  expiresAtMs: number | null;
}

export interface CoolingRecord {
  address: string;
  pool: string;
  holder: string;
  purpose: LeasePurpose;
  cooldownUntilMs: number;
}

export interface PoolAddressSet {
  pool: string;
  kind: "engine" | "segment";
  /** Every address that may be leased, as 32-bit values. */
  addresses: number[];
}

export interface PoolUsage {
  pool: string;
  kind: "engine" | "segment";
  first: string;
  last: string;
  size: number;
  leased: number;
  cooling: number;
  free: number;
}

export interface AcquireLease {
  pool: string;
  holder: string;
  purpose: LeasePurpose;
  hostId: string;
  nowMs: number;
  expiresAtMs: number | null;
  /** How long an address this holder leaves behind in another pool cools down. */
  cooldownMs: number;
}

export interface BindingRecord {
  vmId: string;
  homeAddress: string;
  homeAgent: string;
  hostId: string;
  careOfIPv4: string;
  careOfIPv6: string;
  translatedIPv4: string;
  translatedIPv6: string;
  migrationId: string;
  updatedAtMs: number;
}

/**
 * The home agent a home network's VMs register with, learned from the first registration of a VM
 * of that network (issue 11 §1); a configured `homeAgent` takes its place.
 */
export interface HomeAgentRecord {
  /** The home network, as the engine names it (its CIDR text). */
  network: string;
  homeAgent: string;
  /** The VM whose registration it was learned from. */
  vmId: string;
}

export interface MigrationRecord {
  migrationId: string;
  vmId: string;
  sourceHostId: string;
  destinationHostId: string;
  careOfIPv4: string;
  careOfIPv6: string;
  registeredAtMs: number;
  /** Why it moved (see MigrationCause in control.proto); absent in records written before it was kept. */
  cause?: MigrationCause;
  /** For cause "advice": the advice the move followed. */
  advice?: AdviceRecord;
}

export type MigrationCause = "advice" | "hypervisor" | "operator";

/** A place in the migration history (newest first): a page of ListMigrations starts after it. */
export interface MigrationCursor {
  registeredAtMs: number;
  migrationId: string;
}

export type HostStateName = "up" | "hot" | "down";

export interface ResourcesRecord {
  cpuUsedCores: number;
  cpuTotalCores: number;
  memoryUsedBytes: number;
  memoryTotalBytes: number;
}

export interface VmRecord {
  vmId: string;
  homeAddress: string;
  cpuUsedCores: number;
  memoryUsedBytes: number;
}

export interface HostRecord {
  hostId: string;
  state: HostStateName;
  family: 4 | 6 | 0;
  network: string;
  addresses: string[];
  resources: ResourcesRecord;
  vms: VmRecord[];
  lastSeenMs: number;
  /** An operator cordoned it: never a migration's destination (absent: not cordoned). */
  cordoned?: boolean;
  /** An operator drains it (cordoned too): each of its VMs is advised to move away. */
  draining?: boolean;
}

export interface AdviceRecord {
  vmId: string;
  sourceHostId: string;
  destinationHostId: string;
  crossProtocol: boolean;
  reason: string;
  givenAtMs: number;
  /** Given because an operator drains the source host (absent: the source was hot). */
  drain?: boolean;
}

export interface RuleChange {
  revision: bigint;
  key: string;
  /** The new rule, or null when the rule was removed. */
  rule: Rule | null;
}

export interface Store {
  /** Brings the leasable addresses in line with the configuration; leased ones are kept. */
  syncPools(pools: PoolAddressSet[]): Promise<void>;

  /** Renews the holder's lease in `pool`, or allocates one; ResourceExhaustedError when none is free. */
  acquireLease(req: AcquireLease): Promise<LeaseRecord>;
  /** Moves a lease to cooling; resolves undefined when there was no such lease. */
  releaseLease(sel: { address: string } | { holder: string; purpose: LeasePurpose }, nowMs: number, cooldownMs: number): Promise<CoolingRecord | undefined>;
  /** Moves every lease whose lifetime ended to cooling, and returns them. */
  expireLeases(nowMs: number, cooldownMs: number): Promise<CoolingRecord[]>;
  getLease(holder: string, purpose: LeasePurpose): Promise<LeaseRecord | undefined>;
  /** The lease on one address (a key lookup, never a scan); undefined when the address is free, cooling or not a pool's. */
  leaseByAddress(address: string): Promise<LeaseRecord | undefined>;
  listLeases(): Promise<LeaseRecord[]>;
  poolUsage(nowMs: number): Promise<PoolUsage[]>;

  /** Replaces the rules owned by `owner` (a VM, a correspondent, the configuration). */
  replaceRules(owner: string, rules: Rule[]): Promise<bigint>;
  /** The rules owned by `owner` (a key lookup, not a scan of the table). */
  rulesOf(owner: string): Promise<Rule[]>;
  /**
   * Records a migration, replaces the VM's binding and its rules, in one atomic change; refuses
   * (FailedPreconditionError) a home address that another VM's binding holds. With `homeAgent`,
   * claims the home network's agent in the same change: recorded when the network has none,
   * refused (FailedPreconditionError naming home_agent) when it has another.
   */
  putBinding(binding: BindingRecord, migration: MigrationRecord, rules: Rule[], homeAgent?: HomeAgentRecord): Promise<bigint>;
  /** The home agent learned for a home network; undefined before its first registration. */
  getHomeAgent(network: string): Promise<HomeAgentRecord | undefined>;
  /** Removes a VM's binding and its rules (the VM came home, or its care-of lease ended). */
  deleteBinding(vmId: string, migration?: MigrationRecord): Promise<{ revision: bigint; binding?: BindingRecord }>;
  /**
   * A forced release, in one atomic change: removes a VM's binding, clears the rules of each of
   * `owners` (the VM's, a correspondent's mapping), and moves the leases on `addresses` to cooling
   * (those no longer leased are skipped). Resolves the cooled leases and the rule revision.
   */
  forceRelease(vmId: string, owners: string[], addresses: string[], nowMs: number, cooldownMs: number): Promise<{ revision: bigint; released: CoolingRecord[] }>;
  getBinding(vmId: string): Promise<BindingRecord | undefined>;
  listBindings(): Promise<BindingRecord[]>;
  /** The bindings whose VM has this home address (at most one when the engine held to its rules). */
  bindingsWithHome(homeAddress: string): Promise<BindingRecord[]>;
  /** The newest migrations first (by time, then id), at most `limit`, those after `after` when given. */
  listMigrations(limit: number, after?: MigrationCursor): Promise<MigrationRecord[]>;

  ruleTable(): Promise<{ revision: bigint; rules: Rule[] }>;
  /** Changes after `revision`, oldest first; undefined when the log no longer reaches back that far. */
  ruleChangesSince(revision: bigint): Promise<RuleChange[] | undefined>;
  /** Called after each durable change of the rule table. */
  onRulesChanged(listener: (revision: bigint) => void): () => void;

  putHost(host: HostRecord): Promise<void>;
  getHost(hostId: string): Promise<HostRecord | undefined>;
  listHosts(): Promise<HostRecord[]>;
  /**
   * Cordons or uncordons a known host; false when the store has no such host. A later putHost of
   * the same host keeps what this set (on etcd a heartbeat at another replica does not undo it).
   */
  setCordon(hostId: string, cordoned: boolean, draining?: boolean): Promise<boolean>;
  recordAdvice(advice: AdviceRecord[]): Promise<void>;
  /** The advice given at or after `sinceMs`, newest first, at most `limit`. */
  listAdvice(limit: number, sinceMs: number): Promise<AdviceRecord[]>;

  /** The store's identity, made once when it was created (a UUID); a backup keeps it. */
  epoch(): Promise<string>;

  /**
   * An online backup of the whole store into a new file at `path` (SQLite's backup API: a
   * consistent copy while the engine serves); its rule revision. On etcd the backup is etcd's
   * own snapshot (`etcdctl snapshot save`), so this throws BackupUnsupportedError.
   */
  backup(path: string): Promise<{ revision: bigint }>;

  close(): Promise<void>;
}

export class BackupUnsupportedError extends Error {
  override name = "BackupUnsupportedError";
}

/** The owner key of a VM's compiled rules. */
export function vmOwner(vmId: string): string {
  return `vm:${vmId}`;
}

/** The refusal of a registration naming another home agent than its home network's. */
export function otherHomeAgent(claim: HomeAgentRecord, known: HomeAgentRecord): string {
  return `home_agent: '${claim.homeAgent.slice(0, 64)}' is not the home agent of home network ${known.network}: ${known.homeAgent} is (learned from vm ${known.vmId}'s registration); configure homeAgent on the network to change it`;
}
