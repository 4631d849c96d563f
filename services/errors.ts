// One error class per failure kind. Domain code throws only these; the gRPC adapter maps each to
// its status code (services/api/status.ts), and anything else becomes a logged INTERNAL error.
import { ConfigFieldError } from "../lib/config/schema.js";

export class InvalidArgumentError extends Error {
  override name = "InvalidArgumentError";
  constructor(readonly field: string, message: string, options?: { cause?: unknown }) {
    super(message.startsWith(`${field}:`) ? message : `${field}: ${message}`, options);
  }
}

export class NotFoundError extends Error {
  override name = "NotFoundError";
}

/**
 * `reason`, when given, is a machine-readable name of the precondition (UPPER_SNAKE, as
 * google.rpc.ErrorInfo's reason): the adapter sends it in the trailer `mip46-reason`, so that a
 * caller can act on it without reading the message (REASONS).
 */
export class FailedPreconditionError extends Error {
  override name = "FailedPreconditionError";
  constructor(message: string, readonly reason?: FailedPreconditionReason) {
    super(message);
  }
}

/** The reasons a FAILED_PRECONDITION names in its `mip46-reason` trailer. */
export const REASONS = {
  /**
   * AllocateCareOf: the VM's care-of lease serves its binding at another host, which still runs
   * it as far as the engine knows (its heartbeat lists the VM, or the binding is newer than its
   * last beat). Asked again once that host lets the VM go, the lease is taken over.
   */
  VM_RUNS_AT_SOURCE: "VM_RUNS_AT_SOURCE",
} as const;
export type FailedPreconditionReason = keyof typeof REASONS;

/** The trailer that carries a FailedPreconditionError's reason. */
export const REASON_TRAILER = "mip46-reason";

export class ResourceExhaustedError extends Error {
  override name = "ResourceExhaustedError";
}

/** A compare-and-swap the store lost to another writer (etcd); the caller may try again. */
export class ConflictError extends Error {
  override name = "ConflictError";
}

/** A configuration file that cannot be used; the engine refuses to start. Its field is the key named first. */
export class ConfigError extends ConfigFieldError {
  override name = "ConfigError";
}
