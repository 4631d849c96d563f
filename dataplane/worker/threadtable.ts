// The rule table as the main thread of a worker with `workers: N` keeps it, and the table
// messages it posts to the forwarding threads (thread.ts applies them).
//
// The main thread forwards nothing, so it keeps no indexes: only the rules' slots (RuleSlots,
// dataplane/forward/slots.ts: words and keys, no object per rule), to start a dead thread again
// with the table in force. A snapshot is parsed here once and posted as its image (the words in
// a SharedArrayBuffer that every thread reads, not a copy per thread; the keys as one string),
// so no thread parses 400,000 rules' text again: each builds its indexes from the words. Deltas
// are small and go as rules, each thread parsing its own.
import type { Rule, RuleTable } from "../../lib/rules/rules.js";
import { RuleSlots, RuleTableError, type Forwarder, type RuleImage } from "../forward/index.js";

/** A table change as posted to the threads, numbered by the main thread in the order it posts them. */
export type TableMessage =
  | { t: "table"; seq: number; kind: "image"; revision: bigint; image: RuleImage }
  /** A snapshot this thread could not parse: posted as received, each thread refuses it (with its error). */
  | { t: "table"; seq: number; kind: "snapshot"; revision: bigint; rules: Rule[] }
  | { t: "table"; seq: number; kind: "delta"; revision: bigint; updates: Rule[]; removes: string[] };

/** The table a thread starts with: the one in force, as an image, with the seq of the last change in it. */
export interface StartTable {
  seq: number;
  revision: bigint;
  image: RuleImage;
}

export class ThreadTable {
  /** The table after every change kept so far; undefined before the first. */
  private slots: RuleSlots | undefined;
  revision = -1n;

  get held(): boolean {
    return this.slots !== undefined;
  }

  /**
   * A snapshot, kept, and its message. One with a bad rule is not kept (every thread refuses
   * it and keeps its table, which a restarted thread then gets too; the sync client
   * resynchronises and the next snapshot replaces them all).
   */
  snapshot(seq: number, table: RuleTable): TableMessage {
    let slots: RuleSlots;
    try {
      slots = RuleSlots.build(table.rules);
    } catch (e) {
      if (!(e instanceof RuleTableError)) throw e;
      return { t: "table", seq, kind: "snapshot", revision: table.revision, rules: table.rules };
    }
    this.slots = slots;
    this.revision = table.revision;
    return { t: "table", seq, kind: "image", revision: table.revision, image: slots.image() };
  }

  /** A delta, kept (not when a rule of it is bad: the threads refuse it too), and its message. */
  delta(seq: number, revision: bigint, updates: Rule[], removes: string[]): TableMessage {
    try {
      (this.slots ??= new RuleSlots()).applyDelta(updates, removes);
      this.revision = revision;
    } catch (e) {
      if (!(e instanceof RuleTableError)) throw e;
    }
    return { t: "table", seq, kind: "delta", revision, updates, removes };
  }

  /** The table in force for a thread that starts, or undefined before any. */
  start(seq: number): StartTable | undefined {
    return this.slots === undefined ? undefined : { seq, revision: this.revision, image: this.slots.image() };
  }

  /** The table in force as one snapshot message (a thread that missed changes while it started). */
  message(seq: number): TableMessage | undefined {
    return this.slots === undefined ? undefined : { t: "table", seq, kind: "image", revision: this.revision, image: this.slots.image() };
  }
}

/** A forwarding thread's side: applies a table message; throws RuleTableError (the forwarder changed nothing). */
export function applyTable(forwarder: Forwarder, m: TableMessage | StartTable): void {
  if ("image" in m) forwarder.replaceRulesImage(m.revision, m.image);
  else if (m.kind === "snapshot") forwarder.replaceRules(m);
  else forwarder.applyDelta(m.revision, m.updates, m.removes);
}
