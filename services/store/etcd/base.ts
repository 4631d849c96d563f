// What the parts of the etcd store (leases.ts, rules.ts, hosts.ts) build on: the documents kept
// under the keys, the watched copy of the address table that every view of one store shares, and
// one way to write a transaction (with the leader key's compare for a guarded view).
import type { Etcd3, IKeyValue, IOperation, Watcher } from "etcd3";
import { ipv4FromValue, parseIPv4 } from "../../../lib/net/address.js";
import { Backoff } from "../../../lib/retry.js";
import { LeadershipLostError, type LeaderGuard } from "../guard.js";
import type { LeasePurpose, LeaseRecord } from "../store.js";

/** Conflicting transactions an operation retries before it gives up (another replica won each time). */
export const MAX_CONFLICT_RETRIES = 16;
/**
 * After a lost race, a jittered pause before reading again (lib/retry.ts): replicas that collided
 * spread apart instead of colliding again at once. Windows 4, 8, ... up to 100 ms.
 */
export const conflictBackoff = () => new Backoff({ baseMs: 4, capMs: 100 });

export const FREE = 0;
export const LEASED = 1;
export const COOLING = 2;

export interface AddressDoc {
  pool: string;
  kind: "engine" | "segment";
  state: number;
  holder?: string;
  purpose?: LeasePurpose;
  hostId?: string;
  expiresAtMs?: number | null;
  cooldownUntilMs?: number;
}

export interface HolderDoc {
  address: string;
  pool: string;
}

interface CachedAddress {
  doc: AddressDoc;
  mod: bigint;
}

/** Keys per read of a prefix: a host record with 50 VMs is a few KiB, a gRPC message at most 4 MiB. */
const PAGE = 256;

/** The first key after every key that starts with `prefix` (its last character + 1). */
export function prefixEnd(prefix: string): string {
  return prefix.slice(0, -1) + String.fromCharCode(prefix.charCodeAt(prefix.length - 1) + 1);
}

export type Compare = [key: string, target: "Mod" | "Create" | "Version" | "Value", cmp: "==" | "!=", value: string | number];

/** What every view of one store shares (the guarded view of the leader reuses the client and the cache). */
export class Shared {
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

/** The keys under the store's prefix, and its transactions; each part of the store is one of these. */
export class EtcdPart {
  constructor(protected readonly s: Shared, protected readonly guard?: LeaderGuard) {}

  /** The full key of a path under the store's prefix. */
  k(path: string): string {
    return `${this.s.prefix}/${path}`;
  }

  protected addressKey(value: number): string {
    return this.k(`addresses/${ipv4FromValue(value).text}`);
  }

  protected holderKey(holder: string, purpose: LeasePurpose): string {
    return this.k(`holders/${purpose}/${holder}`);
  }

  protected valueOfKey(key: Buffer): number {
    const text = key.toString();
    return parseIPv4(text.slice(text.lastIndexOf("/") + 1), "address").value;
  }

  // --- transactions ---------------------------------------------------------------------------

  /**
   * One transaction: the compares (and the leader key, for a guarded view), then `ops`; when a
   * compare fails, `orElse` runs instead (reads that refresh what the caller knows).
   */
  protected async txn(compares: Compare[], ops: IOperation[], orElse: IOperation[] = []) {
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

  protected async checkGuard(): Promise<void> {
    const kv = (await this.s.client.get(this.guard!.key).exec()).kvs[0];
    if (!kv || kv.create_revision !== this.guard!.createRevision) throw new LeadershipLostError(`the leader key ${this.guard!.key} is no longer ours`);
  }

  protected put(key: string, value: unknown) {
    return this.s.client.put(key).value(typeof value === "string" ? value : JSON.stringify(value));
  }

  protected del(key: string) {
    return this.s.client.delete().key(key);
  }

  protected async getKv(key: string): Promise<IKeyValue | undefined> {
    return (await this.s.client.get(key).exec()).kvs[0];
  }

  /** The JSON document at a path under the prefix, if there is one. */
  protected async getDoc<T>(path: string): Promise<T | undefined> {
    const kv = await this.getKv(this.k(path));
    return kv ? (JSON.parse(kv.value.toString()) as T) : undefined;
  }

  /** The JSON documents under a path, in key order (read a page at a time, at one revision). */
  protected async listDocs<T>(path: string): Promise<T[]> {
    const out: T[] = [];
    await this.eachKv(path, (kv) => out.push(JSON.parse(kv.value.toString()) as T));
    return out;
  }

  /**
   * Every key under a path, in key order, `PAGE` keys per read, all at one revision (`revision`,
   * else the first page's): a gRPC message holds at most 4 MiB, and 2,000 host records with
   * their VMs are more. Resolves the revision read at.
   */
  protected eachKv(path: string, each: (kv: IKeyValue) => void, revision?: bigint): Promise<bigint> {
    return this.eachKvIn(this.k(path), prefixEnd(this.k(path)), each, revision);
  }

  /** eachKv over the keys in [start, end) (full keys, prefix included). */
  protected async eachKvIn(start: string, end: string, each: (kv: IKeyValue) => void, revision?: bigint): Promise<bigint> {
    let at = revision;
    for (;;) {
      const range = this.s.client.getAll().inRange({ start, end }).sort("Key", "Ascend").limit(PAGE);
      const res = await (at === undefined ? range : range.revision(String(at))).exec();
      at ??= BigInt(res.header.revision);
      for (const kv of res.kvs) each(kv);
      if (!res.more || res.kvs.length === 0) return at;
      start = res.kvs[res.kvs.length - 1].key.toString() + "\0";
    }
  }
}

export function toLease(value: number, d: AddressDoc): LeaseRecord {
  return {
    address: ipv4FromValue(value).text, pool: d.pool, holder: d.holder ?? "", purpose: d.purpose ?? "care-of",
    hostId: d.hostId ?? "", expiresAtMs: d.expiresAtMs ?? null,
  };
}
