// clients/agent/events.ts on a real unix socket: a valid phase reaches the handler and its VM ids
// come back; every bad line is answered with the field at fault and never reaches the handler;
// the socket file's life (stale one replaced, a live one refused, removed at stop).
import test from "ava";
import { once } from "node:events";
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { createConnection, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { HypervisorEventServer, parseHypervisorEvent, MAX_LINE_BYTES, type HypervisorEvent } from "../../clients/agent/events.js";
import { silentLogger } from "../../lib/log.js";

function tempSocket(t: { teardown(f: () => void): void }): string {
  const dir = mkdtempSync(join(tmpdir(), "mip46-events-"));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return join(dir, "run", "agent.sock");
}

async function started(t: { teardown(f: () => Promise<void>): void }, path: string, handler: (e: HypervisorEvent) => Promise<string[]>): Promise<HypervisorEventServer> {
  const server = new HypervisorEventServer(path, handler, silentLogger);
  await server.start();
  t.teardown(() => server.stop());
  return server;
}

/** A client that sends lines and reads the reply lines, in order. */
async function connect(path: string): Promise<{ socket: Socket; ask(line: string): Promise<unknown>; next(): Promise<unknown>; closed: Promise<unknown> }> {
  const socket = createConnection(path);
  await once(socket, "connect");
  socket.setEncoding("utf8");
  const lines: string[] = [];
  const waiting: ((line: string) => void)[] = [];
  let buffer = "";
  socket.on("data", (chunk: string) => {
    buffer += chunk;
    for (let end = buffer.indexOf("\n"); end >= 0; end = buffer.indexOf("\n")) {
      const line = buffer.slice(0, end);
      buffer = buffer.slice(end + 1);
      const w = waiting.shift();
      if (w) w(line);
      else lines.push(line);
    }
  });
  const closed = once(socket, "close");
  const next = async () => JSON.parse(lines.length ? lines.shift()! : await new Promise<string>((r) => waiting.push(r)));
  return {
    socket,
    closed,
    next,
    ask: (line) => {
      socket.write(line);
      return next();
    },
  };
}

const valid = { phase: "migrate", domain: "vm1", interfaces: [{ mac: "52:54:00:6B:3C:58", dev: "vnet3", bridge: "br-visitor" }, { mac: "52:54:00:12:34:56" }] };

test("a valid event reaches the handler and the handler's VM ids come back; the socket is 0660 in a 0750 directory", async (t) => {
  const path = tempSocket(t);
  const seen: HypervisorEvent[] = [];
  // The agent's unit runs with UMask=0077: the modes must not depend on the umask.
  const umask = process.umask(0o077);
  t.teardown(() => void process.umask(umask));
  await started(t, path, async (e) => (seen.push(e), ["vm-a", "vm-b"]));
  t.is(statSync(path).mode & 0o777, 0o660);
  t.is(statSync(join(path, "..")).mode & 0o777, 0o750);
  const client = await connect(path);
  t.deepEqual(await client.ask(JSON.stringify(valid) + "\n"), { ok: true, vms: ["vm-a", "vm-b"] });
  t.deepEqual(seen, [{ phase: "migrate", domain: "vm1", interfaces: [{ mac: "52:54:00:6b:3c:58", dev: "vnet3", bridge: "br-visitor" }, { mac: "52:54:00:12:34:56" }] }]);
  client.socket.destroy();
});

const bad: [string, string, string][] = [
  ["not JSON", "{phase: migrate", "line: not JSON"],
  ["an empty line", "", "line: empty"],
  ["not an object", "[1,2]", "request: must be a JSON object"],
  ["an unknown phase", JSON.stringify({ ...valid, phase: "resume" }), "phase:"],
  ["no phase", JSON.stringify({ domain: "vm1", interfaces: [] }), "phase:"],
  ["no domain", JSON.stringify({ phase: "prepare", interfaces: [] }), "domain:"],
  ["an empty domain", JSON.stringify({ ...valid, domain: "" }), "domain:"],
  ["no interfaces", JSON.stringify({ phase: "prepare", domain: "vm1" }), "interfaces:"],
  ["interfaces not a list", JSON.stringify({ ...valid, interfaces: { mac: "52:54:00:00:00:01" } }), "interfaces:"],
  ["an interface not an object", JSON.stringify({ ...valid, interfaces: ["52:54:00:00:00:01"] }), "interfaces[0]:"],
  ["a bad MAC", JSON.stringify({ ...valid, interfaces: [{ mac: "52:54:00:zz:00:01" }] }), "interfaces[0].mac:"],
  ["a short MAC", JSON.stringify({ ...valid, interfaces: [{ mac: "52:54:00:00:01" }] }), "interfaces[0].mac:"],
  ["a multicast MAC", JSON.stringify({ ...valid, interfaces: [{ mac: "01:00:5e:00:00:01" }] }), "interfaces[0].mac:"],
  ["no MAC", JSON.stringify({ ...valid, interfaces: [{ dev: "vnet0" }] }), "interfaces[0].mac:"],
  ["a dev that is no interface name", JSON.stringify({ ...valid, interfaces: [{ mac: "52:54:00:00:00:01" }, { mac: "52:54:00:00:00:02", dev: "../etc" }] }), "interfaces[1].dev:"],
  ["a bridge name too long", JSON.stringify({ ...valid, interfaces: [{ mac: "52:54:00:00:00:01", bridge: "a-bridge-name-of-20c" }] }), "interfaces[0].bridge:"],
  ["an unknown field", JSON.stringify({ ...valid, host: "h1" }), "host: unknown field"],
  ["an unknown interface field", JSON.stringify({ ...valid, interfaces: [{ mac: "52:54:00:00:00:01", ip: "192.0.2.1" }] }), "interfaces[0].ip: unknown field"],
];

test("every bad line gets an error naming the field, the handler is not called, and the connection stays usable", async (t) => {
  const path = tempSocket(t);
  let calls = 0;
  await started(t, path, async () => (calls++, ["vm-a"]));
  const client = await connect(path);
  for (const [what, line, field] of bad) {
    const reply = (await client.ask(line + "\n")) as { ok: boolean; error: string };
    t.false(reply.ok, what);
    t.true(reply.error.startsWith(field), `${what}: ${reply.error}`);
  }
  t.is(calls, 0);
  t.deepEqual(await client.ask(JSON.stringify(valid) + "\n"), { ok: true, vms: ["vm-a"] });
  t.is(calls, 1);
  client.socket.destroy();
});

test("parseHypervisorEvent throws an error naming the field", (t) => {
  t.throws(() => parseHypervisorEvent({ ...valid, interfaces: [{ mac: "nope" }] }), { message: /^interfaces\[0\]\.mac: / });
  t.throws(() => parseHypervisorEvent({ ...valid, phase: 3 }), { message: /^phase: / });
  t.deepEqual(parseHypervisorEvent({ phase: "release", domain: "vm1", interfaces: [] }), { phase: "release", domain: "vm1", interfaces: [] });
});

test("a line over 64 KiB is refused and closes the connection, without reaching the handler", async (t) => {
  const path = tempSocket(t);
  let calls = 0;
  await started(t, path, async () => (calls++, []));
  const client = await connect(path);
  const reply = (await client.ask(JSON.stringify({ ...valid, domain: "x".repeat(MAX_LINE_BYTES) }) + "\n")) as { ok: boolean; error: string };
  t.false(reply.ok);
  t.regex(reply.error, /^line: longer than 65536 bytes/);
  await client.closed;
  t.is(calls, 0);
});

test("a handler's error comes back as ok:false with its message", async (t) => {
  const path = tempSocket(t);
  await started(t, path, async () => {
    throw new Error("engine: unavailable");
  });
  const client = await connect(path);
  t.deepEqual(await client.ask(JSON.stringify(valid) + "\n"), { ok: false, error: "engine: unavailable" });
  client.socket.destroy();
});

test("two requests on one connection, sent at once, get their replies in order", async (t) => {
  const path = tempSocket(t);
  // The first answer is the slower one: the replies must still come back in the order of the lines.
  await started(t, path, (e) => new Promise((r) => setTimeout(() => r([e.domain]), e.domain === "first" ? 50 : 0)));
  const client = await connect(path);
  const both = JSON.stringify({ ...valid, domain: "first" }) + "\n" + JSON.stringify({ ...valid, domain: "second", phase: "release" }) + "\n";
  client.socket.write(both);
  const first = client.next();
  const second = client.next();
  t.deepEqual(await first, { ok: true, vms: ["first"] });
  t.deepEqual(await second, { ok: true, vms: ["second"] });
  client.socket.destroy();
});

test("a stale socket file (its agent killed) is replaced", async (t) => {
  const path = tempSocket(t);
  mkdirSync(join(path, ".."), { recursive: true });
  // A crashed agent: a process that bound the socket and was killed, so nothing unlinked it.
  const crashed = spawnSync(process.execPath, ["-e", `require("node:net").createServer().listen(${JSON.stringify(path)}, () => process.kill(process.pid, "SIGKILL"))`]);
  t.is(crashed.signal, "SIGKILL");
  t.true(statSync(path).isSocket(), "the stale socket file is there");
  await started(t, path, async () => ["vm-a"]);
  const client = await connect(path);
  t.deepEqual(await client.ask(JSON.stringify(valid) + "\n"), { ok: true, vms: ["vm-a"] });
  client.socket.destroy();
});

test("a second server on a live socket is refused, and the first keeps serving", async (t) => {
  const path = tempSocket(t);
  await started(t, path, async () => ["vm-a"]);
  const second = new HypervisorEventServer(path, async () => ["vm-b"], silentLogger);
  await t.throwsAsync(() => second.start(), { message: /another process listens on/ });
  const client = await connect(path);
  t.deepEqual(await client.ask(JSON.stringify(valid) + "\n"), { ok: true, vms: ["vm-a"] });
  client.socket.destroy();
});

test("a file at the socket's path that is no socket is left alone and refused", async (t) => {
  const path = tempSocket(t);
  mkdirSync(join(path, ".."), { recursive: true });
  writeFileSync(path, "not a socket");
  const server = new HypervisorEventServer(path, async () => [], silentLogger);
  await t.throwsAsync(() => server.start(), { message: /is not a socket/ });
  t.true(statSync(path).isFile());
});

test("stop removes the socket file and closes open connections", async (t) => {
  const path = tempSocket(t);
  const server = new HypervisorEventServer(path, async () => [], silentLogger);
  await server.start();
  const client = await connect(path);
  await server.stop();
  await client.closed;
  t.false(existsSync(path));
});
