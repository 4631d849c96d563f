// The lab's VMs as QEMU guests (issue 9): each guest runs in its host's namespace with a tap
// `vp-<name>` on the bridge bridgeFor() gives, virtio-net with the plan's MAC, a QMP socket and
// its serial console in the lab's folder. `migrate` is a real QEMU live migration: the
// destination QEMU starts with -incoming in the destination host (its tap joins the bridge at
// once, as with libvirt), `migrate` runs over QMP on the source, and once it completes the source
// QEMU ends and its tap goes away. Cancelled or failed, the source keeps running and the
// destination's QEMU and tap are gone. The guest image is deploy/lab/guest/build.sh's.
import { spawn } from "node:child_process";
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { setTimeout as sleep } from "node:timers/promises";
import { Qmp } from "./qmp.js";
import {
  GUEST_SERVICES, HOST_ROLES, LabError, THIRD_HOST, bridgeFor, checkVm, checkVmName, labDir, namespaceName, vmPort, type Family, type HostRole, type VmSpec,
} from "./topology.js";

export const GUEST_DIR = process.env.MIP46_GUEST_DIR ?? "/var/cache/mip46/guest";
/** Guest memory: 96 MB live-migrates in about half a second over a unix socket. */
export const GUEST_MEMORY_MB = 96;
const READY = "mip46-guest ready";

/** A guest as the lab records it (`<lab dir>/vm-<name>.json`): where it runs and how to reach its QEMU. */
export interface GuestRecord {
  name: string;
  family: Family;
  host: HostRole;
  pid: number;
  qmp: string;
  pidFile: string;
  serial: string;
  spec: Required<VmSpec>;
}

const recordPath = (prefix: string, name: string) => join(labDir(prefix), `vm-${checkVmName(name)}.json`);
/** The QEMU pid file of a VM on a host: what an agent reads for the VM's resources. */
export const guestPidFile = (prefix: string, name: string, host: HostRole) => join(labDir(prefix), `qemu-${name}-${host}.pid`);
const qmpPath = (prefix: string, name: string, host: HostRole) => join(labDir(prefix), `qmp-${name}-${host}.sock`);
const serialPath = (prefix: string, name: string, host: HostRole) => join(labDir(prefix), `guest-${name}-${host}.log`);
const qemuLogPath = (prefix: string, name: string, host: HostRole) => join(labDir(prefix), `qemu-${name}-${host}.log`);

/** How the QEMUs this process started ended, by pid (the kernel's OOM killer shows as SIGKILL). */
const exits = new Map<number, string>();

/** The ends of a guest's QEMU log and serial console on one host, for an error that says why it ended. */
function guestTail(prefix: string, name: string, host: HostRole, chars = 800): string {
  const tail = (p: string) => (existsSync(p) ? readFileSync(p, "utf8").slice(-chars).trim() : "");
  return `QEMU log on ${host}: ${JSON.stringify(tail(qemuLogPath(prefix, name, host)))}; console: ${JSON.stringify(tail(serialPath(prefix, name, host)))}`;
}

export function readGuest(prefix: string, name: string): GuestRecord {
  const p = recordPath(prefix, name);
  if (!existsSync(p)) throw new LabError(`no VM ${name} in lab '${prefix}'`);
  return JSON.parse(readFileSync(p, "utf8")) as GuestRecord;
}

export function labGuests(prefix: string): GuestRecord[] {
  const dir = labDir(prefix);
  if (!existsSync(dir)) return [];
  return readdirSync(dir).filter((f) => /^vm-[a-z0-9]+\.json$/.test(f)).map((f) => JSON.parse(readFileSync(join(dir, f), "utf8")) as GuestRecord);
}

function now(): number {
  return performance.timeOrigin + performance.now();
}

/** Whether a process runs: a zombie (ended, not yet reaped by its parent) has ended. */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return !readFileSync(`/proc/${pid}/stat`, "utf8").includes(") Z ");
  } catch {
    return false;
  }
}

async function waitExit(pid: number, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (alive(pid)) {
    if (Date.now() > deadline) return false;
    await sleep(10);
  }
  return true;
}

let accelVerdict: "kvm" | "tcg" | undefined;

/**
 * KVM when /dev/kvm works, TCG otherwise: a guest kernel under KVM must print its banner on the
 * serial console within 4 s (here /dev/kvm exists but a KVM guest made no progress in 60 s).
 * The verdict is kept in /run/mip46-lab/accel for the machine's uptime; MIP46_LAB_ACCEL overrides.
 */
export async function guestAccel(): Promise<"kvm" | "tcg"> {
  const forced = process.env.MIP46_LAB_ACCEL;
  if (forced === "kvm" || forced === "tcg") return forced;
  if (accelVerdict) return accelVerdict;
  const cache = "/run/mip46-lab/accel";
  if (existsSync(cache)) return (accelVerdict = readFileSync(cache, "utf8").trim() === "kvm" ? "kvm" : "tcg");
  let verdict: "kvm" | "tcg" = "tcg";
  if (existsSync("/dev/kvm")) {
    mkdirSync("/run/mip46-lab", { recursive: true });
    const out = `/run/mip46-lab/.kvm-probe-${process.pid}.log`;
    const child = spawn("qemu-system-x86_64", ["-accel", "kvm", "-m", "64", "-nodefaults", "-no-user-config", "-display", "none",
      "-kernel", join(GUEST_DIR, "vmlinuz"), "-append", "console=ttyS0 earlyprintk=ttyS0", "-serial", `file:${out}`, "-no-reboot"], { stdio: "ignore" });
    const deadline = Date.now() + 4_000;
    while (Date.now() < deadline && child.exitCode === null) {
      if (existsSync(out) && readFileSync(out, "utf8").includes("Linux version")) { verdict = "kvm"; break; }
      await sleep(100);
    }
    child.kill("SIGKILL");
    rmSync(out, { force: true });
  }
  writeFileSync(cache, verdict + "\n");
  return (accelVerdict = verdict);
}

interface StartedQemu { pid: number; qmp: string; pidFile: string; serial: string }

/** Starts QEMU for `spec` in `host`'s namespace; resolves once its QMP socket answers. */
async function startQemu(prefix: string, spec: Required<VmSpec>, host: HostRole, incoming?: string): Promise<StartedQemu> {
  for (const f of ["vmlinuz", "initrd.gz"]) {
    if (!existsSync(join(GUEST_DIR, f))) throw new LabError(`no guest image in ${GUEST_DIR}: run bash scripts/setup.sh (deploy/lab/guest/build.sh)`);
  }
  const dir = labDir(prefix);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const bridge = bridgeFor(spec.family, host);
  // QEMU makes the tap (not persistent: it goes with QEMU) and runs this in the host's namespace.
  const ifup = join(dir, `ifup-${host}-${bridge}.sh`);
  writeFileSync(ifup, `#!/bin/sh\nexec ip link set dev "$1" master ${bridge} up\n`, { mode: 0o755 });
  const qmp = qmpPath(prefix, spec.name, host), pidFile = guestPidFile(prefix, spec.name, host), serial = serialPath(prefix, spec.name, host);
  rmSync(qmp, { force: true });
  const accel = await guestAccel();
  const append = ["console=ttyS0", "quiet", "panic=-1", `m46.addr=${spec.homeAddress}`, `m46.gw=${spec.gateway}`,
    `m46.tcp=${GUEST_SERVICES.tcpEcho}`, `m46.udp=${GUEST_SERVICES.udpEcho}`, ...(spec.family === 4 ? ["ipv6.disable=1"] : [])].join(" ");
  // Offloads off, as the namespace VMs had: the hosts' workers capture copies of the guest's
  // frames, which must carry complete checksums and be no larger than the MTU.
  const nic = ["virtio-net-pci", "id=net0", "netdev=n0", `mac=${spec.mac}`, "mrg_rxbuf=off",
    ...["csum", "gso", "guest_csum", "guest_tso4", "guest_tso6", "guest_ecn", "guest_ufo", "host_tso4", "host_tso6", "host_ecn", "host_ufo"].map((o) => `${o}=off`)].join(",");
  const argv = ["qemu-system-x86_64", "-name", `guest=${spec.name}`, "-machine", "pc", "-accel", accel, "-m", String(GUEST_MEMORY_MB), "-smp", "1",
    "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
    "-kernel", join(GUEST_DIR, "vmlinuz"), "-initrd", join(GUEST_DIR, "initrd.gz"), "-append", append,
    "-chardev", `file,id=ser0,path=${serial},append=on`, "-serial", "chardev:ser0",
    "-qmp", `unix:${qmp},server=on,wait=off`, "-pidfile", pidFile,
    "-netdev", `tap,id=n0,ifname=${vmPort(spec.name)},script=${ifup},downscript=no,vhost=off`, "-device", nic,
    ...(incoming ? ["-incoming", `unix:${incoming}`] : [])];
  const log = qemuLogPath(prefix, spec.name, host);
  const fd = openSync(log, "a");
  const child = spawn("ip", ["netns", "exec", namespaceName(prefix, host), ...argv], { stdio: ["ignore", fd, fd], detached: true });
  closeSync(fd);
  child.unref();
  const pid = child.pid!;
  child.once("exit", (code, signal) => exits.set(pid, signal ? `killed by ${signal}` : `exit status ${code}`));
  const deadline = Date.now() + 10_000;
  for (;;) {
    if (child.exitCode !== null || !alive(pid)) throw new LabError(`QEMU for ${spec.name} on ${host} exited: ${readFileSync(log, "utf8").slice(-2000)}`);
    if (existsSync(qmp)) {
      try {
        (await Qmp.open(qmp, 1_000)).close();
        break;
      } catch { /* not listening yet */ }
    }
    if (Date.now() > deadline) {
      process.kill(pid, "SIGKILL");
      throw new LabError(`QEMU for ${spec.name} on ${host}: no QMP in 10 s`);
    }
    await sleep(20);
  }
  return { pid, qmp, pidFile, serial };
}

/** Waits until the guest's init printed its ready line on the serial console. */
export async function waitGuestReady(prefix: string, name: string, timeoutMs = 120_000): Promise<void> {
  const rec = readGuest(prefix, name);
  const deadline = Date.now() + timeoutMs;
  while (!(existsSync(rec.serial) && readFileSync(rec.serial, "utf8").includes(READY))) {
    if (!alive(rec.pid)) throw new LabError(`guest ${name} ended before it was ready`);
    if (Date.now() > deadline) throw new LabError(`guest ${name} not ready in ${timeoutMs} ms; console: ${existsSync(rec.serial) ? readFileSync(rec.serial, "utf8").slice(-1500) : ""}`);
    await sleep(50);
  }
}

/** Boots a VM on its host (its tap joins the bridge as QEMU starts); `wait` for its ready line. */
export async function addVm(prefix: string, vm: VmSpec, options: { wait?: boolean } = {}): Promise<GuestRecord> {
  const spec = checkVm(vm);
  if (existsSync(recordPath(prefix, spec.name))) throw new LabError(`VM ${spec.name} exists in lab '${prefix}'`);
  const q = await startQemu(prefix, spec, spec.host);
  const rec: GuestRecord = { name: spec.name, family: spec.family, host: spec.host, ...q, spec };
  writeFileSync(recordPath(prefix, spec.name), JSON.stringify(rec, null, 2));
  if (options.wait ?? true) await waitGuestReady(prefix, spec.name);
  return rec;
}

async function stopQemu(pid: number, files: string[]): Promise<void> {
  try { process.kill(pid, "SIGTERM"); } catch { /* gone */ }
  if (!(await waitExit(pid, 3_000))) {
    try { process.kill(pid, "SIGKILL"); } catch { /* gone */ }
    // A loaded 2-core machine has been seen to take over 2 s to reap a killed QEMU.
    if (!(await waitExit(pid, 15_000))) throw new LabError(`QEMU ${pid} did not end within 18 s of SIGTERM and SIGKILL`);
  }
  for (const f of files) rmSync(f, { force: true });
}

/** Ends a VM's QEMU; its tap goes with it. */
export async function removeVm(prefix: string, name: string): Promise<void> {
  const rec = readGuest(prefix, name);
  await stopQemu(rec.pid, [rec.qmp, rec.pidFile, recordPath(prefix, name)]);
}

/** The host the guest runs on (the lab's record, updated when a migration completes). */
export async function vmHost(prefix: string, name: string): Promise<HostRole> {
  const rec = readGuest(prefix, name);
  if (!alive(rec.pid)) throw new LabError(`VM ${name} of lab '${prefix}' is not running (QEMU ${rec.pid} ended${exits.has(rec.pid) ? `, ${exits.get(rec.pid)}` : ""}); ${guestTail(prefix, name, rec.host)}`);
  return rec.host;
}

/** QEMU's figures from query-migrate, in ms. */
export interface QemuMigrationFigures { totalTimeMs?: number; downtimeMs?: number; setupTimeMs?: number; transferredBytes?: number }

export interface Migration {
  vm: string;
  from: HostRole;
  to: HostRole;
  /** The bridge the destination's tap joined. */
  bridge: string;
  /** "completed", or "cancelled"/"failed" when asked to (--cancel-after, --fail-after). */
  status: "completed" | "cancelled" | "failed";
  /**
   * Epoch ms with sub-ms resolution (performance.timeOrigin + performance.now()), comparable
   * across processes: the start, the destination QEMU up with its tap on the bridge, and the end
   * (the guest running at the destination, or the abort done).
   */
  startedAt: number;
  destinationUpAt: number;
  upAt: number;
  qemu: QemuMigrationFigures;
}

export interface MigrateOptions {
  /** migrate_cancel this many ms after `migrate`. */
  cancelAfterMs?: number;
  /** Kill -9 the destination QEMU this many ms after `migrate`. */
  failAfterMs?: number;
  /** max-bandwidth in bytes/s; the abort modes default to 2 MiB/s so that they land mid-migration. */
  maxBandwidth?: number;
  /**
   * Keeps the migration in its pre-copy until this settles, then lets it finish. A freshly booted
   * guest's memory is mostly zero pages, which cost QEMU nearly nothing to send, so no bandwidth
   * limit makes a pre-copy last; instead QEMU's downtime-limit is 0 meanwhile, and a pre-copy
   * never converges while the guest dirties any page (a running guest with a session always
   * does). Then QEMU's default, 300 ms. The abort modes hold until the abort.
   */
  holdPreCopy?: Promise<unknown>;
}

/** QEMU's default downtime-limit (ms). */
const QEMU_DOWNTIME_LIMIT_MS = 300;

/** A QEMU live migration of `name` to host `to`. Migrating to where it runs changes nothing. */
export async function migrate(prefix: string, name: string, to: HostRole, options: MigrateOptions = {}): Promise<Migration> {
  if (!HOST_ROLES.includes(to)) throw new LabError(`no host ${String(to)}: ${HOST_ROLES.join(", ")}`);
  // `ip netns add` keeps a namespace as /run/netns/<name>.
  if (to === THIRD_HOST && !existsSync(`/run/netns/${namespaceName(prefix, to)}`)) {
    throw new LabError(`lab '${prefix}' has no host ${to}: start it with the third host (mip46-lab up --third-host, startLab({ thirdHost: true }))`);
  }
  const rec = readGuest(prefix, name);
  const from = await vmHost(prefix, name);
  const bridge = bridgeFor(rec.family, to);
  const startedAt = now();
  if (from === to) return { vm: name, from, to, bridge, status: "completed", startedAt, destinationUpAt: startedAt, upAt: startedAt, qemu: {} };
  const aborting = options.cancelAfterMs !== undefined || options.failAfterMs !== undefined;
  const socket = join(labDir(prefix), `migrate-${name}.sock`);
  rmSync(socket, { force: true });
  const dest = await startQemu(prefix, rec.spec, to, socket);
  const destinationUpAt = now();
  const src = await Qmp.open(rec.qmp);
  const timers: NodeJS.Timeout[] = [];
  try {
    const hold = options.holdPreCopy ?? (aborting ? new Promise<never>(() => {}) : undefined);
    await src.execute("migrate-set-parameters", {
      "max-bandwidth": options.maxBandwidth ?? (aborting ? 2 << 20 : 4 << 30), "downtime-limit": hold ? 0 : QEMU_DOWNTIME_LIMIT_MS,
    });
    await src.execute("migrate", { uri: `unix:${socket}` });
    if (hold) void hold.then(() => src.execute("migrate-set-parameters", { "downtime-limit": QEMU_DOWNTIME_LIMIT_MS }).catch(() => undefined));
    if (options.cancelAfterMs !== undefined) timers.push(setTimeout(() => void src.execute("migrate_cancel").catch(() => undefined), options.cancelAfterMs));
    if (options.failAfterMs !== undefined) timers.push(setTimeout(() => { try { process.kill(dest.pid, "SIGKILL"); } catch { /* gone */ } }, options.failAfterMs));
    let info: Record<string, unknown>;
    const deadline = Date.now() + 120_000;
    for (;;) {
      info = await src.execute<Record<string, unknown>>("query-migrate");
      if (["completed", "failed", "cancelled"].includes(String(info.status))) {
        // QEMU sets the status before it writes the figures (total-time, downtime are 0 for a
        // moment after "completed", seen with QEMU 7.2): a completed migration is read again
        // until its total time is there, for up to half a second.
        for (let i = 0; info.status === "completed" && !((info["total-time"] as number) > 0) && i < 50; i++) {
          await sleep(10);
          info = await src.execute<Record<string, unknown>>("query-migrate");
        }
        break;
      }
      if (Date.now() > deadline) throw new LabError(`migration of ${name} still ${String(info.status)} after 120 s`);
      await sleep(5);
    }
    const status = info.status as Migration["status"];
    const ram = info.ram as { transferred?: number } | undefined;
    const qemu: QemuMigrationFigures = {
      totalTimeMs: info["total-time"] as number | undefined, downtimeMs: info.downtime as number | undefined,
      setupTimeMs: info["setup-time"] as number | undefined, transferredBytes: ram?.transferred,
    };
    if (status === "completed") {
      const upAt = now();
      // The source is paused after completion. It ends only once the destination runs the guest,
      // as libvirt's Finish and Confirm phases have it: a destination that failed to load the
      // state (QEMU then exits) leaves the source to resume, and the guest is not lost.
      const refused = await destinationRefused(dest);
      if (refused) {
        const run = await src.execute<{ status: string }>("query-status");
        if (run.status !== "running") await src.execute("cont");
        await stopQemu(dest.pid, [dest.qmp, dest.pidFile, socket]);
        throw new LabError(`migration of ${name} to ${to}: QEMU completed at the source, but ${refused}; ${name} resumed on ${from}; ${guestTail(prefix, name, to)}`);
      }
      await src.execute("quit").catch(() => undefined);
      src.close();
      await stopQemu(rec.pid, [rec.qmp, rec.pidFile]);
      rmSync(socket, { force: true });
      writeFileSync(recordPath(prefix, name), JSON.stringify({ ...rec, host: to, ...dest }, null, 2));
      return { vm: name, from, to, bridge, status, startedAt, destinationUpAt, upAt, qemu };
    }
    // Cancelled or failed: the destination goes (QEMU exits when its incoming stream breaks),
    // the source runs on.
    await stopQemu(dest.pid, [dest.qmp, dest.pidFile, socket]);
    const run = await src.execute<{ status: string }>("query-status");
    if (run.status !== "running") await src.execute("cont");
    if (!aborting) throw new LabError(`migration of ${name} to ${to} ${status}: ${String(info["error-desc"] ?? "")}`);
    return { vm: name, from, to, bridge, status, startedAt, destinationUpAt, upAt: now(), qemu };
  } catch (e) {
    if (alive(dest.pid)) await stopQemu(dest.pid, [dest.qmp, dest.pidFile, socket]);
    throw e;
  } finally {
    for (const t of timers) clearTimeout(t);
    src.close();
  }
}

/**
 * Why the destination of a completed migration does not run the guest, or undefined once it
 * does. QEMU exits when it cannot load the state, and starts the guest when the load ends, so
 * the destination refused only if it ended or its monitor says the guest stopped for good.
 * One that is alive but does not answer its monitor within 10 s (a loaded machine) is taken to
 * run: resuming the source then could run the guest twice.
 */
async function destinationRefused(dest: StartedQemu): Promise<string | undefined> {
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    if (!alive(dest.pid)) return `the destination QEMU ${dest.pid} ended${exits.has(dest.pid) ? ` (${exits.get(dest.pid)})` : ""}`;
    let status: string | undefined;
    try {
      const q = await Qmp.open(dest.qmp, 2_000);
      try {
        status = (await q.execute<{ status: string }>("query-status")).status;
      } finally {
        q.close();
      }
    } catch { /* busy: ask again */ }
    if (status === "running") return undefined;
    if (status && ["shutdown", "internal-error", "guest-panicked", "io-error"].includes(status)) return `the destination QEMU reports the guest ${status}`;
    await sleep(50);
  }
  return undefined;
}

/** Ends every QEMU the lab recorded (by pid, and only if it is this lab's) and removes their files. */
export async function stopLabGuests(prefix: string): Promise<void> {
  const dir = labDir(prefix);
  if (!existsSync(dir)) return;
  const pids = readdirSync(dir).filter((f) => /^qemu-.*\.pid$/.test(f)).map((f) => Number(readFileSync(join(dir, f), "utf8").trim()));
  for (const g of labGuests(prefix)) pids.push(g.pid);
  const ours = [...new Set(pids)].filter((p) => p > 0 && alive(p) && readFileSync(`/proc/${p}/cmdline`, "utf8").includes(dir + "/"));
  await Promise.all(ours.map((p) => stopQemu(p, [])));
  for (const f of readdirSync(dir)) if (/^(vm-.*\.json|qemu-.*\.pid|qmp-.*\.sock|migrate-.*\.sock)$/.test(f)) rmSync(join(dir, f), { force: true });
}

