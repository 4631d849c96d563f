// The Binding Update sequence number of a VM's "mobile node" (RFC 6275 §11.7.1).
import { isNewerSequence } from "../../dataplane/packet/mip6.js";

/**
 * The next binding-update sequence number. The VM's "mobile node" is spread over the agents of
 * every host it visits, so the number follows the clock (one step per 64 ms, a wrap every 70
 * minutes, newer for 35 minutes by RFC 6275 §9.5.1's modulo comparison, far longer than a
 * refresh) and is never below the last one this agent used; a home agent that still knows a
 * later one says so with status 135, and the caller continues from there.
 */
export function nextSequence(last: number | undefined, nowMs: number): number {
  const clock = Math.floor(nowMs / 64) & 0xffff;
  if (last === undefined) return clock;
  return isNewerSequence(clock, last) ? clock : (last + 1) & 0xffff;
}
