// The agent's per-VM resource use from the VM's hypervisor process (pidFile: the lab's QEMU
// guests), read from /proc for a real busy process; and the inventory key that names it.
import test from "ava";
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { ResourceSampler } from "../../clients/agent/resources.js";
import { parseAgentConfig } from "../../clients/agent/config.js";

test("a VM's CPU and memory come from the process its pid file names; a VM whose pid file is missing reports zero", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "m46-res-"));
  // A process that spins and holds 64 MiB, standing in for a guest's QEMU.
  const child = spawn(process.execPath, ["-e", "const b = Buffer.alloc(64 << 20, 1); for (;;) { b[0]++; }"], { stdio: "ignore" });
  t.teardown(() => {
    child.kill("SIGKILL");
    rmSync(dir, { recursive: true, force: true });
  });
  writeFileSync(join(dir, "busy.pid"), `${child.pid}\n`);
  const files = new Map([["busy", join(dir, "busy.pid")], ["absent", join(dir, "absent.pid")]]);
  const sampler = new ResourceSampler();
  // The child's own CPU seconds, from /proc (utime + stime, in clock ticks of 1/100 s on Linux).
  const cpuSeconds = () => readFileSync(`/proc/${child.pid}/stat`, "utf8").split(") ")[1].split(" ").slice(11, 13).reduce((a, x) => a + Number(x), 0) / 100;
  await sleep(300);
  sampler.vms(new Map(), files);
  const from = cpuSeconds(), started = Date.now();
  // On a loaded machine the spinner may get little of a core: wait until it has used 0.2 s of
  // CPU (up to 20 s) rather than for a fixed time.
  while (cpuSeconds() - from < 0.2 && Date.now() - started < 20_000) await sleep(100);
  const usage = sampler.vms(new Map(), files);
  const used = cpuSeconds() - from, wall = (Date.now() - started) / 1000;
  t.true(usage.get("busy")!.cpuUsedCores > 0, `the spinning process uses CPU (${usage.get("busy")!.cpuUsedCores} cores)`);
  t.true(Math.abs(usage.get("busy")!.cpuUsedCores - used / wall) < 0.1 + used / wall / 2, `as much as /proc says: ${usage.get("busy")!.cpuUsedCores} against ${used} s in ${wall} s`);
  t.true(usage.get("busy")!.memoryUsedBytes > 60 * 2 ** 20, `and holds its 64 MiB (${usage.get("busy")!.memoryUsedBytes} bytes resident)`);
  t.deepEqual(usage.get("absent"), { cpuUsedCores: 0, memoryUsedBytes: 0 });
});

const base = {
  hostId: "h4", engines: ["198.51.100.1:50046"], heartbeatIntervalMs: 5000,
  hypervisor: { homeBridge: "br-home", visitorBridge: "br-visit" },
  network: { uplink: "pv0", visitor: "pv1", engineIPv4: "198.51.100.1", engineIPv6: "2001:db8:2::1" },
  registration: { lifetimeS: 300, firstRetransmitMs: 100, maxAttempts: 2 },
  keys: [{ homeAddress: "192.0.2.1", spi: 256, algorithm: "hmac-sha256", key: "00".repeat(32) }],
  workerId: "pv-h4",
  interfaces: [{ name: "pv0", mac: "02:00:00:00:00:10", addresses: ["192.0.2.4/24"] }, { name: "pv1", mac: "02:00:00:00:00:11", addresses: ["2001:db8:1::fe/64"], promiscuous: true }],
};
const vm = { id: "v4", port: "tap-v4", homeAddress: "192.0.2.1", homeAgent: "192.0.2.2", homeHost: "h4", mac: "02:00:00:00:aa:04" };

test("vms[].pidFile is read; an unknown key of a VM is refused, naming its path", (t) => {
  const c = parseAgentConfig({ ...base, vms: [{ ...vm, pidFile: "/run/qemu-v4.pid" }] });
  t.is(c.vms[0].pidFile, "/run/qemu-v4.pid");
  const e = t.throws(() => parseAgentConfig({ ...base, vms: [{ ...vm, pidfile: "/run/qemu-v4.pid" }] }));
  t.regex(e!.message, /^vms\[0\]\.pidfile: unknown key/);
});
