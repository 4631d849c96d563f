// The offline rule-table file: the worker's settings and its rules in one JSON document (format
// in README.md). Validated here, with errors that name the field.
import type { Rule } from "../../lib/rules/rules.js";
import { ForwarderConfigError, parseForwarderConfig, type ForwarderConfig } from "../forward/config.js";
import { parseRule, RuleTableError } from "../forward/rules.js";
import { parseMac } from "../packet/ethernet.js";

export interface OfflineTable {
  revision: bigint;
  worker: ForwarderConfig;
  rules: Rule[];
  /** MAC of next hops not listed in worker.neighbours; absent → they are resolved by ARP/NDP (requests appear in the output). */
  defaultNeighbourMac?: string;
  /** Source MAC of the Ethernet header wrapped around raw-IP input; default 02:00:00:00:00:fe. */
  rawSourceMac?: string;
}

export class OfflineTableError extends Error {
  override name = "OfflineTableError";
}

function mac(v: unknown, field: string): string {
  if (typeof v !== "string" || !/^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$/.test(v)) throw new OfflineTableError(`${field}: must be a MAC address (aa:bb:cc:dd:ee:ff), not ${JSON.stringify(v)}`);
  parseMac(v);
  return v;
}

/** Validates a parsed JSON table. Throws OfflineTableError whose message starts with the field's path. */
export function parseOfflineTable(value: unknown): OfflineTable {
  if (typeof value !== "object" || value === null || Array.isArray(value)) throw new OfflineTableError("table: must be a JSON object");
  const o = value as Record<string, unknown>;
  for (const k of Object.keys(o)) {
    if (!["revision", "worker", "rules", "defaultNeighbourMac", "rawSourceMac", "$comment"].includes(k)) throw new OfflineTableError(`${k}: unknown field (expected revision, worker, rules, defaultNeighbourMac, rawSourceMac)`);
  }
  let revision = 1n;
  if (o.revision !== undefined) {
    const r = o.revision;
    if (!((typeof r === "number" && Number.isSafeInteger(r) && r >= 0) || (typeof r === "string" && /^\d+$/.test(r)))) throw new OfflineTableError("revision: must be a non-negative integer (or a string of digits)");
    revision = BigInt(r);
  }
  let worker: ForwarderConfig;
  try {
    worker = parseForwarderConfig(o.worker, "worker");
  } catch (e) {
    if (e instanceof ForwarderConfigError) throw new OfflineTableError(e.message);
    throw e;
  }
  if (!Array.isArray(o.rules)) throw new OfflineTableError("rules: must be an array of rules (lib/rules/rules.ts)");
  const keys = new Set<string>();
  const rules = o.rules.map((r, i) => {
    try {
      parseRule(r as Rule);
    } catch (e) {
      if (e instanceof RuleTableError) throw new OfflineTableError(`rules[${i}]: ${e.message}`);
      throw e;
    }
    const rule = r as Rule;
    if (keys.has(rule.key)) throw new OfflineTableError(`rules[${i}].key: ${JSON.stringify(rule.key)} appears twice`);
    keys.add(rule.key);
    return rule;
  });
  const t: OfflineTable = { revision, worker, rules };
  if (o.defaultNeighbourMac !== undefined) t.defaultNeighbourMac = mac(o.defaultNeighbourMac, "defaultNeighbourMac");
  if (o.rawSourceMac !== undefined) t.rawSourceMac = mac(o.rawSourceMac, "rawSourceMac");
  return t;
}
