// Route optimisation for visiting IPv6 VMs (flow 3.2 k): "dv sees that the packet came through
// its HA". Everything for a visiting VM arrives through the tunnel, so a correspondent without a
// binding is one whose packets went the long way; it is sent a binding update, which the engine,
// its first hop, takes (dataplane/forward/correspondent.ts).
import type { Logger } from "../../lib/log.js";
import { ipv6FromBytes, parseIPv6 } from "../../lib/net/address.js";
import { BA_STATUS } from "../../dataplane/packet/mip6.js";
import { equalAt } from "../../mobility/protocol.js";
import { buildBindingUpdatePacket, checkAcknowledgement } from "../../mobility/mip6/binding-update.js";
import { answersTo } from "../../mobility/mip6/protocol.js";
import { nextSequence } from "../../mobility/mip6/sequence.js";
import type { AgentConfig } from "./config.js";
import type { Registrar } from "./registration.js";
import type { AgentMetrics } from "./timeline.js";
import type { Visit } from "./visit.js";
import type { AgentWorker } from "./agent.js";

interface Correspondent {
  sequence: number;
  refresh?: NodeJS.Timeout;
}

interface Optimised {
  visit: Visit;
  /** The home address's bytes, to spot correspondents in what arrives for it. */
  home: Uint8Array;
  /** The source of the last packet looked at (a cheap check per packet). */
  last: Uint8Array;
  /** Correspondents sent a binding update, by address. */
  correspondents: Map<string, Correspondent>;
}

export class RouteOptimiser {
  private optimising: Optimised[] = [];

  constructor(
    private readonly cfg: AgentConfig,
    private readonly worker: AgentWorker,
    private readonly registrar: Registrar,
    private readonly metrics: AgentMetrics,
    private readonly log: Logger,
    private readonly now: () => number,
  ) {}

  get active(): boolean {
    return this.optimising.length > 0;
  }

  /** A visiting IPv6 VM now active here: its correspondents get binding updates until the visit ends. */
  add(v: Visit): void {
    const signal = v.ended.signal;
    if (signal.aborted) return;
    const o: Optimised = { visit: v, home: parseIPv6(v.vm.homeAddress, "homeAddress").bytes, last: new Uint8Array(16), correspondents: new Map() };
    this.optimising = [...this.optimising.filter((x) => x.visit.vm.id !== v.vm.id), o];
    signal.addEventListener("abort", () => {
      for (const c of o.correspondents.values()) clearTimeout(c.refresh);
      this.optimising = this.optimising.filter((x) => x !== o);
    }, { once: true });
  }

  /** A decapsulated IPv6 packet: a look at who sends to a visiting VM (on the packet path). */
  note(pkt: Uint8Array): void {
    for (const o of this.optimising) {
      if (!equalAt(pkt, 24, o.home)) continue;
      // The packet path's fast case: the same correspondent as the packet before.
      if (equalAt(pkt, 8, o.last)) return;
      o.last.set(pkt.subarray(8, 24));
      // Link-local and multicast sources are not correspondents.
      if (pkt[8] === 0xff || (pkt[8] === 0xfe && (pkt[9] & 0xc0) === 0x80)) return;
      const cn = ipv6FromBytes(pkt.subarray(8, 24)).text;
      if (o.correspondents.has(cn)) return;
      const entry = { sequence: nextSequence(undefined, this.now()) };
      o.correspondents.set(cn, entry);
      setImmediate(() => this.optimise(o.visit, cn, entry));
      return;
    }
  }

  /** Flow 3.2 k: a binding update to the correspondent. */
  private optimise(v: Visit, cn: string, entry: Correspondent): void {
    const signal = v.ended.signal;
    if (signal.aborted) return;
    const { forwarder, emit } = this.worker;
    entry.sequence = nextSequence(entry.sequence, this.now());
    const lifetimeS = this.cfg.registration.lifetimeS;
    // RFC 6275 §11.7.2 would run return routability first; the engine, which assigned the care-of
    // addresses, checks the binding against its own instead (correspondent.ts).
    const bu = buildBindingUpdatePacket({ homeAddress: v.vm.homeAddress, careOfAddress: v.careOfIPv6, homeAgent: cn, sequence: entry.sequence, lifetimeS, nowMs: this.now(), homeRegistration: false, acknowledge: true });
    const reply = this.registrar.expect(answersTo(bu), 1000, signal);
    forwarder.inject(bu, emit, this.now());
    void reply.then((pkt) => {
      const r = pkt === undefined ? undefined : checkAcknowledgement(pkt);
      // RFC 6275 §11.7.3 (as for a home agent): status 135 carries the last sequence number
      // accepted; continue from there.
      if (r !== undefined && r.status === BA_STATUS.SEQUENCE_NUMBER_OUT_OF_WINDOW && !signal.aborted) {
        entry.sequence = r.sequence;
        return this.optimise(v, cn, entry);
      }
      const result = r === undefined ? "timeout" : r.ok ? "accepted" : (r.reason ?? `status-${r.status}`);
      this.metrics.registrations.inc({ protocol: "mip6-correspondent", result });
      this.log.info("route optimisation", { vmId: v.vm.id, correspondent: cn, careOfIPv6: v.careOfIPv6, result });
      if (signal.aborted) return;
      // Refresh at two thirds of the lifetime; after a failure, try again in a while.
      entry.refresh = setTimeout(() => this.optimise(v, cn, entry), r?.ok ? (lifetimeS * 1000 * 2) / 3 : 5000);
    });
  }
}
