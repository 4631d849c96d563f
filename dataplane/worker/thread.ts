// One forwarding thread of a worker with `workers: N` > 1 (threads.ts starts N of them). It owns
// a Forwarder and a ring port per interface in the interface's PACKET_FANOUT group, so the
// kernel hands it its share of the flows; it applies every table the main thread posts and says
// so; it shares what it learns about neighbours and correspondents with the other threads.
//
// Messages from the main thread: {t: "table", seq, ...snapshot or delta}, {t: "stats", id},
// {t: "neighbours", id}, {t: "bindings", id}, {t: "stop"}. To it: {t: "ready", tid, seq}, {t: "applied", seq},
// {t: "refused", seq, error}, {t: "stats", id, stats}, {t: "neighbours", id, neighbours}, {t: "bindings", id, bindings}.
import { BroadcastChannel, isMainThread, parentPort, workerData } from "node:worker_threads";
import { Forwarder, type ForwarderConfig } from "../forward/index.js";
import type { CorrespondentChange } from "../forward/correspondent.js";
import type { SharedLearn } from "../neighbour/cache.js";
import { loadRingAddon, RingIo } from "../io/ring.js";
import type { FramePort, FramePortStats } from "../io/frames.js";
import { forwardOnPorts, neighbourCounts } from "./ports.js";
import { handedBindings, handedNeighbours } from "./takeover.js";
import { applyTable, type StartTable, type TableMessage } from "./threadtable.js";

export interface ThreadData {
  mip46DataplaneThread: true;
  index: number;
  /** How many threads the worker runs (their identification counters interleave). */
  count: number;
  forwarder: ForwarderConfig;
  interfaces: { name: string; mtu?: number }[];
  capture: { bufferBytes: number; maxBatch: number };
  tickMs: number;
  /** The table in force when the thread starts (a restarted thread gets the latest), with the seq of the last change in it. */
  table?: StartTable;
  seq: number;
  /** Neighbours taken over from the worker this process replaced (--takeover), learned as STALE before the rings open. */
  neighbours?: SharedLearn[];
  /** The BroadcastChannel the threads of this worker share neighbours and correspondents on. */
  channel: string;
}

/** What a thread reports for the metrics. */
export interface ThreadStats {
  interfaces: { rxPackets: number; txPackets: number; rxBytes: number; txBytes: number; port: FramePortStats }[];
  actions: Record<string, number>;
  drops: Record<string, number>;
  revision: bigint;
  rules: number;
  neighbours: { family: string; state: string; count: number }[];
}

type Shared = { learn: SharedLearn } | { correspondent: CorrespondentChange };

export function runThread(data: ThreadData): void {
  const port = parentPort!;
  const lib = loadRingAddon();
  if (!lib) throw new Error("the ring addon did not load in a forwarding thread");
  const io = new RingIo(lib);
  const channel = new BroadcastChannel(data.channel);
  const forwarder = new Forwarder(data.forwarder, Date.now(), {
    thread: { index: data.index, count: data.count },
    share: {
      neighbourLearned: (learn) => channel.postMessage({ learn } satisfies Shared),
      correspondentChanged: (correspondent) => channel.postMessage({ correspondent } satisfies Shared),
    },
  });
  if (data.table) applyTable(forwarder, data.table);
  const now = Date.now();
  for (const l of data.neighbours ?? []) forwarder.learnShared(l, () => undefined, now);
  const ports: FramePort[] = [];
  try {
    for (const i of data.interfaces) ports.push(io.open(i.name, { ...data.capture, mtu: i.mtu, fanout: true }));
  } catch (e) {
    for (const p of ports) p.close();
    throw e;
  }
  const emit = forwardOnPorts(forwarder, ports);
  channel.onmessage = (event) => {
    const m = (event as { data: Shared }).data;
    if ("learn" in m) forwarder.learnShared(m.learn, emit, Date.now());
    else forwarder.adoptCorrespondent(m.correspondent);
  };
  const ticker = setInterval(() => forwarder.tick(Date.now(), emit), data.tickMs);

  port.on("message", (m: TableMessage | { t: "stats"; id: number } | { t: "neighbours"; id: number } | { t: "bindings"; id: number } | { t: "stop" }) => {
    switch (m.t) {
      case "table":
        try {
          applyTable(forwarder, m);
          port.postMessage({ t: "applied", seq: m.seq });
        } catch (e) {
          // The forwarder changed nothing; the main thread resynchronises with the engine.
          port.postMessage({ t: "refused", seq: m.seq, error: (e as Error).message });
        }
        break;
      case "stats":
        port.postMessage({ t: "stats", id: m.id, stats: threadStats(forwarder, ports) });
        break;
      case "neighbours":
        port.postMessage({ t: "neighbours", id: m.id, neighbours: handedNeighbours(forwarder.neighbours.entries(), data.interfaces.map((i) => i.name)) });
        break;
      case "bindings":
        port.postMessage({ t: "bindings", id: m.id, bindings: handedBindings(forwarder.correspondentBindings()) });
        break;
      case "stop":
        clearInterval(ticker);
        for (const p of ports) p.close();
        channel.close();
        port.close();
        break;
    }
  });
  port.postMessage({ t: "ready", tid: lib.threadId(), seq: data.seq });
}

function threadStats(forwarder: Forwarder, ports: FramePort[]): ThreadStats {
  return {
    interfaces: ports.map((p, index) => {
      const c = forwarder.counters.interfaces.get(index);
      return { rxPackets: c?.rxPackets ?? 0, txPackets: c?.txPackets ?? 0, rxBytes: c?.rxBytes ?? 0, txBytes: c?.txBytes ?? 0, port: p.stats() };
    }),
    actions: { ...forwarder.counters.actions },
    drops: { ...forwarder.counters.drops },
    revision: forwarder.revision,
    rules: forwarder.ruleCount,
    neighbours: neighbourCounts(forwarder),
  };
}

// The thread's entry: the worker's bundle (or this file, from source) started as a worker thread.
if (!isMainThread && (workerData as Partial<ThreadData> | undefined)?.mip46DataplaneThread) runThread(workerData as ThreadData);
