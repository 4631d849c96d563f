// A promise-based client of the ControlEngine service over the generated grpc-js stubs; used by
// mipctl, the agent and the tests.
import { credentials, type ServiceError } from "@grpc/grpc-js";
import { ControlEngineClient } from "../gen/mip46/v1/control.js";

type Unary<Req, Res> = (req: Req, callback: (err: ServiceError | null, res: Res) => void) => unknown;
type Methods = {
  [K in keyof ControlEngineClient as ControlEngineClient[K] extends Unary<infer _Q, infer _S> ? K : never]:
    ControlEngineClient[K] extends Unary<infer Q, infer S> ? (req: Q) => Promise<S> : never;
};

export type ControlClient = { [K in keyof Methods]: (req: Parameters<Methods[K]>[0], deadlineMs?: number) => ReturnType<Methods[K]> } & {
  close(): void;
  raw: ControlEngineClient;
};

const METHODS = [
  "allocateCareOf", "releaseCareOf", "requestPrefix", "registerMigration", "heartbeat", "mapCorrespondent",
  "listPools", "listLeases", "listPrefixes", "listBindings", "listHosts", "listMigrations", "getRuleTable",
] as const;

export function connectControl(address: string, defaultDeadlineMs = 10_000): ControlClient {
  const raw = new ControlEngineClient(address, credentials.createInsecure());
  const client: Record<string, unknown> = { raw, close: () => raw.close() };
  for (const name of METHODS) {
    const fn = (raw as unknown as Record<string, Function>)[name].bind(raw);
    client[name] = (req: unknown, deadlineMs = defaultDeadlineMs) =>
      new Promise((resolve, reject) => {
        fn(req, { deadline: Date.now() + deadlineMs }, (err: ServiceError | null, res: unknown) => (err ? reject(err) : resolve(res)));
      });
  }
  return client as unknown as ControlClient;
}
