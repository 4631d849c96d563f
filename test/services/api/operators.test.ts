// What operators and generic gRPC tools see: health, reflection, Prometheus metrics, SIGTERM.
import test from "ava";
import { credentials, loadPackageDefinition, type ServiceError, type GrpcObject, type ServiceClientConstructor, type ClientDuplexStream } from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { service as healthService } from "grpc-health-check";
import { makeGenericClientConstructor } from "@grpc/grpc-js";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { rmSync } from "node:fs";
import { execFile } from "node:child_process";
import { create, createFileRegistry, fromBinary } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema, FileDescriptorSetSchema } from "@bufbuild/protobuf/wkt";
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

/** A gRPC reflection client (grpc.reflection.v1) of the engine at `address`: one request, its answer. */
function reflectionClient(address: string) {
  const protoDir = join(dirname(createRequire(import.meta.url).resolve("@grpc/reflection")), "..", "proto");
  const def = protoLoader.loadSync("grpc/reflection/v1/reflection.proto", { includeDirs: [protoDir], keepCase: true });
  const pkg = loadPackageDefinition(def) as unknown as { grpc: { reflection: { v1: GrpcObject } } };
  const client = new (pkg.grpc.reflection.v1.ServerReflection as ServiceClientConstructor)(address, credentials.createInsecure());
  const ask = (req: object) => new Promise<Record<string, any>>((resolve, reject) => {
    const stream = (client as any).ServerReflectionInfo() as ClientDuplexStream<object, Record<string, any>>;
    stream.on("data", (d) => { resolve(d); stream.end(); });
    stream.on("error", reject);
    stream.write(req);
  });
  return { ask, close: () => client.close() };
}

test("server reflection lists the services, and describes ControlEngine", async (t) => {
  const e = await startTestEngine();
  t.teardown(() => e.stop());
  const { ask, close } = reflectionClient(e.address);
  t.teardown(close);
  const list = await ask({ list_services: "" });
  const names = list.list_services_response.service.map((s: { name: string }) => s.name);
  t.true(names.includes("mip46.v1.ControlEngine"), names.join(","));
  t.true(names.includes("grpc.health.v1.Health"));
  const file = await ask({ file_containing_symbol: "mip46.v1.ControlEngine" });
  const descriptor = Buffer.concat(file.file_descriptor_response.file_descriptor_proto.map((b: Buffer) => Buffer.from(b))).toString("latin1");
  t.true(descriptor.includes("AllocateCareOf") && descriptor.includes("RegisterMigration"));
});

test("server reflection serves the .proto comments, and every type of every service (health too) resolves from what it serves", async (t) => {
  const e = await startTestEngine();
  t.teardown(() => e.stop());
  const { ask, close } = reflectionClient(e.address);
  t.teardown(close);
  // As a generic tool does: list the services, fetch the file of each with its dependencies, and
  // build a registry of them (which fails on any type it cannot resolve).
  const services = (await ask({ list_services: "" })).list_services_response.service.map((s: { name: string }) => s.name) as string[];
  t.deepEqual([...services].sort(), ["grpc.health.v1.Health", "mip46.v1.ControlEngine", "mip46.v1.DataPlaneSync"]);
  const files = new Map<string, ReturnType<typeof fromBinary<typeof FileDescriptorProtoSchema>>>();
  for (const service of services) {
    const r = await ask({ file_containing_symbol: service });
    t.falsy(r.error_response, `${service}: ${JSON.stringify(r.error_response)}`);
    for (const b of r.file_descriptor_response.file_descriptor_proto as Buffer[]) {
      const f = fromBinary(FileDescriptorProtoSchema, new Uint8Array(b));
      files.set(f.name, f);
    }
  }
  const registry = createFileRegistry(create(FileDescriptorSetSchema, { file: [...files.values()] }));
  const control = registry.getService("mip46.v1.ControlEngine");
  t.truthy(control);
  t.is(control!.method.allocateCareOf.input.typeName, "mip46.v1.AllocateCareOfRequest");
  t.is(registry.getService("grpc.health.v1.Health")!.method.check.input.typeName, "grpc.health.v1.HealthCheckRequest", "the health service resolves");
  const comments = [...files.values()].flatMap((f) => f.sourceCodeInfo?.location.map((l) => l.leadingComments) ?? []).join("\n");
  t.regex(comments, /Gives a lease back; the address cools down before another VM may have it/, "a call's comment, as in the .proto");
  t.regex(comments, /How long the oldest revision it was sent and has not applied has waited/, "a field's comment");
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

test("buf curl, a gRPC client of another implementation, finds ControlEngine and Health by reflection alone and calls them", async (t) => {
  const e = await startTestEngine();
  t.teardown(() => e.stop());
  const buf = (...args: string[]) => new Promise<{ code: number; out: string }>((resolve) => {
    execFile("node_modules/.bin/buf", ["curl", "--protocol", "grpc", "--http2-prior-knowledge", ...args], { timeout: 30_000 }, (err, stdout, stderr) =>
      resolve({ code: err ? 1 : 0, out: `${stdout}${stderr}` }));
  });
  const pools = await buf(`http://${e.address}/mip46.v1.ControlEngine/ListPools`);
  t.is(pools.code, 0, pools.out);
  t.like(JSON.parse(pools.out), { pools: [{ name: "engine", first: "198.51.100.2", size: 253 }] });
  const health = await buf("-d", '{"service": "mip46.v1.ControlEngine"}', `http://${e.address}/grpc.health.v1.Health/Check`);
  t.is(health.code, 0, health.out);
  t.deepEqual(JSON.parse(health.out), { status: "SERVING" });
});
