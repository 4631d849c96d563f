// A trace of packets through the pipeline, as `ovn-trace` shows a flow: each packet enters the
// same Forwarder the worker runs, one at a time, and the trace says what the pipeline did with it
// (the actions it counted, or why it dropped it) and what left on which interface, each frame
// decoded layer by layer. Pure: a parsed table and frames in, a description out.
import type { ForwarderCounters } from "../forward/counters.js";
import { ETHERTYPE, parseEthernet } from "../packet/ethernet.js";
import { parseIPv4 } from "../packet/ipv4.js";
import { parseIPv6, walkIPv6Extensions } from "../packet/ipv6.js";
import { ipv4FromValue, ipv6FromBytes } from "../../lib/net/address.js";
import { tableForwarder } from "./offline.js";
import type { OfflineTable } from "./table.js";

export interface TraceStep {
  /** What came in, decoded (the same form as an output's). */
  input: string;
  /** The pipeline's actions for it, in the order of FORWARD_ACTIONS, with how many frames each. */
  actions: Record<string, number>;
  /** Why frames were dropped, with how many. Empty when nothing was. */
  drops: Record<string, number>;
  /** What the worker would send, in order. */
  output: { interface: string; frame: string; bytes: number }[];
}

const PROTOCOL_NAMES: Record<number, string> = { 1: "ICMP", 4: "IPv4", 6: "TCP", 17: "UDP", 41: "IPv6", 43: "routing", 44: "fragment", 58: "ICMPv6", 60: "dest-options", 135: "mobility" };
const proto = (p: number) => PROTOCOL_NAMES[p] ?? `protocol ${p}`;
const port = (b: Uint8Array, o: number) => (b[o] << 8) | b[o + 1];

/** One IP packet from `off`, with what it carries (a tunnelled packet inside, ports, ICMP type), as " | "-joined layers. */
function describeIp(b: Uint8Array, off: number, end: number, depth = 0): string {
  const version = off < end ? b[off] >> 4 : 0;
  let layer: string, upper: number, at: number;
  if (version === 4) {
    const h = parseIPv4(b, off, end);
    if (!h) return "IPv4 (malformed)";
    layer = `IPv4 ${ipv4FromValue(h.src).text} > ${ipv4FromValue(h.dst).text} ttl ${h.ttl}${h.moreFragments || h.fragmentOffset ? " fragment" : ""}`;
    upper = h.protocol;
    at = h.payloadOffset;
    end = Math.min(end, h.offset + h.totalLength);
    if (h.fragmentOffset) return `${layer} | ${proto(upper)} (not the first fragment)`;
  } else if (version === 6) {
    const h = parseIPv6(b, off, end);
    if (!h) return "IPv6 (malformed)";
    layer = `IPv6 ${ipv6FromBytes(b.subarray(h.srcOffset, h.srcOffset + 16)).text} > ${ipv6FromBytes(b.subarray(h.dstOffset, h.dstOffset + 16)).text} hlim ${h.hopLimit}`;
    end = Math.min(end, h.payloadOffset + h.payloadLength);
    const chain = walkIPv6Extensions(b, off, end);
    if (!chain) return `${layer} | (malformed extension headers)`;
    upper = chain.upperProtocol;
    at = chain.upperOffset;
    if (chain.fragmentHeaderOffset >= 0) layer += " fragment";
    if (chain.fragmentOffset) return `${layer} | ${proto(upper)} (not the first fragment)`;
  } else {
    return `IP version ${version} (malformed)`;
  }
  if ((upper === 4 || upper === 41) && depth < 2) return `${layer} | ${describeIp(b, at, end, depth + 1)}`;
  if ((upper === 6 || upper === 17) && at + 4 <= end) return `${layer} | ${proto(upper)} ${port(b, at)} > ${port(b, at + 2)}`;
  if ((upper === 1 || upper === 58) && at + 2 <= end) return `${layer} | ${proto(upper)} type ${b[at]} code ${b[at + 1]}`;
  return `${layer} | ${proto(upper)}`;
}

/** A frame decoded: Ethernet, then ARP or the IP layers. */
export function describeFrame(frame: Uint8Array): string {
  const eth = parseEthernet(frame);
  if (!eth) return "Ethernet (malformed)";
  const mac = (o: number) => [...frame.subarray(o, o + 6)].map((x) => x.toString(16).padStart(2, "0")).join(":");
  const head = `Ethernet ${mac(eth.srcOffset)} > ${mac(eth.dstOffset)}`;
  const p = eth.payloadOffset;
  if (eth.etherType === ETHERTYPE.ARP && p + 28 <= frame.length) {
    const ip = (o: number) => ipv4FromValue(((frame[o] << 24) | (frame[o + 1] << 16) | (frame[o + 2] << 8) | frame[o + 3]) >>> 0).text;
    const op = port(frame, p + 6);
    return `${head} | ARP ${op === 1 ? `who-has ${ip(p + 24)} tell ${ip(p + 14)}` : op === 2 ? `${ip(p + 14)} is-at ${mac(p + 8)}` : `operation ${op}`}`;
  }
  if (eth.etherType === ETHERTYPE.IPV4 || eth.etherType === ETHERTYPE.IPV6) return `${head} | ${describeIp(frame, p, frame.length)}`;
  return `${head} | ethertype 0x${eth.etherType.toString(16).padStart(4, "0")}`;
}

/** What moved between two readings of the counters, the zeros left out. */
function moved(before: Record<string, number>, after: Record<string, number>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(after)) if (v !== before[k]) out[k] = v - (before[k] ?? 0);
  return out;
}

const snapshot = (c: ForwarderCounters) => ({ actions: { ...c.actions }, drops: { ...c.drops } });

/**
 * Each frame through one Forwarder with `table`'s settings and rules, in order (a packet's
 * neighbour resolution or rate limit carries over to the next, as in the worker), all entering
 * on `ingress` (name or index; default the first interface), at `nowMs`.
 */
export function traceFrames(table: OfflineTable, frames: readonly Uint8Array[], ingress?: string | number, nowMs = 0): TraceStep[] {
  const { forwarder, ingress: ifc, names } = tableForwarder(table, ingress);
  return frames.map((frame) => {
    const before = snapshot(forwarder.counters);
    const output: TraceStep["output"] = [];
    forwarder.processFrame(ifc.index, frame, (ifIndex, out) => {
      output.push({ interface: names.get(ifIndex) ?? String(ifIndex), frame: describeFrame(out), bytes: out.length });
    }, nowMs);
    const after = snapshot(forwarder.counters);
    return { input: describeFrame(frame), actions: moved(before.actions, after.actions), drops: moved(before.drops, after.drops), output };
  });
}
