// The audit log: one structured line ("operator action") for every call that changes state on an
// operator's say (ReleaseCareOf, MapCorrespondent, CordonHost, UncordonHost, DrainHost: mipctl
// release, map, unmap, cordon, uncordon and drain), whoever makes
// it: who (the caller's mutual-TLS identity, or "plaintext"), what (the method and its request),
// and the stored state it touched, before → after.
import type { ServerUnaryCall } from "@grpc/grpc-js";
import { identityText } from "../../lib/tls/identity.js";
import type { Logger } from "../../lib/log.js";
import { peerIdentity } from "./auth.js";

/** The caller as the audit log names it. */
export function caller(call: Pick<ServerUnaryCall<unknown, unknown>, "getAuthContext">): string {
  try {
    const who = peerIdentity(call);
    return who ? identityText(who) : "plaintext";
  } catch {
    // A certificate we cannot read was refused by the interceptor before the handler ran.
    return "unidentified";
  }
}

export interface AuditEntry {
  what: string;
  request: Record<string, unknown>;
  before: unknown;
  after: unknown;
}

export function audit(log: Logger, call: Pick<ServerUnaryCall<unknown, unknown>, "getAuthContext">, entry: AuditEntry): void {
  log.info("operator action", { who: caller(call), ...entry });
}
