// Prometheus metrics for the engine: the go-grpc-prometheus names for the RPCs, and
// mip46_<subsystem>_<thing> series read from the store when scraped.
import { Counter, Gauge, Histogram, Registry } from "prom-client";
import { registerProcessMetrics } from "../../lib/metrics/http.js";
import type { HostRecord, Store } from "../store/store.js";
import type { EngineEvents } from "../engine/engine.js";
import type { ClusterView } from "../engine/replicas.js";
import type { RulePublisher } from "../rules/push.js";

export class EngineMetrics implements EngineEvents {
  readonly registry = new Registry();
  readonly handled: Counter<"grpc_type" | "grpc_service" | "grpc_method" | "grpc_code">;
  readonly handling: Histogram<"grpc_type" | "grpc_service" | "grpc_method">;
  private readonly advice: Counter;
  private readonly expired: Counter;

  constructor(store: Store, now: () => number = Date.now) {
    const registers = [this.registry];
    // Prometheus' standard process_* and nodejs_* names: the job label says which process.
    registerProcessMetrics(this.registry);
    this.handled = new Counter({
      name: "grpc_server_handled_total", help: "RPCs completed on the server, by status code.",
      labelNames: ["grpc_type", "grpc_service", "grpc_method", "grpc_code"], registers,
    });
    this.handling = new Histogram({
      name: "grpc_server_handling_seconds", help: "Time to handle an RPC on the server.",
      labelNames: ["grpc_type", "grpc_service", "grpc_method"],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5], registers,
    });
    this.advice = new Counter({ name: "mip46_migration_advice_total", help: "Migration advice given to hosts.", registers });
    this.expired = new Counter({ name: "mip46_pool_leases_expired_total", help: "Leases that ended because they were not renewed.", registers });
    new Gauge({
      name: "mip46_pool_addresses", help: "Addresses in each pool, by state (free, leased, cooling).",
      labelNames: ["pool", "kind", "state"], registers,
      async collect() {
        this.reset();
        for (const u of await store.poolUsage(now())) {
          this.set({ pool: u.pool, kind: u.kind, state: "free" }, u.free);
          this.set({ pool: u.pool, kind: u.kind, state: "leased" }, u.leased);
          this.set({ pool: u.pool, kind: u.kind, state: "cooling" }, u.cooling);
        }
      },
    });
    new Gauge({
      name: "mip46_pool_leases", help: "Leases held, by purpose.", labelNames: ["purpose"], registers,
      async collect() {
        this.reset();
        const counts = new Map<string, number>([["care-of", 0], ["translation", 0], ["correspondent", 0]]);
        for (const l of await store.listLeases()) counts.set(l.purpose, (counts.get(l.purpose) ?? 0) + 1);
        for (const [purpose, n] of counts) this.set({ purpose }, n);
      },
    });
    new Gauge({
      name: "mip46_bindings", help: "VMs away from home with a binding.", registers,
      async collect() {
        this.set((await store.listBindings()).length);
      },
    });
    new Gauge({
      name: "mip46_rules_revision", help: "Revision of the data-plane rule table.", registers,
      async collect() {
        this.set(Number((await store.ruleTable()).revision));
      },
    });
  }

  /** `mip46_hosts`: the hosts by state, as the engine knows them (in memory with the embedded store). */
  watchHosts(hosts: () => Promise<readonly HostRecord[]>): void {
    new Gauge({
      name: "mip46_hosts", help: "Hypervisor hosts, by state (up, hot, down).", labelNames: ["state"], registers: [this.registry],
      async collect() {
        this.reset();
        const counts = new Map<string, number>([["up", 0], ["hot", 0], ["down", 0]]);
        for (const h of await hosts()) counts.set(h.state, (counts.get(h.state) ?? 0) + 1);
        for (const [state, n] of counts) this.set({ state }, n);
      },
    });
  }

  /** Per-worker lag of the rule push: how many revisions each connected worker is behind. */
  /** `mip46_engine_leader`: 1 on the replica that runs the singleton duties (always, with the embedded store). */
  watchLeadership(isLeader: () => boolean): void {
    new Gauge({
      name: "mip46_engine_leader", help: "1 when this replica is the leader (lease expiry, host-down marking, advice, configuration rules), else 0.",
      registers: [this.registry],
      collect() {
        this.set(isLeader() ? 1 : 0);
      },
    });
  }

  /** `mip46_bindings_contradicted`: VMs whose binding the heartbeats contradict, as of the last check. */
  watchConsistency(check: { current(): readonly unknown[] }): void {
    new Gauge({
      name: "mip46_bindings_contradicted", help: "Bindings whose VM the bound host does not report while another host does (checked every 30 s; see the engine's log).",
      registers: [this.registry],
      collect() { this.set(check.current().length); },
    });
  }

  /** `mip46_etcd_endpoint_up{endpoint}`: 1 when the etcd endpoint answered the replica's last status probe (none with the embedded store). */
  watchEtcd(cluster: ClusterView): void {
    new Gauge({
      name: "mip46_etcd_endpoint_up", help: "1 when this etcd endpoint answered the engine's last status probe (every 10 s), else 0.",
      labelNames: ["endpoint"], registers: [this.registry],
      collect() {
        this.reset();
        for (const m of cluster.lastProbe()) this.set({ endpoint: m.endpoint }, m.healthy ? 1 : 0);
      },
    });
  }

  watchWorkers(publisher: RulePublisher): void {
    const registers = [this.registry];
    new Gauge({
      name: "mip46_dataplane_worker_lag_revisions", help: "Rule-table revisions a connected data-plane worker has not acknowledged yet.",
      labelNames: ["worker"], registers,
      async collect() {
        this.reset();
        const current = await publisher.currentRevision();
        for (const w of publisher.workers()) this.set({ worker: w.workerId }, Number(current - w.ackedRevision));
      },
    });
    new Gauge({
      name: "mip46_dataplane_workers_connected", help: "Data-plane workers connected to this engine.", registers,
      collect() {
        this.set(publisher.workers().length);
      },
    });
  }

  adviceGiven(n: number): void {
    this.advice.inc(n);
  }

  leasesExpired(n: number): void {
    this.expired.inc(n);
  }
}
