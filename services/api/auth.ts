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

/** Answers the host a lease is held for, to let an agent release only its own leases. */
export interface LeaseOwners {
  hostOfLease(sel: { address: string } | { vmId: string }): Promise<string | undefined>;
}

type Check = (who: Identity, req: never, owners: LeaseOwners) => void | Promise<void>;

interface Rule {
  roles: readonly Role[];
  /** Runs on the first request message, for a role that is allowed. */
  check?: Check;
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

const CONTROL = "/mip46.v1.ControlEngine/";
const READ_ONLY = ["ListPools", "ListLeases", "ListPrefixes", "ListBindings", "ListHosts", "ListMigrations", "GetRuleTable"];

export const POLICY: Readonly<Record<string, Rule>> = {
  [`${CONTROL}AllocateCareOf`]: { roles: ["host"], check: ownHost<control.AllocateCareOfRequest>((r) => [["host_id", r.hostId]]) },
  [`${CONTROL}RequestPrefix`]: { roles: ["host"], check: ownHost<control.RequestPrefixRequest>((r) => [["host_id", r.hostId]]) },
  [`${CONTROL}Heartbeat`]: { roles: ["host"], check: ownHost<control.HeartbeatRequest>((r) => [["host_id", r.hostId]]) },
  // The agent of the host the VM arrived on registers the move; the source may be any host.
  [`${CONTROL}RegisterMigration`]: { roles: ["host"], check: ownHost<control.RegisterMigrationRequest>((r) => [["destination_host_id", r.destinationHostId]]) },
  [`${CONTROL}PrepareMigration`]: { roles: ["host"], check: ownHost<control.PrepareMigrationRequest>((r) => [["destination_host_id", r.destinationHostId]]) },
  [`${CONTROL}AbortMigration`]: { roles: ["host"], check: ownHost<control.AbortMigrationRequest>((r) => [["host_id", r.hostId]]) },
  [`${CONTROL}MapCorrespondent`]: { roles: ["host", "operator"] },
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
 * the first message. A refused call gets PERMISSION_DENIED (UNAUTHENTICATED when the certificate
 * says nothing we understand) and its handler never runs, so it changes nothing.
 */
export function authInterceptor(owners: LeaseOwners, log: Logger, onDenied: (d: Denial) => void = () => {}): ServerInterceptor {
  return (method: ServerMethodDefinition<unknown, unknown>, call: ServerInterceptingCallInterface) => {
    let refused = false;
    let checkedFirst = false;
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
            if (checkedFirst || !rule?.check || !who) return nextMessage(message);
            checkedFirst = true;
            Promise.resolve()
              .then(() => rule.check!(who!, message as never, owners))
              .then(() => { if (!refused) nextMessage(message); }, (e: unknown) => {
                if (e instanceof PermissionDeniedError) refuse(status.PERMISSION_DENIED, e.message);
                else {
                  log.error("authorisation check failed", { method: method.path, err: e });
                  refuse(status.INTERNAL, "internal error; see the engine's log");
                }
              });
          },
          onReceiveHalfClose(nextHalfClose) {
            if (!refused) nextHalfClose();
          },
        });
      },
    });
  };
}
