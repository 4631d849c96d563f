// A promise-based client of the ControlEngine service over the generated grpc-js stubs; used by
// mipctl, the agent and the tests.
import { connectivityState, Metadata, status, type ChannelInterface, type ServiceError } from "@grpc/grpc-js";
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
    client[name] = async (req: unknown, deadlineMs = defaultDeadlineMs) => {
      const deadline = Date.now() + deadlineMs;
      // The call is made only on a connection that is up, so a failure to connect is known to
      // have happened before anything was sent (see neverSent).
      if (!(await connected(raw.getChannel(), deadline))) throw notSent(name, address, Date.now() >= deadline);
      return new Promise((resolve, reject) => {
        fn(req, { deadline }, (err: ServiceError | null, res: unknown) => (err ? reject(err) : resolve(res)));
      });
    };
  }
  return client as unknown as ControlClient;
}

/**
 * Whether a call failed before it left this client: no connection to the engine could be made,
 * so the engine cannot have seen it. Such a call may be tried again elsewhere even when it is not
 * idempotent (gRPC's transparent retry, gRFC A6); one that may have reached the engine may not.
 */
export function neverSent(e: unknown): boolean {
  return (e as { neverSent?: unknown } | undefined)?.neverSent === true;
}

/**
 * Resolves true once the channel is READY; false when connecting failed (TRANSIENT_FAILURE, where
 * grpc-js would fail the call at once too), the channel is shut down, or the deadline passed.
 */
function connected(channel: ChannelInterface, deadline: number): Promise<boolean> {
  return new Promise((resolve) => {
    const check = () => {
      const state = channel.getConnectivityState(true);
      if (state === connectivityState.READY) return resolve(true);
      if (state === connectivityState.TRANSIENT_FAILURE || state === connectivityState.SHUTDOWN) return resolve(false);
      channel.watchConnectivityState(state, deadline, (err) => (err ? resolve(false) : check()));
    };
    check();
  });
}

function notSent(method: string, address: string, late: boolean): ServiceError {
  const code = late ? status.DEADLINE_EXCEEDED : status.UNAVAILABLE;
  const details = late ? `no connection to ${address} within the deadline; ${method} was not sent` : `no connection to ${address}; ${method} was not sent`;
  return Object.assign(new Error(`${code} ${status[code]}: ${details}`), { code, details, metadata: new Metadata(), neverSent: true });
}
