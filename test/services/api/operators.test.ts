// What operators and generic gRPC tools see: health, reflection, Prometheus metrics, SIGTERM.
import test from "ava";
import { credentials, loadPackageDefinition, type ServiceError, type GrpcObject, type ServiceClientConstructor, type ClientDuplexStream } from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { service as healthService } from "grpc-health-check";
import { makeGenericClientConstructor } from "@grpc/grpc-js";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { rmSync } from "node:fs";
import { hostOn, spawnEngine, startTestEngine, tempDir } from "../../../harness/engine.js";

test("the health service reports SERVING for the server and for ControlEngine", async (t) => {
  const e = await startTestEngine();
  t.teardown(() => e.stop());
  const Health = makeGenericClientConstructor(healthService, "Health");
  const client = new Health(e.address, credentials.createInsecure()) as unknown as {
    check(req: { service: string }, cb: (err: ServiceError | null, res: { status: string | number }) => void): void; close(): void;
  };
  t.teardown(() => client.close());
  for (const service of ["", "mip46.v1.ControlEngine"]) {
    const res = await new Promise<{ status: string | number }>((resolve, reject) => client.check({ service }, (err, r) => (err ? reject(err) : resolve(r))));
    t.true(res.status === "SERVING" || res.status === 1, `${service || "server"}: ${res.status}`);
  }
});

test("server reflection lists the services, and describes ControlEngine", async (t) => {
  const e = await startTestEngine();
  t.teardown(() => e.stop());
  const protoDir = join(dirname(createRequire(import.meta.url).resolve("@grpc/reflection")), "..", "proto");
  const def = protoLoader.loadSync("grpc/reflection/v1/reflection.proto", { includeDirs: [protoDir], keepCase: true });
  const pkg = loadPackageDefinition(def) as unknown as { grpc: { reflection: { v1: GrpcObject } } };
  const Reflection = pkg.grpc.reflection.v1.ServerReflection as ServiceClientConstructor;
  const client = new Reflection(e.address, credentials.createInsecure());
  t.teardown(() => client.close());
  const ask = (req: object) => new Promise<Record<string, any>>((resolve, reject) => {
    const stream = (client as any).ServerReflectionInfo() as ClientDuplexStream<object, Record<string, any>>;
    stream.on("data", (d) => { resolve(d); stream.end(); });
    stream.on("error", reject);
    stream.write(req);
  });
  const list = await ask({ list_services: "" });
  const names = list.list_services_response.service.map((s: { name: string }) => s.name);
  t.true(names.includes("mip46.v1.ControlEngine"), names.join(","));
  t.true(names.includes("grpc.health.v1.Health"));
  const file = await ask({ file_containing_symbol: "mip46.v1.ControlEngine" });
  const descriptor = Buffer.concat(file.file_descriptor_response.file_descriptor_proto.map((b: Buffer) => Buffer.from(b))).toString("latin1");
  t.true(descriptor.includes("AllocateCareOf") && descriptor.includes("RegisterMigration"));
});

test("Prometheus metrics: gRPC handled/handling series with codes, and pool, lease, binding and host series", async (t) => {
  const e = await startTestEngine();
  t.teardown(() => e.stop());
  await e.client.heartbeat(hostOn(6, "h6"));
  await e.client.allocateCareOf({ hostId: "h6", vmId: "vm-a", homeAddress: "192.0.2.1" });
  await e.client.allocateCareOf({ hostId: "", vmId: "vm-a", homeAddress: "192.0.2.1" }).catch(() => undefined);
  const text = await (await fetch(`http://127.0.0.1:${e.running.metricsPort}/metrics`)).text();
  t.regex(text, /^grpc_server_handled_total\{grpc_type="unary",grpc_service="mip46\.v1\.ControlEngine",grpc_method="AllocateCareOf",grpc_code="OK"\} 1$/m);
  t.regex(text, /^grpc_server_handled_total\{.*grpc_method="AllocateCareOf",grpc_code="INVALID_ARGUMENT"\} 1$/m);
  t.regex(text, /^grpc_server_handling_seconds_count\{grpc_type="unary",grpc_service="mip46\.v1\.ControlEngine",grpc_method="Heartbeat"\} 1$/m);
  t.regex(text, /^mip46_pool_addresses\{pool="engine",kind="engine",state="leased"\} 1$/m);
  t.regex(text, /^mip46_build_info\{version="\d+\.\d+\.\d+",commit="[^"]+",node="v20\.[^"]+"\} 1$/m, "the build's version, commit and Node.js");
  t.regex(text, /^mip46_pool_addresses\{pool="engine",kind="engine",state="free"\} 252$/m);
  t.regex(text, /^mip46_pool_addresses\{pool="ipv4-lab",kind="segment",state="free"\} 100$/m);
  t.regex(text, /^mip46_pool_leases\{purpose="care-of"\} 1$/m);
  t.regex(text, /^mip46_bindings 0$/m);
  t.regex(text, /^mip46_hosts\{state="up"\} 1$/m);
  t.regex(text, /^mip46_rules_revision 1$/m);
});

test("SIGTERM stops the engine cleanly, and a refused configuration stops it with a message", async (t) => {
  const dir = tempDir();
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const e = await spawnEngine(dir);
  await e.client.heartbeat(hostOn(6, "h6"));
  e.client.close();
  const code = await new Promise<number | null>((resolve) => { e.child.once("exit", (c) => resolve(c)); e.child.kill("SIGTERM"); });
  t.is(code, 0);
  const err = await t.throwsAsync(spawnEngine(dir, { segments: [{ network: "192.0.2.0/24", prefix: "2001:db8:3::/97" }] }));
  t.regex(err!.message, /segments\[0\]\.prefix: \/97 is not an RFC 6052 prefix length/);
});
