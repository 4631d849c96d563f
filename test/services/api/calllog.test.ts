// Every call that changes state is logged at info with its caller and outcome (issue 14 §5); reads
// and heartbeats are not.
import test from "ava";
import { hostOn, startTestEngine } from "../../../harness/engine.js";
import { createLogger } from "../../../lib/log.js";

test("mutating calls are logged once each with method, caller and outcome (OK or the refusal's code); reads and heartbeats are not", async (t) => {
  const lines: Record<string, unknown>[] = [];
  const e = await startTestEngine({ hosts: { heartbeatIntervalSeconds: 5, downAfterSeconds: 120 } }, undefined, createLogger({}, "info", (l) => lines.push(JSON.parse(l))));
  t.teardown(() => e.stop());
  await e.client.heartbeat(hostOn(6, "h6"));
  await e.client.allocateCareOf({ hostId: "h6", vmId: "sv", homeAddress: "192.0.2.1" });
  await e.client.allocateCareOf({ hostId: "h6", vmId: "sv2", homeAddress: "224.0.0.1" }).catch(() => undefined);
  await e.client.listLeases({});
  await e.client.getRuleTable({});
  const calls = lines.filter((l) => l.msg === "call");
  t.deepEqual(calls.map((l) => [l.method, l.who, l.outcome]), [["AllocateCareOf", "plaintext", "OK"], ["AllocateCareOf", "plaintext", "INVALID_ARGUMENT"]]);
  t.true(calls.every((l) => l.level === "info" && typeof l.ms === "number"));
});
