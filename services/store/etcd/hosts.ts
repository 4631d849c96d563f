// Hosts and migration advice on etcd: with replicas, a host may beat at any of them, so its record
// lives here; advice is written by the leader, through its guarded view.
import { randomUUID } from "node:crypto";
import { LeadershipLostError } from "../guard.js";
import type { AdviceRecord, HostRecord } from "../store.js";
import { EtcdPart } from "./base.js";

export class EtcdHosts extends EtcdPart {
  /** The cordon is kept under its own key (cordons/<id>), so a heartbeat at any replica leaves it alone. */
  async putHost(host: HostRecord): Promise<void> {
    const { cordoned: _, draining: __, ...beat } = host;
    const r = await this.txn([], [this.put(this.k(`hosts/${host.hostId}`), beat)]);
    if (!r.succeeded) throw new LeadershipLostError("host write refused");
  }

  async getHost(hostId: string): Promise<HostRecord | undefined> {
    const [host, m] = await Promise.all([this.getDoc<HostRecord>(`hosts/${hostId}`), this.getDoc<Cordon>(`cordons/${hostId}`)]);
    return host && withCordon(host, m);
  }

  async listHosts(): Promise<HostRecord[]> {
    const prefix = this.k("cordons/");
    const [hosts, cordons] = await Promise.all([this.listDocs<HostRecord>("hosts/"), this.s.client.getAll().prefix(prefix).exec()]);
    const byHost = new Map(cordons.kvs.map((kv) => [kv.key.toString().slice(prefix.length), JSON.parse(kv.value.toString()) as Cordon]));
    return hosts.map((h) => withCordon(h, byHost.get(h.hostId)));
  }

  async setCordon(hostId: string, cordoned: boolean, draining = false): Promise<boolean> {
    if (!(await this.getKv(this.k(`hosts/${hostId}`)))) return false;
    const r = await this.txn([], [this.put(this.k(`cordons/${hostId}`), { cordoned, draining } satisfies Cordon)]);
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

interface Cordon {
  cordoned: boolean;
  draining: boolean;
}

/** The beat's record with the operator's cordon; fields only when set, as the engine on SQLite keeps them. */
function withCordon(host: HostRecord, c: Cordon | undefined): HostRecord {
  if (!c?.cordoned) return host;
  return c.draining ? { ...host, cordoned: true, draining: true } : { ...host, cordoned: true };
}
