// Hosts and migration advice on etcd: with replicas, a host may beat at any of them, so its record
// lives here; advice is written by the leader, through its guarded view.
import { randomUUID } from "node:crypto";
import { LeadershipLostError } from "../guard.js";
import type { AdviceRecord, HostRecord } from "../store.js";
import { EtcdPart } from "./base.js";

export class EtcdHosts extends EtcdPart {
  async putHost(host: HostRecord): Promise<void> {
    const r = await this.txn([], [this.put(this.k(`hosts/${host.hostId}`), host)]);
    if (!r.succeeded) throw new LeadershipLostError("host write refused");
  }

  getHost(hostId: string): Promise<HostRecord | undefined> {
    return this.getDoc<HostRecord>(`hosts/${hostId}`);
  }

  listHosts(): Promise<HostRecord[]> {
    return this.listDocs<HostRecord>("hosts/");
  }

  /** Keys sort by time, so the range from `sinceMs` on, read backwards, is the newest first. */
  async listAdvice(limit: number, sinceMs: number): Promise<AdviceRecord[]> {
    const prefix = this.k("advice/");
    const res = await this.s.client.getAll().inRange({ start: this.k(`advice/${adviceTime(sinceMs)}`), end: prefixEnd(prefix) })
      .sort("Key", "Descend").limit(limit).exec();
    return res.kvs.map((kv) => JSON.parse(kv.value.toString()) as AdviceRecord);
  }

  async recordAdvice(advice: AdviceRecord[]): Promise<void> {
    if (advice.length === 0) return;
    const r = await this.txn([], advice.map((a) => this.put(this.k(`advice/${adviceTime(a.givenAtMs)}/${randomUUID()}`), a)));
    if (!r.succeeded) throw new LeadershipLostError("advice write refused");
  }
}

const adviceTime = (ms: number) => String(Math.max(0, ms)).padStart(15, "0");

/** The first key after every key that starts with `prefix` ('/' + 1 is '0'). */
function prefixEnd(prefix: string): string {
  return prefix.slice(0, -1) + String.fromCharCode(prefix.charCodeAt(prefix.length - 1) + 1);
}
