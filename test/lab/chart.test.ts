// The handover chart the demo writes (deploy/lab/chart.ts), checked as a person would see it: the
// moves of a real demo run (fixtures/handover.json, the demo's own handover.json with the probe's
// per-reply times left out) drawn, rendered in headless Chromium, and the screenshot and the SVG's
// text read for the VMs, the hosts, the steps and the counts.
import test from "ava";
import { readFileSync } from "node:fs";
import { COLOURS, handoverChart, type ChartMove } from "../../deploy/lab/chart.js";
import { countColour, screenshotSvg } from "../helpers/chromium.js";

const MOVES = JSON.parse(readFileSync(new URL("./fixtures/handover.json", import.meta.url), "utf8")) as ChartMove[];

function texts(svg: string): string[] {
  return [...svg.matchAll(/<text[^>]*>([^<]*)<\/text>/g)].map((m) => m[1].replace(/&gt;/g, ">").replace(/&lt;/g, "<").replace(/&amp;/g, "&"));
}

test("the chart names every move, host and step, and the blackout and loss counts of each", (t) => {
  const svg = handoverChart("demo", MOVES);
  const words = texts(svg);
  t.is(MOVES.length, 4);
  for (const c of MOVES) {
    t.true(words.includes(`${c.vm}: ${c.from} → ${c.to} (${c.what})`), `${c.vm} ${c.from} → ${c.to}`);
    t.true(words.includes(`agent (${c.to})`) && words.includes(`VM link (${c.to})`));
    const b = c.m.blackout!;
    const label = `blackout ${b.ms.toFixed(b.ms < 10 ? 1 : 0)} ms, ${c.m.probe.lost} of ${c.m.probe.sent} lost`;
    t.true(words.includes(label), label);
    t.true(words.some((w) => w.startsWith(`QEMU ${c.m.move.qemu.totalTimeMs} ms in all, downtime ${c.m.move.qemu.downtimeMs} ms`)));
  }
  for (const step of ["port seen", "activated (rarp)", "RegisterMigration", "RARP", "the switch"]) t.true(words.includes(step), step);
});

test("in Chromium the chart shows a red blackout bar and the agent's blue steps for each move", async (t) => {
  const svg = handoverChart("demo", MOVES);
  const height = Number(/height="(\d+)"/.exec(svg)![1]);
  const img = await screenshotSvg(svg, 1200, height);
  t.is(img.width, 1200);
  const white = countColour(img, "#ffffff", 2);
  t.true(white < img.width * img.height * 0.97, "something is drawn");
  // One block per move, stacked: each has its blackout and the agent's dots.
  const block = (height - 40) / MOVES.length;
  MOVES.forEach((c, i) => {
    const box = { x0: 0, y0: Math.floor(40 + i * block), x1: 1200, y1: Math.floor(40 + (i + 1) * block) };
    t.true(countColour(img, COLOURS.blackout, 12, box) > 500, `${c.vm} → ${c.to}: the blackout bar is red`);
    t.true(countColour(img, COLOURS.agent, 12, box) > 100, `${c.vm} → ${c.to}: the agent's steps are drawn`);
    t.true(countColour(img, COLOURS.link, 12, box) > 50, `${c.vm} → ${c.to}: the VM link's events are drawn`);
  });
});
