// A rule table from a JSON file for the live worker (--table, or `table` in its configuration),
// for labs without an engine: {"revision": 7, "rules": [...]}. An offline-mode table file
// (dataplane/offline) works too; its "worker" settings are ignored, the live worker takes them
// from its YAML configuration.
import { readFileSync } from "node:fs";
import type { Rule, RuleTable } from "../../lib/rules/rules.js";
import { parseRule } from "../forward/rules.js";

export class RuleTableFileError extends Error {
  override name = "RuleTableFileError";
}

export function loadRuleTableFile(path: string): RuleTable {
  let value: { revision?: unknown; rules?: unknown };
  try {
    value = JSON.parse(readFileSync(path, "utf8"));
  } catch (e) {
    throw new RuleTableFileError(`${path}: ${(e as Error).message}`);
  }
  if (typeof value !== "object" || value === null || !Array.isArray(value.rules)) {
    throw new RuleTableFileError(`${path}: must be a JSON object with a "rules" list`);
  }
  const r = value.revision ?? 0;
  if (!((typeof r === "number" && Number.isSafeInteger(r) && r >= 0) || (typeof r === "string" && /^\d+$/.test(r)))) {
    throw new RuleTableFileError(`${path}: revision must be a non-negative integer`);
  }
  const rules = value.rules.map((rule, i) => {
    try {
      parseRule(rule as Rule);
    } catch (e) {
      throw new RuleTableFileError(`${path}: rules[${i}]: ${(e as Error).message}`);
    }
    return rule as Rule;
  });
  return { revision: BigInt(r), rules };
}
