// mipctl trace (issue 14 §4): packets through the worker's pipeline offline, as ovn-trace shows a
// flow, with a worker's settings from an offline table file and, with --live, the engine's
// rule table as it is now.
import { readFileSync } from "node:fs";
import type { ControlClient } from "../control.js";
import type { GetRuleTableResponse } from "../../gen/mip46/v1/control.js";
import type { Rule } from "../../lib/rules/rules.js";
import { ingressFramer, ingressOf, readOfflineTable, traceFrames, type OfflineTable, type TraceStep } from "../../dataplane/offline/index.js";
import { LINKTYPE_RAW, parsePcap } from "../../dataplane/io/pcapfile.js";
import { buildTcp4, buildTcp6 } from "../../dataplane/packet/tcp.js";
import { buildUdp4, buildUdp6 } from "../../dataplane/packet/udp.js";
import { buildIcmp4Echo } from "../../dataplane/packet/icmp4.js";
import { buildIcmp6Echo } from "../../dataplane/packet/icmp6.js";
import { parseAddress } from "../../lib/net/address.js";
import { ruleFromMessage } from "../../lib/rules/wire.js";
import type { Output } from "./where.js";

export class TraceUsageError extends Error {}

/** Where the trace's packets come from and which rules it uses. */
export interface TraceOptions {
  table?: string;
  live: boolean;
  ingress?: string;
  pcap?: string;
  /** A packet in words: SRC DST [tcp PORT | udp PORT | icmp]. */
  words: string[];
}

const SOURCE_PORT = 40000;

/** The packet of `SRC DST [tcp PORT | udp PORT | icmp]` (ICMP echo by default), raw IP. */
export function packetOf(words: readonly string[]): Uint8Array {
  if (words.length < 2 || words.length > 4) throw new TraceUsageError("trace takes a packet as SRC DST [tcp PORT | udp PORT | icmp], or --pcap FILE");
  const src = parseAddress(words[0], "SRC");
  const dst = parseAddress(words[1], "DST");
  if (src.family !== dst.family) throw new TraceUsageError(`SRC ${words[0]} and DST ${words[1]} are of different families`);
  const kind = words[2] ?? "icmp";
  let dstPort = 0;
  if (kind === "tcp" || kind === "udp") {
    dstPort = Number(words[3]);
    if (!Number.isInteger(dstPort) || dstPort < 1 || dstPort > 65535) throw new TraceUsageError(`${kind} takes a destination port (1-65535), not ${JSON.stringify(words[3] ?? "")}`);
  } else if (kind !== "icmp" || words.length > 3) {
    throw new TraceUsageError(`the packet's protocol is tcp PORT, udp PORT or icmp, not ${JSON.stringify(words.slice(2).join(" "))}`);
  }
  const payload = new TextEncoder().encode("mipctl trace");
  const v4 = src.family === 4;
  const ip4 = { src: src.bytes, dst: dst.bytes }, ip6 = { src: src.bytes, dst: dst.bytes };
  if (kind === "tcp") return v4 ? buildTcp4(ip4, { srcPort: SOURCE_PORT, dstPort, flags: 0x02 }, payload) : buildTcp6(ip6, { srcPort: SOURCE_PORT, dstPort, flags: 0x02 }, payload);
  if (kind === "udp") return v4 ? buildUdp4({ ...ip4, srcPort: SOURCE_PORT, dstPort }, payload) : buildUdp6({ ...ip6, srcPort: SOURCE_PORT, dstPort }, payload);
  return v4 ? buildIcmp4Echo(ip4, false, 1, 1, payload) : buildIcmp6Echo(ip6, false, 1, 1, payload);
}

function readTable(path: string): OfflineTable {
  try {
    return readOfflineTable(path);
  } catch (e) {
    throw new Error(`--table ${(e as Error).message}`);
  }
}

/** Raw IP packets get the Ethernet header the ingress interface would see, as offline mode gives them. */
function framesOf(o: TraceOptions, table: OfflineTable): Uint8Array[] {
  const ifc = ingressOf(table, o.ingress);
  if (o.pcap === undefined) return [ingressFramer(table, ifc, LINKTYPE_RAW)(packetOf(o.words))];
  if (o.words.length > 0) throw new TraceUsageError("trace takes a packet or --pcap FILE, not both");
  const capture = parsePcap(readFileSync(o.pcap));
  const frameOf = ingressFramer(table, ifc, capture.linkType, `--pcap ${o.pcap}`);
  return capture.records.map((r) => frameOf(r.data));
}

function render(steps: TraceStep[], revision: bigint, live: boolean): string {
  const lines = [`rule table revision ${revision}${live ? " (the engine's, live)" : " (the table file's)"}`];
  steps.forEach((s, i) => {
    lines.push(`packet ${i + 1}: ${s.input}`);
    const actions = Object.entries(s.actions).map(([a, n]) => (n === 1 ? a : `${a} ×${n}`));
    const drops = Object.entries(s.drops).map(([d, n]) => (n === 1 ? d : `${d} ×${n}`));
    if (actions.length) lines.push(`  pipeline: ${actions.join(", ")}`);
    if (drops.length) lines.push(`  dropped: ${drops.join(", ")}`);
    if (!actions.length && !drops.length) lines.push("  pipeline: nothing counted");
    for (const out of s.output) lines.push(`  out ${out.interface} (${out.bytes} bytes): ${out.frame}`);
    if (s.output.length === 0) lines.push("  nothing sent");
  });
  return lines.join("\n") + "\n";
}

/** The engine's rules in lib/rules' shape; a kind this mipctl does not know is an error, not left out. */
export function rulesOf(r: GetRuleTableResponse): Rule[] {
  return r.rules.map((m) => {
    const rule = ruleFromMessage(m);
    if (!rule) throw new Error(`rule ${JSON.stringify(m.key)}: a kind this mipctl does not know (is the engine newer?)`);
    return rule;
  });
}

/** Runs the trace; with `live`, the table file's rules give way to the engine's. */
export async function trace(client: ControlClient, o: TraceOptions): Promise<Output> {
  if (o.table === undefined) throw new TraceUsageError("trace needs --table FILE: an offline rule-table file with the worker's settings (dataplane/offline/README.md)");
  const table = readTable(o.table);
  const frames = framesOf(o, table);
  if (o.live) {
    const r = await client.getRuleTable({});
    table.revision = r.revision;
    table.rules = rulesOf(r);
  }
  const steps = traceFrames(table, frames, o.ingress);
  return { json: { revision: table.revision.toString(), live: o.live, packets: steps }, table: render(steps, table.revision, o.live) };
}
