// What test/lab/registration-keys and registration-wire both read: tshark's decoding problems and
// the values of its fields, and the home agents' registration metrics.
import { LAB_ENDPOINTS, metric, readMetrics, type LabHandle } from "../helpers/lab.js";
import type { TsharkResult } from "../helpers/tshark.js";

/** Decoding problems (warnings, errors, malformed) tshark finds, as lines to show. */
export function problems(result: TsharkResult): string[] {
  return result.problems.map((p) => `frame ${p.frame}: ${p.severity}: ${p.message}`);
}

/** Every value of a tshark JSON field in a frame, wherever in the layer tree it sits (tunnels nest). */
function fieldValues(layers: unknown, name: string, out: string[] = []): string[] {
  if (Array.isArray(layers)) for (const v of layers) fieldValues(v, name, out);
  else if (layers !== null && typeof layers === "object") {
    for (const [k, v] of Object.entries(layers)) {
      if (k === name) out.push(...(Array.isArray(v) ? v.map(String) : [String(v)]));
      else fieldValues(v, name, out);
    }
  }
  return out;
}

export const allValues = (r: TsharkResult, name: string) => r.packets.flatMap((p) => fieldValues(p._source.layers, name));

export async function haMetrics(h: LabHandle, which: "r1" | "r2") {
  const s = await readMetrics(h.prefix, which === "r1" ? LAB_ENDPOINTS.r1Metrics : LAB_ENDPOINTS.r2Metrics);
  const protocol = which === "r1" ? "mip4" : "mip6";
  return {
    bindings: metric(s, "mip46_home_agent_bindings", { protocol }),
    result: (result: string) => metric(s, "mip46_home_agent_registrations_total", { protocol, result }),
  };
}
