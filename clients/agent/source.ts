// A VM that the engine still takes to run at its source host (a move between two visited hosts,
// services/engine/leases.ts takeOver): how the agent knows the engine's refusal, and how long it
// asks again once the VM runs here.
/** How long an activated VM's AllocateCareOf is asked again while its source host still lists it. */
export const SOURCE_RELEASE_WAIT_MS = 30_000;

/**
 * The engine's refusal of a care-of lease held for another host that still runs the VM, as far
 * as the engine knows (services/engine/leases.ts, takeOver): FAILED_PRECONDITION with the trailer
 * `mip46-reason: VM_RUNS_AT_SOURCE` (control.proto, AllocateCareOf). Other FAILED_PRECONDITIONs (a
 * migration prepared at another host, an unknown host) are not this.
 */
export function refusedWhileSourceLists(e: unknown): boolean {
  const err = e as { code?: number; metadata?: { get(key: string): unknown[] } };
  return err.code === 9 && err.metadata?.get("mip46-reason")[0] === "VM_RUNS_AT_SOURCE";
}
