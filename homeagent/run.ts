// Runs a home agent (r1: Mobile IPv4, RFC 5944; r2: Mobile IPv6, RFC 6275) on the data-plane
// worker: registrations addressed to the home agent are taken off the packet path (the worker's
// intercept), handed to the protocol core (homeagent/mip4, homeagent/mip6), and each binding
// becomes worker state: proxy ARP/NDP for the home address on the home link, an announcement
// that moves the neighbours' caches to us, and an `encapsulate` rule that tunnels what arrives
// for the home address to the care-of address (IPv4-in-IPv4, IPv6-in-IPv6).
import { Counter, Gauge } from "prom-client";
import type { Logger } from "../lib/log.js";
import { ipv4FromBytes, parseIPv4, parseIPv6 } from "../lib/net/address.js";
import type { Rule } from "../lib/rules/rules.js";
import { IPPROTO } from "../dataplane/packet/ipv4.js";
import { buildUdp4 } from "../dataplane/packet/udp.js";
import { newIPv6Chain, walkIPv6Extensions } from "../dataplane/packet/ipv6.js";
import { LocalRules } from "../dataplane/worker/local.js";
import { runWorker, type RunningWorker, type WorkerOptions } from "../dataplane/worker/worker.js";
import type { HomeAgentFileConfig, HomeAgentKey } from "./config.js";
import { Mip4HomeAgent, type Mip4BindingEvent } from "./mip4/homeagent.js";
import { Mip6HomeAgent, type Mip6BindingEvent } from "./mip6/homeagent.js";

const MIP4_PORT = 434;

export interface RunningHomeAgent {
  worker: RunningWorker;
  /** Current bindings: home address → care-of address. */
  bindings(): { homeAddress: string; careOfAddress: string; expiresAtMs: number }[];
  stop(): Promise<void>;
}

type BindingEvent = Mip4BindingEvent | Mip6BindingEvent;

/** Starts the worker with the home agent on its packet path. */
export async function runHomeAgent(config: HomeAgentFileConfig, log: Logger, options: Pick<WorkerOptions, "io" | "skipHostCheck"> = {}): Promise<RunningHomeAgent> {
  const ha = config.homeAgent;
  const protocol = ha.protocol;
  const byHome = new Map<string, HomeAgentKey>(ha.keys.map((k) => [k.homeAddress, k]));
  const mip4 = protocol === "mip4"
    ? new Mip4HomeAgent({
      homeAgentAddress: ha.address, homeNetwork: ha.homeNetwork, maxLifetimeS: ha.maxLifetimeS, replayToleranceS: ha.replayToleranceS,
      securityAssociations: new Map([...byHome].map(([a, k]) => [a, { spi: k.spi, algorithm: k.algorithm, key: k.key }])),
    })
    : undefined;
  const mip6 = protocol === "mip6"
    ? new Mip6HomeAgent({
      homeAgentAddress: ha.address, homePrefix: ha.homeNetwork, maxLifetimeS: ha.maxLifetimeS, replayToleranceS: ha.replayToleranceS,
      securityAssociations: new Map([...byHome].map(([a, k]) => [a, { spi: k.spi, key: k.key }])),
    })
    : undefined;
  const haBytes = protocol === "mip4" ? parseIPv4(ha.address, "homeAgent.address").bytes : undefined;
  const ha6 = protocol === "mip6" ? parseIPv6(ha.address, "homeAgent.address").bytes : undefined;
  const chain = newIPv6Chain();

  let worker: RunningWorker | undefined;
  let rules: LocalRules | undefined;
  const pending: Uint8Array[] = [];
  const registrations = new Counter({ name: "mip46_home_agent_registrations_total", help: "Registration requests / binding updates handled, by result (accepted, or why refused).", labelNames: ["protocol", "result"] as const, registers: [] });
  const bindingsGauge = new Gauge({ name: "mip46_home_agent_bindings", help: "Home addresses bound to a care-of address.", labelNames: ["protocol"] as const, registers: [], collect() {
    this.set({ protocol }, (mip4?.bindings().length ?? mip6?.bindings().length ?? 0));
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
        key, kind: "encapsulate", tunnel: protocol === "mip4" ? "4in4" : "6in6", remote: b.careOfAddress, local: ha.address,
        innerDestination: `${b.homeAddress}/${protocol === "mip4" ? 32 : 128}`,
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
    if (mip4 !== undefined) {
      // IPv4, UDP to our address, port 434 (RFC 5944 §3.3); a fragment is not taken (registrations are small).
      if (pkt[0] >> 4 !== 4 || pkt[9] !== IPPROTO.UDP || haBytes === undefined || (((pkt[6] << 8) | pkt[7]) & 0x3fff) !== 0) return false;
      for (let i = 0; i < 4; i++) if (pkt[16 + i] !== haBytes[i]) return false;
      const ihl = (pkt[0] & 0x0f) << 2;
      if (pkt.length < ihl + 8 || ((pkt[ihl + 2] << 8) | pkt[ihl + 3]) !== MIP4_PORT) return false;
      pending.push(pkt.slice());
      return true;
    }
    if (pkt[0] >> 4 !== 6 || ha6 === undefined) return false;
    for (let i = 0; i < 16; i++) if (pkt[24 + i] !== ha6[i]) return false;
    const c = walkIPv6Extensions(pkt, 0, pkt.length, chain);
    if (c === undefined || c.upperProtocol !== IPPROTO.MOBILITY) return false;
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
    if (mip4 !== undefined) {
      const ihl = (pkt[0] & 0x0f) << 2;
      const udpLen = (pkt[ihl + 4] << 8) | pkt[ihl + 5];
      const source = ipv4FromBytes(pkt.subarray(12, 16)).text;
      const out = mip4.handleRequest({
        source, destination: ha.address, sourcePort: (pkt[ihl] << 8) | pkt[ihl + 1],
        payload: pkt.subarray(ihl + 8, Math.min(pkt.length, ihl + udpLen)),
      }, now);
      registrations.inc({ protocol, result: out.reason ?? (out.code <= 1 ? "accepted" : `code-${out.code}`) });
      if (out.reason) log.warn("registration refused", { source, code: out.code, reason: out.reason });
      apply(out.events);
      if (out.reply !== undefined) {
        // RFC 5944 §3.8.3.1: to the request's source address and port. With the binding just
        // made, the encapsulate rule carries an accepted reply to the care-of address.
        const reply = buildUdp4({ src: parseIPv4(ha.address, "address").bytes, dst: parseIPv4(out.replyTo.address, "replyTo").bytes, srcPort: MIP4_PORT, dstPort: out.replyTo.port }, out.reply);
        worker!.forwarder.inject(reply, worker!.emit, now);
      }
      return;
    }
    const out = mip6!.handlePacket(pkt, now);
    registrations.inc({ protocol, result: out.reason ?? (out.status === undefined ? "dropped" : out.status < 128 ? "accepted" : `status-${out.status}`) });
    if (out.reason) log.warn("binding update refused", { status: out.status, reason: out.reason });
    apply(out.events);
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
  const expiry = setInterval(() => apply(mip4?.expire(Date.now()) ?? mip6!.expire(Date.now())), 1000);
  log.info("home agent started", { protocol, address: ha.address, homeNetwork: ha.homeNetwork, securityAssociations: ha.keys.map((k) => ({ homeAddress: k.homeAddress, spi: k.spi, algorithm: k.algorithm })) });
  const w = worker;
  return {
    worker: w,
    bindings: () => (mip4?.bindings() ?? mip6!.bindings()).map((b) => ({ homeAddress: b.homeAddress, careOfAddress: b.careOfAddress, expiresAtMs: b.expiresAtMs })),
    async stop() {
      clearInterval(expiry);
      await w.stop();
    },
  };
}
