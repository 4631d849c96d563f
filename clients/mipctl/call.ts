// mipctl call (issue 14 §6): any ControlEngine RPC by name with a proto3 JSON request, its answer
// as proto3 JSON — what `grpcurl -d JSON HOST:PORT mip46.v1.ControlEngine/METHOD` does, for a
// machine without grpcurl (Debian has no package). The methods and their types come from the
// generated service definition, so a new RPC needs nothing here.
import { ControlEngineDefinition } from "../../gen/mip46/v1/control.js";
import type { ControlClient } from "../control.js";
import type { Output } from "./where.js";

export class CallUsageError extends Error {}

interface MessageType {
  fromJSON(o: unknown): unknown;
  toJSON(m: unknown): unknown;
  fromPartial(o: object): object;
}
interface MethodDefinition { name: string; requestType: MessageType; responseType: MessageType; requestStream: boolean; responseStream: boolean }

const METHODS = Object.entries(ControlEngineDefinition.methods as unknown as Record<string, MethodDefinition>);
const SERVICE = ControlEngineDefinition.fullName;

/** The unary methods, by RPC name. */
export function callableMethods(): string[] {
  return METHODS.filter(([, m]) => !m.requestStream && !m.responseStream).map(([, m]) => m.name).sort();
}

const camel = (k: string) => k.replace(/_([a-z0-9])/g, (_m, c: string) => c.toUpperCase());

/** `METHOD` or `mip46.v1.ControlEngine/METHOD`; the request as proto3 JSON (field names in lowerCamelCase or as in the .proto). */
export async function call(client: ControlClient, method: string | undefined, body: string | undefined, deadlineMs = 10_000): Promise<Output> {
  if (method === undefined) throw new CallUsageError(`call takes a METHOD and a JSON request (default {}); methods: ${callableMethods().join(", ")}`);
  const name = method.startsWith(`${SERVICE}/`) ? method.slice(SERVICE.length + 1) : method;
  const found = METHODS.find(([, m]) => m.name === name);
  if (!found) throw new CallUsageError(`call: ${SERVICE} has no method ${JSON.stringify(method)}; methods: ${callableMethods().join(", ")}`);
  const [key, m] = found;
  if (m.requestStream || m.responseStream) throw new CallUsageError(`call: ${name} streams; call takes unary methods only`);
  let json: unknown;
  try {
    json = JSON.parse(body ?? "{}");
  } catch (e) {
    throw new CallUsageError(`call ${name}: the request is not JSON: ${(e as Error).message}`);
  }
  if (json === null || typeof json !== "object" || Array.isArray(json)) throw new CallUsageError(`call ${name}: the request must be a JSON object`);
  // The generated fromJSON skips fields it does not know; an unknown one is refused here instead,
  // so that a misspelt field is not sent as its default.
  const fields = new Set(Object.keys(m.requestType.fromPartial({})));
  const unknown = Object.keys(json).filter((k) => !fields.has(camel(k)));
  if (unknown.length > 0) throw new CallUsageError(`call ${name}: ${unknown.map((k) => JSON.stringify(k)).join(", ")}: not a field of the request (fields: ${[...fields].join(", ") || "none"})`);
  const request = m.requestType.fromJSON(json);
  const fn = (client.raw as unknown as Record<string, (req: unknown, o: { deadline: number }, cb: (err: Error | null, res: unknown) => void) => void>)[key].bind(client.raw);
  const response = await new Promise<unknown>((resolve, reject) => fn(request, { deadline: Date.now() + deadlineMs }, (err, res) => (err ? reject(err) : resolve(res))));
  const out = m.responseType.toJSON(response);
  return { json: out, table: JSON.stringify(out, undefined, 2) + "\n" };
}
