// A promise-based client of the ControlEngine service over the generated grpc-js stubs; used by
// mipctl, the agent and the tests.
import type { ServiceError } from "@grpc/grpc-js";
import * as pb from "../gen/mip46/v1/control.js";
import { channelCredentials, type TlsFiles } from "../lib/tls/tls.js";

type Call<Req, Res> = (req: Req, deadlineMs?: number) => Promise<Res>;

export interface ControlClient {
  allocateCareOf: Call<pb.AllocateCareOfRequest, pb.AllocateCareOfResponse>;
  releaseCareOf: Call<pb.ReleaseCareOfRequest, pb.ReleaseCareOfResponse>;
  requestPrefix: Call<pb.RequestPrefixRequest, pb.RequestPrefixResponse>;
  registerMigration: Call<pb.RegisterMigrationRequest, pb.RegisterMigrationResponse>;
  prepareMigration: Call<pb.PrepareMigrationRequest, pb.PrepareMigrationResponse>;
  abortMigration: Call<pb.AbortMigrationRequest, pb.AbortMigrationResponse>;
  heartbeat: Call<pb.HeartbeatRequest, pb.HeartbeatResponse>;
  mapCorrespondent: Call<pb.MapCorrespondentRequest, pb.MapCorrespondentResponse>;
  listPools: Call<pb.ListPoolsRequest, pb.ListPoolsResponse>;
  listLeases: Call<pb.ListLeasesRequest, pb.ListLeasesResponse>;
  listPrefixes: Call<pb.ListPrefixesRequest, pb.ListPrefixesResponse>;
  listBindings: Call<pb.ListBindingsRequest, pb.ListBindingsResponse>;
  listHosts: Call<pb.ListHostsRequest, pb.ListHostsResponse>;
  listMigrations: Call<pb.ListMigrationsRequest, pb.ListMigrationsResponse>;
  getRuleTable: Call<pb.GetRuleTableRequest, pb.GetRuleTableResponse>;
  close(): void;
  raw: pb.ControlEngineClient;
}

const METHODS = [
  "allocateCareOf", "releaseCareOf", "requestPrefix", "registerMigration", "prepareMigration", "abortMigration", "heartbeat", "mapCorrespondent",
  "listPools", "listLeases", "listPrefixes", "listBindings", "listHosts", "listMigrations", "getRuleTable",
] as const satisfies readonly (keyof ControlClient)[];

/**
 * `tls`: the CA, this client's certificate and key (PEM file paths) for an engine that runs
 * mutual TLS; the certificate's identity (host:, operator:, ...) decides what it may call.
 * Absent: plaintext.
 */
export function connectControl(address: string, defaultDeadlineMs = 10_000, tls?: TlsFiles): ControlClient {
  const raw = new pb.ControlEngineClient(address, channelCredentials(tls), { "grpc.enable_channelz": 0 });
  const client: Record<string, unknown> = { raw, close: () => raw.close() };
  for (const name of METHODS) {
    const fn = (raw as unknown as Record<string, (...a: unknown[]) => unknown>)[name].bind(raw);
    client[name] = (req: unknown, deadlineMs = defaultDeadlineMs) =>
      new Promise((resolve, reject) => {
        fn(req, { deadline: Date.now() + deadlineMs }, (err: ServiceError | null, res: unknown) => (err ? reject(err) : resolve(res)));
      });
  }
  return client as unknown as ControlClient;
}
