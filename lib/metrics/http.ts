// The HTTP side of Prometheus metrics, shared by every mip46 process (engine, data-plane worker,
// home agents, agents): /metrics from a prom-client registry, and /healthz.
import { createServer, type Server } from "node:http";
import { collectDefaultMetrics, Gauge, type Registry } from "prom-client";
import { buildInfo } from "../process/version.js";

/** Serves /metrics (and /healthz) on `listen` ("host:port"); resolves with the bound port. */
export async function serveMetrics(registry: Registry, listen: string): Promise<{ server: Server; port: number }> {
  const { host, port } = splitHostPort(listen);
  const server = createServer((req, res) => {
    if (req.url === "/metrics") {
      registry.metrics().then(
        (body) => res.writeHead(200, { "content-type": registry.contentType }).end(body),
        (e: Error) => res.writeHead(500).end(e.message),
      );
    } else if (req.url === "/healthz") {
      res.writeHead(200).end("ok\n");
    } else {
      res.writeHead(404).end("not found\n");
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => resolve());
  });
  const addr = server.address();
  return { server, port: typeof addr === "object" && addr ? addr.port : port };
}

/** "host:port" or "[v6]:port". */
export function splitHostPort(listen: string): { host: string; port: number } {
  const m = /^\[([^\]]+)\]:(\d+)$/.exec(listen) ?? /^([^:]+):(\d+)$/.exec(listen);
  if (!m) throw new Error(`'${listen}' must be HOST:PORT or [IPv6]:PORT`);
  return { host: m[1], port: Number(m[2]) };
}

/**
 * Prometheus' standard process_* and nodejs_* metrics (the job label says which process), less
 * the three gauges prom-client names with _total, a suffix Prometheus keeps for counters
 * (`promtool check metrics` flags them): their totals are sum(nodejs_active_handles) and so on.
 */
export function registerProcessMetrics(registry: Registry): void {
  collectDefaultMetrics({ register: registry });
  for (const name of GAUGES_NAMED_TOTAL) registry.removeSingleMetric(name);
}
export const GAUGES_NAMED_TOTAL = ["nodejs_active_handles_total", "nodejs_active_requests_total", "nodejs_active_resources_total"];

/** mip46_build_info{version, commit, node} 1, the Prometheus convention for what runs. */
export function registerBuildInfo(registry: Registry): void {
  const b = buildInfo();
  new Gauge({ name: "mip46_build_info", help: "The mip46 version, commit and Node.js version that run here (always 1).", labelNames: ["version", "commit", "node"], registers: [registry] })
    .set({ version: b.version, commit: b.commit, node: b.node }, 1);
}
