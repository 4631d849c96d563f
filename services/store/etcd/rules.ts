// The rule table on etcd, with what changes together with it: a VM's binding and the migration
// that made it. Every rule change compares the revision key, so the replicas' changes are
// serialised by etcd; each revision's changes are logged for workers that reconnect.
import { randomUUID } from "node:crypto";
import type { IKeyValue, IOperation } from "etcd3";
import type { Rule } from "../../../lib/rules/rules.js";
import { ConflictError, FailedPreconditionError } from "../../errors.js";
import { otherHomeAgent, vmOwner } from "../store.js";
import { parseIPv4 } from "../../../lib/net/address.js";
import { sleep } from "../../../lib/retry.js";
import type { BindingRecord, CoolingRecord, HomeAgentRecord, MigrationCursor, MigrationRecord, RuleChange } from "../store.js";
import { type AddressDoc, type Compare, conflictBackoff, COOLING, EtcdPart, LEASED, MAX_CONFLICT_RETRIES } from "./base.js";

/** Rule-log entries (revisions) kept for reconnecting workers; one old entry is deleted per new one. */
const RULE_LOG_KEEP = 10_000n;

export class EtcdRules extends EtcdPart {
  /** Learns the current revision and watches it, so other replicas' changes reach onRulesChanged. */
  async watchRevision(): Promise<void> {
    const s = this.s;
    const rev = await s.client.get(this.k("rules/revision")).exec();
    s.notifiedRevision = BigInt(rev.kvs[0]?.value.toString() ?? "0");
    const rw = await s.client.watch().key(this.k("rules/revision")).startRevision(String(BigInt(rev.header.revision) + 1n)).create();
    rw.on("put", (kv) => s.notify(BigInt(kv.value.toString())));
    s.watchers.push(rw);
  }

  /** The store's epoch: made by the first replica that opens an empty prefix (a put only where the key has no version yet). */
  async epoch(): Promise<string> {
    if (this.epochValue) return this.epochValue;
    const key = this.k("epoch");
    await this.s.client.if(key, "Version", "==", 0).then(this.s.client.put(key).value(randomUUID())).commit();
    return (this.epochValue = (await this.s.client.get(key).string()) ?? "");
  }

  private epochValue?: string;

  // --- rules and bindings ---------------------------------------------------------------------

  /**
   * Makes each owner's rules exactly the rules given for it, with `prepare`'s compares and writes
   * in the same transaction, as one revision. Every rule change compares the revision key, so
   * changes from all replicas are serialised by etcd and the revision counts each exactly once.
   */
  private async setRules<T>(
    owners: [string, Rule[]][], prepare: () => Promise<{ compares: Compare[]; ops: IOperation[]; result: T }> = async () => ({ compares: [], ops: [], result: undefined as T }),
  ): Promise<{ revision: bigint; result: T }> {
    const revKey = this.k("rules/revision");
    const backoff = conflictBackoff();
    for (let attempt = 0; attempt < MAX_CONFLICT_RETRIES; attempt++) {
      const [revKv, ...ownerKvs] = await Promise.all([this.getKv(revKey), ...owners.map(([owner]) => this.getKv(this.k(`rules/owner/${owner}`)))]);
      const extra = await prepare();
      const current = BigInt(revKv?.value.toString() ?? "0");
      const changes: [string, string | null][] = [];
      const ownerOps: IOperation[] = [];
      owners.forEach(([owner, rules], i) => {
        const ownerKv = ownerKvs[i];
        const before = ownerKv ? (JSON.parse(ownerKv.value.toString()) as Record<string, string>) : {};
        const after: Record<string, string> = {};
        for (const r of rules) after[r.key] = JSON.stringify(r);
        const mine: [string, string | null][] = [];
        for (const [key, body] of Object.entries(after)) if (before[key] !== body) mine.push([key, body]);
        for (const key of Object.keys(before)) if (!(key in after)) mine.push([key, null]);
        if (mine.length === 0) return;
        for (const [key, body] of mine) {
          ownerOps.push(body === null ? this.del(this.k(`rules/key/${key}`)) : this.put(this.k(`rules/key/${key}`), `{"owner":${JSON.stringify(owner)},"rule":${body}}`));
        }
        const ownerKey = this.k(`rules/owner/${owner}`);
        ownerOps.push(Object.keys(after).length > 0 ? this.put(ownerKey, after) : this.del(ownerKey));
        changes.push(...mine);
      });
      if (changes.length === 0 && extra.ops.length === 0) return { revision: current, result: extra.result };
      const revision = changes.length > 0 ? current + 1n : current;
      const ops: IOperation[] = [...extra.ops, ...ownerOps];
      if (changes.length > 0) {
        ops.push(this.put(revKey, revision.toString()));
        ops.push(this.put(this.logKey(revision), changes.map(([key, body]) => ({ key, rule: body === null ? null : (JSON.parse(body) as Rule) }))));
        if (revision > RULE_LOG_KEEP) ops.push(this.del(this.logKey(revision - RULE_LOG_KEEP)));
      }
      const r = await this.txn([revKv ? [revKey, "Mod", "==", revKv.mod_revision] : [revKey, "Create", "==", 0], ...extra.compares], ops);
      if (r.succeeded) {
        if (changes.length > 0) this.s.notify(revision);
        return { revision, result: extra.result };
      }
      await sleep(backoff.next());
    }
    throw new ConflictError(`rules of ${owners.map(([o]) => o).join(", ")}: ${MAX_CONFLICT_RETRIES} conflicting changes in a row; try again`);
  }

  private logKey(revision: bigint): string {
    return this.k(`rules/log/${revision.toString().padStart(20, "0")}`);
  }

  async replaceRules(owner: string, rules: Rule[]): Promise<bigint> {
    return (await this.setRules([[owner, rules]])).revision;
  }

  private migrationKey(m: MigrationCursor): string {
    return this.k(`migrations/${String(m.registeredAtMs).padStart(15, "0")}/${m.migrationId}`);
  }

  /** The key naming the VM whose binding holds a home address: one binding per home address, across replicas. */
  private homeKey(homeAddress: string): string {
    return this.k(`homes/${homeAddress}`);
  }

  /** The key of a home network's learned home agent. */
  private homeAgentKey(network: string): string {
    return this.k(`home-agents/${network}`);
  }

  async putBinding(binding: BindingRecord, migration: MigrationRecord, rules: Rule[], homeAgent?: HomeAgentRecord): Promise<bigint> {
    const hKey = this.homeKey(binding.homeAddress);
    return (await this.setRules([[vmOwner(binding.vmId), rules]], async () => {
      // Claimed in the same transaction as the binding: two replicas cannot bind one home address to two VMs.
      const home = await this.getKv(hKey);
      if (home && home.value.toString() !== binding.vmId) {
        throw new FailedPreconditionError(`home_address: ${binding.homeAddress} is the home address of vm ${home.value.toString()}'s binding; two VMs cannot hold one home address`);
      }
      const compares: Compare[] = [home ? [hKey, "Mod", "==", home.mod_revision] : [hKey, "Create", "==", 0]];
      const ops: IOperation[] = [this.put(this.migrationKey(migration), migration), this.put(this.k(`bindings/${binding.vmId}`), binding), this.put(hKey, binding.vmId)];
      // And the home network's agent: two replicas cannot learn two agents for one network.
      if (homeAgent) {
        const aKey = this.homeAgentKey(homeAgent.network);
        const known = await this.getKv(aKey);
        const record = known ? (JSON.parse(known.value.toString()) as HomeAgentRecord) : undefined;
        if (record && record.homeAgent !== homeAgent.homeAgent) throw new FailedPreconditionError(otherHomeAgent(homeAgent, record));
        if (known) compares.push([aKey, "Mod", "==", known.mod_revision]);
        else {
          compares.push([aKey, "Create", "==", 0]);
          ops.push(this.put(aKey, homeAgent));
        }
      }
      return { compares, ops, result: undefined };
    })).revision;
  }

  getHomeAgent(network: string): Promise<HomeAgentRecord | undefined> {
    return this.getDoc<HomeAgentRecord>(`home-agents/${network}`);
  }

  /** The owner's rules, from its rules/owner key. */
  async rulesOf(owner: string): Promise<Rule[]> {
    const kv = await this.getKv(this.k(`rules/owner/${owner}`));
    const bodies = kv ? (JSON.parse(kv.value.toString()) as Record<string, string>) : {};
    return Object.keys(bodies).sort().map((key) => JSON.parse(bodies[key]) as Rule);
  }

  /** The compares and deletions that remove a VM's binding and its claim on its home address. */
  private async unbind(vmId: string): Promise<{ compares: Compare[]; ops: IOperation[]; binding?: BindingRecord }> {
    const bKey = this.k(`bindings/${vmId}`);
    const kv = await this.getKv(bKey);
    if (!kv) return { compares: [[bKey, "Create", "==", 0]], ops: [] };
    const binding = JSON.parse(kv.value.toString()) as BindingRecord;
    const compares: Compare[] = [[bKey, "Mod", "==", kv.mod_revision]];
    const ops: IOperation[] = [this.del(bKey)];
    const home = await this.getKv(this.homeKey(binding.homeAddress));
    if (home && home.value.toString() === vmId) {
      compares.push([this.homeKey(binding.homeAddress), "Mod", "==", home.mod_revision]);
      ops.push(this.del(this.homeKey(binding.homeAddress)));
    }
    return { compares, ops, binding };
  }

  async deleteBinding(vmId: string, migration?: MigrationRecord): Promise<{ revision: bigint; binding?: BindingRecord }> {
    const { revision, result } = await this.setRules([[vmOwner(vmId), []]], async () => {
      const { compares, ops, binding } = await this.unbind(vmId);
      if (migration) ops.push(this.put(this.migrationKey(migration), migration));
      return { compares, ops, result: binding };
    });
    return { revision, binding: result };
  }

  /**
   * The binding goes, the owners' rules go, and the leases cool down, in one transaction: each
   * leased address is compared on its mod revision (as a release is), the binding on its own.
   */
  async forceRelease(vmId: string, owners: string[], addresses: string[], nowMs: number, cooldownMs: number): Promise<{ revision: bigint; released: CoolingRecord[] }> {
    const until = nowMs + cooldownMs;
    const { revision, result } = await this.setRules(owners.map((o) => [o, []]), async () => {
      const { compares, ops } = await this.unbind(vmId);
      const released: CoolingRecord[] = [];
      for (const address of addresses) {
        const aKey = this.addressKey(parseIPv4(address, "address").value);
        const akv = await this.getKv(aKey);
        const doc = akv ? (JSON.parse(akv.value.toString()) as AddressDoc) : undefined;
        if (!akv || !doc || doc.state !== LEASED) continue;
        compares.push([aKey, "Mod", "==", akv.mod_revision]);
        ops.push(this.put(aKey, { ...doc, state: COOLING, expiresAtMs: null, cooldownUntilMs: until } satisfies AddressDoc), this.del(this.holderKey(doc.holder!, doc.purpose!)));
        released.push({ address, pool: doc.pool, holder: doc.holder ?? "", purpose: doc.purpose ?? "care-of", cooldownUntilMs: until });
      }
      return { compares, ops, result: released };
    });
    return { revision, released: result };
  }

  getBinding(vmId: string): Promise<BindingRecord | undefined> {
    return this.getDoc<BindingRecord>(`bindings/${vmId}`);
  }

  listBindings(): Promise<BindingRecord[]> {
    return this.listDocs<BindingRecord>("bindings/");
  }

  /** A scan of the bindings: etcd keeps no index by home address (a registration's check, not a hot path). */
  async bindingsWithHome(homeAddress: string): Promise<BindingRecord[]> {
    return (await this.listBindings()).filter((b) => b.homeAddress === homeAddress);
  }

  /** The keys sort as (time, id), so a page after a cursor is the range below the cursor's key. */
  async listMigrations(limit: number, after?: MigrationCursor): Promise<MigrationRecord[]> {
    const all = this.s.client.getAll();
    const q = after ? all.inRange({ start: this.k("migrations/"), end: this.migrationKey(after) }) : all.prefix(this.k("migrations/"));
    const res = await q.sort("Key", "Descend").limit(limit).exec();
    return res.kvs.map((kv) => JSON.parse(kv.value.toString()) as MigrationRecord);
  }

  async ruleTable(): Promise<{ revision: bigint; rules: Rule[] }> {
    // Both reads at one etcd revision, so no change falls between them.
    const rev = await this.s.client.get(this.k("rules/revision")).exec();
    const rules: Rule[] = [];
    await this.eachKv("rules/key/", (kv) => rules.push((JSON.parse(kv.value.toString()) as { rule: Rule }).rule), BigInt(rev.header.revision));
    return { revision: BigInt(rev.kvs[0]?.value.toString() ?? "0"), rules };
  }

  async ruleChangesSince(revision: bigint): Promise<RuleChange[] | undefined> {
    const current = BigInt((await this.getKv(this.k("rules/revision")))?.value.toString() ?? "0");
    if (revision >= current) return [];
    // Paged as every prefix read is (base.ts eachKv). A log entry holds one owner's changes (a
    // VM's few rules, a correspondent's mapping), so 256 of them stay far below 4 MiB.
    const log: IKeyValue[] = [];
    await this.eachKvIn(this.logKey(revision + 1n), this.logKey(current + 1n), (kv) => log.push(kv));
    const out: RuleChange[] = [];
    let expected = revision + 1n;
    for (const kv of log) {
      const text = kv.key.toString();
      const rev = BigInt(text.slice(text.lastIndexOf("/") + 1));
      if (rev !== expected) return undefined; // the log no longer reaches back that far
      expected++;
      for (const c of JSON.parse(kv.value.toString()) as { key: string; rule: Rule | null }[]) out.push({ revision: rev, key: c.key, rule: c.rule });
    }
    return expected > revision + 1n ? out : undefined;
  }

  onRulesChanged(listener: (revision: bigint) => void): () => void {
    // Fires for changes this replica made (at once) and for other replicas' (through the watch).
    this.s.ruleListeners.add(listener);
    return () => this.s.ruleListeners.delete(listener);
  }
}
