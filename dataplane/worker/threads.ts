// `workers: N` > 1: N forwarding threads (thread.ts) in the worker process, each with its own
// ring per interface in the interface's PACKET_FANOUT group (hash mode: the kernel keeps a flow
// on one thread, so it is never reordered; the fragments of a datagram hash alike, with no ports,
// so they go to one thread too, though not always the thread of the flow's whole packets).
//
// Threads, not processes: one process keeps one sync client, one metrics endpoint and one set of
// metrics (the issue asks for that), a table change reaches the threads as a message in the same
// process, and a dead thread is noticed (its `exit` event) and started again by the main thread,
// while the others go on.
//
// The main thread forwards no packet. It holds the one rule-sync client and posts every snapshot
// and delta to every thread, numbered (`seq`) in the order posted; a revision is acknowledged to
// the engine only when every thread has applied that change (or started since with a table that
// holds it). It keeps the latest table (threadtable.ts: the last snapshot's image and the deltas
// since, no table of its own), so that a thread started again gets the table in force. The
// threads themselves are started, restarted and asked in threadpool.ts; this file wires them to
// the rule sync, the metrics and the takeover.
//
// What the threads learn at run time is shared between them on a BroadcastChannel, each thread
// applying what the others learned as if it had seen the packet itself:
// - neighbours: every ARP/NDP message one thread's cache learns from (NeighbourHooks.learned)
//   is learned by the others too (learnShared). The kernel hashes an ARP or NDP reply to any
//   thread, so the reply to a solicitation one thread sent may arrive on another; the packets
//   the first holds for that neighbour still go out. Each thread solicits for its own
//   unresolved next hops (a few more solicitations, never a lost reply).
// - correspondent bindings (route optimisation): a binding update arrives on the thread that
//   has the VM's tunnel flow, the correspondent's packets on others; every binding an update adds
//   or removes is adopted by every thread. Expiry runs in each thread by the same clock.
// Counters are per thread, summed for the metrics (a thread that dies leaves the counts of the
// last scrape, so what it counted after that scrape is lost); the ICMP error rate limit is per thread (N
// threads may send up to N times the configured rate); the translator's and the tunnels'
// identification counters are per thread, interleaved (thread i of N hands out i + 1 + kN), so
// that two threads never give the same identification to packets of one source and destination.
import type { Logger } from "../../lib/log.js";
import type { RuleTable } from "../../lib/rules/rules.js";
import type { Registry } from "prom-client";
import type { ThreadStats } from "./thread.js";
import type { WorkerConfig } from "./config.js";
import { workerMetrics } from "./metrics.js";
import { checkedForwarderConfig, findPeer, leave, refuseBeside, schedulingForForwarding, serveRunning, startSync } from "./worker.js";
import { firstSnapshot, neighboursToLearn } from "./takeover.js";
import { ForwardingThreads, type ThreadsOptions } from "./threadpool.js";

export { ForwardingThreads, type ThreadEvent, type ThreadsOptions } from "./threadpool.js";

export interface RunningThreads {
  threads: ForwardingThreads;
  registry: Registry;
  metricsPort: number;
  /** --takeover: the pid of the worker this one replaced. */
  tookOverFrom?: number;
  stop(): Promise<void>;
}

/**
 * The worker with `workers: N` > 1 on the ring backend (main.ts chooses it): N forwarding threads,
 * the rule-sync client and the metrics in this (main) thread. `table`: as runWorker's.
 */
export async function runThreadedWorker(config: WorkerConfig, log: Logger, options: { table?: RuleTable; skipHostCheck?: boolean; takeover?: boolean } & Pick<ThreadsOptions, "script" | "onEvent" | "minBackoffMs" | "maxBackoffMs" | "random"> = {}): Promise<RunningThreads> {
  const forwarder = checkedForwarderConfig(config, log, options.skipHostCheck);
  const names = config.interfaces.map((i) => i.name);
  const peer = options.takeover ? await findPeer(config, log) : await refuseBeside(config);
  const neighbours = peer ? neighboursToLearn(peer.neighbours, names) : undefined;
  const threads = new ForwardingThreads({
    count: config.workers, forwarder, interfaces: config.interfaces.map((i) => ({ name: i.name, mtu: i.mtu })),
    capture: { bufferBytes: config.capture.bufferBytes, maxBatch: config.capture.maxBatch }, tickMs: config.tickMs,
    table: options.table, log, script: options.script, onEvent: options.onEvent, neighbours,
    minBackoffMs: options.minBackoffMs, maxBackoffMs: options.maxBackoffMs, random: options.random,
  });
  if (options.table) log.info("rule table applied", { source: "file", revision: options.table.revision, rules: options.table.rules.length });
  // The table first, then the threads and their rings (ForwardingThreads keeps the table posted
  // before they start, and starts them with it): a new process forwards with the engine's table
  // from its first frame.
  const synced = firstSnapshot();
  const sync = startSync(config, log, {
    onSnapshot: (table) => {
      const applied = threads.replaceRules(table);
      synced.applied();
      return applied;
    },
    onDelta: (revision, updates, removes) => threads.applyDelta(revision, updates, removes),
    onAck: (revision) => options.onEvent?.({ event: "ack", revision }),
  });
  let scheduling: ReturnType<typeof schedulingForForwarding> | undefined;
  try {
    if (peer && sync) await synced.wait(config.takeover.syncTimeoutMs);
    if (peer) log.info("neighbours taken over", { from: peer.pid, handed: peer.neighbours.length, learned: neighbours!.length });
    // The process's helper threads (V8's compiler and GC workers) stop preempting the threads that
    // forward (ring.ts forwardingScheduling); the forwarding threads, started after by this thread,
    // keep its normal policy.
    scheduling = schedulingForForwarding();
    // The threads' rings are in the fanout group: they share the old process's while it still forwards.
    await threads.start();
    if (peer) await leave(peer, log, (c) => threads.adoptCorrespondent(c));
  } catch (e) {
    sync?.stop();
    peer?.close();
    await threads.stop();
    throw e;
  }

  // What the threads last said (refreshed once per scrape), and the totals of those that died.
  let seen: Awaited<ReturnType<ForwardingThreads["stats"]>> = { threads: [], retired: [] };
  let cpu: (number | undefined)[] = [];
  const live = () => seen.threads.filter((t): t is ThreadStats => t !== undefined);
  const sum = (pick: (t: { actions: Record<string, number>; drops: Record<string, number> }) => Record<string, number>) => {
    const out: Record<string, number> = {};
    for (const t of [...live(), ...seen.retired]) for (const [k, v] of Object.entries(pick(t))) out[k] = (out[k] ?? 0) + v;
    return out;
  };
  const registry = workerMetrics({
    interfaces: () => config.interfaces.map((i, n) => {
      const total = { name: i.name, rxPackets: 0, txPackets: 0, rxBytes: 0, txBytes: 0, port: { received: 0, batches: 0, sent: 0, sendErrors: 0, sendRetries: 0, truncated: 0, captureDrops: 0, socketErrors: 0 } };
      for (const t of live()) {
        const c = t.interfaces[n];
        total.rxPackets += c.rxPackets; total.txPackets += c.txPackets; total.rxBytes += c.rxBytes; total.txBytes += c.txBytes;
        for (const k of Object.keys(total.port) as (keyof typeof total.port)[]) total.port[k] += c.port[k] ?? 0;
      }
      for (const r of seen.retired) {
        const c = r.interfaces[n];
        total.rxPackets += c.rxPackets; total.txPackets += c.txPackets; total.rxBytes += c.rxBytes; total.txBytes += c.txBytes;
        for (const k of Object.keys(total.port) as (keyof typeof total.port)[]) total.port[k] += c[k];
      }
      return total;
    }),
    actions: () => sum((t) => t.actions),
    drops: () => sum((t) => t.drops),
    // Every thread applies the same tables: the lowest revision is the one the whole worker is at.
    revision: () => live().reduce((low, t) => (t.revision < low ? t.revision : low), live()[0]?.revision ?? -1n),
    rules: () => live()[0]?.rules ?? 0,
    // Each thread has its own cache, learning from every thread: the largest count per family and state.
    neighbours: () => {
      const most = new Map<string, { family: string; state: string; count: number }>();
      for (const t of live()) for (const n of t.neighbours) {
        const k = `${n.family} ${n.state}`;
        if ((most.get(k)?.count ?? -1) < n.count) most.set(k, n);
      }
      return [...most.values()];
    },
    engineConnected: () => sync?.connected ?? false,
    async refresh() {
      seen = await threads.stats();
      cpu = threads.cpuSeconds();
    },
    threads: () => threads.threads().map((t) => {
      const s = seen.threads[t.index];
      const r = seen.retired[t.index];
      const rx = (s?.interfaces ?? []).reduce((a, i) => a + i.rxPackets, 0) + (r?.interfaces ?? []).reduce((a, i) => a + i.rxPackets, 0);
      const tx = (s?.interfaces ?? []).reduce((a, i) => a + i.txPackets, 0) + (r?.interfaces ?? []).reduce((a, i) => a + i.txPackets, 0);
      return { thread: t.index, running: t.running, rxPackets: rx, txPackets: tx, cpuSeconds: cpu[t.index], restarts: t.restarts };
    }),
  });
  let last: Awaited<ReturnType<ForwardingThreads["stats"]>> | undefined;
  const served = await serveRunning(config, registry, log, {
    async shut() {
      sync?.stop();
      await threads.stop();
    },
    revision: () => threads.revisionInForce,
    neighbours: () => threads.neighbours(),
    bindings: () => threads.bindings(),
    beforeLeave: async () => {
      last = await threads.stats().catch(() => undefined);
    },
  });
  log.info("dataplane started", {
    workerId: config.workerId, metricsPort: served.metricsPort, interfaces: names, engines: config.engines, backend: "ring",
    workers: config.workers, threads: threads.threads().map((t) => t.tid), scheduling, ...(peer ? { tookOverFrom: peer.pid } : {}),
  });
  return {
    threads, registry, metricsPort: served.metricsPort, tookOverFrom: peer?.pid,
    async stop() {
      last ??= await threads.stats().catch(() => undefined);
      await served.close();
      log.info("dataplane stopped", { revision: last?.threads.find((t) => t)?.revision ?? -1n, workers: config.workers });
    },
  };
}
