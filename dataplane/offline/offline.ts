// Offline mode: frames from a pcap file through the same Forwarder the live worker runs, with a
// rule table from a JSON file, and what the worker would send written to a pcap file. Operators
// use it to see what a rule does to a packet; the tests use it for exact-output cases.
import { readFileSync, writeFileSync } from "node:fs";
import { Forwarder } from "../forward/forwarder.js";
import type { ForwarderCounters } from "../forward/counters.js";
import type { InterfaceConfig } from "../forward/config.js";
import { LINKTYPE_ETHERNET, LINKTYPE_RAW, parsePcap, serializePcap, type PcapWriteRecord } from "../io/pcapfile.js";
import { ETHERTYPE, parseMac } from "../packet/ethernet.js";
import { OfflineTableError, parseOfflineTable, type OfflineTable } from "./table.js";

/** Link types of raw IP: 101 (LINKTYPE_RAW), and 228 / 229 (IPv4 / IPv6 only). */
const RAW_LINK_TYPES = new Set([LINKTYPE_RAW, 228, 229]);
const DEFAULT_RAW_SOURCE_MAC = "02:00:00:00:00:fe";

export interface OfflineOptions {
  /** Input pcap file (link type 1 Ethernet or 101 raw IP). */
  input: string;
  /** JSON rule-table file (README.md). */
  table: string;
  /** Output pcap file (Ethernet). */
  output: string;
  /** Ingress interface, by name or index; default the first interface of the table. */
  ingress?: string | number;
}

export interface OfflineSummary {
  framesIn: number;
  framesOut: number;
  /** Per output frame: the interface it leaves on. */
  egress: { ifIndex: number; name: string }[];
  counters: ForwarderCounters;
}

/** Reads, forwards, writes. Throws OfflineTableError / PcapFormatError with a readable message. */
export function runOffline(options: OfflineOptions): OfflineSummary {
  const table = readOfflineTable(options.table);
  const { records, summary } = forwardRecords(table, parsePcap(readFileSync(options.input)), options.ingress);
  writeFileSync(options.output, serializePcap(records, LINKTYPE_ETHERNET));
  return summary;
}

/** A rule-table file, read and checked; OfflineTableError naming the file, then the field. */
export function readOfflineTable(path: string): OfflineTable {
  return readJsonFile(path, OfflineTableError, parseOfflineTable);
}

/**
 * A JSON file, parsed and then read by `read`: an error reading or parsing it, or one of class
 * `Err` from `read`, is thrown as an `Err` whose message starts with the file's path (the offline
 * mode's table, the live worker's --table).
 */
export function readJsonFile<T>(path: string, Err: new (message: string) => Error, read: (json: unknown) => T): T {
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(path, "utf8"));
  } catch (e) {
    throw new Err(`${path}: ${(e as Error).message}`);
  }
  try {
    return read(json);
  } catch (e) {
    if (e instanceof Err) throw new Err(`${path}: ${e.message}`);
    throw e;
  }
}

/**
 * How frames of a capture with `linkType` enter on `ifc`: Ethernet as they are; raw IP in a
 * synthetic Ethernet header addressed to the interface, from the table's `rawSourceMac`.
 * OfflineTableError, starting with `field`, for another link type.
 */
export function ingressFramer(table: OfflineTable, ifc: InterfaceConfig, linkType: number, field = "input"): (data: Uint8Array) => Uint8Array {
  if (linkType === LINKTYPE_ETHERNET) return (data) => data;
  if (!RAW_LINK_TYPES.has(linkType)) throw new OfflineTableError(`${field}: link type ${linkType} is not supported (1 Ethernet, 101 raw IP)`);
  const ingressMac = parseMac(ifc.mac);
  const rawSource = parseMac(table.rawSourceMac ?? DEFAULT_RAW_SOURCE_MAC);
  return (data) => {
    const type = data.length > 0 && data[0] >> 4 === 6 ? ETHERTYPE.IPV6 : ETHERTYPE.IPV4;
    const f = new Uint8Array(14 + data.length);
    f.set(ingressMac, 0);
    f.set(rawSource, 6);
    f[12] = type >> 8;
    f[13] = type & 0xff;
    f.set(data, 14);
    return f;
  };
}

/** The table's interface named or numbered `ingress`; the first when it is undefined. */
export function ingressOf(table: OfflineTable, ingress?: string | number): InterfaceConfig {
  const ifc = ingress === undefined ? table.worker.interfaces[0]
    : table.worker.interfaces.find((i) => i.name === String(ingress) || String(i.index) === String(ingress));
  if (ifc === undefined) throw new OfflineTableError(`ingress: no interface named or numbered ${JSON.stringify(ingress)}`);
  return ifc;
}

/** A Forwarder with the table's settings and rules, the ingress interface (name or index; default the first) and the interfaces' names by index. */
export function tableForwarder(table: OfflineTable, ingress?: string | number): { forwarder: Forwarder; ingress: InterfaceConfig; names: Map<number, string> } {
  const ifc = ingressOf(table, ingress);
  const forwarder = new Forwarder(table.worker, 0, { fallbackNeighbourMac: table.defaultNeighbourMac === undefined ? undefined : parseMac(table.defaultNeighbourMac) });
  forwarder.replaceRules({ revision: table.revision, rules: table.rules });
  return { forwarder, ingress: ifc, names: new Map(table.worker.interfaces.map((i) => [i.index, i.name])) };
}

/** The pure core of `runOffline`: a parsed table and capture in, output records out. */
export function forwardRecords(table: OfflineTable, capture: ReturnType<typeof parsePcap>, ingress?: string | number): { records: PcapWriteRecord[]; summary: OfflineSummary } {
  const { forwarder, ingress: ifc, names } = tableForwarder(table, ingress);
  const frameOf = ingressFramer(table, ifc, capture.linkType);
  const records: PcapWriteRecord[] = [];
  const egress: { ifIndex: number; name: string }[] = [];
  let stamp = { seconds: 0, micros: 0 };
  const emit = (ifIndex: number, frame: Uint8Array): void => {
    records.push({ seconds: stamp.seconds, micros: stamp.micros, data: frame.slice() });
    egress.push({ ifIndex, name: names.get(ifIndex) ?? String(ifIndex) });
  };
  for (const r of capture.records) {
    stamp = r;
    forwarder.processFrame(ifc.index, frameOf(r.data), emit, r.seconds * 1000 + Math.floor(r.micros / 1000));
  }
  return { records, summary: { framesIn: capture.records.length, framesOut: records.length, egress, counters: forwarder.counters } };
}
