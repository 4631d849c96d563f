// Engine RPCs from inside the lab's management network (the engine listens there only).
//   rpc.ts METHOD JSON   one call; prints the answer as JSON (64-bit numbers as strings)
//   rpc.ts --serve       one JSON request a line on stdin ({"id", "method", "request"}), one
//                        answer a line on stdout ({"id", "response"} or {"id", "error"}); the lab's
//                        tools keep one of these open instead of starting a process per call.
import { createInterface } from "node:readline";
import { connectControl, type ControlClient } from "../../clients/control.js";
import { LAB_ENDPOINTS } from "./configs.js";

const client = connectControl(LAB_ENDPOINTS.engineGrpc, 10_000);
const json = (v: unknown) => JSON.stringify(v, (_k, x) => (typeof x === "bigint" ? x.toString() : x));

function call(method: string, request: unknown): Promise<unknown> {
  const fn = (client as unknown as Record<string, (req: unknown) => Promise<unknown>>)[method as keyof ControlClient];
  if (typeof fn !== "function" || method === "close" || method === "raw") return Promise.reject(new Error(`no RPC '${method}'`));
  return fn(request);
}

const [first, request = "{}"] = process.argv.slice(2);
if (first === "--serve") {
  createInterface({ input: process.stdin }).on("line", (line) => {
    let id: unknown;
    try {
      const msg = JSON.parse(line) as { id: unknown; method: string; request: unknown };
      id = msg.id;
      call(msg.method, msg.request).then(
        (response) => process.stdout.write(json({ id, response }) + "\n"),
        (e: Error) => process.stdout.write(json({ id, error: e.message }) + "\n"),
      );
    } catch (e) {
      process.stdout.write(json({ id, error: (e as Error).message }) + "\n");
    }
  }).on("close", () => client.close());
} else {
  try {
    process.stdout.write(json(await call(first, JSON.parse(request))) + "\n");
  } catch (e) {
    process.stderr.write(`${(e as Error).message}\n`);
    process.exitCode = 1;
  } finally {
    client.close();
  }
}
