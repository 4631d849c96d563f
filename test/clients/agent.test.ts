// The privileged-VM agent (clients/agent/agent.ts) on an IPv6 host, handing over an IPv4 VM
// (flow 3.1 b–g): a real Forwarder as its worker, and, mocked inside this test only, the engine
// (a ControlClient that records calls), the hypervisor (a PortWatcher whose events we fire) and
// the wire (an emit that keeps frames). The home agent's answer is made by the real protocol core
// (homeagent/mip4/homeagent.ts) from the request the agent sent; frames are checked with our codec,
// with node:crypto's HMAC as an independent check of the authenticator, and with tshark.
import test, { type ExecutionContext } from "ava";
import { createHmac } from "node:crypto";
import { PrivilegedVmAgent, type HandoverTimeline } from "../../clients/agent/agent.js";
import { parseAgentConfig, type AgentConfig } from "../../clients/agent/config.js";
import type { Bridge, MigrationHook, PortEvent, PortWatcher } from "../../clients/agent/hypervisor.js";
import type { ControlClient } from "../../clients/control.js";
import type { AllocateCareOfRequest, HeartbeatRequest } from "../../gen/mip46/v1/control.js";
import { Forwarder, type ForwarderConfig } from "../../dataplane/forward/index.js";
import { ipv4Bytes, ipv6Bytes } from "../../dataplane/forward/addresses.js";
import { buildEthernetFrame, ETHERTYPE, formatMac, parseMac } from "../../dataplane/packet/ethernet.js";
import { IPPROTO } from "../../dataplane/packet/ipv4.js";
import { buildIPv6Packet } from "../../dataplane/packet/ipv6.js";
import { MIP4_EXTENSION, MIP4_REPLY_CODE, parseMip4, verifyMobileHomeAuth } from "../../dataplane/packet/mip4.js";
import { buildUdp4 } from "../../dataplane/packet/udp.js";
import { buildAuthenticatedRequest, requestIdentification } from "../../homeagent/mip4/client.js";
import { Mip4HomeAgent, type Mip4SecurityAssociation } from "../../homeagent/mip4/homeagent.js";
import { silentLogger } from "../../lib/log.js";
import { decodeWithTshark, frameProtocols } from "../helpers/tshark.js";

const KEY = "00112233445566778899aabbccddeeff0011223344556677";
const WRONG_KEY = "ffeeddccbbaa99887766554433221100ffeeddccbbaa9988";
const HOME = "192.0.2.1";
const HOME_AGENT = "192.0.2.2";
const CARE_OF4 = "198.51.100.10";
const CARE_OF6 = "2001:db8:1::c000:201";
const ENGINE6 = "2001:db8:2::1";
const PV0_MAC = "02:00:00:00:0a:00";
const PV1_MAC = "02:00:00:00:0a:01";
const GATEWAY_MAC = "02:00:00:00:0a:fe";
const VM_MAC = "02:00:00:00:aa:01";
const R1_MAC = "02:00:00:00:0b:01";
// The IPv6 VM, its home agent r2, and the IPv4 host's side of its handover (flow 3.2).
const KEY6 = "0f1e2d3c4b5a69788796a5b4c3d2e1f0";
const WRONG_KEY6 = "f0e1d2c3b4a5968778695a4b3c2d1e0f";
const HOME6 = "2001:db8:1::2";
const HOME_AGENT6 = "2001:db8:1::1";
const R2_MAC = "02:00:00:00:0b:02";
const VM6_MAC = "02:00:00:00:aa:06";
const ENGINE4 = "198.51.100.1";
const H4_CARE_OF4 = "192.0.2.100";
const H4_CARE_OF6 = "2001:db8:3::c000:264";
const CORRESPONDENT6 = "2001:db8:c::10";
/** 2026-01-01, the injected clock: the RRQ's Identification and the home agent's replay window use it. */
const T0 = Date.UTC(2026, 0, 1);

const hex = (b: Uint8Array): string => Buffer.from(b).toString("hex");

/** The IPv6 host h6 (2001:db8:1::/64 is also the home network of the IPv6 VM v6, whose home agent is r2). */
function agentConfig(registration: { lifetimeS?: number; firstRetransmitMs?: number; maxAttempts?: number } = {}) {
  return parseAgentConfig({
    hostId: "h6",
    engines: ["[2001:db8:2::1]:50046"],
    heartbeatIntervalMs: 600_000,
    hypervisor: { homeBridge: "br-home", visitorBridge: "br-visit" },
    network: { uplink: "pv0", visitor: "pv1", engineIPv4: "203.0.113.254", engineIPv6: ENGINE6 },
    registration: { lifetimeS: 300, firstRetransmitMs: 10_000, maxAttempts: 1, ...registration },
    vms: [
      { id: "v4", port: "tap-v4", homeAddress: HOME, homeAgent: HOME_AGENT, homeHost: "h4", mac: VM_MAC },
      { id: "v6", port: "tap-v6", homeAddress: HOME6, homeAgent: HOME_AGENT6, homeHost: "h6", mac: VM6_MAC },
    ],
    keys: [{ homeAddress: HOME, spi: 256, algorithm: "hmac-sha256", key: KEY }, { homeAddress: HOME6, spi: 257, key: KEY6 }],
    workerId: "pv-h6",
    interfaces: [
      { name: "pv0", mac: PV0_MAC, addresses: ["2001:db8:1::6/64"] },
      { name: "pv1", mac: PV1_MAC, addresses: ["192.0.2.254/24"], promiscuous: true },
    ],
    routes: [{ prefix: "::/0", interface: "pv0", via: "2001:db8:1::fe" }],
    neighbours: [{ interface: "pv0", address: "2001:db8:1::fe", mac: GATEWAY_MAC }, { interface: "pv0", address: HOME_AGENT6, mac: R2_MAC }],
  });
}

/** The IPv4 host h4 (192.0.2.0/24 is also the home network of the IPv4 VM v4, whose home agent is r1). */
function agentConfig4(registration: { lifetimeS?: number; firstRetransmitMs?: number; maxAttempts?: number } = {}) {
  return parseAgentConfig({
    hostId: "h4",
    engines: ["198.51.100.1:50046"],
    heartbeatIntervalMs: 600_000,
    hypervisor: { homeBridge: "br-home", visitorBridge: "br-visit" },
    network: { uplink: "pv0", visitor: "pv1", engineIPv4: ENGINE4, engineIPv6: ENGINE6 },
    registration: { lifetimeS: 300, firstRetransmitMs: 10_000, maxAttempts: 2, ...registration },
    vms: [
      { id: "v6", port: "tap-v6", homeAddress: HOME6, homeAgent: HOME_AGENT6, homeHost: "h6", mac: VM6_MAC },
      { id: "v4", port: "tap-v4", homeAddress: HOME, homeAgent: HOME_AGENT, homeHost: "h4", mac: VM_MAC },
    ],
    keys: [{ homeAddress: HOME, spi: 256, algorithm: "hmac-sha256", key: KEY }, { homeAddress: HOME6, spi: 257, key: KEY6 }],
    workerId: "pv-h4",
    interfaces: [
      { name: "pv0", mac: PV0_MAC, addresses: ["192.0.2.4/24"] },
      { name: "pv1", mac: PV1_MAC, addresses: ["2001:db8:1::fe/64"], promiscuous: true },
    ],
    routes: [{ prefix: "0.0.0.0/0", interface: "pv0", via: "192.0.2.254" }],
    neighbours: [{ interface: "pv0", address: "192.0.2.254", mac: GATEWAY_MAC }, { interface: "pv0", address: HOME_AGENT, mac: R1_MAC }],
  });
}

interface Call {
  method: string;
  request: Record<string, unknown>;
  /** Keys of the worker's rules when the call was made. */
  rulesAtCall: string[];
}

interface Harness {
  agent: PrivilegedVmAgent;
  forwarder: Forwarder;
  calls: Call[];
  frames: { ifIndex: number; frame: Uint8Array }[];
  fire(e: Omit<PortEvent, "seenAtMs">): void;
  clock: { now: number };
  handovers: HandoverTimeline[];
  /** What the fake PortWatcher's current() returns; change it to move ports. */
  present: { port: string; bridge: Bridge }[];
}

type Fake<K extends "heartbeat" | "allocateCareOf" | "registerMigration" | "requestPrefix"> = (req: Parameters<ControlClient[K]>[0]) => Awaited<ReturnType<ControlClient[K]>>;

interface HarnessOptions {
  /** Default: the IPv6 host h6 (agentConfig()). */
  config?: AgentConfig;
  heartbeat?: Fake<"heartbeat">;
  allocateCareOf?: Fake<"allocateCareOf">;
  hook?: MigrationHook;
  present?: { port: string; bridge: Bridge }[];
}

/** The engine's answers for the IPv4 host h4 (flow 3.2 b–c). */
const H4_ANSWERS: Pick<HarnessOptions, "allocateCareOf" | "heartbeat"> = {
  allocateCareOf: () => ({ careOfIpv4: H4_CARE_OF4, careOfIpv6: H4_CARE_OF6, lifetimeSeconds: 300, pool: "192.0.2.96/28", expiresAtMs: 0n }),
  heartbeat: () => ({ state: 1, networkFamily: 1, network: "192.0.2.0/24", advice: [], heartbeatIntervalSeconds: 1 }),
};

async function harness(t: ExecutionContext, options: HarnessOptions = {}): Promise<Harness> {
  const config = options.config ?? agentConfig();
  const clock = { now: T0 };
  const calls: Call[] = [];
  const frames: Harness["frames"] = [];
  let agent: PrivilegedVmAgent | undefined;
  const forwarder = new Forwarder({
    ...config.worker.forwarder,
    interfaces: config.worker.interfaces.map((i, index) => ({ ...i, index })),
  } as ForwarderConfig, T0, { intercept: (pkt, _ingress, decapsulated) => agent?.intercept(pkt, decapsulated) ?? false });
  const record = (method: string, request: object) => calls.push({ method, request: { ...request }, rulesAtCall: forwarder.currentRules().map((r) => r.key) });
  const control = {
    async heartbeat(req: HeartbeatRequest) {
      record("heartbeat", req);
      return options.heartbeat?.(req) ?? { state: 1, networkFamily: 2, network: "2001:db8:1::/64", advice: [], heartbeatIntervalSeconds: 1 };
    },
    async allocateCareOf(req: AllocateCareOfRequest) {
      record("allocateCareOf", req);
      return options.allocateCareOf?.(req) ?? { careOfIpv4: CARE_OF4, careOfIpv6: CARE_OF6, lifetimeSeconds: 300, pool: "198.51.100.0/24", expiresAtMs: 0n };
    },
    async registerMigration(req: object) {
      record("registerMigration", req);
      return { migrationId: "m1", ruleRevision: 5n, translatedIpv4: "", translatedIpv6: "2001:db8:64::c000:201", returnedHome: false };
    },
    async requestPrefix(req: object) {
      record("requestPrefix", req);
      return { ipv6Prefix: "2001:db8:3::/96" };
    },
  } as unknown as ControlClient;
  let listener: ((e: PortEvent) => void) | undefined;
  const present = options.present ?? [];
  const ports: PortWatcher = {
    current: () => [...present],
    start: (l) => {
      listener = l;
    },
    stop: () => {
      listener = undefined;
    },
  };
  agent = new PrivilegedVmAgent({
    config, control, ports, log: silentLogger, now: () => clock.now, ...(options.hook ? { hook: options.hook } : {}),
    worker: { forwarder, emit: (ifIndex, frame) => frames.push({ ifIndex, frame: frame.slice() }) },
  });
  const handovers: HandoverTimeline[] = [];
  agent.onHandover((h) => handovers.push(h));
  const a = agent;
  t.teardown(() => a.stop());
  await agent.start();
  return {
    agent, forwarder, calls, frames, clock, handovers, present,
    fire: (e) => listener!({ ...e, seenAtMs: clock.now }),
  };
}

/** Lets the agent's promise chains run until `cond` holds (no timing: a bounded number of turns). */
async function until(cond: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 2000; i++) {
    if (cond()) return;
    await new Promise((r) => setImmediate(r));
  }
  throw new Error(`never happened: ${what}`);
}

/** The Registration Request in a 4in6 frame the agent sent, with its parts. */
function registrationRequest(frame: Uint8Array): { outer: Uint8Array; inner: Uint8Array; payload: Uint8Array } {
  const outer = frame.subarray(14);
  const inner = outer.subarray(40);
  const ihl = (inner[0] & 0x0f) << 2;
  return { outer, inner, payload: inner.subarray(ihl + 8) };
}

/** The engine's 4in6 frame to the care-of address carrying a reply from the home agent. */
function replyFrame(reply: Uint8Array): Uint8Array {
  const udp = buildUdp4({ src: ipv4Bytes(HOME_AGENT, "t"), dst: ipv4Bytes(HOME, "t"), srcPort: 434, dstPort: 434, ttl: 63 }, reply);
  const outer = buildIPv6Packet({ src: ipv6Bytes(ENGINE6, "t"), dst: ipv6Bytes(CARE_OF6, "t"), hopLimit: 62, nextHeader: IPPROTO.IPIP }, udp);
  return buildEthernetFrame(parseMac(PV0_MAC), parseMac(GATEWAY_MAC), ETHERTYPE.IPV6, outer);
}

function homeAgent(key: string): Mip4HomeAgent {
  const sa: Mip4SecurityAssociation = { spi: 256, algorithm: "hmac-sha256", key: Uint8Array.from(Buffer.from(key, "hex")) };
  return new Mip4HomeAgent({ homeAgentAddress: HOME_AGENT, homeNetwork: "192.0.2.0/24", maxLifetimeS: 600, securityAssociations: new Map([[HOME, sa]]) });
}

/** A UDP packet from the VM (entering the visitor bridge's interface) to `dst`. */
function fromVm(dst: string): Uint8Array {
  const p = buildUdp4({ src: ipv4Bytes(HOME, "t"), dst: ipv4Bytes(dst, "t"), srcPort: 5000, dstPort: 6000, ttl: 64 }, new TextEncoder().encode("from the VM"));
  return buildEthernetFrame(parseMac(PV1_MAC), parseMac(VM_MAC), ETHERTYPE.IPV4, p);
}

/** Where the VM's packet goes: "4in6 to the engine", "routed" (on pv1), or what else. */
function vmPacketGoes(h: Harness): string {
  const sent: { ifIndex: number; frame: Uint8Array }[] = [];
  h.forwarder.processFrame(1, fromVm("192.0.2.77"), (ifIndex, frame) => sent.push({ ifIndex, frame: frame.slice() }), h.clock.now);
  if (sent.length !== 1) return `${sent.length} frames`;
  const f = sent[0].frame;
  if (sent[0].ifIndex === 0 && ((f[12] << 8) | f[13]) === ETHERTYPE.IPV6 && f[14 + 6] === IPPROTO.IPIP
    && hex(f.subarray(14 + 8, 14 + 24)) === hex(ipv6Bytes(CARE_OF6, "t")) && hex(f.subarray(14 + 24, 14 + 40)) === hex(ipv6Bytes(ENGINE6, "t"))
    && hex(f.subarray(14 + 40 + 12, 14 + 40 + 16)) === hex(ipv4Bytes(HOME, "t"))) return "4in6 to the engine";
  // Routed on the visitor link: 192.0.2.77 is unresolved, so an ARP request goes out first.
  if (sent[0].ifIndex === 1 && ((f[12] << 8) | f[13]) === ETHERTYPE.ARP) return "routed";
  return `if ${sent[0].ifIndex} type ${((f[12] << 8) | f[13]).toString(16)}`;
}

async function arrive(h: Harness): Promise<{ frame: Uint8Array; payload: Uint8Array }> {
  h.fire({ kind: "attached", port: "tap-v4", bridge: "visitor" });
  await until(() => h.frames.some((f) => f.ifIndex === 0 && f.frame[14 + 6] === IPPROTO.IPIP), "the registration request");
  const sent = h.frames.filter((f) => f.ifIndex === 0 && f.frame[14 + 6] === IPPROTO.IPIP);
  if (sent.length !== 1) throw new Error(`${sent.length} registration frames`);
  return { frame: sent[0].frame, payload: registrationRequest(sent[0].frame).payload.slice() };
}

test("an IPv4 VM on the visitor bridge: AllocateCareOf, then RegisterMigration, the host's 4in6 rule, and an authenticated RRQ through the engine", async (t) => {
  const h = await harness(t);
  t.is(h.agent.family, 6);
  t.is(vmPacketGoes(h), "routed", "before the VM's handover, its packets are routed");
  const { frame, payload } = await arrive(h);

  const steps = h.calls.filter((c) => c.method !== "heartbeat");
  t.deepEqual(steps.map((c) => c.method), ["allocateCareOf", "registerMigration"]);
  t.deepEqual(steps[0].request, { hostId: "h6", vmId: "v4", homeAddress: HOME });
  t.deepEqual(steps[1].request, { vmId: "v4", homeAddress: HOME, homeAgent: HOME_AGENT, sourceHostId: "h4", destinationHostId: "h6", careOfIpv4: CARE_OF4, careOfIpv6: CARE_OF6 });
  t.false(steps[0].rulesAtCall.includes("vm/v4/out"));
  t.true(steps[1].rulesAtCall.includes("vm/v4/out"), "the host's rule is in place before the engine is asked for its own");
  t.true(h.forwarder.currentRules().some((r) => r.key === "engine/4in6" && r.kind === "tunnel-peer"));

  // The frame: IPv6 from the care-of address to the engine, IPv4 in it, UDP 434 to the home agent.
  t.is(formatMac(frame, 0), GATEWAY_MAC);
  const { outer, inner } = registrationRequest(frame);
  t.is(hex(outer.subarray(8, 24)), hex(ipv6Bytes(CARE_OF6, "t")));
  t.is(hex(outer.subarray(24, 40)), hex(ipv6Bytes(ENGINE6, "t")));
  t.is(inner[9], IPPROTO.UDP);
  t.is(hex(inner.subarray(12, 16)), hex(ipv4Bytes(HOME, "t")));
  t.is(hex(inner.subarray(16, 20)), hex(ipv4Bytes(HOME_AGENT, "t")));
  const ihl = (inner[0] & 0x0f) << 2;
  t.is((inner[ihl] << 8) | inner[ihl + 1], 434);
  t.is((inner[ihl + 2] << 8) | inner[ihl + 3], 434);

  const rrq = parseMip4(payload);
  t.truthy(rrq);
  t.is(rrq!.type, 1);
  if (rrq !== undefined && rrq.type === 1) {
    t.is(rrq.lifetime, 300);
    t.is(rrq.careOfAddress, 0xc633640a, "care-of 198.51.100.10, the pool address");
    t.is(rrq.homeAgent, 0xc0000202);
  }
  // The authentication extension, checked by hand (RFC 5944 §3.5.2: HMAC over the message through the SPI) and by our codec.
  const auth = payload.subarray(payload.length - 38);
  t.is(auth[0], MIP4_EXTENSION.MOBILE_HOME_AUTH);
  t.is(auth[1], 36);
  t.is(new DataView(auth.buffer, auth.byteOffset).getUint32(2), 256);
  const expected = createHmac("sha256", Buffer.from(KEY, "hex")).update(payload.subarray(0, payload.length - 32)).digest();
  t.is(hex(payload.subarray(payload.length - 32)), expected.toString("hex"));
  t.true(verifyMobileHomeAuth(payload, rrq!, 256, Uint8Array.from(Buffer.from(KEY, "hex")), "hmac-sha256"));
  t.false(verifyMobileHomeAuth(payload, rrq!, 256, Uint8Array.from(Buffer.from(WRONG_KEY, "hex")), "hmac-sha256"));

  const ts = decodeWithTshark([frame]);
  t.deepEqual(ts.problems, []);
  t.regex(frameProtocols(ts)[0], /eth:ethertype:ipv6:ip:udp:mip/);

  // The host's encapsulate rule: the VM's own packets now leave 4in6 to the engine.
  t.is(vmPacketGoes(h), "4in6 to the engine");
});

test("the home agent's reply, 4in6 from the engine, completes the handover", async (t) => {
  const h = await harness(t);
  const { payload } = await arrive(h);
  t.is(h.handovers.length, 0, "not done before the reply");
  const ha = homeAgent(KEY);
  const outcome = ha.handleRequest({ source: HOME, destination: HOME_AGENT, sourcePort: 434, payload }, h.clock.now);
  t.is(outcome.code, MIP4_REPLY_CODE.ACCEPTED, outcome.reason);
  t.is(ha.binding(HOME)?.careOfAddress, CARE_OF4);
  h.clock.now += 40;
  h.forwarder.processFrame(0, replyFrame(outcome.reply!), () => t.fail("the reply is taken, not forwarded"), h.clock.now);
  t.is(h.forwarder.counters.actions.decap, 1);
  t.is(h.forwarder.counters.actions.deliver, 1);
  await until(() => h.handovers.length === 1, "the handover");
  const tl = h.agent.timelines[0];
  t.true(tl.ok, tl.error);
  t.is(tl.vmId, "v4");
  t.is(tl.direction, "4to6");
  t.is(tl.careOfIPv4, CARE_OF4);
  t.is(tl.careOfIPv6, CARE_OF6);
  t.is(tl.registrationAttempts, 1);
  t.is(tl.registeredMs, 40);
  t.true(tl.allocatedMs! <= tl.hostRulesMs! && tl.hostRulesMs! <= tl.engineRulesMs! && tl.engineRulesMs! <= tl.registeredMs!);
});

test("a reply authenticated with another key fails the handover with a clear error", async (t) => {
  const h = await harness(t);
  const { payload } = await arrive(h);
  // A home agent holding another key, answering the same Identification: an accepted reply, wrongly signed for us.
  const wrongSa: Mip4SecurityAssociation = { spi: 256, algorithm: "hmac-sha256", key: Uint8Array.from(Buffer.from(WRONG_KEY, "hex")) };
  const resigned = buildAuthenticatedRequest({ homeAddress: HOME, homeAgent: HOME_AGENT, careOfAddress: CARE_OF4, lifetimeS: 300, sa: wrongSa, nowMs: h.clock.now, identification: requestIdentification(payload) });
  const outcome = homeAgent(WRONG_KEY).handleRequest({ source: HOME, destination: HOME_AGENT, sourcePort: 434, payload: resigned }, h.clock.now);
  t.is(outcome.code, MIP4_REPLY_CODE.ACCEPTED);
  h.forwarder.processFrame(0, replyFrame(outcome.reply!), () => {}, h.clock.now);
  await until(() => h.handovers.length === 1, "the handover's end");
  const tl = h.agent.timelines[0];
  t.false(tl.ok);
  t.regex(tl.error ?? "", /home agent 192\.0\.2\.2 .* v4: bad-auth/);
  t.false((tl.error ?? "").includes(KEY) || (tl.error ?? "").includes(WRONG_KEY));
});

test("a refusal from the home agent (our request under the wrong key: 131) fails the handover, naming why", async (t) => {
  const h = await harness(t);
  const { payload } = await arrive(h);
  // The home agent has another key: it refuses with 131, signed with its key, which we cannot check either.
  const outcome = homeAgent(WRONG_KEY).handleRequest({ source: HOME, destination: HOME_AGENT, sourcePort: 434, payload }, h.clock.now);
  t.is(outcome.code, MIP4_REPLY_CODE.HA_MOBILE_NODE_FAILED_AUTHENTICATION);
  h.forwarder.processFrame(0, replyFrame(outcome.reply!), () => {}, h.clock.now);
  await until(() => h.handovers.length === 1, "the handover's end");
  t.false(h.agent.timelines[0].ok);
  t.regex(h.agent.timelines[0].error ?? "", /refused the registration of v4/);
});

test("a reply from someone other than the engine's tunnel is not taken", async (t) => {
  const h = await harness(t);
  const { payload } = await arrive(h);
  const outcome = homeAgent(KEY).handleRequest({ source: HOME, destination: HOME_AGENT, sourcePort: 434, payload }, h.clock.now);
  const frame = replyFrame(outcome.reply!);
  // Same reply, outer source not the engine: no tunnel peer, dropped before the agent sees it.
  const forged = frame.slice();
  forged[14 + 8 + 15] ^= 0x01;
  h.forwarder.processFrame(0, forged, () => {}, h.clock.now);
  t.is(h.forwarder.counters.drops["unknown-peer"], 1);
  t.is(h.forwarder.counters.actions.deliver, 0);
  for (let i = 0; i < 50; i++) await new Promise((r) => setImmediate(r));
  t.is(h.handovers.length, 0);
  h.forwarder.processFrame(0, frame, () => {}, h.clock.now);
  await until(() => h.handovers.length === 1, "the handover");
  t.true(h.agent.timelines[0].ok);
});

test("detach removes the host's rules: the VM's packets are routed, not wrapped", async (t) => {
  const h = await harness(t);
  const { payload } = await arrive(h);
  const outcome = homeAgent(KEY).handleRequest({ source: HOME, destination: HOME_AGENT, sourcePort: 434, payload }, h.clock.now);
  h.forwarder.processFrame(0, replyFrame(outcome.reply!), () => {}, h.clock.now);
  await until(() => h.handovers.length === 1, "the handover");
  t.true(h.agent.timelines[0].ok);
  t.is(vmPacketGoes(h), "4in6 to the engine");

  h.fire({ kind: "detached", port: "tap-v4", bridge: "visitor" });
  await until(() => !h.forwarder.currentRules().some((r) => r.key === "vm/v4/out"), "the rule's removal");
  t.is(vmPacketGoes(h), "routed");
  // The care-of address is no longer ours: the engine's tunnel to it is not taken.
  const before = h.forwarder.counters.actions.decap;
  h.forwarder.processFrame(0, replyFrame(outcome.reply!), () => {}, h.clock.now);
  t.is(h.forwarder.counters.actions.decap, before);
  // The engine's tunnel peer stays: it is the host's, not the VM's.
  t.true(h.forwarder.currentRules().some((r) => r.key === "engine/4in6"));
});

test("a port of an unknown VM, or a VM of the host's own protocol on the visitor bridge, starts no handover", async (t) => {
  const h = await harness(t);
  h.fire({ kind: "attached", port: "tap-unknown", bridge: "visitor" });
  h.fire({ kind: "attached", port: "tap-v4", bridge: "home" });
  for (let i = 0; i < 50; i++) await new Promise((r) => setImmediate(r));
  t.deepEqual(h.calls.filter((c) => c.method !== "heartbeat"), []);
  t.is(h.handovers.length, 0);
  t.is(h.frames.length, 0);
});
