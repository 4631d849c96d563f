// The data-plane worker's pipeline: one Ethernet frame in, zero or more Ethernet frames out.
// The worker is a dual-stack router (paper, "The parts" 1) whose kernel neither answers nor
// forwards: this code answers ARP/NDP, decapsulates from known tunnel peers, re-encapsulates
// (flows 3.1 j, 3.2 i), encapsulates for route optimisation (3.2 m) and by `encapsulate` rules
// (the hypervisor host's side, 3.1 f/l, 3.2 d/k), translates (RFC 7915) and routes the rest
// (RFC 1812, RFC 4443). Pure: no I/O, no timers; see README.md for the contract.
import type { Rule } from "../../lib/rules/rules.js";
import { ARP_LENGTH, ARP_OPERATION, parseArp, writeArp } from "../packet/arp.js";
import { checksumOk as checksumOkBinding, pseudoHeaderSum6At as pseudoHeaderSum6AtBinding, updateChecksum16 as updateChecksum16Binding } from "../packet/checksum.js";
import { BROADCAST_MAC, ETHERTYPE as ETHERTYPEBinding, ipv6MulticastMac, parseMac, writeEthernetHeader } from "../packet/ethernet.js";
import { fragmentIPv4Packet as fragmentIPv4PacketBinding } from "../packet/fragment.js";
import { buildIcmp4Echo, buildIcmp4Error, ICMP4_TYPE as ICMP4_TYPEBinding, ICMP4_UNREACH, isIcmp4Error, mayQuoteIcmp4 } from "../packet/icmp4.js";
import { buildIcmp6Echo, buildIcmp6Error, ICMP6_TYPE as ICMP6_TYPEBinding, ICMP6_UNREACH, mayQuoteIcmp6, verifyIcmp6Checksum as verifyIcmp6ChecksumBinding } from "../packet/icmp6.js";
import { IPPROTO as IPPROTOBinding } from "../packet/ipv4.js";
import { newIPv6Chain, walkIPv6Extensions as walkIPv6ExtensionsBinding, type IPv6Chain } from "../packet/ipv6.js";
import { ALL_NODES, buildNeighborAdvertisement, buildNeighborSolicitation, parseNd, solicitedNodeAddress } from "../packet/nd.js";
import { NeighbourCache, type NeighbourEntry } from "../neighbour/cache.js";
import { Translator, type TranslateResult } from "../translate/index.js";
import type { AddressMapping } from "../translate/index.js";
import { decapsulate as decapsulateBinding } from "../tunnel/decapsulate.js";
import { encapsulate as encapsulateBinding } from "../tunnel/encapsulate.js";
import { fragmentationNeeded, packetTooBig, timeExceeded4, timeExceeded6 } from "../tunnel/errors.js";
import { AddressSet, type IPFamily } from "../tunnel/peers.js";
import { reencapsulate as reencapsulateBinding } from "../tunnel/reencapsulate.js";
import { relayTunnelIcmpError } from "../tunnel/relay.js";
import type { TunnelResult } from "../tunnel/result.js";
import { DEFAULT_TUNNEL_HOP_LIMIT, TunnelNode, type TunnelKind } from "../tunnel/tunnel.js";
import { inPrefix6 as inPrefix6Binding, ipv4Bytes, ipv6Bytes, mask4 as mask4Binding, prefixBytes, word4 as word4Binding } from "./addresses.js";
import { checked, ForwarderConfigError, macBytes, parseForwarderConfig, type ForwarderConfig } from "./config.js";
import { newCounters, type ForwardAction, type ForwarderCounters, type InterfaceCounters } from "./counters.js";
import { CorrespondentBindings, type CareOfLookup } from "./correspondent.js";
import { CompiledRules, type Encap, type Reencap4, type Reencap6, type TunnelRoute } from "./rules.js";


// tsx compiles each imported binding into a getter call; module-level copies keep those calls off
// the per-packet path (measured: ~15% of a re-encapsulation).
const checksumOk = checksumOkBinding;
const pseudoHeaderSum6At = pseudoHeaderSum6AtBinding;
const updateChecksum16 = updateChecksum16Binding;
const ETHERTYPE = ETHERTYPEBinding;
const fragmentIPv4Packet = fragmentIPv4PacketBinding;
const IPPROTO = IPPROTOBinding;
const walkIPv6Extensions = walkIPv6ExtensionsBinding;
const decapsulate = decapsulateBinding;
const encapsulate = encapsulateBinding;
const reencapsulate = reencapsulateBinding;
const inPrefix6 = inPrefix6Binding;
const word4 = word4Binding;
const mask4 = mask4Binding;
const verifyIcmp6Checksum = verifyIcmp6ChecksumBinding;
const ICMP6_TYPE = ICMP6_TYPEBinding;
const ICMP4_TYPE = ICMP4_TYPEBinding;

export type Emit = (egressIf: number, frame: Uint8Array) => void;

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
}

/** See ForwarderOptions.intercept. */
export type Intercept = (packet: Uint8Array, ingressIf: number, decapsulated: boolean) => boolean;

/** See ForwarderOptions.stationSeen. */
export type StationSeen = (frame: Uint8Array, ingressIf: number) => void;

interface Port {
  index: number;
  name: string;
  mac: Uint8Array;
  mtu: number;
  /** Accepts unicast frames to any MAC (InterfaceConfig.promiscuous). */
  promiscuous: boolean;
  v4: { value: number; bytes: Uint8Array; mask: number }[];
  v6: { bytes: Uint8Array; length: number }[];
  /** fe80::/64 + modified EUI-64 of the MAC (RFC 4291 §2.5.1, App. A); NS source when there is no other. */
  linkLocal: Uint8Array;
  counters: InterfaceCounters;
}

interface Route4 { network: number; mask: number; length: number; port: Port; gateway: Uint8Array | null }
interface Route6 { prefix: Uint8Array; length: number; port: Port; gateway: Uint8Array | null }

const ENCAP_ACTION: Record<TunnelKind, ForwardAction> = { "4in4": "encap-4in4", "6in6": "encap-6in6", "4in6": "encap-4in6", "6in4": "encap-6in4" };

const ETH = 14;
const MAX_IP = 65535;
const NO_EMIT: Emit = () => {};

function linkLocalFor(mac: Uint8Array): Uint8Array {
  const a = new Uint8Array(16);
  a[0] = 0xfe;
  a[1] = 0x80;
  a[8] = mac[0] ^ 0x02;
  a[9] = mac[1];
  a[10] = mac[2];
  a[11] = 0xff;
  a[12] = 0xfe;
  a[13] = mac[3];
  a[14] = mac[4];
  a[15] = mac[5];
  return a;
}

function isZero(buf: Uint8Array, off: number, n: number): boolean {
  for (let i = 0; i < n; i++) if (buf[off + i] !== 0) return false;
  return true;
}

export class Forwarder {
  readonly counters: ForwarderCounters = newCounters();
  readonly neighbours: NeighbourCache;
  /** ARP replies, NAs and other control packets consumed to learn neighbours. */
  learned = 0;
  private readonly ports = new Map<number, Port>();
  private readonly portList: Port[] = [];
  private readonly routes4: Route4[] = [];
  private readonly routes6: Route6[] = [];
  private readonly own = new AddressSet();
  /** Addresses answered by proxy ARP/NDP on every link, set at run time (a home agent's bindings, RFC 5944 §4.6, RFC 6275 §10.4.1). */
  private readonly proxied = new AddressSet();
  private readonly intercept?: Intercept;
  private readonly stationSeen?: StationSeen;
  /** See ForwarderOptions.stationSeen: off, the packet path pays one test per frame. */
  watchingStations = false;
  /** The correspondents' binding cache (route optimisation), when configured. */
  private readonly correspondents?: CorrespondentBindings;
  private readonly careOf: CareOfLookup = {
    careOfIPv4For: (careOfIPv6) => this.rules.reencap6For(careOfIPv6, 0)?.careOfIPv4,
    peer6in4: (careOfIPv4) => this.rules.peers["6in4"].lookup(careOfIPv4, 0, 4),
  };
  /** Set while a packet handed to inject() is processed: it is ours, and not offered to intercept. */
  private injecting = false;
  private readonly served4: { network: number; mask: number }[] = [];
  private readonly served6: { prefix: Uint8Array; length: number }[] = [];
  private readonly node: TunnelNode;
  private readonly tunnelHopLimit: number;
  private readonly source4?: Uint8Array;
  private readonly source6?: Uint8Array;
  private readonly config: ForwarderConfig;
  private rules = CompiledRules.empty();
  private translator: Translator;
  private translatorMapping: AddressMapping;
  /** Output frame: Ethernet header at 0, IP packet at 14; `outIp` is the IP part. */
  private readonly out = new Uint8Array(ETH + MAX_IP + 64);
  private readonly outIp = this.out.subarray(ETH);
  private readonly nh4 = new Uint8Array(4);
  private readonly nh6 = new Uint8Array(16);
  private readonly chain = newIPv6Chain();
  private now: number;
  private emitTo: Emit = NO_EMIT;
  /** The frame being processed (its Ethernet source answers ND/ARP). */
  private frame: Uint8Array = this.out;
  /** Counts and passes on every frame we send, including queued ones flushed later. */
  private readonly send: Emit = (ifIndex, frame) => {
    const c = this.ports.get(ifIndex)?.counters;
    if (c !== undefined) {
      c.txPackets++;
      c.txBytes += frame.length;
    }
    this.emitTo(ifIndex, frame);
  };

  /** Throws ForwarderConfigError on a configuration it cannot use (validated as parseForwarderConfig does). */
  constructor(config: ForwarderConfig, now = 0, options: ForwarderOptions = {}) {
    this.config = parseForwarderConfig(config);
    this.now = now;
    const cfg = this.config;
    for (const [i, ic] of cfg.interfaces.entries()) {
      const mac = macBytes(ic.mac, `worker.interfaces[${i}].mac`);
      const counters: InterfaceCounters = { rxPackets: 0, rxBytes: 0, txPackets: 0, txBytes: 0 };
      const port: Port = { index: ic.index, name: ic.name, mac, mtu: ic.mtu ?? 1500, promiscuous: ic.promiscuous === true, v4: [], v6: [], linkLocal: linkLocalFor(mac), counters };
      for (const a of ic.addresses ?? []) {
        const p = prefixBytes(a, "address", false);
        if (p.bytes.length === 4) {
          const value = word4(p.bytes);
          port.v4.push({ value, bytes: p.bytes, mask: mask4(p.length) });
          this.routes4.push({ network: (value & mask4(p.length)) >>> 0, mask: mask4(p.length), length: p.length, port, gateway: null });
        } else {
          port.v6.push({ bytes: p.bytes, length: p.length });
          const net = Uint8Array.from(p.bytes);
          for (let b = 0; b < 16; b++) net[b] &= (0xff << Math.max(0, Math.min(8, 8 - (p.length - 8 * b)))) & 0xff;
          this.routes6.push({ prefix: net, length: p.length, port, gateway: null });
        }
        this.own.add(p.bytes);
      }
      this.own.add(port.linkLocal);
      this.ports.set(port.index, port);
      this.portList.push(port);
      this.counters.interfaces.set(port.index, counters);
    }
    const byName = new Map(this.portList.map((p) => [p.name, p]));
    for (const [i, r] of (cfg.routes ?? []).entries()) {
      const p = prefixBytes(r.prefix, `worker.routes[${i}].prefix`, true);
      const port = byName.get(r.interface)!;
      const gateway = r.via === undefined ? null : checked(`worker.routes[${i}].via`, () => (p.bytes.length === 4 ? ipv4Bytes(r.via, "via") : ipv6Bytes(r.via, "via")));
      if (p.bytes.length === 4) this.routes4.push({ network: word4(p.bytes), mask: mask4(p.length), length: p.length, port, gateway });
      else this.routes6.push({ prefix: p.bytes, length: p.length, port, gateway });
    }
    // Longest prefix first; static routes before connected ones of the same length. Route
    // tables of a worker are tens of entries, so a scan beats a trie here.
    this.routes4.sort((a, b) => b.length - a.length);
    this.routes6.sort((a, b) => b.length - a.length);
    for (const s of cfg.served ?? []) {
      const p = prefixBytes(s, "served", true);
      if (p.bytes.length === 4) this.served4.push({ network: word4(p.bytes), mask: mask4(p.length) });
      else this.served6.push({ prefix: p.bytes, length: p.length });
    }
    const t = cfg.tunnels ?? {};
    this.tunnelHopLimit = t.hopLimit ?? DEFAULT_TUNNEL_HOP_LIMIT;
    this.source4 = t.source4 === undefined ? undefined : ipv4Bytes(t.source4, "worker.tunnels.source4");
    this.source6 = t.source6 === undefined ? undefined : ipv6Bytes(t.source6, "worker.tunnels.source6");
    const first4 = this.portList.find((p) => p.v4.length > 0)?.v4[0].bytes;
    const first6 = this.portList.find((p) => p.v6.length > 0)?.v6[0].bytes;
    const endpoints: Uint8Array[] = [];
    for (const p of this.portList) {
      for (const a of p.v4) endpoints.push(a.bytes);
      for (const a of p.v6) endpoints.push(a.bytes);
    }
    this.node = new TunnelNode({
      endpoints,
      icmpSource4: t.icmpSource4 === undefined ? first4 : ipv4Bytes(t.icmpSource4, "worker.tunnels.icmpSource4"),
      icmpSource6: t.icmpSource6 === undefined ? first6 : ipv6Bytes(t.icmpSource6, "worker.tunnels.icmpSource6"),
    });
    this.neighbours = new NeighbourCache({ solicit: (e, unicast, emit) => this.solicit(e, unicast, emit), dropped: (n) => (this.counters.drops["no-neighbour"] += n) }, cfg.neighbourTimers, options.fallbackNeighbourMac);
    for (const [i, n] of (cfg.neighbours ?? []).entries()) {
      const port = byName.get(n.interface)!;
      const a = checked(`worker.neighbours[${i}].address`, () => (n.address.includes(":") ? ipv6Bytes(n.address, "address") : ipv4Bytes(n.address, "address")));
      this.neighbours.addPermanent(port.index, a, parseMac(n.mac), now);
    }
    this.translatorMapping = this.rules.mapping;
    this.translator = this.newTranslator(1);
    this.intercept = options.intercept;
    this.stationSeen = options.stationSeen;
    if (cfg.correspondentRouter) this.correspondents = new CorrespondentBindings();
  }

  /**
   * Sends an IP packet that a control plane in this process made (a registration reply, a
   * binding update on a VM's behalf): it takes the same decisions as a received packet (rules,
   * encapsulation, routing), except that it is never offered to `intercept`, an `encapsulate`
   * rule applies even when its source is one of our addresses, no TTL / hop limit is spent (it is
   * originated, not forwarded), and ND messages are not taken as received. Never throws.
   */
  inject(packet: Uint8Array, emit: Emit, now?: number): void {
    if (now !== undefined) this.now = now;
    // intercept may answer at once: the received frame being processed goes on afterwards.
    const outerEmit = this.emitTo;
    const outerInjecting = this.injecting;
    this.emitTo = emit;
    this.injecting = true;
    try {
      const port = this.portList[0];
      if (packet.length > 0 && packet[0] >> 4 === 4) this.ipv4(port, packet, false);
      else this.ipv6(port, packet, false);
    } catch {
      this.counters.drops["internal-error"]++;
    } finally {
      this.injecting = outerInjecting;
      this.emitTo = outerEmit;
    }
  }

  /**
   * Adds or removes one of our own addresses at run time: the privileged-VM agent's care-of
   * addresses, where tunnels to its VMs end. Like a configured address, but with no connected route.
   */
  setLocal(address: string, on: boolean): void {
    const a = address.includes(":") ? ipv6Bytes(address, "address") : ipv4Bytes(address, "address");
    if (on) this.own.add(a);
    else this.own.delete(a);
  }

  /** Starts (true) or stops answering ARP/NDP for `address` on every link. */
  setProxied(address: string, on: boolean): void {
    const a = address.includes(":") ? ipv6Bytes(address, "address") : ipv4Bytes(address, "address");
    if (on) this.proxied.add(a);
    else this.proxied.delete(a);
  }

  /**
   * Tells a link that `address` is now at `mac` (default: the interface's own MAC): a gratuitous
   * ARP request for IPv4 (RFC 5944 §4.6, RFC 5227 §3 "ARP Announcement"), an unsolicited Neighbor
   * Advertisement with the Override flag to all-nodes for IPv6 (RFC 4861 §7.2.6). The Ethernet
   * source is always the interface's MAC, so switches do not learn `mac` on our port.
   */
  announce(ifName: string, address: string, emit: Emit, mac?: Uint8Array): void {
    const port = this.portList.find((p) => p.name === ifName);
    if (port === undefined) throw new ForwarderConfigError("interface", `no interface is named '${ifName}'`);
    const hw = mac ?? port.mac;
    if (!address.includes(":")) {
      const a = ipv4Bytes(address, "address");
      const out = new Uint8Array(ETH + ARP_LENGTH);
      writeEthernetHeader(out, 0, BROADCAST_MAC, port.mac, ETHERTYPE.ARP);
      writeArp(out, ETH, ARP_OPERATION.REQUEST, hw, a, new Uint8Array(6), a);
      this.counters.actions.arp++;
      port.counters.txPackets++;
      port.counters.txBytes += out.length;
      return emit(port.index, out);
    }
    const a = ipv6Bytes(address, "address");
    const na = buildNeighborAdvertisement({ src: port.linkLocal, dst: ALL_NODES, target: a, router: false, solicited: false, override: true, targetLinkLayer: hw });
    const out = new Uint8Array(ETH + na.length);
    writeEthernetHeader(out, 0, ipv6MulticastMac(ALL_NODES), port.mac, ETHERTYPE.IPV6);
    out.set(na, ETH);
    this.counters.actions.nd++;
    port.counters.txPackets++;
    port.counters.txBytes += out.length;
    emit(port.index, out);
  }

  private newTranslator(firstIdentification: number): Translator {
    const s = this.config.translator ?? {};
    const v4 = this.portList.filter((p) => p.v4.length > 0).map((p) => p.mtu);
    const v6 = this.portList.filter((p) => p.v6.length > 0).map((p) => p.mtu);
    const first4 = this.portList.find((p) => p.v4.length > 0)?.v4[0].value;
    try {
      return new Translator({
        mapping: this.rules.mapping,
        lowestIpv6Mtu: s.lowestIpv6Mtu,
        // The translator checks one MTU per family: the smallest of the interfaces of that family.
        ipv4Mtu: v4.length > 0 ? Math.min(...v4) : undefined,
        ipv6Mtu: v6.length > 0 ? Math.max(1280, Math.min(...v6)) : undefined,
        udpZeroChecksum: s.udpZeroChecksum,
        icmpErrorSource4: s.icmpErrorSource4 === undefined ? undefined : word4(ipv4Bytes(s.icmpErrorSource4, "icmpErrorSource4")),
        // The translator's own ICMPv4 errors come from this router, not from the RFC 6791 pool.
        routerAddress4: s.routerAddress4 !== undefined ? word4(ipv4Bytes(s.routerAddress4, "routerAddress4")) : first4,
        routerAddress6: s.routerAddress6 === undefined ? undefined : ipv6Bytes(s.routerAddress6, "routerAddress6"),
        sendUntranslatableErrors: s.sendUntranslatableErrors,
      }, firstIdentification);
    } catch (e) {
      throw new ForwarderConfigError("worker.translator", (e as Error).message);
    }
  }

  /** The revision of the table in force; -1n before the first one. */
  get revision(): bigint {
    return this.rules.revision;
  }

  /** Number of rules in force. */
  get ruleCount(): number {
    return this.rules.size;
  }

  /** The rules in force (for inspection; not the hot path). */
  currentRules(): Rule[] {
    return this.rules.rules();
  }

  /** A full snapshot. Throws RuleTableError and keeps the old table when a rule is invalid. */
  replaceRules(table: { revision: bigint; rules: readonly Rule[] }): void {
    const next = CompiledRules.compile(table.revision, table.rules);
    this.rules = next;
    this.refreshTranslator();
  }

  /** A delta by rule key. Throws RuleTableError and changes nothing when a rule is invalid. */
  applyDelta(revision: bigint, updates: readonly Rule[], removes: readonly string[]): void {
    this.rules.applyDelta(revision, updates, removes);
    this.refreshTranslator();
  }

  private refreshTranslator(): void {
    if (this.rules.mapping === this.translatorMapping) return;
    this.translatorMapping = this.rules.mapping;
    this.translator = this.newTranslator(this.translator.nextIdentification());
  }

  processBatch(ingressIf: number, frames: readonly Uint8Array[], count: number, emit: Emit, now?: number): void {
    const n = Math.min(count, frames.length);
    for (let i = 0; i < n; i++) this.processFrame(ingressIf, frames[i], emit, now);
  }

  processFrame(ingressIf: number, frame: Uint8Array, emit: Emit, now?: number): void {
    if (now !== undefined) this.now = now;
    this.emitTo = emit;
    try {
      // Our own output buffer coming back in (a caller looping frames) must not be overwritten while read.
      if (frame.buffer === this.out.buffer) frame = frame.slice();
      this.frameIn(ingressIf, frame);
    } catch {
      this.counters.drops["internal-error"]++;
    } finally {
      this.emitTo = NO_EMIT;
    }
  }

  tick(now: number, emit: Emit): void {
    this.now = now;
    this.emitTo = emit;
    try {
      this.neighbours.tick(now, this.send);
      this.correspondents?.expire(now);
    } finally {
      this.emitTo = NO_EMIT;
    }
  }

  private drop(reason: string): void {
    this.counters.drops[reason]++;
  }

  private frameIn(ingressIf: number, frame: Uint8Array): void {
    const port = this.ports.get(ingressIf);
    if (port === undefined) return this.drop("unsupported");
    port.counters.rxPackets++;
    port.counters.rxBytes += frame.length;
    if (frame.length < ETH) return this.drop("malformed");
    for (const p of this.portList) {
      const m = p.mac;
      if (frame[6] === m[0] && frame[7] === m[1] && frame[8] === m[2] && frame[9] === m[3] && frame[10] === m[4] && frame[11] === m[5]) return this.drop("own-frame");
    }
    if (this.watchingStations && this.stationSeen !== undefined) this.stationSeen(frame, ingressIf);
    const m = port.mac;
    // Unicast frames for other stations: the capture is promiscuous.
    if ((frame[0] & 1) === 0 && !port.promiscuous && !(frame[0] === m[0] && frame[1] === m[1] && frame[2] === m[2] && frame[3] === m[3] && frame[4] === m[4] && frame[5] === m[5])) return this.drop("not-for-us");
    this.frame = frame;
    const type = (frame[12] << 8) | frame[13];
    const payload = frame.subarray(ETH);
    if (type === ETHERTYPE.IPV4) {
      // IP to a link-layer broadcast/multicast is not routed (RFC 1812 §5.3.4 for broadcast).
      if ((frame[0] & 1) !== 0) return this.drop("not-for-us");
      return this.ipv4(port, payload, false);
    }
    if (type === ETHERTYPE.IPV6) return this.ipv6(port, payload, false, (frame[0] & 1) !== 0);
    if (type === ETHERTYPE.ARP) return this.arp(port, frame);
    // RFC 903 RARP: no one here answers it; QEMU sends it from a VM's MAC once the VM runs after
    // a live migration, and OVN's activation-strategy=rarp moves a port on it, as the agent does.
    if (type === ETHERTYPE.RARP && this.stationSeen !== undefined && !this.watchingStations) this.stationSeen(frame, ingressIf);
    return this.drop("unsupported");
  }

  // ---------------------------------------------------------------- IPv4

  private ipv4(port: Port, pkt: Uint8Array, decapsulated: boolean): void {
    if (pkt.length < 20 || pkt[0] >> 4 !== 4) return this.drop("malformed");
    const ihl = (pkt[0] & 0x0f) << 2;
    const total = (pkt[2] << 8) | pkt[3];
    if (ihl < 20 || total < ihl || total > pkt.length) return this.drop("malformed");
    // RFC 1812 §5.2.2: a router discards a datagram whose header checksum is wrong.
    if (!checksumOk(pkt, 0, ihl)) return this.drop("ipv4-header-checksum");
    if (total < pkt.length) pkt = pkt.subarray(0, total);
    const dst = word4(pkt, 16);
    const src = word4(pkt, 12);
    // RFC 1812 §5.3.7: no forwarding to or from multicast/broadcast/"this network"/loopback here.
    if (dst >>> 28 >= 0xe || dst >>> 24 === 0 || dst >>> 24 === 127) return this.drop("not-for-us");
    if (src >>> 28 >= 0xe || src >>> 24 === 127) return this.drop("malformed");
    if (!sound4(pkt, 0, this.chain)) return this.drop("malformed");
    const proto = pkt[9];
    const rules = this.rules;
    if (proto === IPPROTO.IPIP) {
      const r = rules.reencap4For(dst);
      if (r !== undefined) {
        if (decapsulated) return this.drop("decap-loop");
        return this.reencap4(pkt, r);
      }
    }
    const own = this.own.has(pkt, 16, 4);
    const mapped = rules.isMappedIPv4(dst);
    const local = own || mapped || this.inServed4(dst);
    if ((proto === IPPROTO.IPIP || proto === IPPROTO.IPV6) && local) {
      const kind: TunnelKind = proto === IPPROTO.IPIP ? "4in4" : "6in4";
      if (rules.peers[kind].lookup(pkt, 12, 4) !== undefined) {
        if (decapsulated) return this.drop("decap-loop");
        return this.decap(port, pkt, kind);
      }
      // RFC 2003 §7, RFC 4213 §3.6: tunnel packets from anyone else are dropped silently.
      if (!mapped) return this.drop("unknown-peer");
    }
    if (mapped) {
      if (UNTRANSLATABLE_4.has(proto)) return this.drop("untranslatable-protocol");
      return this.translated(this.translator.translate4to6(pkt), "translate-4to6");
    }
    // After translation: mapped destinations are VMs behind the translator, not a local control plane.
    if (this.intercept !== undefined && !this.injecting && this.intercept(pkt, port.index, decapsulated)) {
      this.counters.actions.deliver++;
      return;
    }
    if (own) return this.local4(pkt);
    if (local) return this.drop("no-rule");
    // An encapsulate rule replaces the routing table for what would be routed, except for packets
    // that came out of a tunnel (one decapsulation and one encapsulation per packet at most; the
    // reencap rules, which check the peer, are the only way from one tunnel into another) and
    // packets from our own addresses (our tunnel output looping back to us).
    if (!decapsulated && rules.encapCount4 > 0) {
      const e = rules.encap4For(src, dst);
      if (e !== undefined && (this.injecting || !this.own.has(pkt, 12, 4))) return this.encap(pkt, e);
    }
    // RFC 1812 §5.3.1: only a forwarded packet spends TTL; ours leaves as the control plane made it.
    if (this.injecting) return this.originate(pkt, "route");
    this.route4(pkt);
  }

  private inServed4(a: number): boolean {
    const s = this.served4;
    for (let i = 0; i < s.length; i++) if (((a & s[i].mask) >>> 0) === s[i].network) return true;
    return this.rules.reencap4.has(a);
  }

  private lookup4(a: number): Route4 | undefined {
    const r = this.routes4;
    for (let i = 0; i < r.length; i++) if (((a & r[i].mask) >>> 0) === r[i].network) return r[i];
    return undefined;
  }

  /** RFC 1812 §5.2, §5.3.1: plain IPv4 forwarding. */
  private route4(pkt: Uint8Array): void {
    const rt = this.lookup4(word4(pkt, 16));
    if (rt === undefined) {
      // RFC 1812 §5.2.7.1: Destination Unreachable, network unreachable.
      this.error4(pkt, ICMP4_TYPE.DESTINATION_UNREACHABLE, ICMP4_UNREACH.NET, 0);
      return this.drop("no-route");
    }
    // RFC 1812 §5.3.1: a TTL that would reach zero is not forwarded; Time Exceeded goes back.
    if (pkt[8] <= 1) return this.tunnelOutcome(timeExceeded4(this.node, pkt), "route", undefined);
    const len = pkt.length;
    const out = this.outIp;
    out.set(pkt);
    out[8]--;
    // RFC 1624: the checksum follows the TTL word (TTL, protocol).
    const c = updateChecksum16((out[10] << 8) | out[11], ((out[8] + 1) << 8) | out[9], (out[8] << 8) | out[9]);
    out[10] = c >> 8;
    out[11] = c & 0xff;
    const nextHop = rt.gateway ?? this.copy4(out, 16);
    if (len > rt.port.mtu) {
      // RFC 1812 §5.2.6 / RFC 1191: DF set → Fragmentation Needed with the next-hop MTU; else fragment.
      if ((out[6] & 0x40) !== 0) return this.tunnelOutcome(fragmentationNeeded(this.node, pkt, rt.port.mtu), "route", undefined);
      const frags = fragmentIPv4Packet(out.subarray(0, len), rt.port.mtu);
      if (frags === undefined) return this.drop("too-big");
      for (const f of frags) {
        out.set(f);
        this.counters.actions.route++;
        this.transmit(rt.port, 4, nextHop, f.length);
      }
      return;
    }
    this.counters.actions.route++;
    this.transmit(rt.port, 4, nextHop, len);
  }

  private copy4(buf: Uint8Array, off: number): Uint8Array {
    const n = this.nh4;
    n[0] = buf[off];
    n[1] = buf[off + 1];
    n[2] = buf[off + 2];
    n[3] = buf[off + 3];
    return n;
  }

  private copy6(buf: Uint8Array, off: number): Uint8Array {
    const n = this.nh6;
    for (let i = 0; i < 16; i++) n[i] = buf[off + i];
    return n;
  }

  /** An ICMPv4 error from this router about `pkt` (RFC 1812 §4.3.2.7 decides whether one may go). */
  private error4(pkt: Uint8Array, type: number, code: number, rest: number): void {
    const src = this.node.icmpSource4;
    if (src === undefined || !mayQuoteIcmp4(pkt)) return;
    this.counters.actions.icmp++;
    this.originate(buildIcmp4Error(type, code, rest, pkt, src, pkt.subarray(12, 16)), undefined);
  }

  /** Echo requests to our own addresses are answered (RFC 1122 §3.2.2.6); anything else stops here. */
  private local4(pkt: Uint8Array): void {
    const ihl = (pkt[0] & 0x0f) << 2;
    const fragmented = (((pkt[6] << 8) | pkt[7]) & 0x3fff) !== 0;
    if (pkt[9] === IPPROTO.ICMP && !fragmented && pkt.length >= ihl + 8 && pkt[ihl] === ICMP4_TYPE.ECHO_REQUEST && pkt[ihl + 1] === 0 && checksumOk(pkt, ihl, pkt.length)) {
      const id = (pkt[ihl + 4] << 8) | pkt[ihl + 5];
      const seq = (pkt[ihl + 6] << 8) | pkt[ihl + 7];
      const reply = buildIcmp4Echo({ src: pkt.subarray(16, 20), dst: pkt.subarray(12, 16), ttl: 64 }, true, id, seq, pkt.subarray(ihl + 8));
      this.counters.actions.icmp++;
      return this.originate(reply, undefined);
    }
    if (pkt[9] === IPPROTO.ICMP && !fragmented && pkt.length >= ihl + 8 && isIcmp4Error(pkt[ihl])) return this.relay(pkt);
    this.drop("local");
  }

  /**
   * An ICMP error to us about one of our tunnel packets is passed on to the inner packet's source
   * (RFC 2003 §4, RFC 2473 §8); other errors end here. The reported path MTU is not kept: our
   * tunnels use the egress link MTU (see README, "Not done").
   */
  private relay(pkt: Uint8Array): void {
    const r = relayTunnelIcmpError(this.node, pkt).result;
    if (r.action === "drop" && r.reason === "not-tunnel") return this.drop("local");
    this.tunnelOutcome(r, "icmp", undefined);
  }

  // ---------------------------------------------------------------- IPv6

  private ipv6(port: Port, pkt: Uint8Array, decapsulated: boolean, linkMulticast = false): void {
    if (pkt.length < 40 || pkt[0] >> 4 !== 6) return this.drop("malformed");
    const total = 40 + ((pkt[4] << 8) | pkt[5]);
    if (total > pkt.length) return this.drop("malformed");
    if (total < pkt.length) pkt = pkt.subarray(0, total);
    // RFC 4291 §2.7: a multicast source is invalid.
    if (pkt[8] === 0xff) return this.drop("malformed");
    const nh = pkt[6];
    // An inject()ed packet has no ingress link to learn a neighbour on or answer to.
    if (!decapsulated && !this.injecting && nh === IPPROTO.ICMPV6 && total >= 48 && pkt[40] >= ICMP6_TYPE.ROUTER_SOLICITATION && pkt[40] <= ICMP6_TYPE.REDIRECT) return this.nd(port, pkt);
    if (pkt[24] === 0xff || linkMulticast) return this.drop("not-for-us");
    if (!sound6(pkt, 0, this.chain)) return this.drop("malformed");
    const rules = this.rules;
    const tp = tunnelProtocol6(pkt);
    const r6 = rules.reencap6For(pkt, 24);
    if (r6 !== undefined) {
      if (tp === IPPROTO.IPV6 && rules.peers["6in6"].lookup(pkt, 8, 6) !== undefined) {
        if (decapsulated) return this.drop("decap-loop");
        return this.reencap6(pkt, r6);
      }
      // Flow 3.2 m (route optimisation): IPv6 straight to the VM's care-of address goes IPv6-in-IPv4 to its IPv4 care-of address.
      return this.encap6in4(pkt, r6);
    }
    const own = this.own.has(pkt, 24, 6);
    // Only the translation prefix stands for IPv4 destinations. An EAM (RFC 7757) here names an
    // IPv6 node (a correspondent, an IPv6 VM) by an IPv4 pool address: IPv4 packets to that
    // address are translated, IPv6 packets to the node itself are routed to it.
    const mapped = rules.mapping.inTranslationPrefix(pkt, 24);
    const local = own || mapped || this.inServed6(pkt, 24);
    if (tp >= 0 && local) {
      const kind: TunnelKind = tp === IPPROTO.IPIP ? "4in6" : "6in6";
      if (rules.peers[kind].lookup(pkt, 8, 6) !== undefined) {
        if (decapsulated) return this.drop("decap-loop");
        return this.decap(port, pkt, kind);
      }
      // RFC 2473 §3 / RFC 4213 §3.6: only from configured peers.
      if (!mapped) return this.drop("unknown-peer");
    }
    // Flow 3.2 k–l: a VM's binding update to a correspondent behind us, out of its tunnel.
    if (decapsulated && this.correspondents !== undefined && (pkt[6] === IPPROTO.DSTOPTS || pkt[6] === IPPROTO.MOBILITY) && this.correspondents.isCorrespondentUpdate(pkt)) {
      return this.correspondentUpdate(pkt);
    }
    if (mapped) {
      if (upperProtocol6(pkt, this.chain) === IPPROTO.ICMP) return this.drop("untranslatable-protocol");
      return this.translated(this.translator.translate6to4(pkt), "translate-6to4");
    }
    if (this.intercept !== undefined && !this.injecting && this.intercept(pkt, port.index, decapsulated)) {
      this.counters.actions.deliver++;
      return;
    }
    if (own) return this.local6(pkt);
    if (local) return this.drop("no-rule");
    // As for IPv4; link-local packets are never forwarded (RFC 4291 §2.5.6), so never tunnelled.
    if (!decapsulated && rules.encapCount6 > 0 && !(pkt[24] === 0xfe && (pkt[25] & 0xc0) === 0x80) && !(pkt[8] === 0xfe && (pkt[9] & 0xc0) === 0x80)) {
      const e = rules.encap6For(pkt);
      if (e !== undefined && (this.injecting || !this.own.has(pkt, 8, 6))) return this.encap(pkt, e);
    }
    if (this.injecting) return this.originate(pkt, "route");
    // Flow 3.2 m: a correspondent with a binding for this home address reaches the VM directly.
    if (!decapsulated && this.correspondents !== undefined && this.correspondents.size > 0) {
      const s = this.shortcut6(pkt);
      if (s !== undefined) return this.encap6in4(pkt, s);
    }
    this.route6(pkt);
  }

  private inServed6(buf: Uint8Array, off: number): boolean {
    const s = this.served6;
    for (let i = 0; i < s.length; i++) if (inPrefix6(s[i].prefix, s[i].length, buf, off)) return true;
    return false;
  }

  private lookup6(buf: Uint8Array, off: number): Route6 | undefined {
    const r = this.routes6;
    for (let i = 0; i < r.length; i++) if (inPrefix6(r[i].prefix, r[i].length, buf, off)) return r[i];
    return undefined;
  }

  /** RFC 8200 §3, RFC 4443: plain IPv6 forwarding; routers never fragment. */
  private route6(pkt: Uint8Array): void {
    // RFC 4291 §2.5.6: link-local addresses are never forwarded.
    if ((pkt[24] === 0xfe && (pkt[25] & 0xc0) === 0x80) || (pkt[8] === 0xfe && (pkt[9] & 0xc0) === 0x80)) return this.drop("not-for-us");
    const rt = this.lookup6(pkt, 24);
    if (rt === undefined) {
      // RFC 4443 §3.1 code 0: no route to destination.
      this.error6(pkt, ICMP6_TYPE.DESTINATION_UNREACHABLE, ICMP6_UNREACH.NO_ROUTE, 0);
      return this.drop("no-route");
    }
    // RFC 8200 §3 / RFC 4443 §3.3: a hop limit that would reach zero.
    if (pkt[7] <= 1) return this.tunnelOutcome(timeExceeded6(this.node, pkt), "route", undefined);
    // RFC 4443 §3.2: too big for the next link → Packet Too Big with its MTU.
    if (pkt.length > rt.port.mtu) return this.tunnelOutcome(packetTooBig(this.node, pkt, rt.port.mtu), "route", undefined);
    const out = this.outIp;
    out.set(pkt);
    out[7]--;
    this.counters.actions.route++;
    this.transmit(rt.port, 6, rt.gateway ?? this.copy6(out, 24), pkt.length);
  }

  private error6(pkt: Uint8Array, type: number, code: number, rest: number): void {
    const src = this.node.icmpSource6;
    if (src === undefined || !mayQuoteIcmp6(pkt, type, code)) return;
    this.counters.actions.icmp++;
    this.originate(buildIcmp6Error(type, code, rest, pkt, src, pkt.subarray(8, 24)), undefined);
  }

  private local6(pkt: Uint8Array): void {
    if (pkt[6] === IPPROTO.ICMPV6 && pkt.length >= 48 && pkt[40] === ICMP6_TYPE.ECHO_REQUEST && pkt[41] === 0) {
      const len = pkt.length - 40;
      if (verifyIcmp6Checksum(pkt, 40, len, pseudoHeaderSum6At(pkt, 0, IPPROTO.ICMPV6, len))) {
        const id = (pkt[44] << 8) | pkt[45];
        const seq = (pkt[46] << 8) | pkt[47];
        const reply = buildIcmp6Echo({ src: pkt.subarray(24, 40), dst: pkt.subarray(8, 24), hopLimit: 64 }, true, id, seq, pkt.subarray(48));
        this.counters.actions.icmp++;
        return this.originate(reply, undefined);
      }
    }
    if (pkt[6] === IPPROTO.ICMPV6 && pkt.length >= 48 && pkt[40] < 128) return this.relay(pkt);
    this.drop("local");
  }

  // ---------------------------------------------------------------- tunnels and translation

  private decap(port: Port, pkt: Uint8Array, kind: TunnelKind): void {
    // Decapsulation leaves the TTL alone (RFC 2003 §3.1); the next pass (routing, translation,
    // encapsulation) is the forwarding step that decrements it, once.
    const r = decapsulate(this.rules.peers[kind], this.node, pkt, { forwarding: false });
    if (r.action !== "forward") return this.tunnelOutcome(r, "decap", undefined);
    this.counters.actions.decap++;
    const inner = r.packet;
    if (inner[0] >> 4 === 4) this.ipv4(port, inner, true);
    else this.ipv6(port, inner, true);
  }

  private reencap4(pkt: Uint8Array, r: Reencap4): void {
    const route = this.tunnelRoute(r, "4in6", r.careOfIPv6);
    if (route === null) return this.drop("no-route");
    this.tunnelOutcome(reencapsulate(this.rules.peers["4in4"], this.node, pkt, route.tunnel, this.outIp), "reencap-4in4-4in6", route);
  }

  private reencap6(pkt: Uint8Array, r: Reencap6): void {
    const route = this.tunnelRoute(r, "6in4", r.careOfIPv4);
    if (route === null) return this.drop("no-route");
    this.tunnelOutcome(reencapsulate(this.rules.peers["6in6"], this.node, pkt, route.tunnel, this.outIp), "reencap-6in6-6in4", route);
  }

  private encap6in4(pkt: Uint8Array, r: Reencap6, forwarding = true): void {
    const route = this.tunnelRoute(r, "6in4", r.careOfIPv4);
    if (route === null) return this.drop("no-route");
    this.tunnelOutcome(encapsulate(route.tunnel, this.node, pkt, this.outIp, { forwarding }), "encap-6in4", route);
  }

  /** A binding update from a migrated VM to a correspondent behind us (flow 3.2 k–m; correspondent.ts). */
  private correspondentUpdate(pkt: Uint8Array): void {
    const u = this.correspondents!.update(pkt, this.careOf, this.now);
    if (u.result === "bound" || u.result === "unbound") this.counters.actions["correspondent-binding"]++;
    else this.drop(u.result === "malformed" ? "malformed" : "correspondent-refused");
    if (u.acknowledgement === undefined) return;
    // The acknowledgement goes back through the VM's tunnel, like anything for its care-of address.
    const r6 = this.rules.reencap6For(u.acknowledgement, 24);
    if (r6 !== undefined) this.encap6in4(u.acknowledgement, r6, false);
  }

  /** The tunnel that replaces the route when a correspondent holds a binding for the destination (flow 3.2 m). */
  private shortcut6(pkt: Uint8Array): Reencap6 | undefined {
    const b = this.correspondents!.shortcut(pkt, this.careOf, this.now);
    return b === undefined ? undefined : this.rules.reencap6For(b.careOfIPv6, 0);
  }

  /**
   * An `encapsulate` rule: the packet leaves in the rule's tunnel, routed by the outer destination;
   * the outer packet is not looked at again, so no rule can wrap it twice. encapsulate() applies
   * the RFC 2003 / 2473 / 4213 rules: TTL spent → Time Exceeded, too big with DF (or IPv6) →
   * Fragmentation Needed / Packet Too Big with the tunnel MTU, ECN by RFC 6040, and the loop checks
   * of RFC 6324 §3 (an inner destination or a `remote` that is one of our endpoints).
   */
  private encap(pkt: Uint8Array, e: Encap): void {
    const route = this.tunnelRoute(e, e.tunnel, e.remote, e.local);
    if (route === null) return this.drop("no-route");
    // RFC 2003 §3.1, RFC 2473 §3.1: the inner TTL / hop limit drops only when the tunnel forwards; not for inject()ed packets.
    this.tunnelOutcome(encapsulate(route.tunnel, this.node, pkt, this.outIp, { forwarding: !this.injecting }), ENCAP_ACTION[e.tunnel], route);
  }

  /**
   * Where the tunnel of a rule leaves: resolved once per rule (routes and addresses are static).
   * The outer source is the rule's `local`, else the configured tunnel source, else the egress
   * interface's first address of the outer family, else any interface's.
   */
  private tunnelRoute(entry: Reencap4 | Reencap6 | Encap, kind: TunnelKind, remote: Uint8Array, ruleLocal?: Uint8Array): TunnelRoute | null {
    if (entry.route !== undefined) return entry.route;
    let route: TunnelRoute | null = null;
    if (remote.length === 4) {
      const rt = this.lookup4(word4(remote));
      const local = ruleLocal ?? this.source4 ?? rt?.port.v4[0]?.bytes ?? this.portList.find((p) => p.v4.length > 0)?.v4[0].bytes;
      if (rt !== undefined && local !== undefined) route = { tunnel: { kind, local, remote, mtu: rt.port.mtu, hopLimit: this.tunnelHopLimit }, ifIndex: rt.port.index, nextHop: rt.gateway ?? remote };
    } else {
      const rt = this.lookup6(remote, 0);
      const local = ruleLocal ?? this.source6 ?? rt?.port.v6[0]?.bytes ?? this.portList.find((p) => p.v6.length > 0)?.v6[0].bytes;
      if (rt !== undefined && local !== undefined && rt.port.mtu >= 1280) route = { tunnel: { kind, local, remote, mtu: rt.port.mtu, hopLimit: this.tunnelHopLimit }, ifIndex: rt.port.index, nextHop: rt.gateway ?? remote };
    }
    entry.route = route;
    return route;
  }

  /** Sends what a tunnel operation produced: the packet along `route`, or an ICMP error back. */
  private tunnelOutcome(r: TunnelResult, action: ForwardAction, route: TunnelRoute | undefined): void {
    switch (r.action) {
      case "forward": {
        if (route === undefined) return this.drop("internal-error");
        const port = this.ports.get(route.ifIndex)!;
        if (r.packet.buffer !== this.out.buffer || r.packet.byteOffset !== this.outIp.byteOffset) this.outIp.set(r.packet);
        this.counters.actions[action]++;
        return this.transmit(port, route.nextHop.length === 4 ? 4 : 6, route.nextHop, r.length);
      }
      case "fragments": {
        if (route === undefined) return this.drop("internal-error");
        const port = this.ports.get(route.ifIndex)!;
        for (const f of r.packets) {
          this.outIp.set(f);
          this.counters.actions[action]++;
          this.transmit(port, route.nextHop.length === 4 ? 4 : 6, route.nextHop, f.length);
        }
        return;
      }
      case "icmp":
        this.drop(r.reason);
        this.counters.actions.icmp++;
        return this.originate(r.packet.subarray(0, r.length), undefined);
      case "drop":
        return this.drop(r.reason);
    }
  }

  private translated(r: TranslateResult, action: ForwardAction): void {
    switch (r.action) {
      case "forward":
        for (const p of r.packets) {
          // Paper 3.2, last paragraph: an IPv4 correspondent's binding (pool address ↔ IPv4
          // care-of address) sends its translated packets straight into the VM's tunnel.
          const s = p[0] >> 4 === 6 && this.correspondents !== undefined && this.correspondents.size > 0 ? this.shortcut6(p) : undefined;
          if (s !== undefined) {
            this.counters.actions[action]++;
            this.encap6in4(p, s, false);
          } else this.originate(p, action);
        }
        return;
      case "icmp":
        this.drop(r.reason);
        this.counters.actions.icmp++;
        return this.originate(r.packet, undefined);
      case "drop":
        return this.drop(r.reason);
    }
  }

  /**
   * Sends a whole IP packet that needs no TTL change here (translated, an ICMP error we built):
   * route lookup, MTU check, neighbour. `action` is counted when given.
   */
  private originate(pkt: Uint8Array, action: ForwardAction | undefined): void {
    let port: Port;
    let nextHop: Uint8Array;
    if (pkt[0] >> 4 === 4) {
      const rt = this.lookup4(word4(pkt, 16));
      if (rt === undefined) return this.drop("no-route");
      port = rt.port;
      nextHop = rt.gateway ?? this.copy4(pkt, 16);
    } else {
      const rt = this.lookup6(pkt, 24);
      if (rt === undefined) return this.drop("no-route");
      port = rt.port;
      nextHop = rt.gateway ?? this.copy6(pkt, 24);
    }
    if (pkt.length > port.mtu) return this.drop("egress-too-big");
    this.outIp.set(pkt);
    if (action !== undefined) this.counters.actions[action]++;
    this.transmit(port, pkt[0] >> 4 === 4 ? 4 : 6, nextHop, pkt.length);
  }

  /** The IP packet at outIp[0..length] leaves on `port` towards `nextHop`, now or once resolved. */
  private transmit(port: Port, family: IPFamily, nextHop: Uint8Array, length: number): void {
    const out = this.out;
    const m = port.mac;
    out[6] = m[0]; out[7] = m[1]; out[8] = m[2]; out[9] = m[3]; out[10] = m[4]; out[11] = m[5];
    const type = family === 4 ? ETHERTYPE.IPV4 : ETHERTYPE.IPV6;
    out[12] = type >> 8;
    out[13] = type & 0xff;
    const frame = out.subarray(0, ETH + length);
    const mac = this.neighbours.resolve(port.index, nextHop, 0, family, frame, this.now, this.send);
    if (mac === undefined) return;
    out[0] = mac[0]; out[1] = mac[1]; out[2] = mac[2]; out[3] = mac[3]; out[4] = mac[4]; out[5] = mac[5];
    this.send(port.index, frame);
  }

  // ---------------------------------------------------------------- ARP and NDP

  /** Whether we answer ARP/NDP for the address on `port`: our own, or a served one not behind `port`. */
  private answersFor4(port: Port, a: number, buf: Uint8Array, off: number): boolean {
    if (this.own.has(buf, off, 4) || this.proxied.has(buf, off, 4)) return true;
    if (!(this.inServed4(a) || this.rules.isMappedIPv4(a))) return false;
    // Proxy ARP only for addresses that are not on the asking link.
    return this.lookup4(a)?.port !== port;
  }

  private answersFor6(port: Port, buf: Uint8Array, off: number): boolean {
    if (this.own.has(buf, off, 6) || this.proxied.has(buf, off, 6)) return true;
    if (!(this.inServed6(buf, off) || this.rules.reencap6For(buf, off) !== undefined || this.rules.mapping.inTranslationPrefix(buf, off))) return false;
    return this.lookup6(buf, off)?.port !== port;
  }

  /** RFC 826 "packet reception", with RFC 5227's probes (sender 0.0.0.0) not learned from. */
  private arp(port: Port, frame: Uint8Array): void {
    const a = parseArp(frame, ETH);
    if (a === undefined) return this.drop("malformed");
    const forUs = this.answersFor4(port, a.targetIp, frame, a.targetIpOffset);
    const reply = a.operation === ARP_OPERATION.REPLY;
    if (a.senderIp !== 0 && (frame[a.senderMacOffset] & 1) === 0) {
      this.neighbours.learn(port.index, frame, a.senderIpOffset, 4, frame, a.senderMacOffset, this.now, this.send, { confirmed: reply && forUs, create: forUs });
    }
    if (a.operation !== ARP_OPERATION.REQUEST || !forUs || a.senderIp === a.targetIp) {
      this.learned++;
      return;
    }
    const out = new Uint8Array(ETH + ARP_LENGTH);
    writeEthernetHeader(out, 0, frame.subarray(a.senderMacOffset, a.senderMacOffset + 6), port.mac, ETHERTYPE.ARP);
    writeArp(out, ETH, ARP_OPERATION.REPLY, port.mac, frame.subarray(a.targetIpOffset, a.targetIpOffset + 4), frame.subarray(a.senderMacOffset, a.senderMacOffset + 6), frame.subarray(a.senderIpOffset, a.senderIpOffset + 4));
    this.counters.actions.arp++;
    this.send(port.index, out);
  }

  /** RFC 4861 §7.1 validation, §7.2.3–§7.2.5 (and §7.2.8 for the addresses we proxy). */
  private nd(port: Port, pkt: Uint8Array): void {
    const len = pkt.length - 40;
    // §7.1.1/§7.1.2: hop limit 255, valid checksum, code 0.
    if (pkt[7] !== 255 || !verifyIcmp6Checksum(pkt, 40, len, pseudoHeaderSum6At(pkt, 0, IPPROTO.ICMPV6, len)) || pkt[41] !== 0) return this.drop("malformed");
    const m = parseNd(pkt, 40, len);
    if (m === undefined) return this.drop("malformed");
    if (m.type === ICMP6_TYPE.NEIGHBOR_SOLICITATION) {
      if (pkt[m.targetOffset] === 0xff) return this.drop("malformed");
      const unspecified = isZero(pkt, 8, 16);
      if (unspecified) {
        // §7.1.1: DAD probes go to a solicited-node address and carry no source link-layer option.
        if (m.sourceLinkLayerOffset >= 0 || !(pkt[24] === 0xff && pkt[25] === 0x02 && pkt[35] === 0x01 && pkt[36] === 0xff)) return this.drop("malformed");
      }
      const forUs = this.answersFor6(port, pkt, m.targetOffset);
      if (!unspecified && m.sourceLinkLayerOffset >= 0) {
        this.neighbours.learn(port.index, pkt, 8, 6, pkt, m.sourceLinkLayerOffset, this.now, this.send, { confirmed: false, create: forUs });
      }
      if (!forUs) return this.drop("not-for-us");
      const target = pkt.slice(m.targetOffset, m.targetOffset + 16);
      const own = this.own.has(pkt, m.targetOffset, 6);
      // §7.2.4: to the solicitor, or to all-nodes for a DAD probe; §7.2.8: a proxy leaves O clear.
      const dst = unspecified ? ALL_NODES : pkt.slice(8, 24);
      // RFC 4861 §7.2.5 / RFC 6275 §10.4.1: for a proxied home address we speak for a host, so R is clear (as in announce()).
      const router = own || !this.proxied.has(pkt, m.targetOffset, 6);
      const na = buildNeighborAdvertisement({ src: target, dst, target, router, solicited: !unspecified, override: own, targetLinkLayer: port.mac });
      const out = new Uint8Array(ETH + na.length);
      const dstMac = unspecified ? ipv6MulticastMac(ALL_NODES) : this.frame.subarray(6, 12);
      writeEthernetHeader(out, 0, dstMac, port.mac, ETHERTYPE.IPV6);
      out.set(na, ETH);
      this.counters.actions.nd++;
      return this.send(port.index, out);
    }
    if (m.type === ICMP6_TYPE.NEIGHBOR_ADVERTISEMENT) {
      // §7.1.2: a solicited NA to a multicast address is invalid.
      if (m.solicited && pkt[24] === 0xff) return this.drop("malformed");
      if (m.targetLinkLayerOffset >= 0) {
        this.neighbours.learn(port.index, pkt, m.targetOffset, 6, pkt, m.targetLinkLayerOffset, this.now, this.send, { confirmed: m.solicited, create: false, override: m.override });
      }
      this.learned++;
      return;
    }
    // Router solicitations/advertisements and redirects: we neither advertise nor follow them.
    this.drop("local");
  }

  /** ARP request / Neighbor Solicitation for a neighbour entry (RFC 826, RFC 4861 §7.2.2). */
  private solicit(e: NeighbourEntry, unicast: boolean, emit: Emit): void {
    const port = this.ports.get(e.ifIndex);
    if (port === undefined) return;
    if (e.family === 4) {
      const target = word4(e.address);
      const sender = port.v4.find((a) => ((a.value & a.mask) >>> 0) === ((target & a.mask) >>> 0)) ?? port.v4[0];
      const out = new Uint8Array(ETH + ARP_LENGTH);
      writeEthernetHeader(out, 0, unicast ? e.mac : BROADCAST_MAC, port.mac, ETHERTYPE.ARP);
      writeArp(out, ETH, ARP_OPERATION.REQUEST, port.mac, sender?.bytes ?? 0, new Uint8Array(6), e.address);
      this.counters.actions.arp++;
      return emit(port.index, out);
    }
    const src = port.v6.find((a) => inPrefix6(a.bytes, a.length, e.address, 0))?.bytes ?? port.v6[0]?.bytes ?? port.linkLocal;
    const dst = unicast ? e.address : solicitedNodeAddress(e.address);
    const ns = buildNeighborSolicitation({ src, target: e.address, dst, sourceLinkLayer: port.mac });
    const out = new Uint8Array(ETH + ns.length);
    writeEthernetHeader(out, 0, unicast ? e.mac : ipv6MulticastMac(dst), port.mac, ETHERTYPE.IPV6);
    out.set(ns, ETH);
    this.counters.actions.nd++;
    emit(port.index, out);
  }
}

/**
 * IPv4 protocols RFC 7915 §4.1 would copy into an IPv6 Next Header where they mean something
 * else: IPv6 extension headers (hop-by-hop, routing, fragment, destination options, mobility)
 * and ICMPv6, whose checksum covers an IPv6 pseudo-header the IPv4 sender never included. The
 * translation would be a malformed IPv6 packet, so these are dropped. ICMPv4 inside IPv6 (the
 * reverse) is dropped for the same reason.
 */
const UNTRANSLATABLE_4 = new Set<number>([IPPROTO.HOPOPTS, IPPROTO.ROUTING, IPPROTO.FRAGMENT, IPPROTO.DSTOPTS, IPPROTO.ICMPV6, IPPROTO.MOBILITY]);

function upperProtocol6(pkt: Uint8Array, chain: IPv6Chain): number {
  const nh = pkt[6];
  if (nh !== IPPROTO.HOPOPTS && nh !== IPPROTO.ROUTING && nh !== IPPROTO.FRAGMENT && nh !== IPPROTO.DSTOPTS && nh !== IPPROTO.AH) return nh;
  const c = walkIPv6Extensions(pkt, 0, pkt.length, chain);
  return c === undefined ? -1 : c.upperProtocol;
}

/** 4 or 41 when the IPv6 packet carries IPv4 / IPv6 (after hop-by-hop and destination options), else -1. */
function tunnelProtocol6(pkt: Uint8Array): number {
  let nh = pkt[6];
  let off = 40;
  for (let n = 0; n < 3 && (nh === IPPROTO.HOPOPTS || nh === IPPROTO.DSTOPTS); n++) {
    if (off + 8 > pkt.length) return -1;
    nh = pkt[off];
    off += (pkt[off + 1] + 1) << 3;
  }
  return nh === IPPROTO.IPIP || nh === IPPROTO.IPV6 ? nh : -1;
}


/*
 * Soundness of what we forward. RFC 1812 §5.2.2 asks a router to check only the IP header; we
 * also check that the headers up to the transport header are complete (UDP, TCP and ICMP header
 * and length fields, an IPv6 extension chain that can be walked, and the inner packet of IP-in-IP
 * with its length equal to what the outer packet carries), so that nothing the worker emits is
 * malformed, whatever came in. Transport checksums are not verified here: routers pass them on.
 */
function transportSound(pkt: Uint8Array, proto: number, off: number, moreFragments: boolean, depth: number, chain: IPv6Chain): boolean {
  const len = pkt.length - off;
  // A first fragment carries only the start of the transport data; its header is checked by the destination.
  if (moreFragments) return len >= 8 || (proto !== IPPROTO.UDP && proto !== IPPROTO.TCP && proto !== IPPROTO.ICMP && proto !== IPPROTO.ICMPV6);
  switch (proto) {
    case IPPROTO.UDP: {
      if (len < 8) return false;
      const ulen = (pkt[off + 4] << 8) | pkt[off + 5];
      return ulen >= 8 && ulen <= len;
    }
    case IPPROTO.TCP: {
      if (len < 20) return false;
      const hl = (pkt[off + 12] >> 4) << 2;
      return hl >= 20 && hl <= len;
    }
    case IPPROTO.ICMP:
      return len >= 8;
    case IPPROTO.ICMPV6:
      return len >= 4;
    case IPPROTO.IPIP:
      if (depth > 0) return true;
      return inner4Sound(pkt.subarray(off), chain);
    case IPPROTO.IPV6:
      if (depth > 0) return true;
      return inner6Sound(pkt.subarray(off), chain);
    default:
      return true;
  }
}

function inner4Sound(inner: Uint8Array, chain: IPv6Chain): boolean {
  if (inner.length < 20 || inner[0] >> 4 !== 4) return false;
  const ihl = (inner[0] & 0x0f) << 2;
  const total = (inner[2] << 8) | inner[3];
  if (ihl < 20 || total < ihl || total !== inner.length || !checksumOk(inner, 0, ihl)) return false;
  return sound4(inner, 1, chain);
}

function inner6Sound(inner: Uint8Array, chain: IPv6Chain): boolean {
  if (inner.length < 40 || inner[0] >> 4 !== 6) return false;
  if (40 + ((inner[4] << 8) | inner[5]) !== inner.length) return false;
  return sound6(inner, 1, chain);
}

/** `pkt` is an IPv4 packet whose header was checked and whose length is its total length. */
function sound4(pkt: Uint8Array, depth: number, chain: IPv6Chain): boolean {
  const frag = (pkt[6] << 8) | pkt[7];
  if ((frag & 0x1fff) !== 0) return true;
  return transportSound(pkt, pkt[9], (pkt[0] & 0x0f) << 2, (frag & 0x2000) !== 0, depth, chain);
}

/** `pkt` is an IPv6 packet whose length is 40 + its payload length. */
function sound6(pkt: Uint8Array, depth: number, chain: IPv6Chain): boolean {
  const nh = pkt[6];
  if (nh !== IPPROTO.HOPOPTS && nh !== IPPROTO.ROUTING && nh !== IPPROTO.FRAGMENT && nh !== IPPROTO.DSTOPTS && nh !== IPPROTO.AH) {
    return transportSound(pkt, nh, 40, false, depth, chain);
  }
  const c = walkIPv6Extensions(pkt, 0, pkt.length, chain);
  if (c === undefined) return false;
  if (c.fragmentOffset !== 0) return true;
  const upper = c.upperProtocol;
  const off = c.upperOffset;
  const more = c.moreFragments;
  return transportSound(pkt, upper, off, more, depth, chain);
}
