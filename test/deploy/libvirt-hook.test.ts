// deploy/libvirt/qemu, run as libvirt runs it (domain, operation, sub-operation, "-"; the domain
// XML on stdin), against a real HypervisorEventServer: the migration phases arrive with the
// domain's interfaces; other operations send nothing; it exits 0 whatever the agent does.
import test from "ava";
import { spawn } from "node:child_process";
import { copyFileSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { HypervisorEventServer, type HypervisorEvent } from "../../clients/agent/events.js";
import { silentLogger } from "../../lib/log.js";

const HOOK = "deploy/libvirt/qemu";

// A running domain's live XML as libvirt writes it, trimmed: a bridge interface with its tap,
// and a network interface whose tap libvirt has not named yet (as on an incoming migration).
// The comment and the metadata hold interface-like elements that are not the domain's.
const DOMAIN_XML = `<domain type='kvm' id='7'>
  <name>vm1</name>
  <uuid>4dea22b3-1d52-d8f3-2516-782e98ab3fa0</uuid>
  <metadata>
    <app:config xmlns:app="http://example.org/app"><interface><mac address="02:00:00:00:00:01"/></interface></app:config>
  </metadata>
  <memory unit='KiB'>131072</memory>
  <vcpu placement='static'>1</vcpu>
  <os><type arch='x86_64' machine='pc-q35-7.2'>hvm</type></os>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='/var/lib/libvirt/images/vm1.qcow2'/>
      <target dev='vda' bus='virtio'/>
    </disk>
    <!-- <interface type='bridge'><mac address='52:54:00:00:00:99'/></interface> -->
    <interface type='bridge'>
      <mac address='52:54:00:6B:3C:58'/>
      <source bridge='br-visitor'/>
      <target dev='vnet3'/>
      <model type='virtio'/>
      <alias name='net0'/>
      <address type='pci' domain='0x0000' bus='0x01' slot='0x00' function='0x0'/>
    </interface>
    <interface type="network">
      <mac address="52:54:00:12:34:56"/>
      <source network="default" portid="5b0a0f4e-0c7f-4a1f-9a55-6e2f1f0f1e4c" bridge="virbr0"/>
      <model type="virtio"/>
    </interface>
    <serial type='pty'><target type='isa-serial' port='0'/></serial>
  </devices>
</domain>
`;

function runHook(socket: string, args: string[], { hook = HOOK, env = {} }: { hook?: string; env?: Record<string, string> } = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(hook, args, { env: { ...process.env, MIP46_AGENT_SOCKET: socket, ...env } });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, stdout, stderr }));
    child.stdin.on("error", () => {}); // a hook that exits at once need not read its stdin
    child.stdin.end(DOMAIN_XML);
  });
}

async function agent(t: { teardown(f: () => unknown): void }, handler: (e: HypervisorEvent) => Promise<string[]>): Promise<{ path: string; events: HypervisorEvent[] }> {
  const dir = mkdtempSync(join(tmpdir(), "mip46-hook-"));
  const path = join(dir, "agent.sock");
  const events: HypervisorEvent[] = [];
  const server = new HypervisorEventServer(path, (e) => (events.push(e), handler(e)), silentLogger);
  await server.start();
  t.teardown(async () => {
    await server.stop();
    rmSync(dir, { recursive: true, force: true });
  });
  return { path, events };
}

const INTERFACES = [
  { mac: "52:54:00:6b:3c:58", dev: "vnet3", bridge: "br-visitor" },
  { mac: "52:54:00:12:34:56", bridge: "virbr0" },
];

test("migrate begin: the agent hears phase migrate with the domain and both interfaces; nothing on stdout", async (t) => {
  const { path, events } = await agent(t, async () => ["vm-1"]);
  const r = await runHook(path, ["vm1", "migrate", "begin", "-"]);
  t.is(r.code, 0);
  t.is(r.stdout, "", "libvirt would take stdout as a new domain XML");
  t.is(r.stderr, "");
  t.deepEqual(events, [{ phase: "migrate", domain: "vm1", interfaces: INTERFACES }]);
});

test("prepare begin, started begin and release end map to their phases", async (t) => {
  const { path, events } = await agent(t, async () => []);
  for (const args of [["prepare", "begin"], ["started", "begin"], ["release", "end"]]) {
    const r = await runHook(path, ["vm1", ...args, "-"]);
    t.is(r.code, 0, args.join(" "));
  }
  t.deepEqual(events.map((e) => e.phase), ["prepare", "started", "release"]);
});

test("other operations (stopped end, start begin, reconnect begin) send nothing and exit 0", async (t) => {
  const { path, events } = await agent(t, async () => []);
  for (const args of [["stopped", "end"], ["start", "begin"], ["reconnect", "begin"], ["release", "begin"]]) {
    const r = await runHook(path, ["vm1", ...args, "-"]);
    t.is(r.code, 0, args.join(" "));
    t.is(r.stdout + r.stderr, "", args.join(" "));
  }
  t.deepEqual(events, []);
});

test("with no agent listening it exits 0 and says so on stderr", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "mip46-hook-"));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const r = await runHook(join(dir, "agent.sock"), ["vm1", "migrate", "begin", "-"]);
  t.is(r.code, 0);
  t.is(r.stdout, "");
  t.regex(r.stderr, /^mip46 hook: vm1 migrate begin: no agent at .*agent\.sock \(ENOENT\)/);
  t.is(r.stderr.trim().split("\n").length, 1);
});

test("an agent that refuses the event: exit 0, its error on stderr", async (t) => {
  const { path } = await agent(t, async () => {
    throw new Error("engine: unavailable");
  });
  const r = await runHook(path, ["vm1", "prepare", "begin", "-"]);
  t.is(r.code, 0);
  t.regex(r.stderr, /the agent refused prepare: engine: unavailable/);
});

test("an agent that never replies: the hook still exits 0, and the agent saw the request", async (t) => {
  const { path, events } = await agent(t, () => new Promise<string[]>(() => {}));
  const r = await runHook(path, ["vm1", "migrate", "begin", "-"]);
  t.is(r.code, 0);
  t.regex(r.stderr, /no reply from the agent/);
  t.is(events.length, 1);
  t.is(events[0].domain, "vm1");
});

test("the launcher exits 0 when Node.js is missing, or when hook.mjs dies", async (t) => {
  const missing = await runHook("/nonexistent/agent.sock", ["vm1", "migrate", "begin", "-"], { env: { MIP46_NODE: "/nonexistent/node" } });
  t.is(missing.code, 0);
  t.regex(missing.stderr, /no Node\.js/);
  // A copy of the launcher beside a broken hook.mjs: node fails, the launcher still exits 0.
  const dir = mkdtempSync(join(tmpdir(), "mip46-hook-"));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  copyFileSync(HOOK, join(dir, "qemu"));
  writeFileSync(join(dir, "hook.mjs"), "this is not javascript(\n");
  const broken = await runHook("/nonexistent/agent.sock", ["vm1", "migrate", "begin", "-"], { hook: join(dir, "qemu") });
  t.is(broken.code, 0);
  t.regex(broken.stderr, /hook\.mjs exited 1/);
});
