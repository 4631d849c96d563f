// The address table on etcd: one key per leasable address, and one per holder naming the address
// it leases, claimed in the same transaction. The watched copy of the addresses (base.ts) only
// proposes a candidate; the compare on the address's mod revision decides.
import type { IKeyValue, IOperation } from "etcd3";
import { ipv4FromValue, parseIPv4 } from "../../../lib/net/address.js";
import { sleep } from "../../../lib/retry.js";
import { ConflictError, ResourceExhaustedError } from "../../errors.js";
import type { AcquireLease, CoolingRecord, LeasePurpose, LeaseRecord, PoolAddressSet, PoolUsage } from "../store.js";
import {
  type AddressDoc, type Compare, COOLING, EtcdPart, FREE, type HolderDoc, LEASED, MAX_CONFLICT_RETRIES, conflictBackoff, toLease,
} from "./base.js";

/** Operations per transaction when pools are written in bulk; etcd's default --max-txn-ops is 128. */
const BATCH = 60;

export class EtcdLeases extends EtcdPart {
  /** Loads the address table and watches it, for the watched copy. */
  async loadAddresses(): Promise<void> {
    const at = await this.eachKv("addresses/", (kv) => this.s.set(this.valueOfKey(kv.key), JSON.parse(kv.value.toString()) as AddressDoc, BigInt(kv.mod_revision)));
    const w = await this.s.client.watch().prefix(this.k("addresses/")).startRevision(String(at + 1n)).create();
    w.on("put", (kv) => this.s.set(this.valueOfKey(kv.key), JSON.parse(kv.value.toString()) as AddressDoc, BigInt(kv.mod_revision)));
    w.on("delete", (kv) => this.s.set(this.valueOfKey(kv.key), undefined, BigInt(kv.mod_revision)));
    this.s.watchers.push(w);
  }

  // --- pools and leases -----------------------------------------------------------------------

  async syncPools(pools: PoolAddressSet[]): Promise<void> {
    // Only what differs is written, each key under a compare, so replicas starting together
    // cannot overwrite each other's leases; a batch that lost a race is read again and redone.
    const backoff = conflictBackoff();
    for (let attempt = 0; ; attempt++) {
      const existing = new Map<number, IKeyValue>();
      await this.eachKv("addresses/", (kv) => existing.set(this.valueOfKey(kv.key), kv));
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
    await this.eachKv("addresses/", (kv) => this.s.set(this.valueOfKey(kv.key), JSON.parse(kv.value.toString()) as AddressDoc, BigInt(kv.mod_revision)));
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

  async leaseByAddress(address: string): Promise<LeaseRecord | undefined> {
    // addresses/<a.b.c.d> is keyed by the address, so this is one get.
    const value = parseIPv4(address, "address").value;
    const kv = await this.getKv(this.addressKey(value));
    const doc = kv ? (JSON.parse(kv.value.toString()) as AddressDoc) : undefined;
    return doc && doc.state === LEASED ? toLease(value, doc) : undefined;
  }

  private async allAddresses(): Promise<[number, AddressDoc][]> {
    const out: [number, AddressDoc][] = [];
    await this.eachKv("addresses/", (kv) => out.push([this.valueOfKey(kv.key), JSON.parse(kv.value.toString()) as AddressDoc]));
    return out;
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
}
