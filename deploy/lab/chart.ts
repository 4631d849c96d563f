// The handover of live migrations as a picture (issue 14 §7): for each move, what QEMU did, what
// the destination's agent did and when, what the VM's new link saw, and the blackout the client's
// probe saw, on one time axis. Two panels per move: the whole migration, and the switch (the last
// moments of the pre-copy to the end of the handover) drawn larger, where the milliseconds are.
// Pure: measured moves in, SVG text out. The demo writes it; test/lab/chart.test.ts renders it in
// headless Chromium.
import type { MeasuredMove } from "./measure.js";

export interface ChartMove {
  vm: string;
  from: string;
  to: string;
  /** What the move was, in words ("into the IPv6 network", "home"). */
  what: string;
  m: MeasuredMove;
}

const WIDTH = 1200;
const LEFT = 150;
const GAP = 40;
const PANEL = (WIDTH - LEFT - GAP - 20) / 2;
const LANE = 48;
const LANES = ["QEMU", "agent", "VM link", "client probe"] as const;
const BLOCK = 60 + LANES.length * LANE + 40;

export const COLOURS = { qemu: "#9e9e9e", paused: "#424242", agent: "#1f77b4", link: "#2ca02c", blackout: "#d62728", grid: "#e0e0e0" };

interface Mark { lane: number; at: number; label: string; colour: string }
interface Bar { lane: number; from: number; to: number; label: string; colour: string }

function esc(text: string): string {
  return text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
}

const ms = (n: number) => `${n.toFixed(n < 10 ? 1 : 0)} ms`;

/** The move's events on one clock (epoch ms). */
function events(c: ChartMove): { marks: Mark[]; bars: Bar[]; switchFrom: number; switchTo: number; start: number; end: number } {
  const { move, handover: h, blackout, link, probe } = c.m;
  const marks: Mark[] = [];
  const bars: Bar[] = [];
  const down = move.qemu.downtimeMs ?? 0;
  bars.push({ lane: 0, from: move.startedAt, to: move.upAt, label: `migrating ${ms(move.upAt - move.startedAt)}`, colour: COLOURS.qemu });
  if (down > 0) bars.push({ lane: 0, from: move.upAt - down, to: move.upAt, label: `paused ${ms(down)}`, colour: COLOURS.paused });
  marks.push({ lane: 0, at: move.destinationUpAt, label: `${c.to}'s QEMU up`, colour: COLOURS.qemu });
  if (h) {
    const steps: [number | undefined, string][] = [
      [0, "port seen"], [h.allocatedMs, "care-of"], [h.hostRulesMs, "host rules"], [h.engineRulesMs, "engine prepared"],
      [h.activatedMs, `activated (${h.activation ?? "?"})`], [h.migrationRegisteredMs, "RegisterMigration"], [h.registeredMs, "home agent"],
    ];
    for (const [at, label] of steps) if (at !== undefined) marks.push({ lane: 1, at: h.seenAtMs + at, label, colour: COLOURS.agent });
  }
  if (link?.rarpAt !== undefined) marks.push({ lane: 2, at: link.rarpAt, label: "RARP", colour: COLOURS.link });
  if (link?.firstProbeAt !== undefined) marks.push({ lane: 2, at: link.firstProbeAt, label: "first probe in", colour: COLOURS.link });
  if (link?.firstReplySentAt !== undefined) marks.push({ lane: 2, at: link.firstReplySentAt, label: "first reply out", colour: COLOURS.link });
  if (blackout) {
    bars.push({ lane: 3, from: move.startedAt + blackout.fromMs, to: move.startedAt + blackout.toMs, label: `blackout ${ms(blackout.ms)}, ${probe.lost} of ${probe.sent} lost`, colour: COLOURS.blackout });
  }
  const times = [...marks.map((x) => x.at), ...bars.flatMap((b) => [b.from, b.to])];
  const start = Math.min(...times);
  const end = Math.max(...times);
  // The switch: from a little before QEMU paused the guest to the last thing after it.
  const after = times.filter((t) => t >= move.upAt - down);
  const switchFrom = move.upAt - down - 5;
  const switchTo = Math.max(switchFrom + 20, ...after) + 5;
  return { marks, bars, switchFrom, switchTo, start, end };
}

/** About how wide a label is drawn at font size 10. */
const textWidth = (label: string) => label.length * 5.6 + 6;

/**
 * Where a label goes: the first of three rows of its lane (above the dot, then two below) where it
 * does not run into the label before it; labels near the panel's right edge end at their dot.
 * With all three rows taken the label is left out (the dot's tooltip still names it).
 */
class LabelRows {
  private readonly ends = new Map<string, number>();
  place(lane: number, px: number, label: string, right: number): { row: number; x: number; anchor: "start" | "end" } | undefined {
    const w = textWidth(label);
    const anchor = px + w > right ? "end" : "start";
    const from = anchor === "start" ? px : px - w;
    for (let row = 0; row < 3; row++) {
      const key = `${lane}/${row}`;
      if (from >= (this.ends.get(key) ?? -Infinity)) {
        this.ends.set(key, from + w);
        return { row, x: anchor === "start" ? px + 5 : px - 5, anchor };
      }
    }
    return undefined;
  }
}
const ROW_Y = [6, 30, 42];

/** One panel: [t0, t1] drawn over PANEL px from x0. */
function panel(x0: number, y0: number, title: string, t0: number, t1: number, origin: number, e: ReturnType<typeof events>): string[] {
  const out: string[] = [];
  const x = (t: number) => x0 + ((Math.min(Math.max(t, t0), t1) - t0) / (t1 - t0)) * PANEL;
  const inside = (t: number) => t >= t0 && t <= t1;
  out.push(`<text x="${x0}" y="${y0 - 8}" font-size="12" fill="#555">${esc(title)}</text>`);
  // The axis: ms from the migration's start, about 6 ticks.
  const span = t1 - t0;
  const step = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000].find((s) => span / s <= 6) ?? 5000;
  const yAxis = y0 + LANES.length * LANE;
  for (let v = Math.ceil((t0 - origin) / step) * step; origin + v <= t1; v += step) {
    const px = x(origin + v);
    out.push(`<line x1="${px}" y1="${y0}" x2="${px}" y2="${yAxis}" stroke="${COLOURS.grid}"/>`);
    out.push(`<text x="${px}" y="${yAxis + 14}" font-size="10" text-anchor="middle" fill="#555">${v} ms</text>`);
  }
  for (const b of e.bars) {
    if (b.to < t0 || b.from > t1) continue;
    const y = y0 + b.lane * LANE + 6;
    const w = Math.max(2, x(b.to) - x(b.from));
    out.push(`<rect x="${x(b.from)}" y="${y}" width="${w}" height="12" fill="${b.colour}"><title>${esc(b.label)}</title></rect>`);
  }
  const rows = new LabelRows();
  for (const b of e.bars) {
    // A bar that begins before the panel is labelled in the panel where it begins.
    if (b.to < t0 || b.from > t1 || b.from < t0) continue;
    const at = rows.place(b.lane, x(b.from), b.label, x0 + PANEL);
    if (at) out.push(`<text x="${at.x}" y="${y0 + b.lane * LANE + ROW_Y[Math.max(1, at.row)]}" font-size="10" text-anchor="${at.anchor}" fill="${b.colour}">${esc(b.label)}</text>`);
  }
  for (const m of [...e.marks].filter((mk) => inside(mk.at)).sort((a, b) => a.at - b.at)) {
    const px = x(m.at);
    const y = y0 + m.lane * LANE;
    const at = rows.place(m.lane, px, m.label, x0 + PANEL);
    out.push(`<circle cx="${px}" cy="${y + 12}" r="4" fill="${m.colour}"><title>${esc(m.label)} at ${(m.at - origin).toFixed(1)} ms</title></circle>`);
    if (at) out.push(`<text x="${at.x}" y="${y + ROW_Y[at.row]}" font-size="10" text-anchor="${at.anchor}" fill="${m.colour}">${esc(m.label)}</text>`);
  }
  return out;
}

/** The chart of `moves`, one block each, as an SVG document. */
export function handoverChart(title: string, moves: readonly ChartMove[]): string {
  const height = 40 + moves.length * BLOCK;
  const out = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${height}" viewBox="0 0 ${WIDTH} ${height}" font-family="sans-serif">`,
    `<rect width="${WIDTH}" height="${height}" fill="white"/>`,
    `<text x="20" y="26" font-size="16" font-weight="bold">${esc(title)}</text>`,
  ];
  moves.forEach((c, i) => {
    const y = 40 + i * BLOCK;
    const e = events(c);
    const qemu = c.m.move.qemu;
    out.push(`<text x="20" y="${y + 20}" font-size="14" font-weight="bold">${esc(`${c.vm}: ${c.from} → ${c.to} (${c.what})`)}</text>`);
    out.push(`<text x="20" y="${y + 38}" font-size="11" fill="#555">${esc(
      `QEMU ${qemu.totalTimeMs ?? "?"} ms in all, downtime ${qemu.downtimeMs ?? "?"} ms; blackout ${c.m.blackout ? ms(c.m.blackout.ms) : "none"}; ` +
      `${c.m.probe.lost} of ${c.m.probe.sent} probes lost; network share ${c.m.link?.networkShareMs?.toFixed(1) ?? "?"} ms`)}</text>`);
    const y0 = y + 60;
    LANES.forEach((lane, n) => {
      const name = lane === "agent" ? `agent (${c.to})` : lane === "VM link" ? `VM link (${c.to})` : lane;
      out.push(`<text x="20" y="${y0 + n * LANE + 16}" font-size="11">${esc(name)}</text>`);
    });
    out.push(...panel(LEFT, y0, "the whole migration", e.start - 10, e.end + 10, c.m.move.startedAt, e));
    out.push(...panel(LEFT + PANEL + GAP, y0, "the switch", e.switchFrom, e.switchTo, c.m.move.startedAt, e));
  });
  out.push("</svg>");
  return out.join("\n") + "\n";
}
