// The engine's errors as gRPC status codes: one table for every call, unary or streaming.
import { Metadata, type ServiceError, status } from "@grpc/grpc-js";
import { ConflictError, ConfigError, FailedPreconditionError, InvalidArgumentError, NotFoundError, REASON_TRAILER, ResourceExhaustedError } from "../errors.js";
import { LeadershipLostError } from "../store/guard.js";
import { AddressError } from "../../lib/net/address.js";
import type { Logger } from "../../lib/log.js";

/**
 * The status of an error an engine call threw; an unknown one is INTERNAL, logged with its stack.
 * Its metadata (the trailers) carries a FailedPreconditionError's reason (REASON_TRAILER).
 */
export function toStatus(e: unknown, log: Logger, method: string): Partial<ServiceError> & { metadata: Metadata } {
  const metadata = new Metadata();
  if (e instanceof FailedPreconditionError && e.reason !== undefined) metadata.set(REASON_TRAILER, e.reason);
  const known: [new (...a: never[]) => Error, status][] = [
    [InvalidArgumentError, status.INVALID_ARGUMENT],
    [AddressError, status.INVALID_ARGUMENT],
    [NotFoundError, status.NOT_FOUND],
    [FailedPreconditionError, status.FAILED_PRECONDITION],
    [ResourceExhaustedError, status.RESOURCE_EXHAUSTED],
    [ConfigError, status.FAILED_PRECONDITION],
    // Replicas on etcd: a write that kept losing its compare-and-swap, or a replica that stopped
    // being the leader mid-write; the caller may try again (on another replica).
    [ConflictError, status.ABORTED],
    [LeadershipLostError, status.UNAVAILABLE],
  ];
  for (const [cls, code] of known) if (e instanceof cls) return { code, details: e.message, metadata };
  log.error("internal error", { method, err: e, stack: (e as Error)?.stack });
  return { code: status.INTERNAL, details: "internal error; see the engine's log", metadata };
}

export const STATUS_NAME = Object.fromEntries(Object.entries(status).filter(([, v]) => typeof v === "number").map(([k, v]) => [v, k])) as Record<number, string>;
