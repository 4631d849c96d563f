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

export class RulePublisher {
  private readonly sessions = new Set<WorkerSession>();

  constructor(private readonly store: Store, private readonly log: Logger) {}

  /** Starts feeding one worker; `send` must not throw. */
  async attach(workerId: string, send: (m: EngineMessage) => void): Promise<WorkerSession> {
    const session = new WorkerSession(workerId, send, this.store, this.log);
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
    return (await this.store.ruleTable()).revision;
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
    private readonly now: () => number = Date.now,
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
    const [{ revision, rules }, epoch] = await Promise.all([this.store.ruleTable(), this.store.epoch()]);
    this.send({ message: { $case: "snapshotBegin", value: { revision, epoch } } });
    const ordered = inDependencyOrder(rules);
    for (let i = 0; i < ordered.length; i += SNAPSHOT_CHUNK) {
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
