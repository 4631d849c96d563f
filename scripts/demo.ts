// The main job until the lab exists: starts the engine on deploy/examples/engine.yaml (the paper's
// lab plan), and drives flow 3.1 b-e through it as an agent would: the IPv6 host reports itself,
// an IPv4 VM arrives, gets its care-of addresses, and its migration is registered. mipctl shows
// the result. Everything runs on loopback; the engine's store lives in a temporary folder.
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parse, stringify } from "yaml";
import { connectControl } from "../clients/control.js";
import { spawnUntilReady } from "../lib/process/spawn.js";

const say = (s: string) => process.stdout.write(`${s}\n`);
const dir = mkdtempSync(join(tmpdir(), "mip46-demo-"));
const config = parse(readFileSync("deploy/examples/engine.yaml", "utf8"));
config.store.path = join(dir, "engine.db");
config.listen = "127.0.0.1:0";
config.metricsListen = "127.0.0.1:0";
writeFileSync(join(dir, "engine.yaml"), stringify(config));

say("== mip46 demo: the control engine on the paper's lab plan (deploy/examples/engine.yaml)");
const t0 = performance.now();
const engine = await spawnUntilReady<{ grpcPort: number; metricsPort: number }>(
  process.execPath, ["bin/mip46-engine.js", "--config", join(dir, "engine.yaml")], "engine started");
const address = `127.0.0.1:${engine.ready.grpcPort}`;
say(`engine up on ${address} (metrics on :${engine.ready.metricsPort}) in ${(performance.now() - t0).toFixed(0)} ms`);
const client = connectControl(address);
const mipctl = (...args: string[]) => execFileSync(process.execPath, ["bin/mipctl.js", "--engine", address, ...args], { encoding: "utf8" });
let failed = false;
try {
  say("\n-- the privileged VM of an IPv6 host reports its addresses (Heartbeat)");
  const hb = await client.heartbeat({
    hostId: "host-v6", addresses: ["2001:db8:1::10/64"],
    resources: { cpuUsedCores: 2, cpuTotalCores: 8, memoryUsedBytes: 4n << 30n, memoryTotalBytes: 32n << 30n },
    vms: [{ vmId: "sv", homeAddress: "192.0.2.1", cpuUsedCores: 0.5, memoryUsedBytes: 1n << 30n }],
  });
  say(`engine sees host-v6 on ${hb.network}`);

  say("\n-- flow 3.1 b-c: IPv4 VM sv (home 192.0.2.1) arrived; the agent asks for its care-of addresses");
  const t1 = performance.now();
  const careOf = await client.allocateCareOf({ hostId: "host-v6", vmId: "sv", homeAddress: "192.0.2.1" });
  say(`AllocateCareOf -> IPv4 care-of ${careOf.careOfIpv4} (engine pool), IPv6 care-of ${careOf.careOfIpv6}, lifetime ${careOf.lifetimeSeconds} s  [${(performance.now() - t1).toFixed(1)} ms]`);

  say("\n-- flow 3.1 e-g: the agent registers the migration; the engine compiles the data-plane rules");
  const m = await client.registerMigration({
    vmId: "sv", homeAddress: "192.0.2.1", homeAgent: "192.0.2.2", sourceHostId: "host-v4", destinationHostId: "host-v6",
    careOfIpv4: careOf.careOfIpv4, careOfIpv6: careOf.careOfIpv6,
  });
  say(`RegisterMigration -> migration ${m.migrationId}, rule revision ${m.ruleRevision}; IPv6 clients reach sv at ${m.translatedIpv6}`);

  say("\n-- flow 3.2 c: the prefix assigned to the IPv4 segment");
  say(`RequestPrefix 192.0.2.0/24 -> ${(await client.requestPrefix({ hostId: "host-v4", ipv4Segment: "192.0.2.0/24" })).ipv6Prefix}`);

  say("\n$ mipctl leases");
  process.stdout.write(mipctl("leases"));
  say("\n$ mipctl bindings");
  process.stdout.write(mipctl("bindings"));
  say("\n$ mipctl rules");
  process.stdout.write(mipctl("rules"));
  say("\n$ mipctl pools");
  process.stdout.write(mipctl("pools"));
} catch (e) {
  failed = true;
  process.stderr.write(`demo failed: ${(e as Error).message}\n`);
} finally {
  client.close();
  await new Promise((r) => { engine.child.once("exit", r); engine.child.kill("SIGTERM"); });
  rmSync(dir, { recursive: true, force: true });
}
say(failed ? "\n== demo FAILED" : "\n== demo done: engine stopped cleanly (SIGTERM), temporary store removed");
process.exit(failed ? 1 : 0);
