// Cancellation as AbortSignal: the agent's life, and each visit's within it.

/** A controller aborted with `parent` (and on its own); its link to `parent` goes with it. */
export function childController(parent: AbortSignal): AbortController {
  const child = new AbortController();
  if (parent.aborted) child.abort();
  else parent.addEventListener("abort", () => child.abort(), { once: true, signal: child.signal });
  return child;
}
