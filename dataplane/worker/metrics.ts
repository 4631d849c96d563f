// Prometheus metrics of the worker, read from the forwarder's plain counters and the ports'
// statistics when /metrics is scraped, so the packet path only increments numbers.
import { Counter, Gauge, Registry } from "prom-client";
import { registerProcessMetrics } from "../../lib/metrics/http.js";
import type { FramePortStats } from "../io/frames.js";

/** What the metrics read; the worker fills it in. */
export interface WorkerMetricsSource {
  /** Per interface name: frames in and out (as the forwarder counted them) and the port's stats. */
  interfaces(): { name: string; rxPackets: number; txPackets: number; rxBytes: number; txBytes: number; port: FramePortStats }[];
  actions(): Record<string, number>;
  drops(): Record<string, number>;
  revision(): bigint;
  rules(): number;
  neighbours(): { family: string; state: string; count: number }[];
  engineConnected(): boolean;
  /** Called once per scrape, before anything is read (the capture counters, a threaded worker's threads). */
  refresh?(): Promise<void>;
  /** `workers: N` > 1: each forwarding thread's packets, CPU time and restarts (threads.ts). */
  threads?(): { thread: number; running: boolean; rxPackets: number; txPackets: number; cpuSeconds?: number; restarts: number }[];
}

export function workerMetrics(source: WorkerMetricsSource): Registry {
  const registry = new Registry();
  const registers = [registry];
  // Every collect waits for the one refresh of this scrape (prom-client runs the collects together).
  let refreshing: Promise<void> | undefined;
  const refreshed = () => (refreshing ??= (source.refresh?.() ?? Promise.resolve()).finally(() => {
    refreshing = undefined;
  }));
  // Prometheus' standard process_* and nodejs_* names: the job label says which process.
  registerProcessMetrics(registry);
  new Counter({
    name: "mip46_dataplane_packets_total", help: "Frames received (direction=in) and sent (direction=out) on each interface.",
    labelNames: ["interface", "direction"], registers,
    async collect() {
      await refreshed();
      this.reset();
      for (const i of source.interfaces()) {
        this.inc({ interface: i.name, direction: "in" }, i.rxPackets);
        this.inc({ interface: i.name, direction: "out" }, i.txPackets);
      }
    },
  });
  new Counter({
    name: "mip46_dataplane_bytes_total", help: "Bytes received and sent on each interface.",
    labelNames: ["interface", "direction"], registers,
    async collect() {
      await refreshed();
      this.reset();
      for (const i of source.interfaces()) {
        this.inc({ interface: i.name, direction: "in" }, i.rxBytes);
        this.inc({ interface: i.name, direction: "out" }, i.txBytes);
      }
    },
  });
  new Counter({
    name: "mip46_dataplane_action_packets_total", help: "Packets sent, by what the worker did to them (decap, reencap-4in4-4in6, translate-6to4, ...).",
    labelNames: ["action"], registers,
    async collect() {
      await refreshed();
      this.reset();
      for (const [action, n] of Object.entries(source.actions())) this.inc({ action }, n);
    },
  });
  new Counter({
    name: "mip46_dataplane_drops_total", help: "Packets dropped, by reason.",
    labelNames: ["reason"], registers,
    async collect() {
      await refreshed();
      this.reset();
      for (const [reason, n] of Object.entries(source.drops())) this.inc({ reason }, n);
    },
  });
  // The ports' own counters, one series per interface.
  const perInterface = (value: (p: FramePortStats) => number) => ({
    labelNames: ["interface"], registers,
    async collect(this: Counter) {
      await refreshed();
      this.reset();
      for (const i of source.interfaces()) this.inc({ interface: i.name }, value(i.port));
    },
  });
  new Counter({
    name: "mip46_dataplane_capture_drops_total", help: "Frames the capture socket dropped because its buffer was full (the ring's PACKET_STATISTICS, libpcap's ps_drop).",
    ...perInterface((p) => p.captureDrops),
  });
  new Counter({ name: "mip46_dataplane_send_errors_total", help: "Frames the interface refused to send (ENOBUFS, link down).", ...perInterface((p) => p.sendErrors) });
  new Counter({
    name: "mip46_dataplane_send_retries_total", help: "Batches whose send found the socket full (EAGAIN, ENOBUFS); the rest of the batch was tried once more.",
    ...perInterface((p) => p.sendRetries ?? 0),
  });
  new Counter({ name: "mip46_dataplane_capture_batches_total", help: "Batches handed to the pipeline; packets in / batches is the mean batch size.", ...perInterface((p) => p.batches) });
  new Counter({ name: "mip46_dataplane_capture_truncated_total", help: "Frames longer than a capture frame, counted and dropped.", ...perInterface((p) => p.truncated) });
  new Counter({
    name: "mip46_dataplane_socket_errors_total", help: "Errors the capture socket reported and capture went on after (ENETDOWN while the link was down).",
    ...perInterface((p) => p.socketErrors ?? 0),
  });
  new Gauge({
    name: "mip46_dataplane_rules_revision", help: "Revision of the rule table in use (-1 before the first).", registers,
    async collect() {
      await refreshed();
      this.set(Number(source.revision()));
    },
  });
  new Gauge({
    name: "mip46_dataplane_rules", help: "Rules in the table in use.", registers,
    async collect() {
      await refreshed();
      this.set(source.rules());
    },
  });
  new Gauge({
    name: "mip46_dataplane_neighbours", help: "Neighbour cache entries, by address family and state.",
    labelNames: ["family", "state"], registers,
    async collect() {
      await refreshed();
      this.reset();
      for (const n of source.neighbours()) this.set({ family: n.family, state: n.state }, n.count);
    },
  });
  new Gauge({
    name: "mip46_dataplane_engine_connected", help: "1 while the worker is in sync with an engine.", registers,
    async collect() {
      await refreshed();
      this.set(source.engineConnected() ? 1 : 0);
    },
  });
  if (source.threads) threadMetrics(source.threads, registers, refreshed);
  return registry;
}

/** One series per forwarding thread of a worker with `workers: N` > 1, where a per-core figure helps. */
function threadMetrics(threads: NonNullable<WorkerMetricsSource["threads"]>, registers: Registry[], refreshed: () => Promise<void>): void {
  new Gauge({
    name: "mip46_dataplane_threads", help: "Forwarding threads running (workers: N); fewer while one that died is started again.", registers,
    async collect() {
      await refreshed();
      this.set(threads().filter((t) => t.running).length);
    },
  });
  /** A counter per thread (and more labels), its values read from threads() when scraped. */
  const perThread = (name: string, help: string, labelNames: string[], values: (t: ReturnType<typeof threads>[number]) => [Record<string, string>, number | undefined][]) => new Counter({
    name, help, labelNames: ["thread", ...labelNames], registers,
    async collect() {
      await refreshed();
      this.reset();
      for (const t of threads()) for (const [labels, n] of values(t)) if (n !== undefined) this.inc({ thread: String(t.thread), ...labels }, n);
    },
  });
  perThread("mip46_dataplane_thread_packets_total", "Frames received and sent by each forwarding thread, all interfaces.", ["direction"],
    (t) => [[{ direction: "in" }, t.rxPackets], [{ direction: "out" }, t.txPackets]]);
  perThread("mip46_dataplane_thread_cpu_seconds_total", "CPU time (user and system) of each forwarding thread; starts again from 0 when the thread is restarted.", [],
    (t) => [[{}, t.cpuSeconds]]);
  perThread("mip46_dataplane_thread_restarts_total", "Times each forwarding thread died and was started again.", [], (t) => [[{}, t.restarts]]);
}
