// dataplane/worker/takeover.ts on a real unix socket: what the running worker answers, what the
// new process takes from it, and what is refused.
import test from "ava";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createConnection } from "node:net";
import { silentLogger } from "../../../lib/log.js";
import { parseWorkerConfig, WorkerConfigError } from "../../../dataplane/worker/config.js";
import type { NeighbourEntry } from "../../../dataplane/neighbour/cache.js";
import { answering, connectTakeover, firstSnapshot, handedNeighbours, neighboursToLearn, serveTakeover, TakeoverError, type HandedNeighbour } from "../../../dataplane/worker/takeover.js";

function dir(t: { teardown(f: () => void): void }): string {
  const d = mkdtempSync(join(tmpdir(), "m46rs-takeover-"));
  t.teardown(() => rmSync(d, { recursive: true, force: true }));
  return d;
}

const entry = (ifIndex: number, family: 4 | 6, address: number[], mac: number[], state: NeighbourEntry["state"]): NeighbourEntry => ({
  ifIndex, family, address: Uint8Array.from(address), mac: Uint8Array.from(mac), state, updated: 0, used: 0, retries: 0, nextSolicit: -1, queue: [],
});

test("only reachable and stale neighbours are handed over, by interface name; the new side learns them as stale, on its own interface order", (t) => {
  const handed = handedNeighbours([
    entry(1, 4, [192, 0, 2, 1], [2, 0, 0, 0, 0, 1], "reachable"),
    entry(0, 6, [0x20, 0x01, 0x0d, 0xb8, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2], [2, 0, 0, 0, 0, 2], "stale"),
    entry(1, 4, [192, 0, 2, 9], [0, 0, 0, 0, 0, 0], "incomplete"),
    entry(1, 4, [192, 0, 2, 8], [2, 0, 0, 0, 0, 8], "permanent"),
    entry(5, 4, [192, 0, 2, 7], [2, 0, 0, 0, 0, 7], "reachable"),
  ], ["w0", "w1"]);
  t.deepEqual(handed, [
    { interface: "w1", family: 4, address: "c0000201", mac: "020000000001" },
    { interface: "w0", family: 6, address: "20010db8000100000000000000000002", mac: "020000000002" },
  ]);
  const bad: HandedNeighbour[] = [
    { interface: "w1", family: 4, address: "c00002", mac: "020000000003" },
    { interface: "w1", family: 4, address: "c0000203", mac: "0200" },
    { interface: "w1", family: 5 as 4, address: "c0000203", mac: "020000000003" },
    { interface: "eth9", family: 4, address: "c0000203", mac: "020000000003" },
  ];
  const learn = neighboursToLearn([...handed, ...bad], ["w1", "w0"]);
  t.deepEqual(learn.map((l) => [l.ifIndex, l.family, Buffer.from(l.address).toString("hex"), Buffer.from(l.mac).toString("hex"), l.opts]), [
    [0, 4, "c0000201", "020000000001", { confirmed: false, create: true }],
    [1, 6, "20010db8000100000000000000000002", "020000000002", { confirmed: false, create: true }],
  ]);
});

test("the new side gets the running worker's pid, revision and neighbours, and its leave is answered once the old side has closed", async (t) => {
  const path = join(dir(t), "takeover.sock");
  const events: string[] = [];
  const neighbours: HandedNeighbour[] = [{ interface: "w1", family: 4, address: "c0000201", mac: "020000000001" }];
  const server = await serveTakeover(path, {
    workerId: "dp-1", revision: () => 42n, neighbours: () => neighbours,
    leave: async () => { events.push("closed"); },
    afterLeft: () => events.push("after"),
  }, silentLogger);
  t.teardown(() => server.close());
  const peer = await connectTakeover(path);
  t.truthy(peer);
  t.like(peer, { pid: process.pid, workerId: "dp-1", revision: "42", neighbours });
  t.deepEqual(events, []);
  await peer!.leave();
  peer!.close();
  t.is(events[0], "closed", "the answer came once the old side had closed");
  while (events.length < 2) await new Promise((r) => setTimeout(r, 10));
  t.deepEqual(events, ["closed", "after"], "the old side goes after it answered");
});

test("nobody answering: no peer; a stale socket file is replaced; a second server beside one that answers is refused", async (t) => {
  const d = dir(t);
  t.is(await connectTakeover(join(d, "none.sock")), undefined);
  const stale = join(d, "stale.sock");
  writeFileSync(stale, "");
  t.false(await answering(stale));
  t.is(await connectTakeover(stale), undefined);
  const side = { workerId: "dp-1", revision: () => 1n, neighbours: () => [], leave: async () => undefined, afterLeft: () => undefined };
  const server = await serveTakeover(stale, side, silentLogger);
  t.teardown(() => server.close());
  t.true(await answering(stale));
  const e = await t.throwsAsync(serveTakeover(stale, side, silentLogger), { instanceOf: TakeoverError });
  t.regex(e!.message, /another worker answers on takeover\.socket .*stale\.sock: start with --takeover to replace it, or stop it first/);
  t.true(existsSync(stale), "the running worker's socket is left alone");
  t.true(await answering(stale));
});

test("an unknown request is answered with an error naming the requests, and the running worker stays", async (t) => {
  const path = join(dir(t), "takeover.sock");
  let left = false;
  const server = await serveTakeover(path, { workerId: "dp-1", revision: () => 1n, neighbours: () => [], leave: async () => { left = true; }, afterLeft: () => undefined }, silentLogger);
  t.teardown(() => server.close());
  const answer = await new Promise<string>((resolve) => {
    const s = createConnection(path, () => s.write("{\"op\":\"go away\"}\nnot json\n"));
    let got = "";
    s.on("data", (d) => {
      got += d.toString();
      if (got.split("\n").length > 2) {
        s.destroy();
        resolve(got);
      }
    });
  });
  const lines = answer.trim().split("\n").map((l) => JSON.parse(l) as { error: string });
  t.regex(lines[0].error, /unknown request .*go away.*: "neighbours" or "leave"/);
  t.regex(lines[1].error, /unknown request "not json"/);
  t.false(left);
});

test("the first snapshot: waiting after it came resolves at once; without it, the wait is refused naming the key", async (t) => {
  const s = firstSnapshot();
  s.applied();
  await t.notThrowsAsync(s.wait(10));
  const never = firstSnapshot();
  const e = await t.throwsAsync(never.wait(20), { instanceOf: TakeoverError });
  t.is(e!.message, "no rule table from the engine within takeover.syncTimeoutMs (20 ms): the running worker stays");
  const later = firstSnapshot();
  const waiting = later.wait(5_000);
  later.applied();
  await t.notThrowsAsync(waiting);
});

test("takeover keys: absent by default (no socket, no pid file, 10 s to sync); a wrong one is refused naming it", (t) => {
  const base = { workerId: "dp-1", interfaces: [{ name: "w0" }] };
  t.deepEqual(parseWorkerConfig(base).takeover, { syncTimeoutMs: 10_000 });
  t.deepEqual(parseWorkerConfig({ ...base, takeover: { socket: "/run/x/t.sock", pidFile: "/run/x/p", syncTimeoutMs: 500 } }).takeover, { socket: "/run/x/t.sock", pidFile: "/run/x/p", syncTimeoutMs: 500 });
  const e1 = t.throws(() => parseWorkerConfig({ ...base, takeover: { syncTimeoutMs: 0 } }), { instanceOf: WorkerConfigError });
  t.regex(e1!.message, /takeover\.syncTimeoutMs: must be a positive integer, got 0/);
  const e2 = t.throws(() => parseWorkerConfig({ ...base, takeover: { sockett: "/x" } }), { instanceOf: WorkerConfigError });
  t.regex(e2!.message, /takeover\.sockett: unknown key/);
});
