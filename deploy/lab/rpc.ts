// One engine RPC from inside the lab's management network: `rpc.ts METHOD JSON` prints the
// answer as JSON (64-bit numbers as strings). Used by the lab's tools, tests and benchmark.
import { connectControl, type ControlClient } from "../../clients/control.js";
import { LAB_ENDPOINTS } from "./configs.js";

const [method, request = "{}"] = process.argv.slice(2);
const client = connectControl(LAB_ENDPOINTS.engineGrpc, 10_000);
try {
  const fn = (client as unknown as Record<string, (req: unknown) => Promise<unknown>>)[method as keyof ControlClient];
  if (typeof fn !== "function") throw new Error(`no RPC '${method}'`);
  const res = await fn(JSON.parse(request));
  process.stdout.write(JSON.stringify(res, (_k, v) => (typeof v === "bigint" ? v.toString() : v)) + "\n");
} catch (e) {
  process.stderr.write(`${(e as Error).message}\n`);
  process.exitCode = 1;
} finally {
  client.close();
}
