// A rule table from a JSON file for the live worker (--table, or `table` in its configuration),
// for labs without an engine: {"revision": 7, "rules": [...]}. An offline-mode table file
// (dataplane/offline) works too; its "worker" settings are ignored, the live worker takes them
// from its YAML configuration.
import type { RuleTable } from "../../lib/rules/rules.js";
import { parseShape, z } from "../../lib/config/schema.js";
import { checkedRules, REVISION } from "../offline/table.js";
import { readJsonFile } from "../offline/offline.js";

export class RuleTableFileError extends Error {
  override name = "RuleTableFileError";
}

/** The keys it reads; others (an offline table's worker settings) are left to the offline mode. */
const FILE = z.looseObject({
  revision: REVISION.default(0),
  rules: z.array(z.unknown(), { error: "must be a list of rules" }),
});

export function loadRuleTableFile(path: string): RuleTable {
  return readJsonFile(path, RuleTableFileError, (value) => {
    const fail = (m: string) => new RuleTableFileError(m);
    const file = parseShape(FILE, value, fail, "");
    return { revision: BigInt(file.revision), rules: checkedRules(file.rules, fail) };
  });
}
