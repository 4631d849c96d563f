// The agent's port watcher on real bridges in a namespace: a port joining and leaving the visitor
// bridge is seen through `ip monitor link`, not the poll (the poll here is 10 s apart, the test
// waits at most 5 s per event), so an idle agent reads nothing until a link changes.
import test from "ava";
import { createInterface } from "node:readline";
import { join } from "node:path";
import { NetnsLab, netnsAvailable } from "../../harness/netns.js";

const live = netnsAvailable() ? test : test.skip;

live("a port joining and leaving a bridge is reported from the kernel's link events", async (t) => {
  const lab = NetnsLab.create(t);
  const ns = await lab.addNamespace("pw");
  await lab.exec(ns, ["ip", "link", "add", "brh", "type", "bridge"]);
  await lab.exec(ns, ["ip", "link", "add", "brv", "type", "bridge"]);
  const child = lab.spawn(ns, [process.execPath, "--import", "tsx", join(import.meta.dirname, "fixtures/port-watcher.ts"), "brh", "brv", "10000"]);
  const lines: Record<string, unknown>[] = [];
  const waiters: (() => void)[] = [];
  createInterface({ input: child.stdout! }).on("line", (l) => {
    lines.push(JSON.parse(l) as Record<string, unknown>);
    for (const w of waiters.splice(0)) w();
  });
  const next = async (pred: (e: Record<string, unknown>) => boolean, what: string) => {
    const deadline = Date.now() + 5000;
    for (;;) {
      const found = lines.find(pred);
      if (found) return found;
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no ${what} within 5 s (the 10 s poll would be next); seen: ${JSON.stringify(lines)}`);
      await new Promise<void>((r) => {
        waiters.push(r);
        setTimeout(r, left);
      });
    }
  };
  await next((e) => e.ready === true, "ready line");
  await lab.exec(ns, ["ip", "tuntap", "add", "dev", "vp-x", "mode", "tap"]);
  await lab.exec(ns, ["ip", "link", "set", "vp-x", "master", "brv"]);
  const attached = await next((e) => e.kind === "attached", "attach event");
  t.like(attached, { kind: "attached", port: "vp-x", bridge: "visitor" });
  await lab.exec(ns, ["ip", "link", "del", "vp-x"]);
  const detached = await next((e) => e.kind === "detached", "detach event");
  t.like(detached, { kind: "detached", port: "vp-x", bridge: "visitor" });
  t.is(lines.filter((e) => e.kind !== undefined).length, 2, "one event each, nothing else");
});
