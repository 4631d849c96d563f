// What the steps share for a Forwarder's lifetime: its ports, routes, own / served / proxied
// addresses, the compiled rule table and translator, the counters and the output buffer. Built
// once from the configuration; the packet path only reads it (and writes `out`).
import { read32 } from "../packet/checksum.js";
import { prefixContainsAt } from "../../lib/net/address.js";
import { parseMac } from "../packet/ethernet.js";
import { PrefixViews } from "../packet/buffers.js";
import { NeighbourCache } from "../neighbour/cache.js";
import type { AddressMapping, Translator } from "../translate/index.js";
import { AddressSet } from "../tunnel/peers.js";
import { DEFAULT_TUNNEL_HOP_LIMIT, TunnelNode } from "../tunnel/tunnel.js";
import { ipv4Bytes, ipv6Bytes, mask4, prefixBytes } from "./addresses.js";
import { checked, macBytes, parseForwarderConfig, type ForwarderConfig } from "./config.js";
import { newCounters, type ForwarderCounters, type InterfaceCounters } from "./counters.js";
import { CorrespondentBindings, type CareOfLookup } from "./correspondent.js";
import type { ForwarderOptions, Intercept, StationSeen } from "./forwarder.js";
import { ETH, type Port } from "./packet.js";
import { solicit } from "./responder.js";
import { CompiledRules } from "./compiled.js";
import { newTranslator } from "./translation.js";
import { TokenBucket } from "./ratelimit.js";


export interface Route4 { network: number; mask: number; length: number; port: Port; gateway: Uint8Array | null }
export interface Route6 { prefix: Uint8Array; length: number; port: Port; gateway: Uint8Array | null }

const MAX_IP = 65535;


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

export class Router {
  readonly counters: ForwarderCounters = newCounters();
  readonly neighbours: NeighbourCache;
  /** ARP replies, NAs and other control packets consumed to learn neighbours. */
  learned = 0;
  readonly ports = new Map<number, Port>();
  readonly portList: Port[] = [];
  readonly routes4: Route4[] = [];
  readonly routes6: Route6[] = [];
  readonly own = new AddressSet();
  /** Addresses answered by proxy ARP/NDP on every link, set at run time (a home agent's bindings, RFC 5944 §4.6, RFC 6275 §10.4.1). */
  readonly proxied = new AddressSet();
  readonly intercept?: Intercept;
  readonly stationSeen?: StationSeen;
  /** See ForwarderOptions.stationSeen: off, the packet path pays one test per frame. */
  watchingStations = false;
  /** The correspondents' binding cache (route optimisation), when configured. */
  readonly correspondents?: CorrespondentBindings;
  readonly careOf: CareOfLookup = {
    careOfIPv4For: (careOfIPv6) => this.rules.reencap6.inForce(careOfIPv6, 0)?.careOfIPv4,
    peer6in4: (careOfIPv4) => this.rules.peers["6in4"].lookup(careOfIPv4, 0, 4),
  };
  readonly served4: { network: number; mask: number }[] = [];
  readonly served6: { prefix: Uint8Array; length: number }[] = [];
  readonly node: TunnelNode;
  /** The ICMP errors this worker originates, rate-limited (ratelimit.ts). */
  readonly icmpErrors: TokenBucket;
  readonly tunnelHopLimit: number;
  /** The step of the identification counters (the number of threads; 1 alone). */
  readonly identificationStep: number;
  readonly source4?: Uint8Array;
  readonly source6?: Uint8Array;
  readonly config: ForwarderConfig;
  rules = CompiledRules.empty();
  translator: Translator;
  translatorMapping: AddressMapping;
  /** Output frame: Ethernet header at 0, IP packet at 14; `outIp` is the IP part. */
  readonly out = new Uint8Array(ETH + MAX_IP + 64);
  readonly outIp = this.out.subarray(ETH);
  /** The frames sent from `out`, as views by length made once each (no allocation per packet). */
  readonly outFrames = new PrefixViews(this.out);
  /**
   * The IP packets the translator writes into `outIp`, as views by length: which packet lies in the
   * output buffer is told by these (PrefixViews.holds), not by `.buffer`, a C++ call in Node 20.
   */
  readonly outIpViews = new PrefixViews(this.outIp);
  /** A next hop taken from the packet being sent (egress.ts), so that none is allocated. */
  readonly nh4 = new Uint8Array(4);
  readonly nh6 = new Uint8Array(16);
  now: number;

  /** Throws ForwarderConfigError on a configuration it cannot use (validated as parseForwarderConfig does). */
  constructor(config: ForwarderConfig, now: number, options: ForwarderOptions) {
    this.config = parseForwarderConfig(config);
    this.now = now;
    this.icmpErrors = new TokenBucket(this.config.icmpErrorLimit?.perSecond ?? 100, this.config.icmpErrorLimit?.burst ?? 100, now);
    const cfg = this.config;
    for (const [i, ic] of cfg.interfaces.entries()) {
      const mac = macBytes(ic.mac, `worker.interfaces[${i}].mac`);
      const counters: InterfaceCounters = { rxPackets: 0, rxBytes: 0, txPackets: 0, txBytes: 0 };
      const port: Port = { index: ic.index, name: ic.name, mac, mtu: ic.mtu ?? 1500, promiscuous: ic.promiscuous === true, v4: [], v6: [], linkLocal: linkLocalFor(mac), counters };
      for (const a of ic.addresses ?? []) {
        const p = prefixBytes(a, "address", false);
        if (p.bytes.length === 4) {
          const value = read32(p.bytes);
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
      if (p.bytes.length === 4) this.routes4.push({ network: read32(p.bytes), mask: mask4(p.length), length: p.length, port, gateway });
      else this.routes6.push({ prefix: p.bytes, length: p.length, port, gateway });
    }
    // Longest prefix first; static routes before connected ones of the same length. Route
    // tables of a worker are tens of entries, so a scan beats a trie here.
    this.routes4.sort((a, b) => b.length - a.length);
    this.routes6.sort((a, b) => b.length - a.length);
    for (const s of cfg.served ?? []) {
      const p = prefixBytes(s, "served", true);
      if (p.bytes.length === 4) this.served4.push({ network: read32(p.bytes), mask: mask4(p.length) });
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
    // One thread of several (ForwarderOptions.thread): identification counters of its own residue class.
    this.identificationStep = options.thread?.count ?? 1;
    const firstIdentification = (options.thread?.index ?? 0) + 1;
    this.node = new TunnelNode({
      firstIdentification, identificationStep: this.identificationStep,
      endpoints,
      icmpSource4: t.icmpSource4 === undefined ? first4 : ipv4Bytes(t.icmpSource4, "worker.tunnels.icmpSource4"),
      icmpSource6: t.icmpSource6 === undefined ? first6 : ipv6Bytes(t.icmpSource6, "worker.tunnels.icmpSource6"),
    });
    this.neighbours = new NeighbourCache({ solicit: (e, unicast, emit) => solicit(this, e, unicast, emit), dropped: (n) => (this.counters.drops["no-neighbour"] += n), learned: options.share?.neighbourLearned }, cfg.neighbourTimers, options.fallbackNeighbourMac);
    for (const [i, n] of (cfg.neighbours ?? []).entries()) {
      const port = byName.get(n.interface)!;
      const a = checked(`worker.neighbours[${i}].address`, () => (n.address.includes(":") ? ipv6Bytes(n.address, "address") : ipv4Bytes(n.address, "address")));
      this.neighbours.addPermanent(port.index, a, parseMac(n.mac), now);
    }
    this.translatorMapping = this.rules.mapping;
    this.translator = newTranslator(this, firstIdentification);
    this.intercept = options.intercept;
    this.stationSeen = options.stationSeen;
    if (cfg.correspondentRouter) this.correspondents = new CorrespondentBindings(options.share?.correspondentChanged);
  }

  drop(reason: string): void {
    this.counters.drops[reason]++;
  }

  /** Served IPv4: a configured served prefix, or a pool address being re-encapsulated. */
  inServed4(a: number): boolean {
    const s = this.served4;
    for (let i = 0; i < s.length; i++) if (((a & s[i].mask) >>> 0) === s[i].network) return true;
    return this.rules.reencap4.has(a);
  }

  inServed6(buf: Uint8Array, off: number): boolean {
    const s = this.served6;
    for (let i = 0; i < s.length; i++) if (prefixContainsAt(s[i].prefix, s[i].length, buf, off)) return true;
    return false;
  }

  lookup4(a: number): Route4 | undefined {
    const r = this.routes4;
    for (let i = 0; i < r.length; i++) if (((a & r[i].mask) >>> 0) === r[i].network) return r[i];
    return undefined;
  }

  lookup6(buf: Uint8Array, off: number): Route6 | undefined {
    const r = this.routes6;
    for (let i = 0; i < r.length; i++) if (prefixContainsAt(r[i].prefix, r[i].length, buf, off)) return r[i];
    return undefined;
  }
}
