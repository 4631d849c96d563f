// The rule table as the main thread of a worker with `workers: N` keeps it, and the table
// messages it posts to the forwarding threads (thread.ts applies them).
//
// The main thread forwards nothing, so it keeps no indexes, not even a table of its own: the
// last snapshot's image (RuleSlots.image(), dataplane/forward/slots.ts: the rules' words in a
// SharedArrayBuffer, their keys as one string) and the deltas since, to start a dead thread
// again with the table in force. A snapshot is parsed here once and posted as that image (the
// words shared by every thread, not a copy per thread), so no thread parses 400,000 rules'
// text again: each builds its indexes from the words. Deltas are small and go as rules, each
// thread parsing its own.
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
  /**
   * The last snapshot as its image, and the deltas since by key (null: removed), folded into a
   * new image when a thread starts or when they grow to a tenth of the table. Undefined before
   * the first table.
   */
  private image: RuleImage | undefined;
  private readonly since = new Map<string, Rule | null>();
  revision = -1n;

  /**
   * A snapshot, kept, and its message. One with a bad rule is not kept (every thread refuses
   * it and keeps its table, which a restarted thread then gets too; the sync client
   * resynchronises and the next snapshot replaces them all).
   */
  snapshot(seq: number, table: RuleTable): TableMessage {
    let image: RuleImage;
    try {
      image = RuleSlots.build(table.rules).image();
    } catch (e) {
      if (!(e instanceof RuleTableError)) throw e;
      return { t: "table", seq, kind: "snapshot", revision: table.revision, rules: table.rules };
    }
    this.image = image;
    this.since.clear();
    this.revision = table.revision;
    return { t: "table", seq, kind: "image", revision: table.revision, image };
  }

  /** A delta, kept (not when a rule of it is bad: the threads refuse it too), and its message. */
  delta(seq: number, revision: bigint, updates: Rule[], removes: string[]): TableMessage {
    try {
      // Checked as the threads check it (RuleSlots parses as CompiledRules does), then kept by key.
      new RuleSlots().applyDelta(updates, []);
      // Each key at the place of its last change: folded, the updates come last in the order the
      // threads applied them (the order that decides between equally specific encapsulate rules).
      for (const k of removes) this.keep(k, null);
      for (const r of updates) this.keep(r.key, r);
      this.image ??= new RuleSlots().image();
      this.revision = revision;
      if (this.since.size > this.image.kinds.length / 10) this.fold();
    } catch (e) {
      if (!(e instanceof RuleTableError)) throw e;
    }
    return { t: "table", seq, kind: "delta", revision, updates, removes };
  }

  private keep(key: string, rule: Rule | null): void {
    this.since.delete(key);
    this.since.set(key, rule);
  }

  /** The table in force for a thread that starts, or undefined before any. */
  start(seq: number): StartTable | undefined {
    const image = this.current();
    return image === undefined ? undefined : { seq, revision: this.revision, image };
  }

  /** The table in force as one snapshot message (a thread that missed changes while it started). */
  message(seq: number): TableMessage | undefined {
    const image = this.current();
    return image === undefined ? undefined : { t: "table", seq, kind: "image", revision: this.revision, image };
  }

  private current(): RuleImage | undefined {
    if (this.since.size > 0) this.fold();
    return this.image;
  }

  /** The deltas kept since the image, applied to it: a new image. */
  private fold(): void {
    const slots = RuleSlots.fromImage(this.image!);
    const updates: Rule[] = [];
    const removes: string[] = [];
    for (const [k, r] of this.since) {
      if (r === null) removes.push(k);
      else updates.push(r);
    }
    slots.applyDelta(updates, removes);
    this.image = slots.image();
    this.since.clear();
  }
}

/** A forwarding thread's side: applies a table message; throws RuleTableError (the forwarder changed nothing). */
export function applyTable(forwarder: Forwarder, m: TableMessage | StartTable): void {
  if ("image" in m) forwarder.replaceRulesImage(m.revision, m.image);
  else if (m.kind === "snapshot") forwarder.replaceRules(m);
  else forwarder.applyDelta(m.revision, m.updates, m.removes);
}
