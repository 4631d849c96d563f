// Who may call what, once mutual TLS has said who is calling. A server interceptor, so it covers
// every service on the server the same way and refuses a method nobody listed (fail closed).
// Without TLS there is no identity and the engine installs no interceptor: every caller is
// trusted, which is the lab default and is logged as a warning at start.
import {
  Metadata, type ServerInterceptingCallInterface, type ServerInterceptor, ServerInterceptingCall, type ServerMethodDefinition, status,
} from "@grpc/grpc-js";
import { type Identity, identityFromAltNames, IdentityError, identityText, type Role } from "../../lib/tls/identity.js";
import type { Logger } from "../../lib/log.js";
import type * as control from "../../gen/mip46/v1/control.js";
import type { WorkerMessage } from "../../gen/mip46/v1/dataplane.js";

export class PermissionDeniedError extends Error {
  override name = "PermissionDeniedError";
}

/** Answers the host a lease is held for, to let an agent act only on its own leases and VMs. */
export interface LeaseOwners {
  /** The host a lease (by address, or a VM's care-of lease) is held for; undefined when there is none. */
  hostOfLease(sel: { address: string } | { vmId: string }): Promise<string | undefined>;
}

type Check = (who: Identity, req: never, owners: LeaseOwners) => void | Promise<void>;

interface Rule {
  roles: readonly Role[];
  /** Runs on the first request message, for a role that is allowed. */
  check?: Check;
  /** The check runs on every message of the stream, not only the first. */
  everyMessage?: boolean;
}

/** An agent acts only for its own host: each listed field must name the certificate's host. */
function ownHost<Req>(fields: (req: Req) => [string, string][]): Check {
  return (who, req) => {
    if (who.role !== "host") return;
    for (const [field, value] of fields(req as Req)) {
      if (value !== who.id) throw new PermissionDeniedError(`${field}: '${value.slice(0, 64)}' is not this agent's host (its certificate says ${identityText(who)})`);
    }
  };
}

/**
 * A host acts only on VMs that are on it or coming to it (issue 11 §4): a VM whose care-of lease
 * is held for another host is that host's. A VM with no care-of lease is left to the engine (a
 * registration then answers FAILED_PRECONDITION; a move home is checked against the home network).
 */
function ownVm<Req>(vm: (req: Req) => { vmId: string; careOf: boolean }): Check {
  return async (who, req, owners) => {
    if (who.role !== "host") return;
    const { vmId, careOf } = vm(req as Req);
    if (!careOf) return;
    const holder = await owners.hostOfLease({ vmId });
    if (holder !== undefined && holder !== who.id) {
      throw new PermissionDeniedError(`vm_id: vm ${vmId.slice(0, 64)}'s care-of lease is held for host '${holder}', not this agent's host (its certificate says ${identityText(who)})`);
    }
  };
}

/** Every check in turn; the first refusal wins. */
function all(...checks: Check[]): Check {
  return async (who, req, owners) => {
    for (const c of checks) await c(who, req, owners);
  };
}

type Migration = control.RegisterMigrationRequest | control.PrepareMigrationRequest;
const movingVm = (r: Migration) => ({ vmId: r.vmId, careOf: r.careOfIpv4 !== "" || r.careOfIpv6 !== "" });

const CONTROL = "/mip46.v1.ControlEngine/";
const READ_ONLY = ["ListPools", "ListLeases", "ListPrefixes", "ListBindings", "ListHosts", "ListMigrations", "GetRuleTable", "GetVm", "ListAdvice", "ListWorkers", "Watch", "GetLease", "GetBinding", "GetHost", "GetCluster"];

export const POLICY: Readonly<Record<string, Rule>> = {
  [`${CONTROL}AllocateCareOf`]: { roles: ["host"], check: ownHost<control.AllocateCareOfRequest>((r) => [["host_id", r.hostId]]) },
  [`${CONTROL}RequestPrefix`]: { roles: ["host"], check: ownHost<control.RequestPrefixRequest>((r) => [["host_id", r.hostId]]) },
  [`${CONTROL}Heartbeat`]: { roles: ["host"], check: ownHost<control.HeartbeatRequest>((r) => [["host_id", r.hostId]]) },
  // The agent of the host the VM arrived on registers the move, for a VM whose care-of lease it
  // holds; the source may be any host.
  [`${CONTROL}RegisterMigration`]: { roles: ["host"], check: all(ownHost<Migration>((r) => [["destination_host_id", r.destinationHostId]]), ownVm(movingVm)) },
  [`${CONTROL}PrepareMigration`]: { roles: ["host"], check: all(ownHost<Migration>((r) => [["destination_host_id", r.destinationHostId]]), ownVm(movingVm)) },
  [`${CONTROL}AbortMigration`]: {
    roles: ["host"],
    check: all(ownHost<control.AbortMigrationRequest>((r) => [["host_id", r.hostId]]), ownVm<control.AbortMigrationRequest>((r) => ({ vmId: r.vmId, careOf: true }))),
  },
  // The whole store in one file: the operator alone.
  [`${CONTROL}Backup`]: { roles: ["operator"] },
  // Operators only: each mapping takes an address of the engine pool, which the VMs' care-of and
  // translation addresses come from, and an agent has no need of one (issue 11 §4).
  [`${CONTROL}MapCorrespondent`]: { roles: ["operator"] },
  // Maintenance is an operator's decision (issue 14 §2).
  [`${CONTROL}CordonHost`]: { roles: ["operator"] },
  [`${CONTROL}UncordonHost`]: { roles: ["operator"] },
  [`${CONTROL}DrainHost`]: { roles: ["operator"] },
  [`${CONTROL}ReleaseCareOf`]: {
    roles: ["host", "operator"],
    async check(who, req: control.ReleaseCareOfRequest, owners) {
      if (who.role !== "host") return;
      const sel = req.address !== "" ? { address: req.address } : { vmId: req.vmId };
      const holder = await owners.hostOfLease(sel);
      // No such lease: let the engine answer NOT_FOUND as it does for anyone.
      if (holder !== undefined && holder !== who.id) {
        const field = "address" in sel ? "address" : "vm_id";
        throw new PermissionDeniedError(`${field}: the lease is held for host '${holder}', not this agent's host (its certificate says ${identityText(who)})`);
      }
    },
  },
  ...Object.fromEntries(READ_ONLY.map((m) => [`${CONTROL}${m}`, { roles: ["operator", "engine"] }])),
  "/mip46.v1.DataPlaneSync/SyncRules": {
    roles: ["worker"],
    // Every hello of the stream, not only a first message (an ack first, then a hello naming another worker).
    everyMessage: true,
    check(who, m: WorkerMessage) {
      const msg = m.message;
      if (msg?.$case === "hello" && msg.value.workerId !== who.id) {
        throw new PermissionDeniedError(`hello.worker_id: '${msg.value.workerId.slice(0, 64)}' is not this worker (its certificate says ${identityText(who)})`);
      }
    },
  },
  // Anyone with a certificate may ask whether the engine serves, and read its schema.
  "/grpc.health.v1.Health/Check": { roles: ["host", "worker", "operator", "engine"] },
  "/grpc.health.v1.Health/Watch": { roles: ["host", "worker", "operator", "engine"] },
  "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo": { roles: ["operator", "engine"] },
  "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo": { roles: ["operator", "engine"] },
};

/** The caller's identity from its TLS certificate; undefined on a plaintext connection. */
export function peerIdentity(call: Pick<ServerInterceptingCallInterface, "getAuthContext">): Identity | undefined {
  const auth = call.getAuthContext();
  const cert = auth?.sslPeerCertificate;
  if (!auth?.transportSecurityType || !cert) return undefined;
  return identityFromAltNames(cert.subjectaltname);
}

export interface Denial {
  path: string;
  code: status;
  details: string;
  requestStream: boolean;
  responseStream: boolean;
}

/**
 * The interceptor: checks the role when the call starts (before any message), and the fields on
 * the first message (on every message, for a rule that says so). Messages reach the handler in
 * their order, each after its check. A refused call gets PERMISSION_DENIED (UNAUTHENTICATED when
 * the certificate says nothing we understand) and its handler never runs, so it changes nothing.
 */
export function authInterceptor(owners: LeaseOwners, log: Logger, onDenied: (d: Denial) => void = () => {}): ServerInterceptor {
  return (method: ServerMethodDefinition<unknown, unknown>, call: ServerInterceptingCallInterface) => {
    let refused = false;
    let checkedFirst = false;
    /** The messages received so far, each passed on once its check (if any) answered. */
    let inOrder: Promise<void> = Promise.resolve();
    let who: Identity | undefined;
    const rule = POLICY[method.path];
    const refuse = (code: status, details: string) => {
      if (refused) return;
      refused = true;
      log.warn("call refused", { method: method.path, identity: who ? identityText(who) : undefined, peer: call.getPeer(), code: status[code], details });
      onDenied({ path: method.path, code, details, requestStream: method.requestStream, responseStream: method.responseStream });
      call.sendStatus({ code, details, metadata: new Metadata() });
    };
    return new ServerInterceptingCall(call, {
      start(next) {
        next({
          onReceiveMetadata(metadata, nextMetadata) {
            try {
              who = peerIdentity(call);
            } catch (e) {
              if (!(e instanceof IdentityError)) throw e;
              return refuse(status.UNAUTHENTICATED, e.message);
            }
            // The server only installs this interceptor with TLS on, and TLS refuses a client
            // without a certificate; this covers a server misconfigured around that.
            if (!who) return refuse(status.UNAUTHENTICATED, "a client certificate is required");
            if (!rule) return refuse(status.PERMISSION_DENIED, `${method.path}: no role may call this method`);
            if (!rule.roles.includes(who.role)) {
              return refuse(status.PERMISSION_DENIED, `${method.path}: ${identityText(who)} may not call this method (allowed: ${rule.roles.join(", ")})`);
            }
            nextMetadata(metadata);
          },
          onReceiveMessage(message, nextMessage) {
            if (refused) return;
            const check = rule?.check && who && (!checkedFirst || rule.everyMessage) ? rule.check : undefined;
            checkedFirst = true;
            inOrder = inOrder
              .then(() => { if (check && !refused) return check(who!, message as never, owners); })
              .then(() => { if (!refused) nextMessage(message); }, (e: unknown) => {
                if (e instanceof PermissionDeniedError) refuse(status.PERMISSION_DENIED, e.message);
                else {
                  log.error("authorisation check failed", { method: method.path, err: e });
                  refuse(status.INTERNAL, "internal error; see the engine's log");
                }
              });
          },
          onReceiveHalfClose(nextHalfClose) {
            // After the messages before it, so a unary call's request is checked before its end.
            inOrder = inOrder.then(() => { if (!refused) nextHalfClose(); });
          },
        });
      },
    });
  };
}
