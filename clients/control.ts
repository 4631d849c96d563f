// A promise-based client of the ControlEngine service over the generated grpc-js stubs; used by
// mipctl, the agent and the tests.
import { connectivityState, type ChannelInterface, type ServiceError } from "@grpc/grpc-js";
import * as pb from "../gen/mip46/v1/control.js";
import { channelCredentials, type TlsFiles } from "../lib/tls/tls.js";

type Call<Req, Res> = (req: Req, deadlineMs?: number) => Promise<Res>;

export interface ControlClient {
  allocateCareOf: Call<pb.AllocateCareOfRequest, pb.AllocateCareOfResponse>;
  /** `force` may be left out (false): a lease a binding uses is then refused. */
  releaseCareOf: Call<Omit<pb.ReleaseCareOfRequest, "force"> & { force?: boolean }, pb.ReleaseCareOfResponse>;
  requestPrefix: Call<pb.RequestPrefixRequest, pb.RequestPrefixResponse>;
  registerMigration: Call<pb.RegisterMigrationRequest, pb.RegisterMigrationResponse>;
  prepareMigration: Call<pb.PrepareMigrationRequest, pb.PrepareMigrationResponse>;
  abortMigration: Call<pb.AbortMigrationRequest, pb.AbortMigrationResponse>;
  heartbeat: Call<pb.HeartbeatRequest, pb.HeartbeatResponse>;
  mapCorrespondent: Call<pb.MapCorrespondentRequest, pb.MapCorrespondentResponse>;
  listPools: Call<pb.ListPoolsRequest, pb.ListPoolsResponse>;
  /** The filters may be left out. */
  listLeases: Call<Partial<pb.ListLeasesRequest>, pb.ListLeasesResponse>;
  listPrefixes: Call<pb.ListPrefixesRequest, pb.ListPrefixesResponse>;
  listBindings: Call<Partial<pb.ListBindingsRequest>, pb.ListBindingsResponse>;
  listHosts: Call<Partial<pb.ListHostsRequest>, pb.ListHostsResponse>;
  /** The fields may be left out: the first page, of the engine's default size. */
  listMigrations: Call<Partial<pb.ListMigrationsRequest>, pb.ListMigrationsResponse>;
  getRuleTable: Call<pb.GetRuleTableRequest, pb.GetRuleTableResponse>;
  getVm: Call<pb.GetVmRequest, pb.GetVmResponse>;
  cordonHost: Call<pb.CordonHostRequest, pb.CordonHostResponse>;
  uncordonHost: Call<pb.UncordonHostRequest, pb.UncordonHostResponse>;
  drainHost: Call<pb.DrainHostRequest, pb.DrainHostResponse>;
  /** `vmId` may be left out: every VM's advice. */
  listAdvice: Call<Partial<pb.ListAdviceRequest>, pb.ListAdviceResponse>;
  listWorkers: Call<pb.ListWorkersRequest, pb.ListWorkersResponse>;
  getLease: Call<pb.GetLeaseRequest, pb.GetLeaseResponse>;
  getBinding: Call<pb.GetBindingRequest, pb.GetBindingResponse>;
  getHost: Call<pb.GetHostRequest, pb.GetHostResponse>;
  getCluster: Call<pb.GetClusterRequest, pb.GetClusterResponse>;
  close(): void;
  raw: pb.ControlEngineClient;
}

const METHODS = [
  "allocateCareOf", "releaseCareOf", "requestPrefix", "registerMigration", "prepareMigration", "abortMigration", "heartbeat", "mapCorrespondent",
  "listPools", "listLeases", "listPrefixes", "listBindings", "listHosts", "listMigrations", "getRuleTable", "getVm", "listAdvice", "cordonHost", "uncordonHost", "drainHost", "listWorkers", "getLease", "getBinding", "getHost", "getCluster",
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
        const deadline = Date.now() + deadlineMs;
        const readiness = watchReady(raw.getChannel(), deadline);
        fn(req, { deadline }, (err: ServiceError | null, res: unknown) => {
          const wasReady = readiness.stop();
          if (!err) return resolve(res);
          reject(wasReady ? err : Object.assign(err, { neverSent: true }));
        });
      });
  }
  const release = client.releaseCareOf as (req: object, deadlineMs?: number) => Promise<unknown>;
  client.releaseCareOf = (req: object, deadlineMs?: number) => release({ force: false, ...req }, deadlineMs);
  // The requests whose fields may be left out (filters, pages) get their defaults here.
  const partial: [string, { fromPartial(o: object): object }][] = [
    ["listMigrations", pb.ListMigrationsRequest], ["listAdvice", pb.ListAdviceRequest], ["listLeases", pb.ListLeasesRequest],
    ["listBindings", pb.ListBindingsRequest], ["listHosts", pb.ListHostsRequest],
  ];
  for (const [name, type] of partial) {
    const call = client[name] as (req: object, deadlineMs?: number) => Promise<unknown>;
    client[name] = (req: object, deadlineMs?: number) => call(type.fromPartial(req), deadlineMs);
  }
  return client as unknown as ControlClient;
}

/**
 * Whether a call failed before it left this client: the channel was never connected while the
 * call lasted (grpc-js sends a call only on a READY connection), so the engine cannot have seen
 * it. Such a call may be tried again elsewhere even when it is not idempotent (gRPC's transparent
 * retry, gRFC A6); one that may have reached the engine may not. The error itself is grpc-js's,
 * with its reason (refused, TLS handshake, deadline).
 */
export function neverSent(e: unknown): boolean {
  return (e as { neverSent?: unknown } | undefined)?.neverSent === true;
}

/**
 * Watches `channel` from now until stop(), which says whether it was READY at any moment between.
 * grpc-js tells its watchers of a change before the calls it lets through touch the wire.
 */
function watchReady(channel: ChannelInterface, deadline: number): { stop(): boolean } {
  let ready = false;
  let stopped = false;
  const watch = () => {
    const state = channel.getConnectivityState(false);
    if (state === connectivityState.READY) ready = true;
    else if (!stopped && state !== connectivityState.SHUTDOWN) channel.watchConnectivityState(state, deadline, (err) => err || watch());
  };
  watch();
  return {
    stop: () => {
      stopped = true;
      return ready;
    },
  };
}
