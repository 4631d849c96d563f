// The failover client repeats only what the .proto declares idempotent (clients/failover.ts).
// Unit tests drive it with fake replicas; one runs a real engine beside an address nobody serves.
import test from "ava";
import { status } from "@grpc/grpc-js";
import { readFileSync } from "node:fs";
import { createServer } from "node:net";
import { connectControl, neverSent, type ControlClient } from "../../clients/control.js";
import { connectControlAny, idempotentMethods, type ServiceDefinition } from "../../clients/failover.js";
import { ControlEngineDefinition } from "../../gen/mip46/v1/control.js";
import { startTestEngine } from "../../harness/engine.js";

/** A replica whose every call fails with `fail(address)` (when it gives an error) or answers its address. */
function fakes(calls: string[], fail: (address: string) => Error | undefined) {
  return (address: string) => new Proxy({}, {
    get: (_, name: string) => name === "close" ? () => undefined : async () => {
      calls.push(`${address}.${name}`);
      const e = fail(address);
      if (e) throw e;
      return { address };
    },
  }) as unknown as ControlClient;
}

const unavailable = (extra: object = {}) => Object.assign(new Error("14 UNAVAILABLE: Connection dropped"), { code: status.UNAVAILABLE, ...extra });

test("the methods repeated are exactly those whose rpc in control.proto has an idempotency_level option", (t) => {
  const proto = readFileSync(new URL("../../proto/mip46/v1/control.proto", import.meta.url), "utf8");
  const declared = new Set<string>();
  const all: string[] = [];
  for (const m of proto.matchAll(/rpc (\w+)\([^)]*\) returns \([^)]*\)\s*(\{[^}]*\}|;)/g)) {
    const name = m[1][0].toLowerCase() + m[1].slice(1);
    all.push(name);
    if (/option idempotency_level = (IDEMPOTENT|NO_SIDE_EFFECTS);/.test(m[2])) declared.add(name);
  }
  t.is(all.length, Object.keys(ControlEngineDefinition.methods).length, "every rpc of the service was read");
  t.deepEqual([...idempotentMethods(ControlEngineDefinition)].sort(), [...declared].sort());
  t.false(idempotentMethods(ControlEngineDefinition).has("releaseCareOf"), "ReleaseCareOf is not declared idempotent");
  t.true(idempotentMethods(ControlEngineDefinition).has("allocateCareOf"));
});

test("an idempotent call that failed after it may have been sent is tried on the next replica; a call that is not is not", async (t) => {
  const calls: string[] = [];
  const client = connectControlAny(["e1", "e2"], { connect: fakes(calls, (a) => (a === "e1" ? unavailable() : undefined)) });
  t.deepEqual(await client.heartbeat({ hostId: "h", addresses: [], vms: [], resources: undefined }), { address: "e2" }, "Heartbeat is IDEMPOTENT: repeated at e2");
  t.deepEqual(calls, ["e1.heartbeat", "e2.heartbeat"]);
  const other = connectControlAny(["e1", "e2"], { connect: fakes((calls.length = 0, calls), (a) => (a === "e1" ? unavailable() : undefined)) });
  const err = await t.throwsAsync(other.releaseCareOf({ address: "198.51.100.1", vmId: "" }));
  t.is((err as unknown as { code: number }).code, status.UNAVAILABLE, "ReleaseCareOf may have reached e1: not repeated");
  t.deepEqual(calls, ["e1.releaseCareOf"]);
  t.is(other.current(), "e2", "the next call goes to e2");
});

test("a call that is not idempotent but never left the client (no connection) is tried on the next replica", async (t) => {
  const calls: string[] = [];
  const client = connectControlAny(["e1", "e2"], { connect: fakes(calls, (a) => (a === "e1" ? unavailable({ neverSent: true }) : undefined)) });
  t.deepEqual(await client.releaseCareOf({ address: "198.51.100.1", vmId: "" }), { address: "e2" });
  t.deepEqual(calls, ["e1.releaseCareOf", "e2.releaseCareOf"]);
});

test("what is repeated comes from the service definition: a method without the option is not repeated", async (t) => {
  const withoutAllocate: ServiceDefinition = {
    methods: { ...ControlEngineDefinition.methods, allocateCareOf: { ...ControlEngineDefinition.methods.allocateCareOf, options: {} } },
  };
  const calls: string[] = [];
  const client = connectControlAny(["e1", "e2"], { definition: withoutAllocate, connect: fakes(calls, (a) => (a === "e1" ? unavailable() : undefined)) });
  await t.throwsAsync(client.allocateCareOf({ hostId: "h", vmId: "v", homeAddress: "192.0.2.1" }));
  t.deepEqual(calls, ["e1.allocateCareOf"], "without the option, AllocateCareOf is not repeated");
  t.deepEqual(await client.listPools({}), { address: "e2" });
});

test.serial("with every replica down, the client tries each at once, waits a jittered delay after each round, and gives up at its deadline", async (t) => {
  const calls: string[] = [];
  const client = connectControlAny(["e1", "e2", "e3"], { deadlineMs: 400, backoff: { baseMs: 40, capMs: 80 }, connect: fakes(calls, () => unavailable()) });
  const start = Date.now();
  await t.throwsAsync(client.listLeases({}), { message: /UNAVAILABLE/ });
  const took = Date.now() - start;
  t.true(took >= 350 && took < 2000, `gave up at the deadline (${took} ms)`);
  // Rounds of three back to back; between rounds at most 80 ms: at least 400/80 rounds, and never a busy loop.
  // (Serial: a test that starts an engine beside it would hold the event loop.)
  t.true(calls.length >= 9 && calls.length < 400, `${calls.length} attempts`);
  t.deepEqual(calls.slice(0, 3), ["e1.listLeases", "e2.listLeases", "e3.listLeases"]);
});

test("real gRPC: a release at a replica nobody serves never leaves the client, so it is made at the next replica", async (t) => {
  const e = await startTestEngine();
  t.teardown(() => e.stop());
  const port = await new Promise<number>((resolve) => {
    const s = createServer().listen(0, "127.0.0.1", () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => resolve(p));
    });
  });
  const dead = connectControl(`127.0.0.1:${port}`, 2000);
  t.teardown(() => dead.close());
  const refused = await t.throwsAsync(dead.releaseCareOf({ address: "198.51.100.1", vmId: "" }));
  t.is((refused as unknown as { code: number }).code, status.UNAVAILABLE);
  t.true(neverSent(refused), "connection refused: known not to be sent");
  const moves: string[] = [];
  const client = connectControlAny([`127.0.0.1:${port}`, e.address], { onFailover: (from, to) => moves.push(`${from}->${to}`) });
  t.teardown(() => client.close());
  const err = await t.throwsAsync(client.releaseCareOf({ address: "198.51.100.1", vmId: "" }));
  t.is((err as unknown as { code: number }).code, status.NOT_FOUND, `the live engine answered the release: ${err?.message}`);
  t.deepEqual(moves, [`127.0.0.1:${port}->${e.address}`]);
});
