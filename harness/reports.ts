// Heartbeat reports of simulated hypervisor hosts for the engine tests with many hosts (on SQLite
// and on etcd): host number n on the lab's IPv6 network (even n) or its IPv4 segment (odd n),
// 32 cores and 256 GiB, with 20 VMs of 0.5 cores and 1 GiB unless told otherwise.
import type { HeartbeatInput } from "../services/engine/engine.js";
import type { VmRecord } from "../services/store/store.js";

export const GIB = 1 << 30;

export function vms(hostId: string, n: number, cpu = 0.5): VmRecord[] {
  return Array.from({ length: n }, (_, i) => ({ vmId: `${hostId}-vm${i}`, homeAddress: `192.0.2.${(i % 250) + 1}`, cpuUsedCores: cpu, memoryUsedBytes: GIB }));
}

/** A report of host number `n` on the lab's IPv6 network (even n) or IPv4 segment (odd n). */
export function report(n: number, cpuUsedCores: number, vmList: VmRecord[] = vms(`h${n}`, 20)): HeartbeatInput {
  return {
    hostId: `h${n}`,
    addresses: n % 2 === 0 ? [`2001:db8:1::${(n + 16).toString(16)}/64`] : [`192.0.2.${(n % 250) + 1}/24`],
    resources: { cpuUsedCores, cpuTotalCores: 32, memoryUsedBytes: 64 * GIB, memoryTotalBytes: 256 * GIB },
    vms: vmList,
  };
}
