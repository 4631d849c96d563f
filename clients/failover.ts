// A ControlClient over every engine replica: calls go to one replica, and a call that fails with
// UNAVAILABLE or DEADLINE_EXCEEDED moves to the next and, if it is safe to repeat, is tried there.
//
// Safe to repeat: the methods the .proto declares `idempotency_level = IDEMPOTENT` or
// `NO_SIDE_EFFECTS` (proto/mip46/v1/control.proto says why for each), read from the generated
// service definition, so the list cannot drift from the API. Any other call (ReleaseCareOf) is
// repeated only when it never left this client (its channel was never connected while it lasted: gRPC's
// transparent-retry rule); once it may have reached a replica it is not, and the failure is the
// caller's. It still moves the client to the next replica for the calls that follow.
// Each replica is tried once at once; after a whole round of failures the client waits a
// jittered, growing delay (lib/retry.ts), since the replicas may be restarting together.
import { status, type ServiceError } from "@grpc/grpc-js";
import { ControlEngineDefinition } from "../gen/mip46/v1/control.js";
import { retry } from "../lib/retry.js";
import { connectControl, neverSent, type ControlClient } from "./control.js";

/** The shape of a ts-proto generic service definition that matters here. */
export interface ServiceDefinition {
  methods: Record<string, { options: { idempotencyLevel?: "IDEMPOTENT" | "NO_SIDE_EFFECTS" } }>;
}

/** The methods of `definition` whose .proto option says a repeat has the effect of one call. */
export function idempotentMethods(definition: ServiceDefinition): Set<string> {
  return new Set(Object.entries(definition.methods).filter(([, m]) => m.options.idempotencyLevel !== undefined).map(([name]) => name));
}

export interface FailoverOptions {
  /** Whole time a call may take, over all replicas it tries (ms). */
  deadlineMs?: number;
  /** Time one attempt on one replica may take (ms), so a hung replica is left in time. */
  attemptMs?: number;
  /** Opens one replica's client; the default is a plaintext connectControl (pass TLS through here). */
  connect?: (address: string) => ControlClient;
  /** Told each time the client leaves a replica, e.g. for a log line or a test's clock. */
  onFailover?: (from: string, to: string, err: ServiceError) => void;
  /** The service whose method options decide what is repeated; the generated ControlEngine's unless a test passes another. */
  definition?: ServiceDefinition;
  /** The wait after a round of failures: the first window and the cap (ms). */
  backoff?: { baseMs: number; capMs: number; random?: () => number };
}

export interface FailoverClient extends ControlClient {
  /** The replica calls go to now. */
  current(): string;
}

function failsOver(e: unknown): e is ServiceError {
  const code = (e as ServiceError | undefined)?.code;
  return code === status.UNAVAILABLE || code === status.DEADLINE_EXCEEDED;
}

export function connectControlAny(addresses: string[], options: FailoverOptions = {}): FailoverClient {
  if (addresses.length === 0) throw new Error("connectControlAny: no engine address");
  const deadlineMs = options.deadlineMs ?? 10_000;
  const attemptMs = options.attemptMs ?? 3000;
  const definition = options.definition ?? ControlEngineDefinition;
  const repeatable = idempotentMethods(definition);
  const backoff = options.backoff ?? { baseMs: 100, capMs: 2000 };
  const clients = addresses.map((a) => (options.connect ?? ((x: string) => connectControl(x, attemptMs)))(a));
  let at = 0;
  const advance = (from: number, err: ServiceError) => {
    // Another call may have moved on already; move only once per failed replica.
    if (at !== from) return;
    at = (from + 1) % clients.length;
    options.onFailover?.(addresses[from], addresses[at], err);
  };
  const client: Record<string, unknown> = {
    raw: clients[0].raw,
    current: () => addresses[at],
    close: () => clients.forEach((c) => c.close()),
  };
  for (const name of Object.keys(definition.methods)) {
    client[name] = (req: unknown, callDeadlineMs = deadlineMs) => {
      const deadline = Date.now() + callDeadlineMs;
      return retry(async () => {
        const i = at;
        const fn = (clients[i] as unknown as Record<string, (r: unknown, d: number) => Promise<unknown>>)[name];
        try {
          return await fn(req, Math.max(1, Math.min(attemptMs, deadline - Date.now())));
        } catch (e) {
          if (failsOver(e)) advance(i, e);
          throw e;
        }
      }, {
        ...backoff,
        deadline,
        retryable: (e) => failsOver(e) && (repeatable.has(name) || neverSent(e)),
        waitsAfter: (attempt) => attempt % clients.length === 0,
      });
    };
  }
  return client as unknown as FailoverClient;
}
