// The gRPC port's connection limits (issue 11 §4), on a real engine with small limits: an idle
// connection is closed by the server, and connections over the cap are closed as they come.
import test from "ava";
import { connectivityState, status } from "@grpc/grpc-js";
import { rmSync } from "node:fs";
import { connect, type Socket } from "node:net";
import { connectControl } from "../../../clients/control.js";
import { silentLogger } from "../../../lib/log.js";
import { SERVER_LIMITS } from "../../../services/api/server.js";
import { parseConfig } from "../../../services/config/config.js";
import { runEngine } from "../../../services/engine/run.js";
import { failure, labConfig, tempDir } from "../../../harness/engine.js";

function sleep(ms: number) {
  return new Promise((r) => setTimeout(r, ms));
}

async function engineWith(limits: Partial<typeof SERVER_LIMITS>) {
  const dir = tempDir("mip46-limits-");
  const running = await runEngine(parseConfig(labConfig(dir)), silentLogger, { ...SERVER_LIMITS, ...limits });
  return { running, address: `127.0.0.1:${running.grpcPort}`, async stop() { await running.stop(); rmSync(dir, { recursive: true, force: true }); } };
}

test("the defaults bound idle connections, unanswered keepalive pings, streams per connection and connections", (t) => {
  t.deepEqual(SERVER_LIMITS, { maxConnectionIdleMs: 300_000, keepaliveTimeMs: 60_000, keepaliveTimeoutMs: 20_000, maxConcurrentStreams: 100, maxConnections: 4096 });
});

test("a connection with no call for maxConnectionIdleMs is closed by the engine; the client reconnects for its next call", async (t) => {
  const e = await engineWith({ maxConnectionIdleMs: 300 });
  t.teardown(() => e.stop());
  const client = connectControl(e.address);
  t.teardown(() => client.close());
  await client.listPools({});
  const channel = client.raw.getChannel();
  t.is(channel.getConnectivityState(false), connectivityState.READY);
  const deadline = Date.now() + 5000;
  while (channel.getConnectivityState(false) === connectivityState.READY && Date.now() < deadline) await sleep(50);
  t.is(channel.getConnectivityState(false), connectivityState.IDLE, "the server's GOAWAY left the channel idle");
  t.true((await client.listPools({})).pools.length > 0, "and the next call connects again");
});

test("connections over maxConnections are closed as they are accepted; those under it stay", async (t) => {
  const e = await engineWith({ maxConnections: 2 });
  t.teardown(() => e.stop());
  const port = e.running.grpcPort;
  const open = (): Promise<{ socket: Socket; closed: Promise<void> }> => new Promise((resolve, reject) => {
    const socket = connect(port, "127.0.0.1", () => resolve({ socket, closed: new Promise((r) => socket.once("close", () => r())) }));
    socket.once("error", reject);
  });
  const held = [await open(), await open()];
  t.teardown(() => { for (const h of held) h.socket.destroy(); });
  const over = await open();
  const closed = await Promise.race([over.closed.then(() => true), sleep(2000).then(() => false)]);
  t.true(closed, "the third connection is closed by the engine");
  let heldClosed = false;
  for (const h of held) void h.closed.then(() => { heldClosed = true; });
  await sleep(300);
  t.false(heldClosed, "the two under the cap stay open");
  // A gRPC client finds no room either, and gets in once a connection goes.
  const client = connectControl(e.address, 1500);
  t.teardown(() => client.close());
  t.is((await failure(client.listPools({}))).code, status.UNAVAILABLE);
  client.close(); // or its reconnection would take the slot freed below
  held[0].socket.destroy();
  await held[0].closed;
  await sleep(200);
  const next = connectControl(e.address, 5000);
  t.teardown(() => next.close());
  t.true((await next.listPools({})).pools.length > 0, "a new client gets in once a connection went");
});
