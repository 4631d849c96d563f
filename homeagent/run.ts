// Runs a home agent (r1: Mobile IPv4, RFC 5944; r2: Mobile IPv6, RFC 6275) on the data-plane
// worker: registrations addressed to the home agent are taken off the packet path (the worker's
// intercept), handed to the protocol core (homeagent/mip4, homeagent/mip6), and each binding
// becomes worker state: proxy ARP/NDP for the home address on the home link, an announcement
// that moves the neighbours' caches to us, and an `encapsulate` rule that tunnels what arrives
// for the home address to the care-of address (IPv4-in-IPv4, IPv6-in-IPv6).
import { Counter, Gauge } from "prom-client";
import type { Logger } from "../lib/log.js";
import { parseAddress } from "../lib/net/address.js";
import type { Rule } from "../lib/rules/rules.js";
import { LocalRules } from "../dataplane/worker/local.js";
import { runWorker, type RunningWorker, type WorkerOptions } from "../dataplane/worker/worker.js";
import { mobilityProtocol } from "../mobility/index.js";
import type { HomeAgentFileConfig } from "./config.js";
import { homeAgentCore, type BindingEvent } from "./core.js";

export interface RunningHomeAgent {
  worker: RunningWorker;
  /** Current bindings: home address → care-of address. */
  bindings(): { homeAddress: string; careOfAddress: string; expiresAtMs: number }[];
  stop(): Promise<void>;
}

/** Starts the worker with the home agent on its packet path. */
export async function runHomeAgent(config: HomeAgentFileConfig, log: Logger, options: Pick<WorkerOptions, "io" | "skipHostCheck"> = {}): Promise<RunningHomeAgent> {
  const ha = config.homeAgent;
  const protocol = ha.protocol;
  const mobility = mobilityProtocol(protocol === "mip4" ? 4 : 6);
  const core = homeAgentCore(ha);
  const own = parseAddress(ha.address, "homeAgent.address").bytes;

  let worker: RunningWorker | undefined;
  let rules: LocalRules | undefined;
  const pending: Uint8Array[] = [];
  const registrations = new Counter({ name: "mip46_home_agent_registrations_total", help: "Registration requests / binding updates handled, by result (accepted, or why refused).", labelNames: ["protocol", "result"] as const, registers: [] });
  const bindingsGauge = new Gauge({ name: "mip46_home_agent_bindings", help: "Home addresses bound to a care-of address.", labelNames: ["protocol"] as const, registers: [], collect() {
    this.set({ protocol }, core.bindings().length);
  } });

  const apply = (events: BindingEvent[]) => {
    if (worker === undefined || rules === undefined) return;
    for (const ev of events) {
      const b = ev.binding;
      const key = `binding/${b.homeAddress}`;
      if (ev.kind === "removed") {
        rules.apply([], [key]);
        worker.forwarder.setProxied(b.homeAddress, false);
        log.info("binding removed", { homeAddress: b.homeAddress, careOfAddress: b.careOfAddress, reason: ev.reason });
        continue;
      }
      const rule: Rule = {
        key, kind: "encapsulate", tunnel: mobility.bindingTunnel, remote: b.careOfAddress, local: ha.address,
        innerDestination: `${b.homeAddress}/${mobility.hostPrefixLength}`,
      };
      rules.apply([rule]);
      worker.forwarder.setProxied(b.homeAddress, true);
      // RFC 5944 §4.6 / RFC 6275 §10.4.1: announce on the home link that the home address is
      // now at the home agent, so the neighbours' caches stop pointing at the departed node.
      worker.forwarder.announce(ha.interface, b.homeAddress, worker.emit);
      log.info(ev.kind === "added" ? "binding added" : "binding updated", {
        homeAddress: b.homeAddress, careOfAddress: b.careOfAddress, lifetimeS: b.lifetimeS,
        ...("careOfIPv4" in b && b.careOfIPv4 ? { careOfIPv4: b.careOfIPv4 } : {}),
      });
    }
  };

  const intercept = (pkt: Uint8Array): boolean => {
    if (!mobility.isRegistrationTo(pkt, own)) return false;
    pending.push(pkt.slice());
    return true;
  };

  // Registrations are handled after the capture callback returns, so the forwarder is not re-entered.
  const handlePending = () => {
    while (pending.length > 0) {
      const pkt = pending.shift()!;
      try {
        handle(pkt);
      } catch (e) {
        log.error("registration handling failed", { error: (e as Error).message });
      }
    }
  };

  const handle = (pkt: Uint8Array) => {
    const now = Date.now();
    const out = core.handle(pkt, now);
    registrations.inc({ protocol, result: out.result });
    if (out.refused) log.warn(out.refused.message, out.refused.fields);
    apply(out.events);
    // With the binding just made, the encapsulate rule carries an accepted reply to the care-of address.
    if (out.reply !== undefined) worker!.forwarder.inject(out.reply, worker!.emit, now);
  };

  worker = await runWorker({ ...config.worker, engines: [] }, log, {
    ...options,
    intercept: (pkt) => {
      const taken = intercept(pkt);
      if (taken) queueMicrotask(handlePending);
      return taken;
    },
  });
  rules = new LocalRules(worker.forwarder);
  worker.registry.registerMetric(registrations);
  worker.registry.registerMetric(bindingsGauge);
  const expiry = setInterval(() => apply(core.expire(Date.now())), 1000);
  log.info("home agent started", { protocol, address: ha.address, homeNetwork: ha.homeNetwork, securityAssociations: ha.keys.map((k) => ({ homeAddress: k.homeAddress, spi: k.spi, algorithm: k.algorithm })) });
  const w = worker;
  return {
    worker: w,
    bindings: () => core.bindings().map((b) => ({ homeAddress: b.homeAddress, careOfAddress: b.careOfAddress, expiresAtMs: b.expiresAtMs })),
    async stop() {
      clearInterval(expiry);
      await w.stop();
    },
  };
}
