// Pools and leases on SQLite: one row per leasable address (its 32-bit value, the primary key),
// its state free, leased or cooling down.
import { ipv4FromValue, parseIPv4 } from "../../../lib/net/address.js";
import { ResourceExhaustedError } from "../../errors.js";
import type { AcquireLease, CoolingRecord, LeasePurpose, LeaseRecord, PoolAddressSet, PoolUsage } from "../store.js";
import { SqliteBase, toCooling, toLease } from "./base.js";
import { LEASED } from "./schema.js";

export class SqliteLeases extends SqliteBase {
  syncPools(pools: PoolAddressSet[]): Promise<void> {
    return this.write(() => {
      // Only what differs is written: a restart with an unchanged plan touches no row.
      const existing = new Map(this.db.prepare<[], { value: number; pool: string; kind: string; state: number }>(
        "SELECT value, pool, kind, state FROM addresses").all().map((r) => [r.value, r]));
      const insert = this.db.prepare("INSERT INTO addresses(value, pool, kind) VALUES (?, ?, ?)");
      const move = this.db.prepare("UPDATE addresses SET pool = ?, kind = ? WHERE value = ?");
      const del = this.db.prepare("DELETE FROM addresses WHERE value = ?");
      const wanted = new Set<number>();
      for (const p of pools) {
        for (const v of p.addresses) {
          wanted.add(v);
          const row = existing.get(v);
          if (!row) insert.run(v, p.pool, p.kind);
          else if (row.pool !== p.pool || row.kind !== p.kind) move.run(p.pool, p.kind, v);
        }
      }
      // Addresses that left the configuration go, unless a VM still holds them.
      for (const [value, row] of existing) if (!wanted.has(value) && row.state !== LEASED) del.run(value);
    });
  }

  acquireLease(req: AcquireLease): Promise<LeaseRecord> {
    return this.write(() => {
      const held = this.q.leaseByHolder.get(req.holder, req.purpose);
      if (held && held.pool === req.pool) {
        this.q.renew.run(req.hostId, req.expiresAtMs, held.value);
        return toLease({ ...held, host_id: req.hostId, expires_at: req.expiresAtMs });
      }
      if (held) this.q.cool.run(req.nowMs + req.cooldownMs, held.value); // moved to another network
      // Prefer the address this holder had before, then one never used, then the longest cooled.
      const row = this.q.coolingByHolder.get(req.pool, req.holder, req.purpose)
        ?? this.q.firstFree.get(req.pool)
        ?? this.q.firstCooled.get(req.pool, req.nowMs);
      if (!row) {
        const u = this.q.usage.all(req.nowMs).find((p) => p.pool === req.pool);
        throw new ResourceExhaustedError(
          u ? `pool ${req.pool} has no free address (${u.leased} leased, ${u.cooling} cooling down, of ${u.size})` : `pool ${req.pool} has no addresses`);
      }
      this.q.take.run(req.holder, req.purpose, req.hostId, req.expiresAtMs, row.value);
      return toLease({ ...row, state: LEASED, holder: req.holder, purpose: req.purpose, host_id: req.hostId, expires_at: req.expiresAtMs });
    });
  }

  releaseLease(sel: { address: string } | { holder: string; purpose: LeasePurpose }, nowMs: number, cooldownMs: number): Promise<CoolingRecord | undefined> {
    return this.write(() => {
      const row = "address" in sel ? this.q.byValue.get(parseIPv4(sel.address, "address").value) : this.q.leaseByHolder.get(sel.holder, sel.purpose);
      if (!row || row.state !== LEASED) return undefined;
      const until = nowMs + cooldownMs;
      this.q.cool.run(until, row.value);
      return toCooling(row, until);
    });
  }

  expireLeases(nowMs: number, cooldownMs: number): Promise<CoolingRecord[]> {
    return this.write(() => {
      const rows = this.q.expired.all(nowMs);
      for (const r of rows) this.q.cool.run(r.expires_at! + cooldownMs, r.value);
      return rows.map((r) => toCooling(r, r.expires_at! + cooldownMs));
    });
  }

  async getLease(holder: string, purpose: LeasePurpose): Promise<LeaseRecord | undefined> {
    const row = this.q.leaseByHolder.get(holder, purpose);
    return row ? toLease(row) : undefined;
  }

  async leaseByAddress(address: string): Promise<LeaseRecord | undefined> {
    // The address is the table's primary key (its 32-bit value), so this is one index lookup.
    const row = this.q.byValue.get(parseIPv4(address, "address").value);
    return row && row.state === LEASED ? toLease(row) : undefined;
  }

  async listLeases(): Promise<LeaseRecord[]> {
    return this.q.leases.all().map(toLease);
  }

  async poolUsage(nowMs: number): Promise<PoolUsage[]> {
    return this.q.usage.all(nowMs).map((u) => ({
      pool: u.pool, kind: u.kind, first: ipv4FromValue(u.first).text, last: ipv4FromValue(u.last).text,
      size: u.size, leased: u.leased, cooling: u.cooling, free: u.size - u.leased - u.cooling,
    }));
  }
}
