// Reads TAP (ava --tap) on stdin, echoes it, and ends with one line "N passed, N failed".
// Exits non-zero when a test failed or when no test ran.
import { createInterface } from "node:readline";

let passed = 0;
let failed = 0;
let skipped = 0;
const failures = [];
for await (const line of createInterface({ input: process.stdin })) {
  process.stdout.write(line + "\n");
  const m = /^(not ok|ok) \d+ (?:- )?(.*)$/.exec(line);
  if (!m) continue;
  if (/# SKIP|# TODO/i.test(m[2])) skipped++;
  else if (m[1] === "ok") passed++;
  else { failed++; failures.push(m[2]); }
}
if (failures.length > 0) process.stdout.write(`\nfailed:\n${failures.map((f) => `  ${f}`).join("\n")}\n`);
process.stdout.write(`${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ""}\n`);
process.exit(failed > 0 || passed === 0 ? 1 : 0);
