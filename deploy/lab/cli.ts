// mip46-lab: the paper's topology in network namespaces with every mip46 process running.
import { versionLine } from "../../lib/process/version.js";
import { parseArgs } from "node:util";
import { destroyLab, exec } from "./netns.js";
import { migrate, vmHost } from "./qemu.js";
import { labDir, labRpc, startLab } from "./lab.js";
import { DEFAULT_PREFIX, HOST_ROLES, type HostRole, type LabNamespace } from "./topology.js";
import { rmSync } from "node:fs";

const HELP = `mip46-lab: the paper's lab (shared/paper.md) in network namespaces

Usage: mip46-lab [--prefix P] up [--advice] [--third-host]
                                            create the namespaces, start the engine, its worker,
                                            r1, r2 and the agents of h4 and h6 (logs in /run/mip46-lab/P);
                                            --advice: the agents carry out the engine's migration
                                            advice (otherwise they only log it); --third-host: a
                                            second IPv6 host h6b on net6 with its agent too
       mip46-lab [--prefix P] down          stop everything and remove the namespaces
       mip46-lab [--prefix P] migrate [--cancel-after MS | --fail-after MS] VM HOST
                                            QEMU live migration of guest VM (vm4, vm6) to HOST (h4,
                                            h6, or h6b in a lab with the third host); prints QEMU's
                                            total time, downtime and set-up time.
                                            --cancel-after: migrate_cancel after MS; --fail-after:
                                            kill -9 the destination QEMU after MS (both throttled to
                                            2 MiB/s); the guest then runs on at its source
       mip46-lab [--prefix P] where VM      the host a VM is on
       mip46-lab [--prefix P] rpc METHOD [JSON]
                                            an engine RPC from the management network
       mip46-lab [--prefix P] exec NS -- CMD...
                                            run a command in a lab namespace (eng, r1, r2, h4, h6,
                                            h6b, c4, c6, mgmt); the VMs are QEMU guests`;

async function main(): Promise<number> {
  const { values, positionals } = parseArgs({ options: { prefix: { type: "string" }, "cancel-after": { type: "string" }, "fail-after": { type: "string" }, advice: { type: "boolean" }, "third-host": { type: "boolean" }, version: { type: "boolean" }, help: { type: "boolean", short: "h" } }, allowPositionals: true, strict: true });
  if (values.version) {
    process.stdout.write(versionLine("mip46-lab") + "\n");
    return 0;
  }
  const prefix = values.prefix ?? DEFAULT_PREFIX;
  const [cmd, ...rest] = positionals;
  if (values.help || !cmd) {
    process.stdout.write(HELP + "\n");
    return values.help ? 0 : 2;
  }
  switch (cmd) {
    case "up": {
      const lab = await startLab({ prefix, advice: values.advice, thirdHost: values["third-host"], say: (s) => process.stdout.write(s + "\n") });
      process.stdout.write(`lab '${prefix}' is up; configurations and logs in ${lab.dir}\n`);
      return 0;
    }
    case "down":
      await destroyLab(prefix);
      rmSync(labDir(prefix), { recursive: true, force: true });
      return 0;
    case "migrate": {
      const [vm, host] = rest;
      if (!vm || !HOST_ROLES.includes(host as HostRole)) throw new Error(`usage: migrate VM ${HOST_ROLES.join("|")}`);
      const ms = (v: string | undefined, flag: string) => {
        if (v === undefined) return undefined;
        if (!/^\d+$/.test(v)) throw new Error(`${flag}: a number of ms, not '${v}'`);
        return Number(v);
      };
      const cancelAfterMs = ms(values["cancel-after"], "--cancel-after"), failAfterMs = ms(values["fail-after"], "--fail-after");
      if (cancelAfterMs !== undefined && failAfterMs !== undefined) throw new Error("--cancel-after and --fail-after exclude each other");
      const m = await migrate(prefix, vm, host as HostRole, { cancelAfterMs, failAfterMs });
      process.stdout.write(JSON.stringify(m) + "\n");
      process.stderr.write(`${m.vm} ${m.from} -> ${m.to}: ${m.status}; QEMU total ${m.qemu.totalTimeMs ?? "-"} ms, downtime ${m.qemu.downtimeMs ?? "-"} ms, set-up ${m.qemu.setupTimeMs ?? "-"} ms\n`);
      return 0;
    }
    case "where":
      process.stdout.write((await vmHost(prefix, rest[0])) + "\n");
      return 0;
    case "rpc":
      process.stdout.write(JSON.stringify(await labRpc(prefix, rest[0], JSON.parse(rest[1] ?? "{}"))) + "\n");
      return 0;
    case "exec": {
      const [ns, ...argv] = rest;
      const { stdout, stderr } = await exec(prefix, ns as LabNamespace, argv, { timeoutMs: 600_000 });
      process.stdout.write(stdout);
      process.stderr.write(stderr);
      return 0;
    }
    default:
      process.stderr.write(`unknown command '${cmd}'\n\n${HELP}\n`);
      return 2;
  }
}

main().then((code) => (process.exitCode = code), (e) => {
  process.stderr.write(`mip46-lab: ${(e as Error).message}\n`);
  process.exitCode = 1;
});
