// Pushes the rule table to data-plane workers: on connect a full snapshot (in chunks) and an
// in-sync marker, then one delta per revision. Each worker acknowledges what it applied; the
// engine keeps, per worker, the last revision sent and acknowledged, for the lag metric.
import type { EngineMessage } from "../../gen/mip46/v1/dataplane.js";
import type { Logger } from "../../lib/log.js";
import type { Rule } from "../../lib/rules/rules.js";
import { inDependencyOrder, ruleToMessage } from "../../lib/rules/wire.js";
import type { Store } from "../store/store.js";

export const SNAPSHOT_CHUNK = 1000;

export interface WorkerStatus {
  workerId: string;
  sentRevision: bigint;
  ackedRevision: bigint;
  connectedAtMs: number;
  /** How long the oldest revision sent and not acknowledged has waited (0: it has applied all it was sent). */
  lagMs: number;
}

/**
 * The rule table as the push last saw it, brought up to date from the store's change log on each
 * use: a reconnecting worker's snapshot and the revision (the lag metric, ListWorkers) come from
 * here instead of reading and parsing the whole table from the store each time (60,000 rules
 * took a few hundred milliseconds of the engine's one thread, issue 15). Read whole again only
 * when the log no longer reaches back.
 */
export class RuleTableCache {
  private at = -1n;
  private readonly rules = new Map<string, Rule>();
  private turn: Promise<unknown> = Promise.resolve();

  constructor(private readonly store: Store) {}

  /** The table at the store's revision now. */
  current(): Promise<{ revision: bigint; rules: Rule[] }> {
    return this.inTurn(() => ({ revision: this.at, rules: [...this.rules.values()] }));
  }

  /** The store's revision now (the table brought up to it), without copying the rules out. */
  revision(): Promise<bigint> {
    return this.inTurn(() => this.at);
  }

  /** Brings the copy up to date and reads it, one caller at a time. */
  private inTurn<T>(read: () => T): Promise<T> {
    const next = this.turn.then(async () => {
      await this.refresh();
      return read();
    });
    this.turn = next.catch(() => undefined);
    return next;
  }

  private async refresh(): Promise<void> {
    const changes = this.at < 0n ? undefined : await this.store.ruleChangesSince(this.at);
    if (changes === undefined) {
      const t = await this.store.ruleTable();
      this.rules.clear();
      for (const r of t.rules) this.rules.set(r.key, r);
      this.at = t.revision;
    } else {
      for (const c of changes) {
        if (c.rule) this.rules.set(c.key, c.rule);
        else this.rules.delete(c.key);
        if (c.revision > this.at) this.at = c.revision;
      }
    }
  }
}

export class RulePublisher {
  private readonly sessions = new Set<WorkerSession>();
  private readonly table: RuleTableCache;

  constructor(private readonly store: Store, private readonly log: Logger) {
    this.table = new RuleTableCache(store);
  }

  /** Starts feeding one worker; `send` must not throw. */
  async attach(workerId: string, send: (m: EngineMessage) => void): Promise<WorkerSession> {
    const session = new WorkerSession(workerId, send, this.store, this.log, Date.now, this.table);
    this.sessions.add(session);
    await session.start();
    return session;
  }

  detach(session: WorkerSession): void {
    session.stop();
    this.sessions.delete(session);
  }

  workers(): WorkerStatus[] {
    return [...this.sessions].map((s) => s.status());
  }

  async currentRevision(): Promise<bigint> {
    return this.table.revision();
  }
}

export class WorkerSession {
  private sent = 0n;
  private acked = 0n;
  private readonly connectedAtMs: number;
  /** When each revision sent and not yet acknowledged was sent, oldest first (a Map keeps insertion order). */
  private readonly unacked = new Map<bigint, number>();
  private unsubscribe?: () => void;
  /** Sends happen one at a time so deltas never overtake each other. */
  private chain: Promise<void> = Promise.resolve();
  private stopped = false;

  constructor(
    readonly workerId: string, private readonly send: (m: EngineMessage) => void, private readonly store: Store, private readonly log: Logger,
    private readonly now: () => number = Date.now, private readonly table: RuleTableCache = new RuleTableCache(store),
  ) {
    this.connectedAtMs = now();
  }

  async start(): Promise<void> {
    // Subscribe first, so no change can fall between the snapshot and the first delta.
    this.unsubscribe = this.store.onRulesChanged(() => this.enqueue(() => this.sendChanges()));
    await this.enqueue(() => this.sendSnapshot());
  }

  stop(): void {
    this.stopped = true;
    this.unsubscribe?.();
  }

  ack(revision: bigint): void {
    if (revision > this.acked && revision <= this.sent) this.acked = revision;
    for (const r of this.unacked.keys()) {
      if (r > this.acked) break;
      this.unacked.delete(r);
    }
  }

  status(): WorkerStatus {
    const oldest = this.unacked.values().next();
    return {
      workerId: this.workerId, sentRevision: this.sent, ackedRevision: this.acked, connectedAtMs: this.connectedAtMs,
      lagMs: oldest.done ? 0 : Math.max(0, this.now() - oldest.value),
    };
  }

  /** Records a revision as sent, waiting for its acknowledgement. */
  private sentRevision(revision: bigint): void {
    this.sent = revision;
    if (revision > this.acked && !this.unacked.has(revision)) this.unacked.set(revision, this.now());
  }

  private enqueue(fn: () => Promise<void>): Promise<void> {
    this.chain = this.chain.then(() => (this.stopped ? undefined : fn())).catch((e) => this.log.error("rule push failed", { workerId: this.workerId, err: e }));
    return this.chain;
  }

  private async sendSnapshot(): Promise<void> {
    const [{ revision, rules }, epoch] = await Promise.all([this.table.current(), this.store.epoch()]);
    this.send({ message: { $case: "snapshotBegin", value: { revision, epoch } } });
    const ordered = inDependencyOrder(rules);
    for (let i = 0; i < ordered.length; i += SNAPSHOT_CHUNK) {
      // One chunk per turn of the event loop: a worker reconnecting to a large table must not hold
      // the engine's other calls for the whole snapshot (60,000 rules take half a second).
      if (i > 0) await new Promise((resolve) => setImmediate(resolve));
      if (this.stopped) return;
      this.send({ message: { $case: "snapshotRules", value: { rules: ordered.slice(i, i + SNAPSHOT_CHUNK).map(ruleToMessage) } } });
    }
    this.send({ message: { $case: "inSync", value: { revision } } });
    this.sentRevision(revision);
    this.log.info("rule snapshot sent", { workerId: this.workerId, revision, rules: rules.length });
  }

  private async sendChanges(): Promise<void> {
    const changes = await this.store.ruleChangesSince(this.sent);
    if (changes === undefined) return this.sendSnapshot(); // the log no longer reaches back: start over
    const byRevision = new Map<bigint, { updates: Rule[]; removes: string[] }>();
    for (const c of changes) {
      const d = byRevision.get(c.revision) ?? { updates: [], removes: [] };
      byRevision.set(c.revision, d);
      if (c.rule) d.updates.push(c.rule);
      else d.removes.push(c.key);
    }
    for (const [revision, d] of [...byRevision].sort((a, b) => (a[0] < b[0] ? -1 : 1))) {
      this.send({ message: { $case: "delta", value: { revision, updates: inDependencyOrder(d.updates).map(ruleToMessage), removes: d.removes.sort().reverse() } } });
      this.sentRevision(revision);
    }
  }
}
