// What the parts of the engine (leases.ts, heartbeats.ts, migrations.ts, release.ts, reads.ts,
// rules.ts) share, handed to each by the Engine facade (engine.ts) that wires them.
import type { Logger } from "../../lib/log.js";
import type { EngineConfig } from "../config/config.js";
import type { MigrationAdvisor } from "../migration/advisor.js";
import type { PrefixPlan } from "../prefix/plan.js";
import type { HostRecord, Store } from "../store/store.js";
import type { History } from "./history.js";

/** What the engine's parts share with each other. */
export interface EngineCore {
  readonly config: EngineConfig;
  readonly store: Store;
  readonly plan: PrefixPlan;
  readonly advisor: MigrationAdvisor;
  readonly history: History;
  readonly log: Logger;
  readonly cooldownMs: number;
  now(): number;
  /** Runs `fn` in the engine's one queue of composite operations, after those before it. */
  exclusive<T>(fn: () => Promise<T>): Promise<T>;
  /** A known host's latest record (its last heartbeat). */
  host(hostId: string): Promise<HostRecord | undefined>;
}

/** What the engine reports to its metrics as things happen. */
export interface EngineEvents {
  adviceGiven(n: number): void;
  leasesExpired(n: number): void;
}

export const noEvents: EngineEvents = { adviceGiven() {}, leasesExpired() {} };
