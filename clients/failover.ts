// A ControlClient over every engine replica: calls go to one replica, and a call that fails with
// UNAVAILABLE or DEADLINE_EXCEEDED moves to the next and, if it is safe to repeat, is tried there.
//
// Repeated: calls whose repeat has the effect of one call. AllocateCareOf renews the holder's lease
// (the store keys leases by VM and purpose), so a repeat after a lost reply returns the same
// address; RegisterMigration with the same addresses is a no-op repeat; Heartbeat overwrites the
// host; RequestPrefix and the List calls only read; MapCorrespondent renews the correspondent's lease;
// PrepareMigration writes the same rules again; AbortMigration removes what is already gone.
// Not repeated: ReleaseCareOf, whose repeat after a lost reply would answer NOT_FOUND for a release
// that happened; it still moves the client to the next replica for the calls that follow.
import { status, type ServiceError } from "@grpc/grpc-js";
import { connectControl, type ControlClient } from "./control.js";

const REPEATABLE = new Set<string>([
  "allocateCareOf", "requestPrefix", "registerMigration", "prepareMigration", "abortMigration", "heartbeat", "mapCorrespondent",
  "listPools", "listLeases", "listPrefixes", "listBindings", "listHosts", "listMigrations", "getRuleTable",
]);

const METHODS = [...REPEATABLE, "releaseCareOf"] as const;

export interface FailoverOptions {
  /** Whole time a call may take, over all replicas it tries (ms). */
  deadlineMs?: number;
  /** Time one attempt on one replica may take (ms), so a hung replica is left in time. */
  attemptMs?: number;
  /** Opens one replica's client; the default is a plaintext connectControl (pass TLS through here). */
  connect?: (address: string) => ControlClient;
  /** Told each time the client leaves a replica, e.g. for a log line or a test's clock. */
  onFailover?: (from: string, to: string, err: ServiceError) => void;
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
  for (const name of METHODS) {
    client[name] = async (req: unknown, callDeadlineMs = deadlineMs) => {
      const end = Date.now() + callDeadlineMs;
      for (let tries = 0; ; tries++) {
        const i = at;
        const left = end - Date.now();
        const fn = (clients[i] as unknown as Record<string, (r: unknown, d: number) => Promise<unknown>>)[name];
        try {
          return await fn(req, Math.max(1, Math.min(attemptMs, left)));
        } catch (e) {
          if (!failsOver(e)) throw e;
          advance(i, e);
          if (!REPEATABLE.has(name) || Date.now() >= end) throw e;
          // After a whole round of refusals, wait a little: the replicas may be restarting.
          if (tries > 0 && (tries + 1) % clients.length === 0) await new Promise((r) => setTimeout(r, Math.min(200, Math.max(0, end - Date.now()))));
        }
      }
    };
  }
  return client as unknown as FailoverClient;
}
