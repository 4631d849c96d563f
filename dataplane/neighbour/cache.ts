// The neighbour cache of the worker: IPv4 (ARP, RFC 826) and IPv6 (NDP, RFC 4861 §7.3) in one
// state machine, simplified from RFC 4861 §7.3.2: INCOMPLETE (resolving, with a small queue of
// packets), REACHABLE, STALE (still used; the first use starts probing, DELAY and PROBE folded
// into one state), PERMANENT (configured). Pure: time comes in as `now` (ms), and the caller
// calls `tick(now)`; frames go out through the `emit` it passes.
import { AddressMap, type IPFamily } from "../tunnel/peers.js";

export type NeighbourState = "incomplete" | "reachable" | "stale" | "permanent";

export interface NeighbourTimers {
  /** RFC 4861 §10 REACHABLE_TIME: a confirmed entry turns stale after this. */
  reachableMs: number;
  /** RFC 4861 §10 RETRANS_TIMER: between solicitations. */
  retransMs: number;
  /** RFC 4861 §10 MAX_MULTICAST_SOLICIT / MAX_UNICAST_SOLICIT. */
  maxRetries: number;
  /** RFC 4861 §10 DELAY_FIRST_PROBE_TIME: a stale entry used for traffic is probed after this. */
  delayMs: number;
  /** A stale entry not used for this long is forgotten (garbage collection, RFC 4861 §7.3.2 leaves it open). */
  staleExpiryMs: number;
  /** Packets held per incomplete entry (RFC 4861 §7.2.2 says "at least one"). */
  queueLength: number;
  /** Upper bound on entries, so a scan of addresses cannot exhaust memory. */
  maxEntries: number;
}

export const DEFAULT_NEIGHBOUR_TIMERS: NeighbourTimers = {
  reachableMs: 30_000,
  retransMs: 1_000,
  maxRetries: 3,
  delayMs: 5_000,
  staleExpiryMs: 600_000,
  queueLength: 8,
  maxEntries: 65_536,
};

export interface NeighbourEntry {
  ifIndex: number;
  family: IPFamily;
  /** 4 or 16 bytes. */
  address: Uint8Array;
  state: NeighbourState;
  /** 6 bytes; zero while incomplete. */
  mac: Uint8Array;
  /** When the state last changed or the entry was last confirmed. */
  updated: number;
  /** Last time traffic used the entry. */
  used: number;
  /** Solicitations sent in the current resolution or probe. */
  retries: number;
  /** When the next solicitation is due; -1 when none is. */
  nextSolicit: number;
  /** Whole frames waiting for the MAC (destination MAC bytes still zero). */
  queue: Uint8Array[];
}

export type Emit = (ifIndex: number, frame: Uint8Array) => void;

/** What the cache needs from its owner: building solicitations and counting lost packets. */
export interface NeighbourHooks {
  /** Send an ARP request / Neighbor Solicitation for `entry` (unicast to `entry.mac` when `unicast`). */
  solicit(entry: NeighbourEntry, unicast: boolean, emit: Emit): void;
  /** `count` queued packets were dropped (resolution failed, queue full, entry evicted). */
  dropped(count: number): void;
  /**
   * Every learn() call, with copies of its address and MAC: a worker with several threads hands
   * it to the others' caches (learnShared), so that a reply taken by one thread resolves the
   * packets another holds for that neighbour (dataplane/worker/threads.ts).
   */
  learned?(learn: SharedLearn): void;
}

/** What one learn() call saw, as plain data (it crosses threads). */
export interface SharedLearn {
  ifIndex: number;
  family: IPFamily;
  address: Uint8Array;
  mac: Uint8Array;
  opts: { confirmed: boolean; create: boolean; override?: boolean };
}

export interface NeighbourStats {
  entries: number;
  incomplete: number;
  reachable: number;
  stale: number;
  permanent: number;
  queued: number;
}

export class NeighbourCache {
  readonly timers: NeighbourTimers;
  private readonly tables = new Map<number, AddressMap<NeighbourEntry>>();
  /** Every entry, for tick and stats; small compared with per-packet work. */
  private readonly all = new Set<NeighbourEntry>();

  /**
   * `fallbackMac`: the MAC of every next hop not in the cache, with no resolution at all. For the
   * offline mode, where nobody would answer a solicitation; never for a live worker.
   */
  constructor(private readonly hooks: NeighbourHooks, timers: Partial<NeighbourTimers> = {}, private readonly fallbackMac?: Uint8Array) {
    this.timers = { ...DEFAULT_NEIGHBOUR_TIMERS, ...timers };
  }

  private table(ifIndex: number): AddressMap<NeighbourEntry> {
    let t = this.tables.get(ifIndex);
    if (t === undefined) {
      t = new AddressMap<NeighbourEntry>();
      this.tables.set(ifIndex, t);
    }
    return t;
  }

  get(ifIndex: number, buf: Uint8Array, offset: number, family: IPFamily): NeighbourEntry | undefined {
    return this.tables.get(ifIndex)?.get(buf, offset, family);
  }

  private create(ifIndex: number, buf: Uint8Array, offset: number, family: IPFamily, state: NeighbourState, now: number): NeighbourEntry | undefined {
    if (this.all.size >= this.timers.maxEntries && !this.evictOne()) return undefined;
    const address = buf.slice(offset, offset + (family === 4 ? 4 : 16));
    const e: NeighbourEntry = { ifIndex, family, address, state, mac: new Uint8Array(6), updated: now, used: now, retries: 0, nextSolicit: -1, queue: [] };
    this.table(ifIndex).set(address, e);
    this.all.add(e);
    return e;
  }

  /** Drops the oldest stale entry to make room; false when none can go. */
  private evictOne(): boolean {
    let victim: NeighbourEntry | undefined;
    for (const e of this.all) if (e.state === "stale" && (victim === undefined || e.used < victim.used)) victim = e;
    if (victim === undefined) return false;
    this.remove(victim);
    return true;
  }

  private remove(e: NeighbourEntry): void {
    this.tables.get(e.ifIndex)?.delete(e.address);
    this.all.delete(e);
    if (e.queue.length > 0) {
      this.hooks.dropped(e.queue.length);
      e.queue.length = 0;
    }
  }

  /** A configured entry: never expires, never probed. */
  addPermanent(ifIndex: number, address: Uint8Array, mac: Uint8Array, now = 0): void {
    const family: IPFamily = address.length === 4 ? 4 : 6;
    const e = this.get(ifIndex, address, 0, family) ?? this.create(ifIndex, address, 0, family, "permanent", now);
    if (e === undefined) return;
    e.state = "permanent";
    e.mac.set(mac.subarray(0, 6));
    e.nextSolicit = -1;
  }

  /**
   * The MAC for the next hop at buf[offset..] on `ifIndex`, or undefined after queueing a copy of
   * `frame` (whose first 6 bytes get the MAC when it is known) and, for a new entry, soliciting
   * at once (RFC 4861 §7.2.2). The returned bytes are the entry's own: read, do not keep.
   */
  resolve(ifIndex: number, buf: Uint8Array, offset: number, family: IPFamily, frame: Uint8Array, now: number, emit: Emit): Uint8Array | undefined {
    let e = this.get(ifIndex, buf, offset, family);
    if (e !== undefined && e.state !== "incomplete") {
      e.used = now;
      // RFC 4861 §7.3.3: traffic through a STALE entry starts the DELAY timer, then probes.
      if (e.state === "stale" && e.nextSolicit < 0) {
        e.nextSolicit = now + this.timers.delayMs;
        e.retries = 0;
      }
      return e.mac;
    }
    if (e === undefined) {
      if (this.fallbackMac !== undefined) return this.fallbackMac;
      e = this.create(ifIndex, buf, offset, family, "incomplete", now);
      if (e === undefined) {
        this.hooks.dropped(1);
        return undefined;
      }
      e.retries = 1;
      e.nextSolicit = now + this.timers.retransMs;
      this.hooks.solicit(e, false, emit);
    }
    // RFC 4861 §7.2.2: when the queue overflows, the oldest packet goes.
    if (e.queue.length >= this.timers.queueLength) {
      e.queue.shift();
      this.hooks.dropped(1);
    }
    e.queue.push(frame.slice());
    e.used = now;
    return undefined;
  }

  /**
   * Learns a link-layer address. `confirmed`: a solicited reply (ARP reply, NA with S set), which
   * makes the entry REACHABLE (RFC 4861 §7.2.5); otherwise (a request or an unsolicited
   * advertisement carrying the sender's address) a new or changed entry is STALE (§7.2.3, §7.2.6),
   * like RFC 826's merge. `create`: make an entry if there is none (only when the packet was
   * for us, RFC 826 "Am I the target?"). `override`: for NA, whether a different MAC may replace
   * a known one (§7.2.5). Queued frames are sent.
   */
  learn(ifIndex: number, buf: Uint8Array, offset: number, family: IPFamily, mac: Uint8Array, macOffset: number, now: number, emit: Emit,
    opts: { confirmed: boolean; create: boolean; override?: boolean }): void {
    if (this.hooks.learned !== undefined) {
      const address = buf.slice(offset, offset + (family === 4 ? 4 : 16));
      this.hooks.learned({ ifIndex, family, address, mac: mac.slice(macOffset, macOffset + 6), opts });
    }
    this.merge(ifIndex, buf, offset, family, mac, macOffset, now, emit, opts);
  }

  /** What another thread's cache learned (NeighbourHooks.learned), taken as if this cache had seen the packet. */
  learnShared(l: SharedLearn, now: number, emit: Emit): void {
    this.merge(l.ifIndex, l.address, 0, l.family, l.mac, 0, now, emit, l.opts);
  }

  private merge(ifIndex: number, buf: Uint8Array, offset: number, family: IPFamily, mac: Uint8Array, macOffset: number, now: number, emit: Emit,
    opts: { confirmed: boolean; create: boolean; override?: boolean }): void {
    let e = this.get(ifIndex, buf, offset, family);
    if (e === undefined) {
      if (!opts.create) return;
      e = this.create(ifIndex, buf, offset, family, "stale", now);
      if (e === undefined) return;
    }
    if (e.state === "permanent") return;
    let same = true;
    for (let i = 0; i < 6; i++) if (e.mac[i] !== mac[macOffset + i]) same = false;
    if (e.state === "incomplete") {
      e.mac.set(mac.subarray(macOffset, macOffset + 6));
      e.state = opts.confirmed ? "reachable" : "stale";
    } else if (!same) {
      if (opts.override === false && opts.confirmed) {
        // §7.2.5: a solicited NA without O for a different MAC does not replace it.
        return;
      }
      e.mac.set(mac.subarray(macOffset, macOffset + 6));
      e.state = opts.confirmed ? "reachable" : "stale";
    } else if (opts.confirmed) {
      e.state = "reachable";
    }
    e.updated = now;
    if (e.state === "reachable") {
      e.nextSolicit = -1;
      e.retries = 0;
    }
    if (e.queue.length > 0) {
      const q = e.queue;
      e.queue = [];
      for (const f of q) {
        f.set(e.mac, 0);
        emit(ifIndex, f);
      }
    }
  }

  /** Retransmissions, REACHABLE → STALE, probe failures and expiry. */
  tick(now: number, emit: Emit): void {
    const t = this.timers;
    for (const e of [...this.all]) {
      if (e.state === "permanent") continue;
      if (e.state === "reachable") {
        if (now - e.updated >= t.reachableMs) {
          e.state = "stale";
          e.updated = now;
        }
        continue;
      }
      if (e.nextSolicit >= 0 && now >= e.nextSolicit) {
        if (e.retries >= t.maxRetries) {
          // §7.3.3: resolution or probing failed; the entry goes and so do its queued packets.
          this.remove(e);
          continue;
        }
        e.retries++;
        e.nextSolicit = now + t.retransMs;
        this.hooks.solicit(e, e.state === "stale", emit);
        continue;
      }
      if (e.state === "stale" && e.nextSolicit < 0 && now - e.used >= t.staleExpiryMs) this.remove(e);
    }
  }

  entries(): IterableIterator<NeighbourEntry> {
    return this.all.values();
  }

  stats(): NeighbourStats {
    const s: NeighbourStats = { entries: this.all.size, incomplete: 0, reachable: 0, stale: 0, permanent: 0, queued: 0 };
    for (const e of this.all) {
      s[e.state]++;
      s.queued += e.queue.length;
    }
    return s;
  }
}
