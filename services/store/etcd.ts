// The replicated store on etcd (npm etcd3). Several engine replicas share one key prefix; every
// change is one etcd transaction whose compares make it safe against the other replicas, and a
// call resolves only after etcd answered the transaction, i.e. after a quorum committed it.
//
// Keys under `<prefix>/`:
//   addresses/<a.b.c.d>        one key per leasable address (never a bitmap): its pool, state, holder;
//                              keyed by address alone, as pools never overlap and ReleaseCareOf
//                              names only the address
//   holders/<purpose>/<holder> the address a holder leases; claimed in the same transaction
//   rules/revision             the rule table's revision counter; every rule change compares it
//   rules/key/<rule key>       {owner, rule}
//   rules/owner/<owner>        the owner's rules, for the diff of replaceRules
//   rules/log/<revision>       the changes of one revision, for workers that reconnect
//   bindings/<vm>, migrations/<at>/<id>, hosts/<id>, advice/<at>/<id>
// A replica keeps a watched copy of the addresses only to choose a candidate; the transaction's
// compare on the address's mod revision is what decides, so a stale copy costs a retry, never a
// double lease.
import { randomUUID } from "node:crypto";
import { Etcd3, type IKeyValue, type IOperation, type IOptions, type Watcher } from "etcd3";
import { ipv4FromValue, parseIPv4 } from "../../lib/net/address.js";
import { Backoff, sleep } from "../../lib/retry.js";
import type { Rule } from "../../lib/rules/rules.js";
import { ConflictError, ResourceExhaustedError } from "../errors.js";
import { LeadershipLostError, type LeaderGuard } from "./guard.js";
import { vmOwner } from "./store.js";
import type {
  AcquireLease, AdviceRecord, BindingRecord, CoolingRecord, HostRecord, LeasePurpose, LeaseRecord, MigrationRecord,
  PoolAddressSet, PoolUsage, RuleChange, Store,
} from "./store.js";

export { LeadershipLostError, type LeaderGuard } from "./guard.js";

/** Conflicting transactions an operation retries before it gives up (another replica won each time). */
export const MAX_CONFLICT_RETRIES = 16;
/**
 * After a lost race, a jittered pause before reading again (lib/retry.ts): replicas that collided
 * spread apart instead of colliding again at once. Windows 4, 8, ... up to 100 ms.
 */
const conflictBackoff = () => new Backoff({ baseMs: 4, capMs: 100 });
/** Rule-log entries (revisions) kept for reconnecting workers; one old entry is deleted per new one. */
const RULE_LOG_KEEP = 10_000n;
/** Operations per transaction when pools are written in bulk; etcd's default --max-txn-ops is 128. */
const BATCH = 60;

const FREE = 0;
const LEASED = 1;
const COOLING = 2;

interface AddressDoc {
  pool: string;
  kind: "engine" | "segment";
  state: number;
  holder?: string;
  purpose?: LeasePurpose;
  hostId?: string;
  expiresAtMs?: number | null;
  cooldownUntilMs?: number;
}

interface HolderDoc {
  address: string;
  pool: string;
}

interface CachedAddress {
  doc: AddressDoc;
  mod: bigint;
}

type Compare = [key: string, target: "Mod" | "Create" | "Version" | "Value", cmp: "==" | "!=", value: string | number];

/** Every candidate address was taken by another replica between read and claim, MAX_CONFLICT_RETRIES times. */
export interface EtcdStoreOptions {
  endpoints: string[];
  /** Key prefix shared by the replicas of one cluster, e.g. "/mip46". */
  prefix: string;
  dialTimeoutMs?: number;
  etcdOptions?: Partial<IOptions>;
}

/** What every view of one store shares (the guarded view of the leader reuses the client and the cache). */
class Shared {
  readonly addresses = new Map<number, CachedAddress>();
  /** Free addresses per pool, with their index for O(1) removal; a random one is claimed. */
  readonly free = new Map<string, { list: number[]; at: Map<number, number> }>();
  /** `purpose\0holder` -> the address it cools on, so a returning VM gets its old address back. */
  readonly coolingByHolder = new Map<string, number>();
  readonly ruleListeners = new Set<(revision: bigint) => void>();
  notifiedRevision = 0n;
  watchers: Watcher[] = [];
  closed = false;

  constructor(readonly client: Etcd3, readonly prefix: string) {}

  set(value: number, doc: AddressDoc | undefined, mod: bigint): void {
    const old = this.addresses.get(value);
    if (old && old.mod >= mod) return; // an older event than what we know
    if (old) this.unindex(value, old.doc);
    if (doc === undefined) {
      this.addresses.delete(value);
      return;
    }
    this.addresses.set(value, { doc, mod });
    if (doc.state === FREE) {
      let f = this.free.get(doc.pool);
      if (!f) this.free.set(doc.pool, (f = { list: [], at: new Map() }));
      f.at.set(value, f.list.length);
      f.list.push(value);
    } else if (doc.state === COOLING && doc.holder !== undefined) {
      this.coolingByHolder.set(`${doc.purpose}\0${doc.holder}`, value);
    }
  }

  private unindex(value: number, doc: AddressDoc): void {
    if (doc.state === FREE) {
      const f = this.free.get(doc.pool);
      const i = f?.at.get(value);
      if (f && i !== undefined) {
        const last = f.list.pop()!;
        if (last !== value) {
          f.list[i] = last;
          f.at.set(last, i);
        }
        f.at.delete(value);
      }
    } else if (doc.state === COOLING && doc.holder !== undefined) {
      const k = `${doc.purpose}\0${doc.holder}`;
      if (this.coolingByHolder.get(k) === value) this.coolingByHolder.delete(k);
    }
  }

  notify(revision: bigint): void {
    if (revision <= this.notifiedRevision) return;
    this.notifiedRevision = revision;
    for (const l of this.ruleListeners) l(revision);
  }
}

export class EtcdStore implements Store {
  private guard?: LeaderGuard;

  private constructor(private readonly s: Shared) {}

  /** Connects, loads the address table and starts the watches. */
  static async open(options: EtcdStoreOptions): Promise<EtcdStore> {
    const client = new Etcd3({
      hosts: options.endpoints.map((e) => (e.includes("://") ? e : `http://${e}`)),
      dialTimeout: options.dialTimeoutMs ?? 5000,
      ...options.etcdOptions,
    });
    const prefix = options.prefix.replace(/\/+$/, "");
    const s = new Shared(client, prefix);
    const store = new EtcdStore(s);
    try {
      await store.loadAddresses();
      const rev = await client.get(store.k("rules/revision")).exec();
      s.notifiedRevision = BigInt(rev.kvs[0]?.value.toString() ?? "0");
      const rw = await client.watch().key(store.k("rules/revision")).startRevision(String(BigInt(rev.header.revision) + 1n)).create();
      rw.on("put", (kv) => s.notify(BigInt(kv.value.toString())));
      s.watchers.push(rw);
    } catch (e) {
      await store.close();
      throw e;
    }
    return store;
  }

  /** A view whose writes all compare the leader key: they fail with LeadershipLostError once it is gone. */
  guarded(guard: LeaderGuard): EtcdStore {
    const view = new EtcdStore(this.s);
    view.guard = guard;
    return view;
  }

  get client(): Etcd3 {
    return this.s.client;
  }

  /** The full key of a path under the store's prefix. */
  k(path: string): string {
    return `${this.s.prefix}/${path}`;
  }

  private addressKey(value: number): string {
    return this.k(`addresses/${ipv4FromValue(value).text}`);
  }

  private holderKey(holder: string, purpose: LeasePurpose): string {
    return this.k(`holders/${purpose}/${holder}`);
  }

  private async loadAddresses(): Promise<void> {
    const res = await this.s.client.getAll().prefix(this.k("addresses/")).exec();
    for (const kv of res.kvs) this.s.set(this.valueOfKey(kv.key), JSON.parse(kv.value.toString()) as AddressDoc, BigInt(kv.mod_revision));
    const w = await this.s.client.watch().prefix(this.k("addresses/")).startRevision(String(BigInt(res.header.revision) + 1n)).create();
    w.on("put", (kv) => this.s.set(this.valueOfKey(kv.key), JSON.parse(kv.value.toString()) as AddressDoc, BigInt(kv.mod_revision)));
    w.on("delete", (kv) => this.s.set(this.valueOfKey(kv.key), undefined, BigInt(kv.mod_revision)));
    this.s.watchers.push(w);
  }

  private valueOfKey(key: Buffer): number {
    const text = key.toString();
    return parseIPv4(text.slice(text.lastIndexOf("/") + 1), "address").value;
  }

  // --- transactions ---------------------------------------------------------------------------

  /**
   * One transaction: the compares (and the leader key, for a guarded view), then `ops`; when a
   * compare fails, `orElse` runs instead (reads that refresh what the caller knows).
   */
  private async txn(compares: Compare[], ops: IOperation[], orElse: IOperation[] = []) {
    if (this.s.closed) throw new Error("store is closed");
    const all = this.guard ? [...compares, [this.guard.key, "Create", "==", this.guard.createRevision] as Compare] : compares;
    const c = this.s.client;
    // etcd needs at least one compare to start a builder; "the prefix's revision is >= 0" stands for none.
    const first = all[0] ?? [this.k("rules/revision"), "Version", "!=", -1];
    let b = c.if(first[0], first[1], first[2], first[3]);
    for (const x of all.slice(1)) b = b.and(x[0], x[1], x[2], x[3]);
    const res = await b.then(...ops).else(...orElse).commit();
    if (!res.succeeded && this.guard) await this.checkGuard();
    return res;
  }

  private async checkGuard(): Promise<void> {
    const kv = (await this.s.client.get(this.guard!.key).exec()).kvs[0];
    if (!kv || kv.create_revision !== this.guard!.createRevision) throw new LeadershipLostError(`the leader key ${this.guard!.key} is no longer ours`);
  }

  private put(key: string, value: unknown) {
    return this.s.client.put(key).value(typeof value === "string" ? value : JSON.stringify(value));
  }

  private del(key: string) {
    return this.s.client.delete().key(key);
  }

  private async getKv(key: string): Promise<IKeyValue | undefined> {
    return (await this.s.client.get(key).exec()).kvs[0];
  }

  // --- pools and leases -----------------------------------------------------------------------

  async syncPools(pools: PoolAddressSet[]): Promise<void> {
    // Only what differs is written, each key under a compare, so replicas starting together
    // cannot overwrite each other's leases; a batch that lost a race is read again and redone.
    const backoff = conflictBackoff();
    for (let attempt = 0; ; attempt++) {
      const res = await this.s.client.getAll().prefix(this.k("addresses/")).exec();
      const existing = new Map(res.kvs.map((kv) => [this.valueOfKey(kv.key), kv]));
      const work: { compare: Compare; op: IOperation }[] = [];
      const wanted = new Set<number>();
      for (const p of pools) {
        for (const v of p.addresses) {
          wanted.add(v);
          const kv = existing.get(v);
          const key = this.addressKey(v);
          if (!kv) {
            work.push({ compare: [key, "Create", "==", 0], op: this.put(key, { pool: p.pool, kind: p.kind, state: FREE } satisfies AddressDoc) });
            continue;
          }
          const doc = JSON.parse(kv.value.toString()) as AddressDoc;
          if (doc.pool !== p.pool || doc.kind !== p.kind) {
            work.push({ compare: [key, "Mod", "==", kv.mod_revision], op: this.put(key, { ...doc, pool: p.pool, kind: p.kind }) });
          }
        }
      }
      for (const [v, kv] of existing) {
        const doc = JSON.parse(kv.value.toString()) as AddressDoc;
        // Addresses that left the configuration go, unless a VM still holds them.
        if (!wanted.has(v) && doc.state !== LEASED) work.push({ compare: [this.addressKey(v), "Mod", "==", kv.mod_revision], op: this.del(this.addressKey(v)) });
      }
      let lost = false;
      for (let i = 0; i < work.length; i += BATCH) {
        const batch = work.slice(i, i + BATCH);
        const r = await this.txn(batch.map((w) => w.compare), batch.map((w) => w.op));
        if (!r.succeeded) lost = true;
      }
      if (!lost) return;
      if (attempt >= MAX_CONFLICT_RETRIES) throw new ConflictError("syncPools: the address table kept changing under us");
      await sleep(backoff.next());
    }
  }

  async acquireLease(req: AcquireLease): Promise<LeaseRecord> {
    const hKey = this.holderKey(req.holder, req.purpose);
    // Most calls come from a VM with no lease yet: the first try claims as if the holder had none,
    // and only when that compare fails (the else branch returns the holder's key) renews instead.
    let holderKv: IKeyValue | undefined;
    let holderKnown = false;
    let fresh = false;
    const backoff = conflictBackoff();
    for (let attempt = 0; attempt < MAX_CONFLICT_RETRIES; attempt++) {
      const compares: Compare[] = [holderKv ? [hKey, "Mod", "==", holderKv.mod_revision] : [hKey, "Create", "==", 0]];
      const ops: IOperation[] = [];
      if (holderKv) {
        const h = JSON.parse(holderKv.value.toString()) as HolderDoc;
        const value = parseIPv4(h.address, "address").value;
        const aKv = await this.getKv(this.addressKey(value));
        const doc = aKv ? (JSON.parse(aKv.value.toString()) as AddressDoc) : undefined;
        if (aKv && doc && doc.state === LEASED && doc.holder === req.holder && doc.purpose === req.purpose) {
          const aKey = this.addressKey(value);
          if (doc.pool === req.pool) {
            const renewed: AddressDoc = { ...doc, hostId: req.hostId, expiresAtMs: req.expiresAtMs };
            const r = await this.txn([...compares, [aKey, "Mod", "==", aKv.mod_revision]], [this.put(aKey, renewed)]);
            if (r.succeeded) {
              this.s.set(value, renewed, BigInt(r.header.revision));
              return toLease(value, renewed);
            }
            holderKv = await this.getKv(hKey);
            continue;
          }
          // Moved to another network: the old address cools down in the same transaction.
          compares.push([aKey, "Mod", "==", aKv.mod_revision]);
          ops.push(this.put(aKey, { ...doc, state: COOLING, expiresAtMs: null, cooldownUntilMs: req.nowMs + req.cooldownMs } satisfies AddressDoc));
        }
      }
      // Prefer the address this holder had before, then one never used (from a random position,
      // so replicas rarely race for the same one), then the longest cooled.
      let candidate = this.pickCandidate(req);
      if (candidate === undefined && !fresh) {
        // The watched copy may lag; read the pool once before calling it exhausted.
        await this.refreshAddresses();
        fresh = true;
        candidate = this.pickCandidate(req);
      }
      if (candidate === undefined && !holderKnown) {
        // A full pool still renews the lease its holder has.
        holderKv = await this.getKv(hKey);
        holderKnown = true;
        if (holderKv) continue;
      }
      if (candidate === undefined) throw await this.exhausted(req.pool, req.nowMs);
      const aKey = this.addressKey(candidate.value);
      const taken: AddressDoc = {
        pool: candidate.doc.pool, kind: candidate.doc.kind, state: LEASED, holder: req.holder, purpose: req.purpose, hostId: req.hostId, expiresAtMs: req.expiresAtMs,
      };
      const r = await this.txn(
        [...compares, [aKey, "Mod", "==", candidate.mod.toString()]],
        [...ops, this.put(aKey, taken), this.put(hKey, { address: ipv4FromValue(candidate.value).text, pool: req.pool } satisfies HolderDoc)],
        [this.s.client.get(aKey), this.s.client.get(hKey)],
      );
      if (r.succeeded) {
        this.s.set(candidate.value, taken, BigInt(r.header.revision));
        return toLease(candidate.value, taken);
      }
      // Lost a race: learn the address's current state at once rather than wait for the watch.
      const kv = r.responses[0]?.response_range?.kvs[0];
      if (kv) this.s.set(candidate.value, JSON.parse(kv.value.toString()) as AddressDoc, BigInt(kv.mod_revision));
      holderKv = r.responses[1]?.response_range?.kvs[0];
      holderKnown = true;
      await sleep(backoff.next());
    }
    throw new ConflictError(`pool ${req.pool}: ${MAX_CONFLICT_RETRIES} conflicting allocations in a row; try again`);
  }

  private pickCandidate(req: AcquireLease): { value: number; doc: AddressDoc; mod: bigint } | undefined {
    const s = this.s;
    const prev = s.coolingByHolder.get(`${req.purpose}\0${req.holder}`);
    const pc = prev === undefined ? undefined : s.addresses.get(prev);
    if (pc && prev !== undefined && pc.doc.pool === req.pool && pc.doc.state === COOLING) return { value: prev, ...pc };
    const f = s.free.get(req.pool);
    if (f && f.list.length > 0) {
      const value = f.list[Math.floor(Math.random() * f.list.length)];
      return { value, ...s.addresses.get(value)! };
    }
    let best: { value: number; doc: AddressDoc; mod: bigint } | undefined;
    for (const [value, a] of s.addresses) {
      if (a.doc.pool !== req.pool || a.doc.state !== COOLING || (a.doc.cooldownUntilMs ?? 0) > req.nowMs) continue;
      if (!best || (a.doc.cooldownUntilMs ?? 0) < (best.doc.cooldownUntilMs ?? 0) || ((a.doc.cooldownUntilMs ?? 0) === (best.doc.cooldownUntilMs ?? 0) && value < best.value)) {
        best = { value, ...a };
      }
    }
    return best;
  }

  private async refreshAddresses(): Promise<void> {
    const res = await this.s.client.getAll().prefix(this.k("addresses/")).exec();
    for (const kv of res.kvs) this.s.set(this.valueOfKey(kv.key), JSON.parse(kv.value.toString()) as AddressDoc, BigInt(kv.mod_revision));
  }

  private async exhausted(pool: string, nowMs: number): Promise<ResourceExhaustedError> {
    const u = (await this.poolUsage(nowMs)).find((p) => p.pool === pool);
    return new ResourceExhaustedError(
      u ? `pool ${pool} has no free address (${u.leased} leased, ${u.cooling} cooling down, of ${u.size})` : `pool ${pool} has no addresses`);
  }

  async releaseLease(sel: { address: string } | { holder: string; purpose: LeasePurpose }, nowMs: number, cooldownMs: number): Promise<CoolingRecord | undefined> {
    const backoff = conflictBackoff();
    for (let attempt = 0; attempt < MAX_CONFLICT_RETRIES; attempt++) {
      let value: number;
      if ("address" in sel) value = parseIPv4(sel.address, "address").value;
      else {
        const h = await this.getKv(this.holderKey(sel.holder, sel.purpose));
        if (!h) return undefined;
        value = parseIPv4((JSON.parse(h.value.toString()) as HolderDoc).address, "address").value;
      }
      const kv = await this.getKv(this.addressKey(value));
      const doc = kv ? (JSON.parse(kv.value.toString()) as AddressDoc) : undefined;
      if (!kv || !doc || doc.state !== LEASED) return undefined;
      const r = await this.cool(value, kv, doc, nowMs + cooldownMs);
      if (r) return r;
      await sleep(backoff.next());
    }
    throw new ConflictError(`release: ${MAX_CONFLICT_RETRIES} conflicting changes in a row; try again`);
  }

  /** Moves one leased address to cooling if it did not change since `kv`; undefined when it did. */
  private async cool(value: number, kv: IKeyValue, doc: AddressDoc, until: number): Promise<CoolingRecord | undefined> {
    const aKey = this.addressKey(value);
    const cooled: AddressDoc = { ...doc, state: COOLING, expiresAtMs: null, cooldownUntilMs: until };
    const hKey = this.holderKey(doc.holder!, doc.purpose!);
    const r = await this.txn([[aKey, "Mod", "==", kv.mod_revision]], [this.put(aKey, cooled), this.del(hKey)]);
    if (!r.succeeded) return undefined;
    this.s.set(value, cooled, BigInt(r.header.revision));
    return { address: ipv4FromValue(value).text, pool: doc.pool, holder: doc.holder ?? "", purpose: doc.purpose ?? "care-of", cooldownUntilMs: until };
  }

  async expireLeases(nowMs: number, cooldownMs: number): Promise<CoolingRecord[]> {
    // Candidates come from the watched copy (the leader sweeps every second; reading every address
    // from etcd each time would cost more than the allocations). Each is read again and cooled
    // under a compare on its mod revision, which keeps a renewal another replica just made. A
    // lease the copy has not seen yet is caught by the next sweep.
    const out: CoolingRecord[] = [];
    const candidates = [...this.s.addresses].filter(([, a]) =>
      a.doc.state === LEASED && a.doc.expiresAtMs !== null && a.doc.expiresAtMs !== undefined && a.doc.expiresAtMs <= nowMs);
    for (const [value] of candidates) {
      const kv = await this.getKv(this.addressKey(value));
      const doc = kv ? (JSON.parse(kv.value.toString()) as AddressDoc) : undefined;
      if (!kv || !doc || doc.state !== LEASED || doc.expiresAtMs === null || doc.expiresAtMs === undefined || doc.expiresAtMs > nowMs) continue;
      const r = await this.cool(value, kv, doc, doc.expiresAtMs + cooldownMs);
      if (r) out.push(r);
    }
    return out;
  }

  async getLease(holder: string, purpose: LeasePurpose): Promise<LeaseRecord | undefined> {
    const h = await this.getKv(this.holderKey(holder, purpose));
    if (!h) return undefined;
    const value = parseIPv4((JSON.parse(h.value.toString()) as HolderDoc).address, "address").value;
    const kv = await this.getKv(this.addressKey(value));
    const doc = kv ? (JSON.parse(kv.value.toString()) as AddressDoc) : undefined;
    return doc && doc.state === LEASED && doc.holder === holder && doc.purpose === purpose ? toLease(value, doc) : undefined;
  }

  private async allAddresses(): Promise<[number, AddressDoc][]> {
    const res = await this.s.client.getAll().prefix(this.k("addresses/")).exec();
    return res.kvs.map((kv) => [this.valueOfKey(kv.key), JSON.parse(kv.value.toString()) as AddressDoc]);
  }

  async listLeases(): Promise<LeaseRecord[]> {
    return (await this.allAddresses())
      .filter(([, d]) => d.state === LEASED)
      .sort((a, b) => (a[1].pool < b[1].pool ? -1 : a[1].pool > b[1].pool ? 1 : a[0] - b[0]))
      .map(([v, d]) => toLease(v, d));
  }

  async poolUsage(nowMs: number): Promise<PoolUsage[]> {
    const by = new Map<string, PoolUsage & { lo: number; hi: number }>();
    for (const [v, d] of await this.allAddresses()) {
      let u = by.get(d.pool);
      if (!u) by.set(d.pool, (u = { pool: d.pool, kind: d.kind, first: "", last: "", size: 0, leased: 0, cooling: 0, free: 0, lo: v, hi: v }));
      u.size++;
      u.lo = Math.min(u.lo, v);
      u.hi = Math.max(u.hi, v);
      if (d.state === LEASED) u.leased++;
      else if (d.state === COOLING && (d.cooldownUntilMs ?? 0) > nowMs) u.cooling++;
    }
    return [...by.values()].sort((a, b) => (a.pool < b.pool ? -1 : 1)).map(({ lo, hi, ...u }) => ({
      ...u, first: ipv4FromValue(lo).text, last: ipv4FromValue(hi).text, free: u.size - u.leased - u.cooling,
    }));
  }

  // --- rules and bindings ---------------------------------------------------------------------

  /**
   * Makes the owner's rules exactly `rules`, with `prepare`'s compares and writes in the same
   * transaction. Every rule change compares the revision key, so changes from all replicas are
   * serialised by etcd and the revision counts each exactly once.
   */
  private async setRules<T>(
    owner: string, rules: Rule[], prepare: () => Promise<{ compares: Compare[]; ops: IOperation[]; result: T }> = async () => ({ compares: [], ops: [], result: undefined as T }),
  ): Promise<{ revision: bigint; result: T }> {
    const revKey = this.k("rules/revision");
    const ownerKey = this.k(`rules/owner/${owner}`);
    const backoff = conflictBackoff();
    for (let attempt = 0; attempt < MAX_CONFLICT_RETRIES; attempt++) {
      const [revKv, ownerKv] = await Promise.all([this.getKv(revKey), this.getKv(ownerKey)]);
      const extra = await prepare();
      const current = BigInt(revKv?.value.toString() ?? "0");
      const before = ownerKv ? (JSON.parse(ownerKv.value.toString()) as Record<string, string>) : {};
      const after: Record<string, string> = {};
      for (const r of rules) after[r.key] = JSON.stringify(r);
      const changes: [string, string | null][] = [];
      for (const [key, body] of Object.entries(after)) if (before[key] !== body) changes.push([key, body]);
      for (const key of Object.keys(before)) if (!(key in after)) changes.push([key, null]);
      if (changes.length === 0 && extra.ops.length === 0) return { revision: current, result: extra.result };
      const revision = changes.length > 0 ? current + 1n : current;
      const ops: IOperation[] = [...extra.ops];
      if (changes.length > 0) {
        for (const [key, body] of changes) {
          ops.push(body === null ? this.del(this.k(`rules/key/${key}`)) : this.put(this.k(`rules/key/${key}`), `{"owner":${JSON.stringify(owner)},"rule":${body}}`));
        }
        ops.push(Object.keys(after).length > 0 ? this.put(ownerKey, after) : this.del(ownerKey));
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
    throw new ConflictError(`rules of ${owner}: ${MAX_CONFLICT_RETRIES} conflicting changes in a row; try again`);
  }

  private logKey(revision: bigint): string {
    return this.k(`rules/log/${revision.toString().padStart(20, "0")}`);
  }

  async replaceRules(owner: string, rules: Rule[]): Promise<bigint> {
    return (await this.setRules(owner, rules)).revision;
  }

  private migrationKey(m: MigrationRecord): string {
    return this.k(`migrations/${String(m.registeredAtMs).padStart(15, "0")}/${m.migrationId}`);
  }

  async putBinding(binding: BindingRecord, migration: MigrationRecord, rules: Rule[]): Promise<bigint> {
    return (await this.setRules(vmOwner(binding.vmId), rules, async () => ({
      compares: [], ops: [this.put(this.migrationKey(migration), migration), this.put(this.k(`bindings/${binding.vmId}`), binding)], result: undefined,
    }))).revision;
  }

  async deleteBinding(vmId: string, migration?: MigrationRecord): Promise<{ revision: bigint; binding?: BindingRecord }> {
    const bKey = this.k(`bindings/${vmId}`);
    const { revision, result } = await this.setRules(vmOwner(vmId), [], async () => {
      const kv = await this.getKv(bKey);
      const ops: IOperation[] = [];
      if (migration) ops.push(this.put(this.migrationKey(migration), migration));
      if (kv) ops.push(this.del(bKey));
      return {
        compares: [kv ? [bKey, "Mod", "==", kv.mod_revision] : [bKey, "Create", "==", 0]],
        ops, result: kv ? (JSON.parse(kv.value.toString()) as BindingRecord) : undefined,
      };
    });
    return { revision, binding: result };
  }

  async getBinding(vmId: string): Promise<BindingRecord | undefined> {
    const kv = await this.getKv(this.k(`bindings/${vmId}`));
    return kv ? (JSON.parse(kv.value.toString()) as BindingRecord) : undefined;
  }

  async listBindings(): Promise<BindingRecord[]> {
    const res = await this.s.client.getAll().prefix(this.k("bindings/")).sort("Key", "Ascend").exec();
    return res.kvs.map((kv) => JSON.parse(kv.value.toString()) as BindingRecord);
  }

  async listMigrations(limit: number): Promise<MigrationRecord[]> {
    const res = await this.s.client.getAll().prefix(this.k("migrations/")).sort("Key", "Descend").limit(limit).exec();
    return res.kvs.map((kv) => JSON.parse(kv.value.toString()) as MigrationRecord);
  }

  async ruleTable(): Promise<{ revision: bigint; rules: Rule[] }> {
    // Both reads at one etcd revision, so no change falls between them.
    const rev = await this.s.client.get(this.k("rules/revision")).exec();
    const res = await this.s.client.getAll().prefix(this.k("rules/key/")).revision(rev.header.revision).sort("Key", "Ascend").exec();
    return {
      revision: BigInt(rev.kvs[0]?.value.toString() ?? "0"),
      rules: res.kvs.map((kv) => (JSON.parse(kv.value.toString()) as { rule: Rule }).rule),
    };
  }

  async ruleChangesSince(revision: bigint): Promise<RuleChange[] | undefined> {
    const current = BigInt((await this.getKv(this.k("rules/revision")))?.value.toString() ?? "0");
    if (revision >= current) return [];
    const res = await this.s.client.getAll().inRange({ start: this.logKey(revision + 1n), end: this.logKey(current + 1n) }).sort("Key", "Ascend").exec();
    const out: RuleChange[] = [];
    let expected = revision + 1n;
    for (const kv of res.kvs) {
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

  // --- hosts and advice -----------------------------------------------------------------------

  async putHost(host: HostRecord): Promise<void> {
    const r = await this.txn([], [this.put(this.k(`hosts/${host.hostId}`), host)]);
    if (!r.succeeded) throw new LeadershipLostError("host write refused");
  }

  async getHost(hostId: string): Promise<HostRecord | undefined> {
    const kv = await this.getKv(this.k(`hosts/${hostId}`));
    return kv ? (JSON.parse(kv.value.toString()) as HostRecord) : undefined;
  }

  async listHosts(): Promise<HostRecord[]> {
    const res = await this.s.client.getAll().prefix(this.k("hosts/")).sort("Key", "Ascend").exec();
    return res.kvs.map((kv) => JSON.parse(kv.value.toString()) as HostRecord);
  }

  async recordAdvice(advice: AdviceRecord[]): Promise<void> {
    if (advice.length === 0) return;
    const r = await this.txn([], advice.map((a) => this.put(this.k(`advice/${String(a.givenAtMs).padStart(15, "0")}/${randomUUID()}`), a)));
    if (!r.succeeded) throw new LeadershipLostError("advice write refused");
  }

  async close(): Promise<void> {
    if (this.s.closed) return;
    this.s.closed = true;
    await Promise.allSettled(this.s.watchers.map((w) => w.cancel()));
    this.s.client.close();
  }
}

function toLease(value: number, d: AddressDoc): LeaseRecord {
  return {
    address: ipv4FromValue(value).text, pool: d.pool, holder: d.holder ?? "", purpose: d.purpose ?? "care-of",
    hostId: d.hostId ?? "", expiresAtMs: d.expiresAtMs ?? null,
  };
}
