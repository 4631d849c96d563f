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

export class FailedPreconditionError extends Error {
  override name = "FailedPreconditionError";
}

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
