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

  async recordAdvice(advice: AdviceRecord[]): Promise<void> {
    if (advice.length === 0) return;
    const r = await this.txn([], advice.map((a) => this.put(this.k(`advice/${String(a.givenAtMs).padStart(15, "0")}/${randomUUID()}`), a)));
    if (!r.succeeded) throw new LeadershipLostError("advice write refused");
  }
}
