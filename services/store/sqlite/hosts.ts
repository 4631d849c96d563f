// Hosts and migration advice on SQLite.
import type { AdviceRecord, HostRecord } from "../store.js";
import { SqliteRules } from "./rules.js";

export class SqliteHosts extends SqliteRules {
  putHost(host: HostRecord): Promise<void> {
    return this.write(() => void this.q.putHost.run(host.hostId, JSON.stringify(host)));
  }

  async getHost(hostId: string): Promise<HostRecord | undefined> {
    const row = this.q.getHost.get(hostId);
    return row ? (JSON.parse(row.body) as HostRecord) : undefined;
  }

  async listHosts(): Promise<HostRecord[]> {
    return this.q.hosts.all().map((r) => JSON.parse(r.body) as HostRecord);
  }

  /** The engine on SQLite is the one writer: its heartbeats carry the cordon it set (services/engine/heartbeats.ts). */
  setCordon(hostId: string, cordoned: boolean, draining = false): Promise<boolean> {
    return this.write(() => {
      const row = this.q.getHost.get(hostId);
      if (!row) return false;
      const { cordoned: _, draining: __, ...host } = JSON.parse(row.body) as HostRecord;
      const record: HostRecord = cordoned ? { ...host, cordoned, ...(draining ? { draining } : {}) } : host;
      this.q.putHost.run(hostId, JSON.stringify(record));
      return true;
    });
  }

  recordAdvice(advice: AdviceRecord[]): Promise<void> {
    return this.write(() => {
      for (const a of advice) this.q.putAdvice.run(a.givenAtMs, JSON.stringify(a));
    });
  }

  async listAdvice(limit: number, sinceMs: number): Promise<AdviceRecord[]> {
    return this.q.adviceSince.all(sinceMs, limit).map((r) => JSON.parse(r.body) as AdviceRecord);
  }
}
