// Registration with the home agent on a VM's behalf (3.1 e–g, 3.2 d–f): the VM's mobile node
// (mobility/), one retransmit and resynchronisation loop for both protocols, and the replies
// taken off the packet path.
import { mobilityProtocol, type MnHaKey, type MobileNode } from "../../mobility/index.js";
import type { AgentConfig, VmInventoryEntry } from "./config.js";
import type { AgentMetrics } from "./timeline.js";
import type { Visit } from "./visit.js";
import type { AgentWorker } from "./agent.js";

interface Waiter {
  match(pkt: Uint8Array): boolean;
  resolve(pkt: Uint8Array | undefined): void;
}

/** Resynchronisations (RFC 6275 §11.7.3) one registration may take before a refusal stands. */
const MAX_RESYNCS = 3;

export class Registrar {
  /** The mobile node of each VM, by id: what it keeps (MIPv6's sequence number) outlives a visit. */
  private readonly nodes = new Map<string, MobileNode>();
  private readonly waiters = new Set<Waiter>();
  private readonly keys: Map<string, MnHaKey>;

  constructor(
    private readonly cfg: AgentConfig,
    private readonly worker: AgentWorker,
    private readonly metrics: AgentMetrics,
    private readonly now: () => number,
  ) {
    this.keys = new Map(cfg.keys.map((k) => [k.homeAddress, k]));
  }

  private node(vm: VmInventoryEntry): MobileNode {
    let node = this.nodes.get(vm.id);
    if (node === undefined) {
      const key = this.keys.get(vm.homeAddress);
      if (key === undefined) throw new Error(`keys: no key for home address ${vm.homeAddress} (VM ${vm.id})`);
      node = mobilityProtocol(vm.family).mobileNode(vm.homeAddress, vm.homeAgent, key);
      this.nodes.set(vm.id, node);
    }
    return node;
  }

  /** The worker's intercept: a packet a registration or binding update waits for is taken. */
  intercept(pkt: Uint8Array): boolean {
    for (const w of this.waiters) {
      if (w.match(pkt)) {
        w.resolve(pkt.slice());
        return true;
      }
    }
    return false;
  }

  /** The first packet that `match` takes within `timeoutMs`; undefined on timeout or abort. */
  expect(match: (pkt: Uint8Array) => boolean, timeoutMs: number, signal: AbortSignal): Promise<Uint8Array | undefined> {
    return new Promise((resolve) => {
      if (signal.aborted) return resolve(undefined);
      const w: Waiter = {
        match,
        resolve: (pkt) => {
          clearTimeout(timer);
          signal.removeEventListener("abort", cancel);
          this.waiters.delete(w);
          resolve(pkt);
        },
      };
      const cancel = () => w.resolve(undefined);
      const timer = setTimeout(cancel, timeoutMs);
      signal.addEventListener("abort", cancel, { once: true });
      this.waiters.add(w);
    });
  }

  /** Registers (lifetime > 0) or deregisters through the tunnel; resolves with the attempts it took. */
  async register(v: Visit, lifetimeS: number): Promise<number> {
    const node = this.node(v.vm);
    const signal = v.ended.signal;
    const { firstRetransmitMs, maxAttempts } = this.cfg.registration;
    const protocol = node.protocol.name;
    // The retransmission timer keeps the RFCs' own schedule, not lib/retry.ts's backoff: it is how
    // long a request waits for its reply, doubled at each retransmission (RFC 5944 §3.6.3, RFC 6275
    // §11.8), here from registration.firstRetransmitMs and capped at 2 s (below RFC 6275's
    // MAX_BINDACK_TIMEOUT of 32 s), so that a lost reply does not hold the handover long. No jitter:
    // neither RFC asks for it, and each request is one VM's, to its own home agent.
    let wait = firstRetransmitMs;
    let resyncs = 0;
    for (let attempt = 1; attempt <= maxAttempts; attempt++) {
      if (signal.aborted) throw new Error("the VM left before its registration was acknowledged");
      const now = this.now();
      const registration = node.register(v, lifetimeS, now);
      const reply = this.expect(registration.matches, wait, signal);
      this.worker.forwarder.inject(registration.packet, this.worker.emit, now);
      const got = await reply;
      if (got === undefined) {
        this.metrics.registrations.inc({ protocol, result: "timeout" });
        wait = Math.min(wait * 2, 2000);
        continue;
      }
      const r = registration.check(got);
      if (!r.ok && r.resync !== undefined && resyncs < MAX_RESYNCS) {
        // RFC 6275 §11.7.3: the home agent's last accepted sequence number comes back with
        // status 135 (another host's agent registered this VM with a later one); go on from it.
        this.metrics.registrations.inc({ protocol, result: "sequence-resync" });
        node.resync(r.resync);
        // The home agent answered: the resend is not a retransmission.
        resyncs++;
        attempt--;
        continue;
      }
      this.metrics.registrations.inc({ protocol, result: r.ok ? "accepted" : (r.reason ?? "refused") });
      if (!r.ok) throw new Error(`home agent ${v.vm.homeAgent} refused the registration of ${v.vm.id}: ${r.reason ?? JSON.stringify(r)}`);
      return attempt;
    }
    throw new Error(`no answer from home agent ${v.vm.homeAgent} after ${maxAttempts} attempts`);
  }

  /**
   * Deregistration straight to the home agent on the home link (lifetime 0, care-of = home). Its
   * reply goes to the VM itself, which has no Mobile IP stack: it is sent, not awaited.
   */
  deregisterAtHome(vm: VmInventoryEntry): void {
    const node = this.node(vm);
    const now = this.now();
    this.worker.forwarder.inject(node.deregisterAtHome(now), this.worker.emit, now);
    this.metrics.registrations.inc({ protocol: node.protocol.name, result: "deregistration-sent" });
  }
}
