// mipctl watch as an operator runs it: a separate process streaming a real engine's changes.
import test from "ava";
import { spawn } from "node:child_process";
import { createInterface } from "node:readline";
import { hostOn, startTestEngine } from "../../harness/engine.js";

/** `mipctl watch` as a child process; its lines as they come. */
function watcher(address: string, ...args: string[]) {
  const child = spawn(process.execPath, ["bin/mipctl.js", "--engine", address, ...args, "watch"], { stdio: ["ignore", "pipe", "pipe"] });
  const lines: string[] = [];
  let stderr = "";
  child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
  createInterface({ input: child.stdout }).on("line", (l) => lines.push(l));
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  return {
    lines, exited, get stderr() { return stderr; },
    async until(what: string, cond: () => boolean, ms = 15_000): Promise<void> {
      for (const end = Date.now() + ms; !cond();) {
        if (Date.now() > end) throw new Error(`${what} did not come: ${JSON.stringify(lines)} ${stderr}`);
        await new Promise((r) => setTimeout(r, 25));
      }
    },
    stop() { if (child.exitCode === null) child.kill("SIGINT"); },
  };
}

test("mipctl watch: the current state first, then a migration's revision, binding, lease and migration as they happen, and their removal; a renewal is not a change", async (t) => {
  const e = await startTestEngine({ hosts: { heartbeatIntervalSeconds: 5, downAfterSeconds: 120 } });
  t.teardown(() => e.stop());
  await e.client.heartbeat(hostOn(6, "h6"));
  await e.client.heartbeat(hostOn(4, "h4"));
  const first = await e.client.allocateCareOf({ hostId: "h6", vmId: "old", homeAddress: "192.0.2.9" });

  const w = watcher(e.address, "--json");
  t.teardown(() => w.stop());
  const events = () => w.lines.map((l) => JSON.parse(l) as Record<string, Record<string, unknown> | string>);
  await w.until("the current state", () => events().some((x) => "currentEnd" in x));
  const current = events();
  t.is(typeof current[0].atMs, "string", "times as proto3 int64 strings");
  t.deepEqual(Object.keys(current[0]).filter((k) => k !== "atMs"), ["revision"], "the rule revision first");
  t.is((current[0].revision as { revision: string }).revision, (await e.client.getRuleTable({})).revision.toString());
  t.deepEqual(current.filter((x) => "lease" in x).map((x) => (x.lease as { lease: { address: string } }).lease.address), [first.careOfIpv4], "the existing lease");
  t.deepEqual(Object.keys(current.at(-1)!).filter((k) => k !== "atMs"), ["currentEnd"]);
  const mark = w.lines.length;
  const since = () => events().slice(mark);

  await e.client.allocateCareOf({ hostId: "h6", vmId: "old", homeAddress: "192.0.2.9" }); // a renewal
  const c = await e.client.allocateCareOf({ hostId: "h6", vmId: "sv", homeAddress: "192.0.2.1" });
  const r = await e.client.registerMigration({ vmId: "sv", homeAddress: "192.0.2.1", homeAgent: "192.0.2.2", sourceHostId: "h4", destinationHostId: "h6", careOfIpv4: c.careOfIpv4, careOfIpv6: c.careOfIpv6 });
  await w.until("the migration's events", () => since().some((x) => "migration" in x) && since().some((x) => "binding" in x));
  const after = since();
  const leases = after.filter((x) => "lease" in x).map((x) => x.lease as { lease: { address: string; holder: string; purpose: string }; released?: boolean });
  t.deepEqual(leases.map((l) => [l.lease.address, l.lease.holder, l.lease.purpose, l.released ?? false]), [[c.careOfIpv4, "sv", "LEASE_PURPOSE_CARE_OF", false]], "sv's lease, and nothing for old's renewal");
  const revision = after.find((x) => "revision" in x)!.revision as { revision: string; updated: string[] };
  t.is(revision.revision, r.ruleRevision.toString());
  t.deepEqual([...revision.updated].sort(), (await e.client.getRuleTable({})).rules.map((x) => x.key).filter((k) => k.startsWith("vm/sv/")).sort(), "the revision names sv's rules");
  t.like(after.find((x) => "binding" in x)!.binding as object, { binding: { vmId: "sv", hostId: "h6", careOfIpv4: c.careOfIpv4 } });
  t.like(after.find((x) => "migration" in x)!.migration as object, { migrationId: r.migrationId, vmId: "sv", destinationHostId: "h6", cause: "MIGRATION_CAUSE_HYPERVISOR" });

  const mark2 = w.lines.length;
  await e.client.releaseCareOf({ address: c.careOfIpv4, vmId: "", force: true });
  await w.until("the removal", () => events().slice(mark2).some((x) => "binding" in x) && events().slice(mark2).some((x) => "lease" in x));
  const gone = events().slice(mark2);
  t.like(gone.find((x) => "binding" in x)!.binding as object, { binding: { vmId: "sv" }, removed: true });
  t.like(gone.find((x) => "lease" in x)!.lease as object, { lease: { address: c.careOfIpv4 }, released: true });
  t.deepEqual((gone.find((x) => "revision" in x)!.revision as { removed: string[] }).removed.sort(), revision.updated.sort(), "the same rules removed");
  w.stop();
  t.is(await w.exited, 0, "Ctrl-C ends it cleanly");
});

test("mipctl watch --changes-only --count 1 prints one line per change (no current state) and ends by itself; a bad --count is refused", async (t) => {
  const e = await startTestEngine({ hosts: { heartbeatIntervalSeconds: 5, downAfterSeconds: 120 } });
  t.teardown(() => e.stop());
  await e.client.heartbeat(hostOn(6, "h6"));
  const w = watcher(e.address, "--changes-only", "--count", "1");
  t.teardown(() => w.stop());
  // A change made before the stream is open is not seen (changes only), so one VM more every
  // 300 ms until the watcher has had its one change and ended.
  let ended = false;
  void w.exited.then(() => (ended = true));
  const given = new Map<string, string>();
  for (let i = 1; !ended && i < 100; i++) {
    const c = await e.client.allocateCareOf({ hostId: "h6", vmId: `sv${i}`, homeAddress: `192.0.2.${i}` });
    given.set(c.careOfIpv4, `sv${i}`);
    await new Promise((r) => setTimeout(r, 300));
  }
  t.is(await w.exited, 0);
  t.is(w.lines.length, 1, w.lines.join("\n"));
  const m = /^\d{4}-\S+Z lease (\S+) care-of for (\S+) at h6$/.exec(w.lines[0]);
  t.truthy(m, w.lines[0]);
  t.is(given.get(m![1]), m![2], "one of the leases given, with its holder");
  const bad = watcher(e.address, "--count", "0");
  t.is(await bad.exited, 2);
  t.regex(bad.stderr, /--count takes a whole number above 0, not "0"/);
});
