// The forwarding threads of a worker with `workers: N` (threads.ts says why threads and what
// they share): started, started again when one dies (with backoff), each posted every table
// change in order (threadtable.ts), a revision acknowledged when every thread applied it, and
// their counters gathered for the metrics.
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { Worker } from "node:worker_threads";
import type { Logger } from "../../lib/log.js";
import { Backoff } from "../../lib/retry.js";
import type { Rule, RuleTable } from "../../lib/rules/rules.js";
import type { ForwarderConfig } from "../forward/index.js";
import type { SharedLearn } from "../neighbour/cache.js";
import type { ThreadData, ThreadStats } from "./thread.js";
import { ThreadTable, type TableMessage } from "./threadtable.js";
import type { HandedBinding, HandedNeighbour } from "./takeover.js";
import type { CorrespondentChange } from "../forward/correspondent.js";

export interface ThreadsOptions {
  count: number;
  forwarder: ForwarderConfig;
  interfaces: { name: string; mtu?: number }[];
  capture: { bufferBytes: number; maxBatch: number };
  tickMs: number;
  table?: RuleTable;
  log: Logger;
  /** The thread's script: the worker's bundle (main.ts passes its own URL), or thread.ts from source. */
  script?: URL;
  /** Restart backoff (ms): the first restart waits up to minBackoffMs, each quick death doubles it up to maxBackoffMs. */
  minBackoffMs?: number;
  maxBackoffMs?: number;
  /** Seeded jitter for the restart backoff (tests; lib/retry.ts). */
  random?: () => number;
  /** Neighbours taken over from the worker this process replaces (--takeover): each thread starts with them. */
  neighbours?: SharedLearn[];
  /** Called on each thread event (tests): started, applied, exited; runThreadedWorker adds each acknowledgement to the engine. */
  onEvent?(e: ThreadEvent): void;
}

export type ThreadEvent =
  | { event: "ready"; thread: number; tid: number; seq: number; restart: boolean }
  | { event: "applied"; thread: number; seq: number }
  | { event: "exit"; thread: number; code: number }
  | { event: "ack"; revision: bigint };

interface Slot {
  index: number;
  worker?: Worker;
  ready: boolean;
  /** The kernel thread id (for its CPU time in /proc). */
  tid?: number;
  /** The last table change the thread has applied (or refused), by seq. */
  seq: number;
  restarts: number;
  backoff: Backoff;
  readyAt: number;
  timer?: NodeJS.Timeout;
  last?: ThreadStats;
  /** What threads that ran in this slot before counted, kept so the process's counters never go back. */
  retired: Totals;
}

/** Counter totals of the threads that died. */
interface Totals { interfaces: { rxPackets: number; txPackets: number; rxBytes: number; txBytes: number; received: number; batches: number; sent: number; sendErrors: number; sendRetries: number; truncated: number; captureDrops: number; socketErrors: number }[]; actions: Record<string, number>; drops: Record<string, number> }

function emptyTotals(interfaces: number): Totals {
  return {
    interfaces: Array.from({ length: interfaces }, () => ({ rxPackets: 0, txPackets: 0, rxBytes: 0, txBytes: 0, received: 0, batches: 0, sent: 0, sendErrors: 0, sendRetries: 0, truncated: 0, captureDrops: 0, socketErrors: 0 })),
    actions: {}, drops: {},
  };
}

interface Waiter { seq: number; resolve(): void; reject(e: Error): void }

const DEFAULT_SCRIPT = new URL(import.meta.url.endsWith(".ts") ? "./thread.ts" : import.meta.url, import.meta.url);
/** A thread that stayed up this long is healthy again: its next death restarts it after the shortest wait. */
const HEALTHY_MS = 10_000;
const STATS_TIMEOUT_MS = 2_000;

export class ForwardingThreads {
  private readonly slots: Slot[];
  private readonly channel = `mip46-dataplane-${randomBytes(6).toString("hex")}`;
  private seq = 0;
  /** The table in force after every change posted so far: what a thread started again gets. */
  private readonly table = new ThreadTable();
  private readonly waiters: Waiter[] = [];
  private stopping = false;
  private statsId = 0;
  private readonly pendingStats = new Map<number, { slot: Slot; resolve(s: ThreadStats | undefined): void }>();
  /** The neighbours or bindings asked of a thread (askFirst), by request id. */
  private readonly pendingAnswers = new Map<number, (a: unknown[]) => void>();

  constructor(private readonly o: ThreadsOptions) {
    this.slots = Array.from({ length: o.count }, (_, index) => ({
      index, ready: false, seq: 0, restarts: 0, readyAt: 0, retired: emptyTotals(o.interfaces.length),
      backoff: new Backoff({ baseMs: o.minBackoffMs ?? 100, capMs: Math.max(o.maxBackoffMs ?? 5_000, o.minBackoffMs ?? 100), random: o.random }),
    }));
    if (o.table) this.table.snapshot(0, o.table);
  }

  /** Starts every thread; resolves when all have their rings open, rejects (and stops them) when one fails. */
  async start(): Promise<void> {
    try {
      await Promise.all(this.slots.map((s) => this.spawn(s)));
    } catch (e) {
      await this.stop();
      throw e;
    }
  }

  /** The revision of the table in force (posted to the threads), -1 before any. */
  get revisionInForce(): bigint {
    return this.table.revision;
  }

  get count(): number {
    return this.slots.length;
  }

  /** Per thread: running or not, its kernel thread id, how often it was started again. */
  threads(): { index: number; running: boolean; tid?: number; restarts: number }[] {
    return this.slots.map((s) => ({ index: s.index, running: s.ready, tid: s.tid, restarts: s.restarts }));
  }

  /** A full table for every thread; resolves when every thread applied it, rejects when one refused it. */
  replaceRules(table: RuleTable): Promise<void> {
    return this.post(this.table.snapshot(++this.seq, table));
  }

  applyDelta(revision: bigint, updates: Rule[], removes: string[]): Promise<void> {
    return this.post(this.table.delta(++this.seq, revision, updates, removes));
  }

  /** Ends a thread as a crash would (tests): it is started again like one that died. */
  kill(index: number): Promise<number> {
    return this.slots[index].worker!.terminate();
  }

  /** Every running thread's counters (undefined for one that did not answer), and the totals of those that died. */
  async stats(): Promise<{ threads: (ThreadStats | undefined)[]; retired: Totals[] }> {
    const threads = await Promise.all(this.slots.map((slot) => {
      if (!slot.ready || !slot.worker) return Promise.resolve(undefined);
      const id = ++this.statsId;
      return new Promise<ThreadStats | undefined>((resolve) => {
        const timer = setTimeout(() => {
          this.pendingStats.delete(id);
          resolve(slot.last);
        }, STATS_TIMEOUT_MS);
        this.pendingStats.set(id, { slot, resolve: (st) => { clearTimeout(timer); resolve(st); } });
        slot.worker!.postMessage({ t: "stats", id });
      });
    }));
    return { threads, retired: this.slots.map((s) => s.retired) };
  }

  /** The neighbours of the first running thread (each thread learns what every thread learns), for a takeover. */
  neighbours(): Promise<HandedNeighbour[]> {
    return this.askFirst<HandedNeighbour>("neighbours");
  }

  /** The correspondent bindings of the first running thread (every thread adopts what any takes), for a takeover. */
  bindings(): Promise<HandedBinding[]> {
    return this.askFirst<HandedBinding>("bindings");
  }

  /** What the first running thread holds of `kind`; nothing when no thread runs or it does not answer in time. */
  private askFirst<T>(kind: "neighbours" | "bindings"): Promise<T[]> {
    const slot = this.slots.find((s) => s.ready && s.worker);
    if (!slot) return Promise.resolve([]);
    const id = ++this.statsId;
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.pendingAnswers.delete(id);
        resolve([]);
      }, STATS_TIMEOUT_MS);
      this.pendingAnswers.set(id, (a) => { clearTimeout(timer); resolve(a as T[]); });
      slot.worker!.postMessage({ t: kind, id });
    });
  }

  /** A binding handed over at a takeover: every thread adopts it, as they adopt each other's (on the threads' channel). */
  adoptCorrespondent(c: CorrespondentChange): void {
    const channel = new BroadcastChannel(this.channel);
    channel.postMessage({ correspondent: c });
    channel.close();
  }

  /** CPU seconds (user + system) of each running thread, from /proc/self/task/TID/stat. */
  cpuSeconds(): (number | undefined)[] {
    return this.slots.map((s) => (s.ready && s.tid ? threadCpuSeconds(s.tid) : undefined));
  }

  async stop(): Promise<void> {
    this.stopping = true;
    await Promise.all(this.slots.map(async (s) => {
      clearTimeout(s.timer);
      const w = s.worker;
      if (!w) return;
      const gone = new Promise<void>((r) => w.once("exit", () => r()));
      w.postMessage({ t: "stop" });
      const timer = setTimeout(() => void w.terminate(), 2_000);
      await gone;
      clearTimeout(timer);
    }));
    for (const w of this.waiters.splice(0)) w.reject(new Error("the worker is stopping"));
  }

  private post(m: TableMessage): Promise<void> {
    // Kept (by ThreadTable) before the threads said yes: a change they refuse makes the sync
    // client resynchronise, and the snapshot that brings replaces this table anyway.
    const done = new Promise<void>((resolve, reject) => this.waiters.push({ seq: m.seq, resolve, reject }));
    for (const s of this.slots) if (s.worker && s.ready) s.worker.postMessage(m);
    this.settle();
    return done;
  }

  /** Resolves the changes every slot's thread has applied. */
  private settle(): void {
    const low = Math.min(...this.slots.map((s) => (s.ready ? s.seq : -1)));
    while (this.waiters.length > 0 && this.waiters[0].seq <= low) this.waiters.shift()!.resolve();
  }

  private spawn(slot: Slot, restart = false): Promise<void> {
    const table = this.table.start(this.seq);
    const data: ThreadData = {
      mip46DataplaneThread: true, index: slot.index, count: this.slots.length, forwarder: this.o.forwarder, interfaces: this.o.interfaces,
      capture: this.o.capture, tickMs: this.o.tickMs, table, seq: this.seq, channel: this.channel,
      neighbours: restart ? undefined : this.o.neighbours,
    };
    const script = this.o.script ?? DEFAULT_SCRIPT;
    // From source (tests run TypeScript through tsx): the thread registers tsx's loader first,
    // which a worker thread does not inherit.
    const worker = script.pathname.endsWith(".ts")
      ? new Worker(`import("tsx/esm/api").then((tsx) => { tsx.register(); return import(${JSON.stringify(script.href)}); })`, { eval: true, workerData: data })
      : new Worker(script, { workerData: data });
    slot.worker = worker;
    slot.ready = false;
    return new Promise<void>((resolve, reject) => {
      let started = false;
      worker.on("message", (m: { t: string; seq: number; tid: number; id: number; stats: ThreadStats; error: string; neighbours: HandedNeighbour[]; bindings: HandedBinding[] }) => {
        switch (m.t) {
          case "ready":
            started = true;
            slot.ready = true;
            slot.tid = m.tid;
            slot.seq = m.seq;
            slot.readyAt = Date.now();
            // Changes posted while it started were not sent to it: it gets the latest table as one snapshot.
            this.o.onEvent?.({ event: "ready", thread: slot.index, tid: m.tid, seq: m.seq, restart });
            if (m.seq < this.seq) {
              const latest = this.table.message(this.seq);
              if (latest) worker.postMessage(latest);
            }
            this.settle();
            resolve();
            break;
          case "applied":
            slot.seq = Math.max(slot.seq, m.seq);
            this.o.onEvent?.({ event: "applied", thread: slot.index, seq: m.seq });
            this.settle();
            break;
          case "refused": {
            slot.seq = Math.max(slot.seq, m.seq);
            const i = this.waiters.findIndex((w) => w.seq === m.seq);
            if (i >= 0) this.waiters.splice(i, 1)[0].reject(new Error(`thread ${slot.index}: ${m.error}`));
            this.settle();
            break;
          }
          case "neighbours":
          case "bindings": {
            const answer = this.pendingAnswers.get(m.id);
            this.pendingAnswers.delete(m.id);
            answer?.(m.t === "neighbours" ? m.neighbours : m.bindings);
            break;
          }
          case "stats": {
            const p = this.pendingStats.get(m.id);
            this.pendingStats.delete(m.id);
            if (p) {
              p.slot.last = m.stats;
              p.resolve(m.stats);
            }
            break;
          }
        }
      });
      worker.on("error", (e) => {
        this.o.log.error("forwarding thread failed", { thread: slot.index, err: e });
        if (!started) reject(e);
      });
      worker.on("exit", (code) => {
        slot.ready = false;
        slot.worker = undefined;
        this.retire(slot);
        this.o.onEvent?.({ event: "exit", thread: slot.index, code });
        if (!started) {
          reject(new Error(`forwarding thread ${slot.index} exited (${code}) before it was ready`));
          if (!restart) return;
        }
        if (this.stopping) return;
        if (Date.now() - slot.readyAt > HEALTHY_MS) slot.backoff.reset();
        const waitMs = slot.backoff.next();
        this.o.log.warn("forwarding thread ended; starting it again", { thread: slot.index, code, retryInMs: waitMs });
        slot.timer = setTimeout(() => {
          slot.restarts++;
          this.spawn(slot, true).catch(() => undefined);
        }, waitMs);
      });
    });
  }

  /** Adds a dead thread's last counters to its slot's totals. */
  private retire(slot: Slot): void {
    const last = slot.last;
    slot.last = undefined;
    if (!last) return;
    const r = slot.retired;
    last.interfaces.forEach((i, n) => {
      const t = r.interfaces[n];
      t.rxPackets += i.rxPackets; t.txPackets += i.txPackets; t.rxBytes += i.rxBytes; t.txBytes += i.txBytes;
      t.received += i.port.received; t.batches += i.port.batches; t.sent += i.port.sent; t.sendErrors += i.port.sendErrors;
      t.sendRetries += i.port.sendRetries ?? 0; t.truncated += i.port.truncated; t.captureDrops += i.port.captureDrops; t.socketErrors += i.port.socketErrors ?? 0;
    });
    for (const [k, v] of Object.entries(last.actions)) r.actions[k] = (r.actions[k] ?? 0) + v;
    for (const [k, v] of Object.entries(last.drops)) r.drops[k] = (r.drops[k] ?? 0) + v;
  }
}

const TICKS = 100; // USER_HZ: the unit of utime and stime in /proc (proc(5)); 100 on Linux everywhere
function threadCpuSeconds(tid: number): number | undefined {
  try {
    const fields = readFileSync(`/proc/self/task/${tid}/stat`, "utf8").split(") ")[1].split(" ");
    return (Number(fields[11]) + Number(fields[12])) / TICKS;
  } catch {
    return undefined;
  }
}

