// The worker's side of the rule push: connects to an engine (trying each configured replica in
// turn), says who it is and what it last applied, applies the snapshot and the deltas it is sent,
// and acknowledges each revision. When the engine goes away it keeps its last table and
// reconnects by itself, with capped exponential backoff and full jitter (lib/retry.ts), so that the
// workers of an engine that restarted do not all reconnect in the same millisecond.
import type { ChannelCredentials, ClientDuplexStream } from "@grpc/grpc-js";
import { DataPlaneSyncClient, type EngineMessage, type WorkerMessage } from "../../gen/mip46/v1/dataplane.js";
import type { Logger } from "../../lib/log.js";
import { silentLogger } from "../../lib/log.js";
import type { Rule, RuleTable } from "../../lib/rules/rules.js";
import { Backoff } from "../../lib/retry.js";
import { ruleFromMessage } from "../../lib/rules/wire.js";
import { channelCredentials, type TlsFiles } from "../../lib/tls/tls.js";

export interface RuleSyncOptions {
  workerId: string;
  /** host:port of every engine replica, tried in turn. */
  engines: string[];
  /** Mutual TLS to the engines (PEM file paths); the certificate must say worker:<workerId>. Absent: plaintext. */
  tls?: TlsFiles;
  log?: Logger;
  /**
   * A full table; replaces whatever the worker had. A promise (a worker with several threads):
   * the revision is acknowledged when it resolves, after the acknowledgements of the revisions
   * before it; a rejection is a refusal.
   */
  onSnapshot(table: RuleTable): void | Promise<void>;
  /** The changes of one revision, to apply together; a promise as for onSnapshot. */
  onDelta(revision: bigint, updates: Rule[], removes: string[]): void | Promise<void>;
  /** Called after each acknowledgement is written (a worker's log of what it told the engine). */
  onAck?(revision: bigint): void;
  /** Called on every connect and disconnect. */
  onConnection?(connected: boolean, engine: string): void;
  /** The first reconnect waits up to this (ms, default 100); each failed one doubles the window. */
  minBackoffMs?: number;
  /** The largest window (ms, default 5000). */
  maxBackoffMs?: number;
}

export class RuleSyncClient {
  appliedRevision = 0n;
  /** The epoch of the engine store the applied table came from; "" before the first. */
  appliedEpoch = "";
  connected = false;
  private stopped = true;
  private next = 0;
  private readonly backoff: Backoff;
  private stream?: ClientDuplexStream<WorkerMessage, EngineMessage>;
  private client?: DataPlaneSyncClient;
  private retryTimer?: NodeJS.Timeout;
  private readonly log: Logger;
  private readonly credentials: ChannelCredentials;
  /** The acknowledgements waiting for an apply step that returned a promise, in revision order. */
  private acks: Promise<void> = Promise.resolve();

  constructor(private readonly o: RuleSyncOptions) {
    if (o.engines.length === 0) throw new Error("at least one engine address is required");
    this.log = o.log ?? silentLogger;
    // Read once, here, so a missing or unreadable file stops the worker at start rather than
    // showing up as an engine that never answers. New certificates take a restart.
    this.credentials = channelCredentials(o.tls);
    this.backoff = new Backoff({ baseMs: o.minBackoffMs ?? 100, capMs: o.maxBackoffMs ?? 5_000 });
  }

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.connect();
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    this.stream?.cancel();
    this.client?.close();
  }

  private connect(): void {
    if (this.stopped) return;
    const engine = this.o.engines[this.next++ % this.o.engines.length];
    this.client?.close();
    const client = new DataPlaneSyncClient(engine, this.credentials, {
      "grpc.keepalive_time_ms": 10_000, "grpc.keepalive_timeout_ms": 5_000, "grpc.keepalive_permit_without_calls": 1,
    });
    this.client = client;
    const stream = client.syncRules();
    this.stream = stream;
    let snapshot: Rule[] | undefined;
    let snapshotRevision = 0n;
    let snapshotEpoch = "";
    let closed = false;
    const close = (why: string) => {
      if (closed) return;
      closed = true;
      if (this.connected) this.o.onConnection?.(false, engine);
      this.connected = false;
      if (this.stopped) return;
      const retryInMs = this.backoff.next();
      this.log.warn("engine connection lost; keeping the last table", { engine, why, appliedRevision: this.appliedRevision, retryInMs });
      this.retryTimer = setTimeout(() => this.connect(), retryInMs);
    };
    stream.on("data", (m: EngineMessage) => {
      const msg = m.message;
      switch (msg?.$case) {
        case "snapshotBegin":
          snapshot = [];
          snapshotRevision = msg.value.revision;
          snapshotEpoch = msg.value.epoch;
          break;
        case "snapshotRules":
          for (const r of msg.value.rules) {
            const rule = ruleFromMessage(r);
            if (rule) snapshot?.push(rule);
            else this.log.warn("rule not understood; skipped", { rule: r.key });
          }
          break;
        case "inSync":
          if (!snapshot || msg.value.revision !== snapshotRevision) return stream.cancel();
          this.tellIfStoreChanged(engine, snapshotEpoch, snapshotRevision);
          if (!this.apply(stream, snapshotRevision, () => this.o.onSnapshot({ revision: snapshotRevision, rules: snapshot! }), () => closed)) return;
          this.appliedEpoch = snapshotEpoch;
          snapshot = undefined;
          if (!this.connected) {
            this.connected = true;
            this.backoff.reset();
            this.o.onConnection?.(true, engine);
            this.log.info("in sync with engine", { engine, revision: snapshotRevision });
          }
          break;
        case "delta": {
          if (!this.connected) break; // deltas only count after the snapshot
          const updates = msg.value.updates.map(ruleFromMessage).filter((r): r is Rule => r !== undefined);
          this.apply(stream, msg.value.revision, () => this.o.onDelta(msg.value.revision, updates, msg.value.removes), () => closed);
          break;
        }
      }
    });
    stream.on("error", (e: Error) => close(e.message));
    stream.on("end", () => close("stream ended"));
    stream.write({ message: { $case: "hello", value: { workerId: this.o.workerId, appliedRevision: this.appliedRevision, appliedEpoch: this.appliedEpoch } } });
  }

  /**
   * Every snapshot replaces the table, so a changed store needs no more than the snapshot; but
   * it is said, since the state went back or was replaced (a restore, a new store).
   */
  private tellIfStoreChanged(engine: string, epoch: string, revision: bigint): void {
    if (this.appliedEpoch === "" || this.appliedRevision === 0n) return;
    if (epoch !== this.appliedEpoch) {
      this.log.warn("the engine's store is another one (its epoch changed): its table replaces ours", { engine, appliedEpoch: this.appliedEpoch, epoch, appliedRevision: this.appliedRevision, revision });
    } else if (revision < this.appliedRevision) {
      this.log.warn("the engine's rule revision went back (its store was restored from a backup?): its table replaces ours", { engine, epoch, appliedRevision: this.appliedRevision, revision });
    }
  }

  /**
   * Runs the worker's apply step. A table it refuses is not acknowledged: the stream is dropped,
   * and the reconnect brings a fresh snapshot (the worker keeps forwarding with what it had).
   */
  private apply(stream: ClientDuplexStream<WorkerMessage, EngineMessage>, revision: bigint, fn: () => void | Promise<void>, closed: () => boolean): boolean {
    const refused = (e: unknown) => {
      this.log.error("rule table refused; resynchronising", { err: e, revision });
      stream.cancel();
    };
    let result: void | Promise<void>;
    try {
      result = fn();
    } catch (e) {
      refused(e);
      return false;
    }
    if (result === undefined) {
      this.applied(stream, revision);
      return true;
    }
    // Applied elsewhere (the worker's threads): acknowledged in order, and only on the stream it came on.
    this.acks = this.acks.then(() => result).then(
      () => { if (!closed()) this.applied(stream, revision); },
      (e) => { if (!closed()) refused(e); },
    );
    return true;
  }

  private applied(stream: ClientDuplexStream<WorkerMessage, EngineMessage>, revision: bigint): void {
    this.appliedRevision = revision;
    stream.write({ message: { $case: "ack", value: { revision } } });
    this.o.onAck?.(revision);
  }
}
