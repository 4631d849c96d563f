// The whole tree typechecks under the strict tsconfig: tsx runs TypeScript without checking
// types, so without this a type error would only show in an editor.
import test from "ava";
import { execFile } from "node:child_process";

test("tsc --noEmit reports no errors", async (t) => {
  const result = await new Promise<{ code: number | null; out: string }>((resolve) => {
    execFile(process.execPath, ["node_modules/typescript/bin/tsc", "--noEmit", "-p", "."], { timeout: 110_000 }, (err, stdout, stderr) =>
      resolve({ code: err ? (typeof err.code === "number" ? err.code : 1) : 0, out: `${stdout}${stderr}` }));
  });
  t.is(result.code, 0, result.out.split("\n").slice(0, 30).join("\n"));
});
