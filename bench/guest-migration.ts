// QEMU guests of the lab (issue 9): boot time to the guest's ready line, and QEMU's own
// total-time and downtime over N live migrations of vm4 between h4 and h6 (unix socket, no
// throttle), as medians. No mip46 process runs: the figures are the hypervisor's alone.
//   npx tsx bench/guest-migration.ts [ROUNDS=10] [PREFIX=m46gm]
import { performance } from "node:perf_hooks";
import { rmSync } from "node:fs";
import { createLab, destroyLab } from "../deploy/lab/netns.js";
import { addVm, guestAccel, migrate } from "../deploy/lab/qemu.js";
import { LAB_PLAN, labDir } from "../deploy/lab/topology.js";

const rounds = Number(process.argv[2] ?? 10);
const prefix = process.argv[3] ?? "m46gm";
const median = (xs: number[]) => { const s = [...xs].sort((a, b) => a - b); return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2; };
await destroyLab(prefix);
try {
  await createLab({ prefix });
  const accel = await guestAccel();
  const t0 = performance.now();
  await addVm(prefix, LAB_PLAN.vms.vm4);
  const bootMs = performance.now() - t0;
  const total: number[] = [], down: number[] = [], wall: number[] = [];
  for (let i = 0; i < rounds; i++) {
    const m = await migrate(prefix, "vm4", i % 2 === 0 ? "h6" : "h4");
    total.push(m.qemu.totalTimeMs!);
    down.push(m.qemu.downtimeMs!);
    wall.push(m.upAt - m.startedAt);
  }
  console.log(JSON.stringify({ accel, memoryMb: 96, bootMs: Math.round(bootMs), rounds, totalTimeMs: { median: median(total), all: total },
    downtimeMs: { median: median(down), all: down }, labWallMs: { median: Math.round(median(wall)) }, downtimeToTotal: +(median(down) / median(total)).toFixed(3) }));
} finally {
  await destroyLab(prefix);
  rmSync(labDir(prefix), { recursive: true, force: true });
}
