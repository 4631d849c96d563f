// The data-plane worker's pipeline: one Ethernet frame in, zero or more Ethernet frames out.
// The worker is a dual-stack router (paper, "The parts" 1) whose kernel neither answers nor
// forwards: this code answers ARP/NDP, decapsulates from known tunnel peers, re-encapsulates
// (flows 3.1 j, 3.2 i), encapsulates for route optimisation (3.2 m) and by `encapsulate` rules
// (the hypervisor host's side, 3.1 f/l, 3.2 d/k), translates (RFC 7915) and routes the rest
// (RFC 1812, RFC 4443). Pure: no I/O, no timers; see README.md for the contract and the steps.
// This class is the facade: the steps are functions in their own files, over the Router (what
// they share) and a PacketState (one packet).
import type { Rule } from "../../lib/rules/rules.js";
import type { NeighbourCache, SharedLearn } from "../neighbour/cache.js";
import type { Binding, CorrespondentChange } from "./correspondent.js";
import { ipv4Bytes, ipv6Bytes } from "./addresses.js";
import type { ForwarderConfig } from "./config.js";
import type { ForwarderCounters } from "./counters.js";
import { frameIn, ip } from "./link.js";
import { PacketState, type Emit } from "./packet.js";
import { announce } from "./responder.js";
import { Router } from "./router.js";
import { CompiledRules } from "./compiled.js";
import type { RuleImage } from "./slots.js";
import { refreshTranslator } from "./translation.js";

export type { Emit } from "./packet.js";

export interface ForwarderOptions {
  /** Offline mode only: the MAC of any next hop that is not a configured neighbour, instead of ARP/NDP. */
  fallbackNeighbourMac?: Uint8Array;
  /**
   * Local delivery for a control plane that shares the worker (a home agent's registrations, the
   * privileged-VM agent's replies). Called with every IP packet that the rules do not re-wrap,
   * unwrap or translate, after decapsulation and before routing, encapsulation and the `local`
   * drop; true means the packet was taken (counted as `deliver`). `packet` is only valid during
   * the call. It may call inject() before it returns.
   */
  intercept?: Intercept;
  /**
   * A control plane that follows stations on the links (the privileged-VM agent's activation of
   * a live-migrated VM): called with every RARP frame (a hypervisor's self-announce after a live
   * migration), and, while `watchingStations` is true, with every frame received, before any
   * other check. `frame` is only valid during the call.
   */
  stationSeen?: StationSeen;
  /**
   * A worker with several threads (dataplane/worker/threads.ts): every neighbour this forwarder
   * learns and every correspondent binding an update changes, to be handed to the other threads'
   * forwarders (learnShared, adoptCorrespondent).
   */
  share?: { neighbourLearned(l: SharedLearn): void; correspondentChanged(c: CorrespondentChange): void };
  /**
   * This forwarder is thread `index` of `count` (workers: N): its IPv4 identifications and IPv6
   * fragment identifications are `index + 1` plus multiples of `count`, none another thread's
   * (packet/identification.ts). Absent: 1, 2, 3, ...
   */
  thread?: { index: number; count: number };
}

/** See ForwarderOptions.intercept. */
export type Intercept = (packet: Uint8Array, ingressIf: number, decapsulated: boolean) => boolean;

/** See ForwarderOptions.stationSeen. */
export type StationSeen = (frame: Uint8Array, ingressIf: number) => void;

function addressOf(address: string): Uint8Array {
  return address.includes(":") ? ipv6Bytes(address, "address") : ipv4Bytes(address, "address");
}

export class Forwarder {
  readonly counters: ForwarderCounters;
  readonly neighbours: NeighbourCache;
  private readonly router: Router;
  /** One packet state per kind of caller, reused: received frames, inject(), tick(). */
  private readonly received: PacketState;
  private readonly injected: PacketState;
  private readonly timer: PacketState;

  /** Throws ForwarderConfigError on a configuration it cannot use (validated as parseForwarderConfig does). */
  constructor(config: ForwarderConfig, now = 0, options: ForwarderOptions = {}) {
    const r = new Router(config, now, options);
    this.router = r;
    this.counters = r.counters;
    this.neighbours = r.neighbours;
    this.received = new PacketState(r.ports, false);
    this.injected = new PacketState(r.ports, true);
    this.timer = new PacketState(r.ports, false);
  }

  /** ARP replies, NAs and other control packets consumed to learn neighbours. */
  get learned(): number {
    return this.router.learned;
  }

  set learned(n: number) {
    this.router.learned = n;
  }

  /** See ForwarderOptions.stationSeen: off, the packet path pays one test per frame. */
  get watchingStations(): boolean {
    return this.router.watchingStations;
  }

  set watchingStations(on: boolean) {
    this.router.watchingStations = on;
  }

  /**
   * Sends an IP packet that a control plane in this process made (a registration reply, a
   * binding update on a VM's behalf): it takes the same decisions as a received packet (rules,
   * encapsulation, routing), except that it is never offered to `intercept`, an `encapsulate`
   * rule applies even when its source is one of our addresses, no TTL / hop limit is spent (it is
   * originated, not forwarded), and ND messages are not taken as received. Never throws.
   */
  inject(packet: Uint8Array, emit: Emit, now?: number): void {
    const r = this.router;
    if (now !== undefined) r.now = now;
    // intercept may inject while a received frame is processed: that frame has its own state.
    const s = this.injected.busy ? new PacketState(r.ports, true) : this.injected;
    s.begin(r.portList[0], emit);
    s.busy = true;
    try {
      ip(r, s, packet, packet.length > 0 && packet[0] >> 4 === 4 ? 4 : 6, false);
    } catch {
      r.counters.drops["internal-error"]++;
      s.inner = undefined;
    } finally {
      s.busy = false;
      s.end();
    }
  }

  /**
   * Adds or removes one of our own addresses at run time: the privileged-VM agent's care-of
   * addresses, where tunnels to its VMs end. Like a configured address, but with no connected route.
   */
  setLocal(address: string, on: boolean): void {
    const a = addressOf(address);
    if (on) this.router.own.add(a);
    else this.router.own.delete(a);
  }

  /** Starts (true) or stops answering ARP/NDP for `address` on every link. */
  setProxied(address: string, on: boolean): void {
    const a = addressOf(address);
    if (on) this.router.proxied.add(a);
    else this.router.proxied.delete(a);
  }

  /** A gratuitous ARP / unsolicited NA for `address` at `mac` on that interface (responder.ts). */
  announce(ifName: string, address: string, emit: Emit, mac?: Uint8Array): void {
    announce(this.router, ifName, address, emit, mac);
  }

  /** The revision of the table in force; -1n before the first one. */
  get revision(): bigint {
    return this.router.rules.revision;
  }

  /** Number of rules in force. */
  get ruleCount(): number {
    return this.router.rules.size;
  }

  /** The rules in force (for inspection; not the hot path). */
  currentRules(): Rule[] {
    return this.router.rules.rules();
  }

  /** A full snapshot. Throws RuleTableError and keeps the old table when a rule is invalid. */
  replaceRules(table: { revision: bigint; rules: readonly Rule[] }): void {
    this.router.rules = CompiledRules.compile(table.revision, table.rules);
    refreshTranslator(this.router);
  }

  /** A full snapshot as another thread's RuleSlots.image() (its rules already checked there); as replaceRules. */
  replaceRulesImage(revision: bigint, image: RuleImage): void {
    this.router.rules = CompiledRules.fromImage(revision, image);
    refreshTranslator(this.router);
  }

  /** A delta by rule key. Throws RuleTableError and changes nothing when a rule is invalid. */
  applyDelta(revision: bigint, updates: readonly Rule[], removes: readonly string[]): void {
    this.router.rules.applyDelta(revision, updates, removes);
    refreshTranslator(this.router);
  }

  /** `packets`: the frames past their Ethernet header, when the caller keeps such views (FrameBatchHandler). */
  processBatch(ingressIf: number, frames: readonly Uint8Array[], count: number, emit: Emit, now?: number, packets?: readonly Uint8Array[]): void {
    const n = Math.min(count, frames.length);
    // Two loops, not `packets?.[i]` in one: that one measured ~5 % slower (bench/pipeline-ab.ts).
    if (packets !== undefined && packets.length >= n) for (let i = 0; i < n; i++) this.processFrame(ingressIf, frames[i], emit, now, packets[i]);
    else for (let i = 0; i < n; i++) this.processFrame(ingressIf, frames[i], emit, now);
  }

  /** `packet`: frame.subarray(14) when the caller has that view (no view is then made per frame). */
  processFrame(ingressIf: number, frame: Uint8Array, emit: Emit, now?: number, packet?: Uint8Array): void {
    const r = this.router;
    if (now !== undefined) r.now = now;
    const port = r.ports.get(ingressIf);
    if (port === undefined) {
      r.drop("unsupported");
      return;
    }
    const s = this.received;
    s.begin(port, emit);
    try {
      // Our own output buffer coming back in (a caller looping frames) must not be overwritten while read.
      if (r.outFrames.holds(frame)) {
        frame = frame.slice();
        packet = undefined;
      }
      frameIn(r, s, frame, packet);
    } catch {
      r.counters.drops["internal-error"]++;
      s.inner = undefined;
    } finally {
      s.end();
    }
  }

  /** What another thread's forwarder learned (ForwarderOptions.share): packets waiting here for that neighbour go out. */
  learnShared(l: SharedLearn, emit: Emit, now: number): void {
    const r = this.router;
    r.now = now;
    const s = this.timer;
    s.emit = emit;
    try {
      r.neighbours.learnShared(l, now, s.send);
    } finally {
      s.end();
    }
  }

  /** The correspondent bindings (route optimisation) this forwarder holds; none without correspondentRouter. */
  correspondentBindings(): Binding[] {
    return this.router.correspondents?.list() ?? [];
  }

  /** A correspondent binding another thread's forwarder took or dropped (ForwarderOptions.share). */
  adoptCorrespondent(c: CorrespondentChange): void {
    this.router.correspondents?.adopt(c);
  }

  tick(now: number, emit: Emit): void {
    const r = this.router;
    r.now = now;
    const s = this.timer;
    s.emit = emit;
    try {
      r.neighbours.tick(now, s.send);
      r.correspondents?.expire(now);
    } finally {
      s.end();
    }
  }
}
