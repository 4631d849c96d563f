// The lab's namespaces as the kernel sees them: bridges and their ports, addresses, the worker
// interfaces' set-up, the management network, that nothing routes out of the lab, where the QEMU
// guests' taps sit before and after a migration, and that destroyLab removes this lab (its
// guests too) and nothing else. What the guests answer is test/lab/guest.test.ts's business.
import anyTest, { type TestFn } from "ava";
import { randomBytes } from "node:crypto";
import { netnsAvailable } from "../../harness/netns.js";
import { existsSync, readFileSync, rmSync } from "node:fs";
import { createLab, destroyLab, exec, labNamespaces, run } from "../../deploy/lab/netns.js";
import { addVm, alive, migrate, readGuest, removeVm, vmHost } from "../../deploy/lab/qemu.js";
import { Qmp } from "../../deploy/lab/qmp.js";
import {
  LAB_PLAN, NODE_ROLES, WORKER_INTERFACES, bridgeFor, checkPrefix, isLabNamespace, labDir, labNames, type LabNames,
} from "../../deploy/lab/topology.js";
import { parseCidr, prefixContains } from "../../lib/net/address.js";

const test = anyTest as TestFn<{ names: LabNames }>;
const prefix = `m46t-lab${randomBytes(3).toString("hex")}`;
const live = netnsAvailable() ? test.serial : test.serial.skip;
if (!netnsAvailable()) console.log("test/lab/topology: skipped, needs root and iproute2 (network namespaces)");

interface JsonLink { ifname: string; address?: string; operstate?: string; link_netnsid?: number; master?: string }
interface JsonAddr { ifname: string; addr_info: { family: string; local: string; prefixlen: number; scope: string }[] }
interface JsonRoute { dst: string; gateway?: string; dev?: string; type?: string; table?: string }

async function json<T>(ns: string | undefined, argv: string[]): Promise<T> {
  const { stdout } = await run(["ip", "-j", ...(ns ? ["-n", ns] : []), ...argv]);
  return JSON.parse(stdout || "[]") as T;
}

const portsOf = async (ns: string, bridge: string) =>
  (await json<JsonLink[]>(ns, ["link", "show", "master", bridge])).map((l) => l.ifname).sort();

test.before(async (t) => {
  if (!netnsAvailable()) return;
  t.context.names = await createLab({ prefix });
  // Booting is not waited for: the taps are on the bridges from QEMU's start.
  await Promise.all([addVm(prefix, LAB_PLAN.vms.vm4, { wait: false }), addVm(prefix, LAB_PLAN.vms.vm6, { wait: false })]);
});

test.after.always(async () => {
  if (netnsAvailable()) await destroyLab(prefix);
  rmSync(labDir(prefix), { recursive: true, force: true });
});

const cmdline = (pid: number) => readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0");
async function qmp<T>(vm: string, command: string, args?: Record<string, unknown>): Promise<T> {
  const q = await Qmp.open(readGuest(prefix, vm).qmp);
  try {
    return await q.execute<T>(command, args);
  } finally {
    q.close();
  }
}

test("names: prefixes and VM names are checked, and a lab's names never match another lab's", (t) => {
  t.throws(() => checkPrefix("m46-vm"));
  t.throws(() => checkPrefix("M46"));
  t.true(isLabNamespace("m46", "m46-eng"));
  t.true(isLabNamespace("m46", "m46-vm-web1"));
  t.false(isLabNamespace("m46", "m46-vm-web-1"));
  t.false(isLabNamespace("m46", "m46-a1b2c3-eng")); // harness/netns.ts names
  t.false(isLabNamespace("m46", "m46x-eng"));
  t.false(isLabNamespace("m46", "m46-engx"));
  t.is(bridgeFor(4, "h4"), "brh");
  t.is(bridgeFor(4, "h6"), "brv");
  t.is(bridgeFor(6, "h6"), "brh");
  t.is(bridgeFor(6, "h4"), "brv");
  t.deepEqual(Object.keys(labNames("m46").vms), ["vm4", "vm6"]);
});

live("the namespaces exist and every bridge has exactly its ports, the guests' taps included", async (t) => {
  const { namespaces: n, vms } = t.context.names;
  t.deepEqual((await labNamespaces(prefix)).sort(), Object.values(n).sort(), "no namespace per VM: the VMs are QEMU guests");
  t.deepEqual(vms, { vm4: "vp-vm4", vm6: "vp-vm6" });
  t.deepEqual(await portsOf(n.mgmt, "br0"), ["mg-eng", "mg-h4", "mg-h6", "mg-r1", "mg-r2"]);
  t.deepEqual(await portsOf(n.net4, "br0"), ["p-eng", "p-h4", "p-r1"]);
  t.deepEqual(await portsOf(n.net6, "br0"), ["p-eng", "p-h6", "p-r2"]);
  t.deepEqual(await portsOf(n.h4, "brh"), ["pv0br", "up", "vp-vm4"]);
  t.deepEqual(await portsOf(n.h4, "brv"), ["pv1br"]);
  t.deepEqual(await portsOf(n.h6, "brh"), ["pv0br", "up", "vp-vm6"]);
  t.deepEqual(await portsOf(n.h6, "brv"), ["pv1br"]);
});

live("kernel addresses: VMs, clients and management as planned; worker interfaces bare, with their MACs", async (t) => {
  const { namespaces: n, vms } = t.context.names;
  const globals = async (ns: string, dev: string) =>
    (await json<JsonAddr[]>(ns, ["addr", "show", "dev", dev]))[0].addr_info.filter((a) => a.scope === "global").map((a) => `${a.local}/${a.prefixlen}`);
  t.deepEqual(vms, { vm4: "vp-vm4", vm6: "vp-vm6" });
  // The guests take address and gateway from their kernel command line (deploy/lab/guest/init).
  const append = (vm: "vm4" | "vm6") => { const a = cmdline(readGuest(prefix, vm).pid); return a[a.indexOf("-append") + 1].split(" "); };
  for (const vm of ["vm4", "vm6"] as const) {
    t.true(append(vm).includes(`m46.addr=${LAB_PLAN.vms[vm].homeAddress}`), `${vm}: its address`);
    t.true(append(vm).includes(`m46.gw=${LAB_PLAN.vms[vm].gateway}`), `${vm}: its gateway`);
  }
  t.deepEqual(await globals(n.c4, "eth0"), [LAB_PLAN.clients.c4.address]);
  t.deepEqual(await globals(n.c6, "eth0"), [LAB_PLAN.clients.c6.address]);
  t.deepEqual(await globals(n.mgmt, "br0"), [LAB_PLAN.mgmt.bridgeAddress]);
  for (const role of ["eng", "r1", "r2", "h4", "h6"] as const) t.deepEqual(await globals(n[role], "mg0"), [LAB_PLAN.mgmt.addresses[role]]);
  // The IPv4 guest has no IPv6 at all, not even link-local.
  t.true(append("vm4").includes("ipv6.disable=1"));
  t.false(append("vm6").includes("ipv6.disable=1"));
  for (const vm of ["vm4", "vm6"] as const) {
    const filters = await qmp<{ "main-mac": string }[]>(vm, "query-rx-filter");
    t.is(filters[0]["main-mac"], LAB_PLAN.vms[vm].mac, `${vm}: the NIC has the plan's MAC`);
  }

  for (const [role, ifaces] of Object.entries(WORKER_INTERFACES)) {
    const ns = n[role as keyof typeof n];
    const sys = (await run(["ip", "netns", "exec", ns, "sh", "-c",
      `cat /proc/sys/net/ipv4/ip_forward /proc/sys/net/ipv6/conf/all/forwarding ${ifaces.map((w) => `/proc/sys/net/ipv6/conf/${w.name}/disable_ipv6`).join(" ")}`])).stdout.trim().split(/\s+/);
    t.deepEqual(sys, ["0", "0", ...ifaces.map(() => "1")], `${role}: forwarding off, IPv6 off on worker interfaces`);
    for (const w of ifaces) {
      const [link] = await json<JsonLink[]>(ns, ["link", "show", "dev", w.name]);
      t.is(link.address, w.mac, `${role} ${w.name} MAC`);
      t.is(link.operstate, "UP", `${role} ${w.name} up`);
      t.deepEqual((await json<JsonAddr[]>(ns, ["addr", "show", "dev", w.name]))[0].addr_info, [], `${role} ${w.name} has no address`);
    }
  }
  for (const ns of ["c4", "c6"] as const) {
    const { stdout } = await exec(prefix, ns, ["ethtool", "-k", "eth0"]);
    t.regex(stdout, /^tx-checksumming: off/m, `${ns} eth0 tx checksum offload off`);
    t.regex(stdout, /^generic-segmentation-offload: off/m, `${ns} eth0 GSO off`);
  }
  // The guests' virtio-net offers no checksum offload and no segmentation.
  for (const vm of ["vm4", "vm6"] as const) {
    for (const property of ["csum", "gso", "host_tso4", "host_tso6"]) {
      t.is(await qmp(vm, "qom-get", { path: "/machine/peripheral/net0", property }), false, `${vm} virtio-net ${property} off`);
    }
  }
});

live("the management network carries a ping between eng and h4 both ways", async (t) => {
  await t.notThrowsAsync(exec(prefix, "eng", ["ping", "-6", "-n", "-c", "1", "-W", "3", "2001:db8:ff::4"]));
  await t.notThrowsAsync(exec(prefix, "h4", ["ping", "-6", "-n", "-c", "1", "-W", "3", "2001:db8:ff::1"]));
});

live("no route leaves the lab: routes cover documentation ranges only, and no lab link reaches the root namespace", async (t) => {
  const documentation = ["192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24", "2001:db8::/32"].map((p) => parseCidr(p, "doc"));
  const inLab = (dst: string, family: 4 | 6): boolean => {
    if (dst === "default") return true; // checked below: a default route's next hop is in the lab
    if (/^(fe80::|ff00::|::1$|127\.|224\.)/.test(dst)) return true;
    const c = parseCidr(dst.includes("/") ? dst : `${dst}/${family === 4 ? 32 : 128}`, "route", false);
    return documentation.some((d) => d.address.family === c.address.family && d.length <= c.length
      && prefixContains(d.network.bytes, d.length, c.address.bytes));
  };
  const spaces = await labNamespaces(prefix);
  for (const ns of spaces) {
    for (const family of [4, 6] as const) {
      const routes = await json<JsonRoute[]>(ns, [`-${family}`, "route", "show", "table", "all"]);
      for (const r of routes) {
        t.true(inLab(r.dst, family), `${ns}: route ${r.dst} dev ${r.dev}`);
        if (r.dst === "default") t.true(inLab(r.gateway ?? "none", family), `${ns}: default via ${r.gateway}`);
      }
    }
  }
  // A lab interface paired with one in the root namespace would show in root as a link whose
  // peer's namespace is a lab namespace.
  const ids = await json<{ name: string; id?: number }[]>(undefined, ["netns", "list"]);
  const labIds = new Set(ids.filter((e) => spaces.includes(e.name) && e.id !== undefined).map((e) => e.id));
  const rootLinks = await json<JsonLink[]>(undefined, ["link", "show"]);
  t.deepEqual(rootLinks.filter((l) => l.link_netnsid !== undefined && labIds.has(l.link_netnsid)).map((l) => l.ifname), []);
});

live("migrate live-migrates vm4 to h6's visitor bridge and back; the guest runs on, its source QEMU and tap gone", async (t) => {
  const { namespaces: n } = t.context.names;
  const first = readGuest(prefix, "vm4");
  t.true(alive(first.pid), "vm4's QEMU runs");
  t.is(await vmHost(prefix, "vm4"), "h4");
  const away = await migrate(prefix, "vm4", "h6");
  t.like(away, { vm: "vm4", from: "h4", to: "h6", bridge: "brv", status: "completed" });
  t.true(away.upAt >= away.destinationUpAt && away.destinationUpAt >= away.startedAt);
  t.true((away.qemu.totalTimeMs ?? 0) > 0 && away.qemu.downtimeMs !== undefined, `QEMU's figures: ${JSON.stringify(away.qemu)}`);
  t.is(await vmHost(prefix, "vm4"), "h6");
  t.deepEqual(await portsOf(n.h6, "brv"), ["pv1br", "vp-vm4"]);
  t.deepEqual(await portsOf(n.h4, "brh"), ["pv0br", "up"]);
  const { stdout: port } = await run(["bridge", "-n", n.h6, "link", "show", "dev", "vp-vm4"]);
  t.regex(port, /state forwarding/);
  // The host stays silent on the guest's tap: IPv6 off, inherited from the namespace.
  t.is((await exec(prefix, "h6", ["cat", "/proc/sys/net/ipv6/conf/vp-vm4/disable_ipv6"])).stdout.trim(), "1");
  t.false(alive(first.pid), "the source QEMU ended");
  const moved = readGuest(prefix, "vm4");
  t.true(alive(moved.pid), "the guest runs in the destination QEMU");
  t.is((await qmp<{ status: string }>("vm4", "query-status")).status, "running");

  const again = await migrate(prefix, "vm4", "h6");
  t.like(again, { from: "h6", to: "h6" }, "migrating to where it is changes nothing");

  const home = await migrate(prefix, "vm4", "h4");
  t.like(home, { from: "h6", to: "h4", bridge: "brh", status: "completed" });
  t.deepEqual(await portsOf(n.h4, "brh"), ["pv0br", "up", "vp-vm4"]);
  t.deepEqual(await portsOf(n.h6, "brv"), ["pv1br"]);
  t.false(alive(moved.pid));
  t.is((await qmp<{ status: string }>("vm4", "query-status")).status, "running");
});

live("migrate takes vm6 into the IPv4 network's visitor bridge and home again; its IPv6 address and route stay", async (t) => {
  const { namespaces: n } = t.context.names;
  t.like(await migrate(prefix, "vm6", "h4"), { from: "h6", to: "h4", bridge: "brv" });
  t.deepEqual(await portsOf(n.h4, "brv"), ["pv1br", "vp-vm6"]);
  t.deepEqual(await portsOf(n.h6, "brh"), ["pv0br", "up"]);
  // The same guest, its address and route on the destination QEMU's command line too.
  const a = cmdline(readGuest(prefix, "vm6").pid);
  t.true(a[a.indexOf("-append") + 1].includes("m46.addr=2001:db8:1::2/64 m46.gw=2001:db8:1::fe"));
  t.like(await migrate(prefix, "vm6", "h6"), { from: "h4", to: "h6", bridge: "brh" });
  t.deepEqual(await portsOf(n.h6, "brh"), ["pv0br", "up", "vp-vm6"]);
  // @ts-expect-error a host that does not exist
  await t.throwsAsync(migrate(prefix, "vm6", "h5"), { message: /no host/ });
});

live("addVm puts a visiting VM on the visitor bridge; removeVm takes it away", async (t) => {
  const { namespaces: n } = t.context.names;
  await t.throwsAsync(addVm(prefix, { name: "bad", family: 6, homeAddress: "2001:db8:1::9/64", gateway: "2001:db8:2::1", host: "h4" }));
  const rec = await addVm(prefix, { name: "vx6", family: 6, homeAddress: "2001:db8:1::9/64", gateway: "2001:db8:1::fe", host: "h4" }, { wait: false });
  t.teardown(() => removeVm(prefix, "vx6").catch(() => undefined));
  t.deepEqual(await portsOf(n.h4, "brv"), ["pv1br", "vp-vx6"]);
  t.true(cmdline(rec.pid).some((a) => a.includes("m46.addr=2001:db8:1::9/64")));
  await removeVm(prefix, "vx6");
  t.deepEqual(await portsOf(n.h4, "brv"), ["pv1br"]);
  t.false(alive(rec.pid), "its QEMU ended");
  t.false(existsSync(rec.qmp), "its QMP socket is gone");
});

live("destroyLab removes every namespace of the lab, half-built too, and nothing else; createLab refuses a lab that exists", async (t) => {
  await t.throwsAsync(createLab({ prefix }), { message: /exists/ });
  // Neighbours whose names resemble the lab's, and a half-built second lab.
  const other = `${prefix}x`;
  const decoys = [`${prefix}-engx`, `${prefix}-vm-a-b`, `${other}-eng`];
  const halfBuilt = [`${prefix}y-eng`, `${prefix}y-vm-vm4`];
  t.teardown(async () => { for (const d of [...decoys, ...halfBuilt]) await run(["ip", "netns", "del", d]).catch(() => undefined); });
  await run(["ip", "-batch", "-"], { input: [...decoys, ...halfBuilt].map((d) => `netns add ${d}\n`).join("") });
  await run(["ip", "link", "add", "name", "eth0", "netns", halfBuilt[1], "type", "veth", "peer", "name", "vp-vm4", "netns", halfBuilt[0]]);

  t.deepEqual((await destroyLab(`${prefix}y`)).sort(), halfBuilt.sort());
  const guests = [readGuest(prefix, "vm4"), readGuest(prefix, "vm6")];
  const removed = await destroyLab(prefix);
  t.is(removed.length, NODE_ROLES.length);
  for (const g of guests) {
    t.false(alive(g.pid), `${g.name}'s QEMU ended`);
    t.false(existsSync(g.qmp), `${g.name}'s QMP socket is gone`);
  }
  t.deepEqual(await labNamespaces(prefix), []);
  t.deepEqual(await destroyLab(prefix), [], "idempotent");
  const left = (await run(["ip", "netns", "list"])).stdout;
  for (const d of decoys) t.true(left.split("\n").some((l) => l.split(" ")[0] === d), `${d} untouched`);
});
