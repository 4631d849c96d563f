// The live tests' engine: a real one in the test's process on a unix socket in the topology's
// directory (the worker in its namespace reaches it through the file system), with host h6 up
// and a way to register migrations onto it, each making a rule revision.
import type { ExecutionContext } from "ava";
import { join } from "node:path";
import { connectControl } from "../../../clients/control.js";
import { silentLogger } from "../../../lib/log.js";
import { parseConfig } from "../../../services/config/config.js";
import { runEngine } from "../../../services/engine/run.js";
import { hostOn, labConfig } from "../../../harness/engine.js";
import type { Topology } from "../../../harness/topology.js";

export async function engineOnSocket(t: ExecutionContext, topo: Topology) {
  const socket = join(topo.dir, "engine.sock");
  const engine = await runEngine(parseConfig(labConfig(topo.dir, { listen: `unix:${socket}` })), silentLogger);
  t.teardown(() => engine.stop());
  const control = connectControl(`unix:${socket}`);
  t.teardown(() => control.close());
  await control.heartbeat(hostOn(6, "h6"));
  /** Moves a VM (home agent 192.0.2.2) from h4 onto h6; resolves with the rule revision it made. */
  const migrate = async (vmId: string, homeAddress: string) => {
    const c = await control.allocateCareOf({ hostId: "h6", vmId, homeAddress });
    const r = await control.registerMigration({ vmId, homeAddress, homeAgent: "192.0.2.2", sourceHostId: "h4", destinationHostId: "h6", careOfIpv4: c.careOfIpv4, careOfIpv6: c.careOfIpv6 });
    return r.ruleRevision;
  };
  return { socket, engine, control, migrate };
}
