// The API's .proto files: buf's STANDARD lint (with the exceptions buf.yaml explains), and the
// generated code and reflection descriptors up to date with them.
import test from "ava";
import { execFile } from "node:child_process";
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const run = (file: string, args: string[], cwd?: string) => new Promise<{ code: number; out: string }>((resolve) => {
  execFile(file, args, { timeout: 60_000, cwd }, (err, stdout, stderr) => resolve({ code: err ? (typeof err.code === "number" ? err.code : 1) : 0, out: `${stdout}${stderr}` }));
});

test("buf lint (STANDARD, buf.yaml's exceptions) reports nothing", async (t) => {
  const r = await run("node_modules/.bin/buf", ["lint"]);
  t.is(r.code, 0, r.out);
  t.is(r.out.trim(), "");
});

test("the same lint fails on an RPC that breaks STANDARD: the check can fail", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "mip46-buf-"));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  mkdirSync(join(dir, "proto/x/v1"), { recursive: true });
  copyFileSync("buf.yaml", join(dir, "buf.yaml"));
  writeFileSync(join(dir, "proto/x/v1/x.proto"), 'syntax = "proto3";\npackage x.v1;\nservice XService { rpc Get(Thing) returns (Thing); }\nmessage Thing {}\n');
  const bad = await run(join(process.cwd(), "node_modules/.bin/buf"), ["lint"], dir);
  t.not(bad.code, 0);
  t.regex(bad.out, /RPC request type "Thing" should be named "GetRequest"/);
});

test("gen/descriptors.binpb is what protoc makes of proto/ now (npm run generate was run)", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "mip46-desc-"));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const files = ["mip46/v1/control.proto", "mip46/v1/dataplane.proto"];
  const r = await run("protoc", ["--include_source_info", "--include_imports", `--descriptor_set_out=${join(dir, "d.binpb")}`, "-I", "proto", "-I", "node_modules/grpc-health-check/proto", ...files.map((f) => `proto/${f}`), "health/v1/health.proto"]);
  t.is(r.code, 0, r.out);
  t.true(readFileSync(join(dir, "d.binpb")).equals(readFileSync("gen/descriptors.binpb")), "run npm run generate and commit gen/");
});
