// The offline rule-table file: the worker's settings and its rules in one JSON document (format
// in README.md). Validated here, with errors that name the field.
import type { Rule } from "../../lib/rules/rules.js";
import { ForwarderConfigError, parseForwarderConfig, type ForwarderConfig } from "../forward/config.js";
import { parseRule, RuleTableError } from "../forward/rules.js";
import { parseMac } from "../packet/ethernet.js";
import { ConfigFieldError, parseShape, strict, z } from "../../lib/config/schema.js";

export interface OfflineTable {
  revision: bigint;
  worker: ForwarderConfig;
  rules: Rule[];
  /** MAC of next hops not listed in worker.neighbours; absent → they are resolved by ARP/NDP (requests appear in the output). */
  defaultNeighbourMac?: string;
  /** Source MAC of the Ethernet header wrapped around raw-IP input; default 02:00:00:00:00:fe. */
  rawSourceMac?: string;
}

export class OfflineTableError extends ConfigFieldError {
  override name = "OfflineTableError";
}

/** A table's revision: a non-negative integer, or its digits (JSON cannot carry a 64-bit number). */
export const REVISION = z.union([z.number().int().min(0), z.string().regex(/^\d+$/)], { error: "must be a non-negative integer (or a string of digits)" });

const TABLE = strict({
  revision: REVISION.default(1),
  /** Checked by parseForwarderConfig. */
  worker: z.unknown(),
  /** Each checked by parseRule. */
  rules: z.array(z.unknown(), { error: "must be an array of rules (lib/rules/rules.ts)" }),
  defaultNeighbourMac: z.string().optional(),
  rawSourceMac: z.string().optional(),
  $comment: z.unknown().optional(),
});

function mac(v: string, field: string): string {
  if (!/^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$/.test(v)) throw new OfflineTableError(`${field}: must be a MAC address (aa:bb:cc:dd:ee:ff), not ${JSON.stringify(v)}`);
  parseMac(v);
  return v;
}

/** Validates a parsed JSON table. Throws OfflineTableError whose message starts with the field's path. */
export function parseOfflineTable(value: unknown): OfflineTable {
  const o = parseShape(TABLE, value, (m, f) => new OfflineTableError(m, f), "");
  const revision = BigInt(o.revision);
  let worker: ForwarderConfig;
  try {
    worker = parseForwarderConfig(o.worker, "worker");
  } catch (e) {
    if (e instanceof ForwarderConfigError) throw new OfflineTableError(e.message);
    throw e;
  }
  const rules = checkedRules(o.rules, (m) => new OfflineTableError(m));
  const t: OfflineTable = { revision, worker, rules };
  if (o.defaultNeighbourMac !== undefined) t.defaultNeighbourMac = mac(o.defaultNeighbourMac, "defaultNeighbourMac");
  if (o.rawSourceMac !== undefined) t.rawSourceMac = mac(o.rawSourceMac, "rawSourceMac");
  return t;
}

/** A table file's rules, each checked (parseRule) and each key once; `fail` makes the error, its message starting `rules[i]`. */
export function checkedRules(list: readonly unknown[], fail: (message: string) => Error): Rule[] {
  const keys = new Set<string>();
  return list.map((r, i) => {
    try {
      parseRule(r as Rule);
    } catch (e) {
      if (e instanceof RuleTableError) throw fail(`rules[${i}]: ${e.message}`);
      throw e;
    }
    const rule = r as Rule;
    if (keys.has(rule.key)) throw fail(`rules[${i}].key: ${JSON.stringify(rule.key)} appears twice`);
    keys.add(rule.key);
    return rule;
  });
}
