// Address pool management (paper, "The parts" 1): which IPv4 addresses the engine may lease. The
// engine's pool serves IPv4 care-of addresses to IPv4 VMs in the IPv6 network (flow 3.1 c) and
// translated addresses; each IPv4 segment's care-of range stands in for that network's DHCP
// (flow 3.2 b). Lease state itself lives in the store.
import type { PoolConfig } from "../config/config.js";
import type { PoolAddressSet } from "../store/store.js";

export function poolAddresses(pool: PoolConfig): PoolAddressSet {
  const excluded = new Set(pool.exclude.map((a) => a.value));
  const addresses: number[] = [];
  for (const r of pool.ranges) {
    for (let v = r.first.value; v <= r.last.value; v++) if (!excluded.has(v)) addresses.push(v);
  }
  return { pool: pool.name, kind: pool.kind, addresses };
}
