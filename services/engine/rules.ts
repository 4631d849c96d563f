// The engine's rule calls: the configuration's own rules, compiled by the leader, and the rule
// table as the workers' push (services/api/watch.ts) reads it. The rules of bindings and
// correspondents change with them (migrations.ts, leases.ts, release.ts).
import type { Rule } from "../../lib/rules/rules.js";
import { CONFIG_OWNER, configRules } from "../rules/compile.js";
import type { RuleChange } from "../store/store.js";
import type { EngineCore } from "./core.js";
import type { Leadership } from "./leader.js";

export class EngineRules {
  constructor(private readonly core: EngineCore, private readonly leadership: Leadership) {}

  /**
   * The configuration's rules, written by the leader (now, and each time this replica is
   * elected), so replicas with different configurations (during a rolling change) do not take
   * turns rewriting them.
   */
  async start(): Promise<void> {
    this.leadership.onElected(() => void this.compileConfigRules().catch((e) => this.core.log.error("configuration rules not written", { err: e })));
    await this.compileConfigRules();
  }

  private async compileConfigRules(): Promise<void> {
    const store = this.leadership.leaderStore();
    if (store) await store.replaceRules(CONFIG_OWNER, configRules(this.core.config));
  }

  table(): Promise<{ revision: bigint; rules: Rule[] }> {
    return this.core.store.ruleTable();
  }

  /** The rule changes after `revision`, oldest first; undefined when the log no longer reaches back that far. */
  changesSince(revision: bigint): Promise<RuleChange[] | undefined> {
    return this.core.store.ruleChangesSince(revision);
  }

  /** Calls `listener` after each change of the rule table (on etcd, any replica's); returns the unsubscribe. */
  onChanged(listener: (revision: bigint) => void): () => void {
    return this.core.store.onRulesChanged(listener);
  }
}
