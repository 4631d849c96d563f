// What the single-threaded worker (worker.ts) and each forwarding thread (thread.ts) do alike:
// feed every port's batches through the forwarder, and count neighbours for the metrics.
import type { Emit, Forwarder } from "../forward/index.js";
import type { FramePort } from "../io/frames.js";

/** Starts every port on the forwarder; returns the emit that sends the forwarder's frames out of them. */
export function forwardOnPorts(forwarder: Forwarder, ports: FramePort[]): Emit {
  const emit: Emit = (egressIf, frame) => {
    ports[egressIf]?.send(frame);
  };
  // The batch form: what a batch produced leaves on every port in one system call per port.
  const flushing = ports.filter((p) => p.flushSends);
  ports.forEach((port, index) => {
    port.start((frames, packets) => {
      forwarder.processBatch(index, frames, frames.length, emit, Date.now(), packets);
      for (const p of flushing) p.flushSends!();
    });
  });
  return emit;
}

export function neighbourCounts(forwarder: Forwarder): { family: string; state: string; count: number }[] {
  const counts = new Map<string, number>();
  for (const family of ["ipv4", "ipv6"]) {
    for (const state of ["incomplete", "reachable", "stale", "permanent"]) counts.set(`${family} ${state}`, 0);
  }
  for (const e of forwarder.neighbours.entries()) {
    const key = `ipv${e.family} ${e.state}`;
    counts.set(key, (counts.get(key) ?? 0) + 1);
  }
  return [...counts].map(([key, count]) => {
    const [family, state] = key.split(" ");
    return { family, state, count };
  });
}
