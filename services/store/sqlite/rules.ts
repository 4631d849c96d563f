// The rule table on SQLite, with what changes together with it: a VM's binding, the migration
// that made it, the home agent its home network has. A write that changes rules bumps the revision
// once and logs each change for workers that reconnect.
import { parseIPv4 } from "../../../lib/net/address.js";
import type { Rule } from "../../../lib/rules/rules.js";
import { FailedPreconditionError } from "../../errors.js";
import { otherHomeAgent, vmOwner } from "../store.js";
import type { BindingRecord, CoolingRecord, HomeAgentRecord, MigrationCursor, MigrationRecord, RuleChange } from "../store.js";
import { toCooling } from "./base.js";
import { SqliteLeases } from "./leases.js";
import { LEASED } from "./schema.js";

/** How many rule changes the log keeps for workers that reconnect with an older revision. */
const RULE_LOG_KEEP = 100_000;

export class SqliteRules extends SqliteLeases {
  /** Inside a write: makes the owner's rules exactly `rules`; bumps the revision once if anything changed. */
  protected setRules(owner: string, rules: Rule[]): bigint {
    const before = new Map(this.q.rulesByOwner.all(owner).map((r) => [r.key, r.body]));
    const after = new Map(rules.map((r) => [r.key, JSON.stringify(r)]));
    const changes: [string, string | null][] = [];
    for (const [key, body] of after) if (before.get(key) !== body) changes.push([key, body]);
    for (const key of before.keys()) if (!after.has(key)) changes.push([key, null]);
    let revision = this.currentRevision();
    if (changes.length === 0) return revision;
    revision += 1n;
    for (const [key, body] of changes) {
      if (body === null) this.q.deleteRule.run(key);
      else this.q.putRule.run(key, owner, body);
      this.q.logRule.run(revision, key, body);
    }
    this.q.setRevision.run(revision.toString());
    this.q.logPrune.run(RULE_LOG_KEEP);
    this.revisionChanged = true;
    return revision;
  }

  replaceRules(owner: string, rules: Rule[]): Promise<bigint> {
    return this.write(() => this.setRules(owner, rules));
  }

  async rulesOf(owner: string): Promise<Rule[]> {
    return this.q.rulesByOwner.all(owner).map((r) => JSON.parse(r.body) as Rule).sort((a, b) => (a.key < b.key ? -1 : 1));
  }

  putBinding(binding: BindingRecord, migration: MigrationRecord, rules: Rule[], homeAgent?: HomeAgentRecord): Promise<bigint> {
    return this.write(() => {
      // One binding per home address, checked in the write that makes it.
      const other = this.q.bindingsWithHome.all(binding.homeAddress).map((r) => JSON.parse(r.body) as BindingRecord).find((b) => b.vmId !== binding.vmId);
      if (other) throw new FailedPreconditionError(`home_address: ${binding.homeAddress} is the home address of vm ${other.vmId}'s binding; two VMs cannot hold one home address`);
      // One home agent per home network, claimed in the same write.
      if (homeAgent) {
        const key = homeAgentKey(homeAgent.network);
        const row = this.q.getMeta.get(key);
        const known = row ? (JSON.parse(row.value) as HomeAgentRecord) : undefined;
        if (known && known.homeAgent !== homeAgent.homeAgent) throw new FailedPreconditionError(otherHomeAgent(homeAgent, known));
        if (!known) this.q.putMeta.run(key, JSON.stringify(homeAgent));
      }
      this.q.putMigration.run(migration.migrationId, migration.vmId, migration.registeredAtMs, JSON.stringify(migration));
      this.q.putBinding.run(binding.vmId, JSON.stringify(binding));
      return this.setRules(vmOwner(binding.vmId), rules);
    });
  }

  async getHomeAgent(network: string): Promise<HomeAgentRecord | undefined> {
    const row = this.q.getMeta.get(homeAgentKey(network));
    return row ? (JSON.parse(row.value) as HomeAgentRecord) : undefined;
  }

  deleteBinding(vmId: string, migration?: MigrationRecord): Promise<{ revision: bigint; binding?: BindingRecord }> {
    return this.write(() => {
      const row = this.q.getBinding.get(vmId);
      if (migration) this.q.putMigration.run(migration.migrationId, migration.vmId, migration.registeredAtMs, JSON.stringify(migration));
      this.q.deleteBinding.run(vmId);
      const revision = this.setRules(vmOwner(vmId), []);
      return { revision, binding: row ? (JSON.parse(row.body) as BindingRecord) : undefined };
    });
  }

  forceRelease(vmId: string, owners: string[], addresses: string[], nowMs: number, cooldownMs: number): Promise<{ revision: bigint; released: CoolingRecord[] }> {
    return this.write(() => {
      const released: CoolingRecord[] = [];
      for (const address of addresses) {
        const row = this.q.byValue.get(parseIPv4(address, "address").value);
        if (!row || row.state !== LEASED) continue;
        this.q.cool.run(nowMs + cooldownMs, row.value);
        released.push(toCooling(row, nowMs + cooldownMs));
      }
      this.q.deleteBinding.run(vmId);
      let revision = this.currentRevision();
      for (const owner of owners) revision = this.setRules(owner, []);
      return { revision, released };
    });
  }

  async getBinding(vmId: string): Promise<BindingRecord | undefined> {
    const row = this.q.getBinding.get(vmId);
    return row ? (JSON.parse(row.body) as BindingRecord) : undefined;
  }

  async listBindings(): Promise<BindingRecord[]> {
    return this.q.bindings.all().map((r) => JSON.parse(r.body) as BindingRecord);
  }

  async bindingsWithHome(homeAddress: string): Promise<BindingRecord[]> {
    return this.q.bindingsWithHome.all(homeAddress).map((r) => JSON.parse(r.body) as BindingRecord);
  }

  async listMigrations(limit: number, after?: MigrationCursor): Promise<MigrationRecord[]> {
    const rows = after ? this.q.migrationsAfter.all(after.registeredAtMs, after.registeredAtMs, after.migrationId, limit) : this.q.migrations.all(limit);
    return rows.map((r) => JSON.parse(r.body) as MigrationRecord);
  }

  async ruleTable(): Promise<{ revision: bigint; rules: Rule[] }> {
    // Both reads happen in one synchronous turn, so no write can fall between them.
    return { revision: this.currentRevision(), rules: this.q.allRules.all().map((r) => JSON.parse(r.body) as Rule) };
  }

  async ruleChangesSince(revision: bigint): Promise<RuleChange[] | undefined> {
    const current = this.currentRevision();
    if (revision >= current) return [];
    const oldest = this.q.logOldest.get()?.revision;
    if (oldest === null || oldest === undefined || BigInt(oldest) > revision + 1n) return undefined;
    return this.q.logSince.all(Number(revision)).map((r) => ({
      revision: BigInt(r.revision), key: r.key, rule: r.body === null ? null : (JSON.parse(r.body) as Rule),
    }));
  }
}

/** The meta key of a home network's learned home agent. */
function homeAgentKey(network: string): string {
  return `home_agent:${network}`;
}
