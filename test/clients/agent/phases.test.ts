// The privileged-VM agent (clients/agent/agent.ts), with the harness of ./harness.ts (a real
// Forwarder as its worker; the engine, hypervisor and wire mocked).
// The phases of a live migration: prepare, activate, abort; the engine away during them; a restarted agent; ports known by MAC.
import test from "ava";
import { IPPROTO } from "../../../dataplane/packet/ipv4.js";
import { KEY, HOME, HOME_AGENT, CARE_OF4, CARE_OF6, VM_MAC, VM6_MAC, agentConfig, harness, settle, until, registrationRequest, replyFrame, homeAgent, vmPacketGoes, arrive, untilMs, unavailable, prepared } from "./harness.js";

test("the port appearing prepares and diverts nothing: a care-of lease, the host's rules, PrepareMigration; no registration and no RegisterMigration until the VM's RARP", async (t) => {
  const h = await harness(t);
  await prepared(h);
  t.deepEqual(h.calls.filter((c) => c.method !== "heartbeat").map((c) => c.method), ["allocateCareOf", "prepareMigration"]);
  t.true(h.forwarder.currentRules().some((r) => r.key === "vm/v4/out"), "the host's rule waits in place");
  t.is(h.frames.length, 0, "nothing sent to the home agent during the pre-copy");
  t.is(h.handovers.length, 0);
  // A RARP from another MAC, or from the VM's on the uplink, is not its activation.
  h.rarp("02:00:00:00:aa:99");
  h.rarp(VM_MAC, 0);
  await settle();
  t.is(h.frames.length, 0);
  h.rarp(VM_MAC);
  await until(() => h.frames.some((f) => f.ifIndex === 0 && f.frame[14 + 6] === IPPROTO.IPIP), "the registration request");
  await until(() => h.calls.some((c) => c.method === "registerMigration"), "RegisterMigration");
  t.is(h.calls.filter((c) => c.method === "allocateCareOf").length, 1, "no second allocation at activation");
});

test("with no RARP, the VM's first frame on the visitor link activates it", async (t) => {
  const h = await harness(t);
  await prepared(h);
  t.is(vmPacketGoes(h), "4in6 to the engine", "the frame itself already takes the waiting rule");
  const { payload } = await (async () => {
    await until(() => h.frames.some((f) => f.ifIndex === 0 && f.frame[14 + 6] === IPPROTO.IPIP && f.frame[14 + 40 + 9] === IPPROTO.UDP && ((f.frame[14 + 40 + 22] << 8) | f.frame[14 + 40 + 23]) === 434), "the registration request");
    const f = h.frames.find((x) => x.ifIndex === 0 && ((x.frame[14 + 40 + 22] << 8) | x.frame[14 + 40 + 23]) === 434)!;
    return { payload: registrationRequest(f.frame).payload.slice() };
  })();
  h.forwarder.processFrame(0, replyFrame(homeAgent(KEY).handleRequest({ source: HOME, destination: HOME_AGENT, sourcePort: 434, payload }, h.clock.now).reply!), () => {}, h.clock.now);
  await until(() => h.handovers.length === 1, "the handover");
  t.like(h.handovers[0], { ok: true, activation: "frame" });
});

test("a second activation signal for an active VM changes nothing", async (t) => {
  const h = await harness(t);
  const { payload } = await arrive(h);
  h.forwarder.processFrame(0, replyFrame(homeAgent(KEY).handleRequest({ source: HOME, destination: HOME_AGENT, sourcePort: 434, payload }, h.clock.now).reply!), () => {}, h.clock.now);
  await until(() => h.handovers.length === 1, "the handover");
  const calls = h.calls.length;
  const frames = h.frames.length;
  const rules = JSON.stringify(h.forwarder.currentRules());
  h.rarp(VM_MAC);
  h.rarp(VM_MAC);
  await settle();
  t.is(h.calls.length, calls);
  t.is(h.frames.length, frames);
  t.is(JSON.stringify(h.forwarder.currentRules()), rules);
  t.is(h.handovers.length, 1);
});

test("the port going away before the VM ran here (a cancelled or failed migration) is an abort: AbortMigration, the host's rules gone, nothing sent", async (t) => {
  const h = await harness(t);
  await prepared(h);
  h.fire({ kind: "detached", port: "tap-v4", bridge: "visitor" });
  await until(() => h.handovers.length === 1, "the abort");
  t.like(h.handovers[0], { ok: false, aborted: true, vmId: "v4" });
  t.deepEqual(h.calls.filter((c) => c.method === "abortMigration").map((c) => c.request), [{ vmId: "v4", hostId: "h6" }]);
  t.false(h.calls.some((c) => c.method === "registerMigration"));
  t.deepEqual(h.forwarder.currentRules().map((r) => r.key), ["engine/4in6"], "only the host's own rule is left");
  t.is(h.frames.length, 0);
  // A RARP now (the VM runs elsewhere) activates nothing.
  h.rarp(VM_MAC);
  await settle();
  t.is(h.frames.length, 0);
  t.false(h.calls.some((c) => c.method === "registerMigration"));
});

test("the hypervisor's release of a VM prepared here aborts it at once; its port going later aborts nothing more; other phases and MACs change nothing", async (t) => {
  const h = await harness(t);
  await prepared(h);
  const calls = h.calls.length;
  t.deepEqual(await h.agent.hypervisorPhase({ phase: "migrate", domain: "v4", interfaces: [{ mac: VM_MAC }] }), ["v4"]);
  t.deepEqual(await h.agent.hypervisorPhase({ phase: "started", domain: "v4", interfaces: [{ mac: VM_MAC }] }), ["v4"]);
  t.deepEqual(await h.agent.hypervisorPhase({ phase: "release", domain: "other", interfaces: [{ mac: "02:00:00:00:aa:99" }] }), [], "a MAC no VM has concerns no VM");
  await settle();
  t.is(h.calls.length, calls, "migrate, started and an unknown VM's release call nothing");
  t.deepEqual(await h.agent.hypervisorPhase({ phase: "release", domain: "v4", interfaces: [{ mac: VM_MAC, dev: "vnet9" }] }), ["v4"]);
  await until(() => h.handovers.length === 1, "the abort");
  t.like(h.handovers[0], { ok: false, aborted: true, vmId: "v4" });
  t.deepEqual(h.forwarder.currentRules().map((r) => r.key), ["engine/4in6"], "the host's rules for the VM are gone");
  h.fire({ kind: "detached", port: "tap-v4", bridge: "visitor" });
  await settle();
  t.is(h.calls.filter((c) => c.method === "abortMigration").length, 1, "one AbortMigration, not a second when the tap goes");
  t.is(h.handovers.length, 1);
  h.rarp(VM_MAC);
  await settle();
  t.false(h.calls.some((c) => c.method === "registerMigration"), "a RARP after the release activates nothing");
});

test("the hypervisor's release of a VM that runs here changes nothing", async (t) => {
  const h = await harness(t);
  const { payload } = await arrive(h);
  h.forwarder.processFrame(0, replyFrame(homeAgent(KEY).handleRequest({ source: HOME, destination: HOME_AGENT, sourcePort: 434, payload }, h.clock.now).reply!), () => {}, h.clock.now);
  await until(() => h.handovers.length === 1, "the handover");
  const calls = h.calls.length;
  const rules = JSON.stringify(h.forwarder.currentRules());
  t.deepEqual(await h.agent.hypervisorPhase({ phase: "release", domain: "v4", interfaces: [{ mac: VM_MAC }] }), ["v4"]);
  await settle();
  t.is(h.calls.length, calls);
  t.is(JSON.stringify(h.forwarder.currentRules()), rules);
});

test("an engine unreachable during the prepare is retried, and the handover completes once it answers", async (t) => {
  let failures = 2;
  const h = await harness(t, {
    allocateCareOf: () => {
      if (failures-- > 0) throw unavailable();
      return { careOfIpv4: CARE_OF4, careOfIpv6: CARE_OF6, lifetimeSeconds: 300, pool: "198.51.100.0/24", expiresAtMs: 0n };
    },
  });
  h.fire({ kind: "attached", port: "tap-v4", bridge: "visitor" });
  // The migration may finish before the engine answers: the RARP is remembered.
  h.rarp(VM_MAC);
  await untilMs(() => h.frames.some((f) => f.ifIndex === 0 && f.frame[14 + 6] === IPPROTO.IPIP), "the registration request, after the retries");
  t.is(h.calls.filter((c) => c.method === "allocateCareOf").length, 3);
  t.deepEqual(h.calls.filter((c) => c.method !== "heartbeat").map((c) => c.method).slice(-2), ["prepareMigration", "registerMigration"]);
});

test("an engine that stays away while the port comes and goes leaves nothing half done: AbortMigration once it answers, no rules", async (t) => {
  let down = true;
  const h = await harness(t, {
    allocateCareOf: () => {
      if (down) throw unavailable();
      return { careOfIpv4: CARE_OF4, careOfIpv6: CARE_OF6, lifetimeSeconds: 300, pool: "198.51.100.0/24", expiresAtMs: 0n };
    },
  });
  h.fire({ kind: "attached", port: "tap-v4", bridge: "visitor" });
  await until(() => h.calls.some((c) => c.method === "allocateCareOf"), "a first try");
  h.fire({ kind: "detached", port: "tap-v4", bridge: "visitor" });
  down = false;
  await untilMs(() => h.handovers.length === 1, "the abort");
  t.true(h.handovers[0].aborted);
  t.deepEqual(h.calls.filter((c) => c.method === "abortMigration").map((c) => c.request), [{ vmId: "v4", hostId: "h6" }]);
  t.false(h.calls.some((c) => c.method === "prepareMigration" || c.method === "registerMigration"));
  t.deepEqual(h.forwarder.currentRules().map((r) => r.key), ["engine/4in6"]);
});

test("an agent restarted after the activation takes the state from the engine: PrepareMigration says active, and the VM is registered again without a signal", async (t) => {
  const h = await harness(t, {
    present: [{ port: "tap-v4", bridge: "visitor" }],
    prepareMigration: () => ({ ruleRevision: 7n, translatedIpv4: "", translatedIpv6: "", prepared: true, active: true }),
  });
  await until(() => h.frames.some((f) => f.ifIndex === 0 && f.frame[14 + 6] === IPPROTO.IPIP), "the registration request");
  await until(() => h.calls.some((c) => c.method === "registerMigration"), "RegisterMigration");
  const payload = registrationRequest(h.frames.find((f) => f.frame[14 + 6] === IPPROTO.IPIP)!.frame).payload.slice();
  h.forwarder.processFrame(0, replyFrame(homeAgent(KEY).handleRequest({ source: HOME, destination: HOME_AGENT, sourcePort: 434, payload }, h.clock.now).reply!), () => {}, h.clock.now);
  await until(() => h.handovers.length === 1, "the handover");
  t.like(h.handovers[0], { ok: true, activation: "running" });
});

test("a VM configured without a port name is known by its MAC: libvirt's vnetN tap with the 0xfe form of it; a port no VM has is ignored", async (t) => {
  const config = agentConfig();
  delete config.vms[0].port;
  const h = await harness(t, { config });
  h.fire({ kind: "attached", port: "vnet7", bridge: "visitor", mac: "fe:77:00:00:00:01" });
  await settle();
  t.false(h.calls.some((c) => c.method === "allocateCareOf"), "an unknown MAC starts nothing");
  await prepared(h, "vnet3", "fe:00:00:00:aa:01");
  t.deepEqual(h.calls.filter((c) => c.method === "allocateCareOf").map((c) => c.request.vmId), ["v4"]);
  // The configured port name of v6 is not taken from a MAC match.
  h.fire({ kind: "attached", port: "vnet4", bridge: "visitor", mac: VM6_MAC });
  await settle();
  t.is(h.calls.filter((c) => c.method === "allocateCareOf").length, 1);
});
