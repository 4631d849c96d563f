// A real etcd cluster for tests: 3 members (Debian etcd-server, /usr/bin/etcd) on 127.0.0.1 with
// free ports, data in a temp dir. Members can be killed with SIGKILL and started again on their
// data; stop() kills every member and removes the dir.
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Etcd3 } from "etcd3";

export const ETCD_BIN = "/usr/bin/etcd";

export interface EtcdMember {
  name: string;
  clientUrl: string;
  peerUrl: string;
  child?: ChildProcess;
  log: string;
}

export interface EtcdCluster {
  dir: string;
  members: EtcdMember[];
  /** host:port of every member, for store.etcd.endpoints. */
  endpoints: string[];
  kill(i: number): Promise<void>;
  start(i: number): void;
  /** Resolves once a write through every running member's endpoint succeeds. */
  ready(timeoutMs?: number): Promise<void>;
  stop(): Promise<void>;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

export async function startEtcdCluster(size = 3): Promise<EtcdCluster> {
  const dir = mkdtempSync(join(tmpdir(), "mip46-etcd-"));
  const members: EtcdMember[] = [];
  for (let i = 0; i < size; i++) {
    members.push({ name: `m${i}`, clientUrl: `http://127.0.0.1:${await freePort()}`, peerUrl: `http://127.0.0.1:${await freePort()}`, log: "" });
  }
  const initialCluster = members.map((m) => `${m.name}=${m.peerUrl}`).join(",");
  const token = `mip46-test-${process.pid}-${Date.now()}`;
  const start = (i: number) => {
    const m = members[i];
    // Short heartbeat and election timeouts: loopback has no latency, and tests want a quick
    // etcd leader election after a member dies. The lease minimum TTL becomes 1 s.
    m.child = spawn(ETCD_BIN, [
      "--name", m.name, "--data-dir", join(dir, m.name),
      "--listen-client-urls", m.clientUrl, "--advertise-client-urls", m.clientUrl,
      "--listen-peer-urls", m.peerUrl, "--initial-advertise-peer-urls", m.peerUrl,
      "--initial-cluster", initialCluster, "--initial-cluster-state", "new", "--initial-cluster-token", token,
      "--heartbeat-interval", "50", "--election-timeout", "500",
      "--logger", "zap", "--log-level", "warn",
    ], { stdio: ["ignore", "ignore", "pipe"] });
    m.child.stderr!.on("data", (d: Buffer) => { m.log = (m.log + d.toString()).slice(-20_000); });
  };
  const cluster: EtcdCluster = {
    dir, members, endpoints: members.map((m) => m.clientUrl.replace("http://", "")),
    start,
    kill(i) {
      const c = members[i].child;
      return new Promise((resolve) => {
        if (!c || c.exitCode !== null || c.signalCode !== null) return resolve();
        c.once("exit", () => resolve());
        c.kill("SIGKILL");
      });
    },
    async ready(timeoutMs = 20_000) {
      const deadline = Date.now() + timeoutMs;
      for (const m of members) {
        if (!m.child || m.child.exitCode !== null || m.child.signalCode !== null) continue;
        const client = new Etcd3({ hosts: m.clientUrl, dialTimeout: 1000 });
        try {
          for (;;) {
            try {
              await client.put("/mip46-test-ready").value(m.name).exec();
              break;
            } catch (e) {
              if (Date.now() > deadline) throw new Error(`etcd member ${m.name} not ready: ${(e as Error).message}\n${m.log}`);
              await new Promise((r) => setTimeout(r, 100));
            }
          }
        } finally {
          client.close();
        }
      }
    },
    async stop() {
      await Promise.all(members.map((_, i) => cluster.kill(i)));
      rmSync(dir, { recursive: true, force: true });
    },
  };
  for (let i = 0; i < size; i++) start(i);
  try {
    await cluster.ready();
  } catch (e) {
    await cluster.stop();
    throw e;
  }
  return cluster;
}

/** etcd's own counters of its key-value store (from the members' /metrics). */
export interface EtcdOps {
  /** Keys written (etcd_mvcc_put_total: a transaction's puts count one each) and deleted. */
  puts: number;
  deletes: number;
  /** Transactions applied (etcd_mvcc_txn_total). */
  txns: number;
  /** Reads served (etcd_mvcc_range_total), by all members. */
  ranges: number;
}

/**
 * Reads etcd's mvcc counters from each running member's /metrics. Every member applies every
 * write, so the writes are one member's count (the most advanced); reads are served by one
 * member each, so they are summed.
 */
export async function etcdOps(cluster: EtcdCluster): Promise<EtcdOps> {
  const out: EtcdOps = { puts: 0, deletes: 0, txns: 0, ranges: 0 };
  const read = (text: string, metric: string) => Number(text.split("\n").find((l) => l.startsWith(`${metric} `))?.slice(metric.length + 1) ?? 0);
  for (const m of cluster.members) {
    if (!m.child || m.child.exitCode !== null || m.child.signalCode !== null) continue;
    const text = await (await fetch(`${m.clientUrl}/metrics`)).text();
    out.puts = Math.max(out.puts, read(text, "etcd_mvcc_put_total"));
    out.deletes = Math.max(out.deletes, read(text, "etcd_mvcc_delete_total"));
    out.txns = Math.max(out.txns, read(text, "etcd_mvcc_txn_total"));
    out.ranges += read(text, "etcd_mvcc_range_total");
  }
  return out;
}
