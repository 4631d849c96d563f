// A VM coming home (the paper's "When a VM comes home"): its port on the home bridge of its home
// host, and its RARP or first frame on the home link.
import type { Logger } from "../../lib/log.js";
import { parseMac } from "../../dataplane/packet/ethernet.js";
import type { ControlClient } from "../control.js";
import type { AgentWorker } from "./agent.js";
import type { AgentConfig, VmInventoryEntry } from "./config.js";
import type { Registrar } from "./registration.js";
import type { ActivationSignal, HandoverRecord, HandoverTimeline } from "./timeline.js";

export interface HomeDeps {
  config: AgentConfig;
  control: ControlClient;
  worker: AgentWorker;
  log: Logger;
  now: () => number;
  registrar: Registrar;
  record: HandoverRecord;
}

/** Calls the engine again while it is away and the VM stays home; undefined once it left. */
export type WhileHome = <T>(what: string, call: () => Promise<T>) => Promise<T | undefined>;

/**
 * Activation at home: the VM's address announced, the deregistration sent, RegisterMigration
 * without care-of addresses. The VM is reachable at home once the home agent has the
 * deregistration (it goes straight over the home link); an engine that is away is asked again
 * until it answers, so that its binding and rules do not outlive the visit.
 */
export async function cameHome(deps: HomeDeps, vm: VmInventoryEntry, seenAtMs: number, signal: ActivationSignal, atMs: number, whileHome: WhileHome): Promise<void> {
  const { config: cfg, control, log, worker } = deps;
  const t: HandoverTimeline = { vmId: vm.id, direction: "home", seenAtMs, ok: false, activation: signal, activatedMs: atMs - seenAtMs };
  try {
    // RFC 5944 §4.6 / RFC 6275 §11.5.4: the home address is the VM's again on the home link.
    worker.forwarder.announce(cfg.network.uplink, vm.homeAddress, worker.emit, parseMac(vm.mac));
    deps.registrar.deregisterAtHome(vm);
    t.registeredMs = deps.now() - seenAtMs;
    const reg = await whileHome("RegisterMigration", () => control.registerMigration({ vmId: vm.id, homeAddress: vm.homeAddress, homeAgent: vm.homeAgent, sourceHostId: "", destinationHostId: cfg.hostId, careOfIpv4: "", careOfIpv6: "" }));
    if (reg === undefined) throw new Error("the VM left home before the engine answered");
    t.engineRulesMs = deps.now() - seenAtMs;
    // Announce again once the home agent has stopped proxying.
    setTimeout(() => worker.forwarder.announce(cfg.network.uplink, vm.homeAddress, worker.emit, parseMac(vm.mac)), 50);
    t.ok = true;
    log.info("vm came home", { vmId: vm.id, hadBinding: reg.returnedHome });
  } catch (e) {
    t.error = (e as Error).message;
    throw e;
  } finally {
    deps.record.record(t);
  }
}
