// Cancellation: as AbortSignal, the agent's life and each visit's within it; and the engine's
// side of a migration cancelled before the VM ran here (AbortMigration).
import type { Logger } from "../../lib/log.js";
import { retry as withBackoff, RetryAbortedError } from "../../lib/retry.js";
import type { ControlClient } from "../control.js";

/** A controller aborted with `parent` (and on its own); its link to `parent` goes with it. */
export function childController(parent: AbortSignal): AbortController {
  const child = new AbortController();
  if (parent.aborted) child.abort();
  else parent.addEventListener("abort", () => child.abort(), { once: true, signal: child.signal });
  return child;
}

/**
 * AbortMigration for a VM prepared at `hostId` that never ran there. The engine may have taken a
 * lease or written rules even where its answer never came: the abort is sent whatever the agent
 * knows, a few times if the engine is away. Never throws; what came of it is logged.
 */
export async function abortMigration(control: ControlClient, log: Logger, signal: AbortSignal, hostId: string, vmId: string): Promise<void> {
  try {
    const r = await withBackoff(() => control.abortMigration({ vmId, hostId }), {
      baseMs: 500, capMs: 8000, maxAttempts: 6, signal,
      // FAILED_PRECONDITION: the engine has the VM bound here (an activation it saw and we did not).
      retryable: (e) => (e as { code?: number }).code !== 9,
      onRetry: (e, attempt) => log.warn("AbortMigration failed; trying again", { vmId, attempt, error: (e as Error).message }),
    });
    log.info("migration aborted", { vmId, released: r.releasedAddresses });
  } catch (e) {
    if ((e as { code?: number }).code === 9) log.warn("abort refused: the engine has the VM bound at this host", { vmId, error: (e as Error).message });
    else if (!(e instanceof RetryAbortedError)) log.warn("AbortMigration failed; giving up", { vmId, error: (e as Error).message });
  }
}
