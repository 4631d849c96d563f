// The activation signals the agent waits for: a VM whose port is here runs here once a frame from
// its MAC comes in on its link (its RARP after a live migration, or any first frame). The
// forwarder offers frames only while one is awaited (watchingStations).
import type { Forwarder } from "../../dataplane/forward/index.js";
import { ETHERTYPE, parseMac } from "../../dataplane/packet/ethernet.js";
import type { VmInventoryEntry } from "./config.js";
import type { Bridge } from "./hypervisor.js";
import type { ActivationSignal } from "./timeline.js";

/** A VM whose port is here and whose activation signal the agent waits for. */
export interface Watch {
  vm: VmInventoryEntry;
  bridge: Bridge;
  /** The worker interface the signal must come in on (the visitor link, or the uplink for a VM coming home). */
  ingressIf: number;
}

export class ActivationWatch {
  /** Activation signals awaited, by the VM's MAC as a 48-bit number. */
  private readonly watching = new Map<number, Watch>();

  constructor(private readonly forwarder: Forwarder) {}

  add(w: Watch): void {
    this.watching.set(macNumber(parseMac(w.vm.mac), 0), w);
    this.forwarder.watchingStations = true;
  }

  remove(vm: VmInventoryEntry): void {
    this.watching.delete(macNumber(parseMac(vm.mac), 0));
    this.forwarder.watchingStations = this.watching.size > 0;
  }

  /** The ids of the VMs awaited. */
  awaited(): Set<string> {
    return new Set([...this.watching.values()].map((w) => w.vm.id));
  }

  /** The watch that `frame`, received on `ingressIf`, ends, and its signal; it is awaited no more. */
  take(frame: Uint8Array, ingressIf: number): { watch: Watch; signal: ActivationSignal } | undefined {
    if (frame.length < 14) return undefined;
    const w = this.watching.get(macNumber(frame, 6));
    if (w === undefined || w.ingressIf !== ingressIf) return undefined;
    this.remove(w.vm);
    return { watch: w, signal: ((frame[12] << 8) | frame[13]) === ETHERTYPE.RARP ? "rarp" : "frame" };
  }
}

/** A MAC (6 octets at `off`) as one number: 48 bits fit a double exactly. */
function macNumber(b: Uint8Array, off: number): number {
  return ((b[off] << 8) | b[off + 1]) * 0x1_0000_0000 + (((b[off + 2] << 24) | (b[off + 3] << 16) | (b[off + 4] << 8) | b[off + 5]) >>> 0);
}
