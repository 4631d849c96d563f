// Hosts and migration advice on etcd: with replicas, a host may beat at any of them, so its record
// lives here; advice is written by the leader, through its guarded view.
import { randomUUID } from "node:crypto";
import { LeadershipLostError } from "../guard.js";
import type { AdviceRecord, HostRecord } from "../store.js";
import { EtcdPart } from "./base.js";

export class EtcdHosts extends EtcdPart {
  /** The cordon is kept under its own key (cordons/<id>), so a heartbeat at any replica leaves it alone. */
  async putHost(host: HostRecord): Promise<void> {
    const { cordoned: _, ...beat } = host;
    const r = await this.txn([], [this.put(this.k(`hosts/${host.hostId}`), beat)]);
    if (!r.succeeded) throw new LeadershipLostError("host write refused");
  }

  async getHost(hostId: string): Promise<HostRecord | undefined> {
    const [host, cordoned] = await Promise.all([this.getDoc<HostRecord>(`hosts/${hostId}`), this.getDoc<boolean>(`cordons/${hostId}`)]);
    return host && (cordoned === true ? { ...host, cordoned } : host);
  }

  async listHosts(): Promise<HostRecord[]> {
    const prefix = this.k("cordons/");
    const [hosts, cordons] = await Promise.all([this.listDocs<HostRecord>("hosts/"), this.s.client.getAll().prefix(prefix).exec()]);
    const cordoned = new Set(cordons.kvs.filter((kv) => JSON.parse(kv.value.toString()) === true).map((kv) => kv.key.toString().slice(prefix.length)));
    return hosts.map((h) => (cordoned.has(h.hostId) ? { ...h, cordoned: true } : h));
  }

  async setCordon(hostId: string, cordoned: boolean): Promise<boolean> {
    if (!(await this.getKv(this.k(`hosts/${hostId}`)))) return false;
    const r = await this.txn([], [this.put(this.k(`cordons/${hostId}`), cordoned)]);
    if (!r.succeeded) throw new LeadershipLostError("cordon write refused");
    return true;
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
