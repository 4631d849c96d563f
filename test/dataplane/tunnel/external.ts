// Thin adapters over the shared helpers (test/helpers): scapy builds a named set of independent
// packets in one python run; tshark reports complaints and field values.
import { LINKTYPE_RAW } from "../../helpers/pcap.js";
import { scapyBuild } from "../../helpers/scapy.js";
import { decodeWithTshark, type TsharkResult } from "../../helpers/tshark.js";

// A test that asks for fields and for complaints about the same packets runs tshark once.
const decoded = new Map<string, TsharkResult>();
function decode(packets: Uint8Array[]): TsharkResult {
  const key = packets.map((p) => Buffer.from(p).toString("hex")).join(",");
  let r = decoded.get(key);
  if (r === undefined) {
    r = decodeWithTshark(packets, LINKTYPE_RAW);
    decoded.set(key, r);
  }
  return r;
}

/** Evaluates scapy expressions (one python run for all) and returns their bytes by name. */
export function scapy(exprs: Record<string, string>): Record<string, Buffer> {
  const names = Object.keys(exprs);
  const built = scapyBuild(names.map((n) => exprs[n]));
  return Object.fromEntries(names.map((n, i) => [n, Buffer.from(built[i])]));
}

/** tshark's complaints (malformed, bad checksum, any warning) about raw IP `packets`; empty if none. */
export function tsharkComplaints(packets: Uint8Array[]): string[] {
  return decode(packets).problems.map((p) => `${p.frame} ${p.severity}: ${p.message}`);
}

/** The first value of each named field per packet, searched breadth-first so outer headers win. */
export function tsharkFields(packets: Uint8Array[], fields: string[]): string[][] {
  return decode(packets).packets.map((p) => fields.map((f) => findField(p._source.layers, f)));
}

function findField(root: unknown, name: string): string {
  let level: unknown[] = [root];
  while (level.length > 0) {
    const next: unknown[] = [];
    for (const node of level) {
      if (node === null || typeof node !== "object") continue;
      const record = node as Record<string, unknown>;
      if (name in record) {
        const v = record[name];
        return Array.isArray(v) ? String(v[0]) : String(v);
      }
      next.push(...Object.values(record));
    }
    level = next;
  }
  return "";
}
