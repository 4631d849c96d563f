// The privileged-VM agent (clients/agent/agent.ts): on an IPv6 host handing over an IPv4 VM (flow
// 3.1 b–g), on an IPv4 host handing over an IPv6 VM (3.2 b–f) and starting route optimisation
// with a correspondent (3.2 k), a VM coming home, and Heartbeat with migration advice. A real
// Forwarder is its worker; mocked inside this test only are the engine (a ControlClient that
// records calls), the hypervisor (a PortWatcher whose events we fire, a MigrationHook) and the
// wire (an emit that keeps frames). The home agents' answers are made by the real protocol cores
// (homeagent/mip4/homeagent.ts, homeagent/mip6/homeagent.ts) from what the agent sent; frames are
// checked with our codec, with node:crypto's HMAC as an independent check of the authenticators,
// and with tshark. Tests that need the agent's timers use node:test's mock timers and run serially.
import test, { type ExecutionContext } from "ava";
import { createHmac } from "node:crypto";
import { mock } from "node:test";
import { PrivilegedVmAgent, type HandoverTimeline } from "../../clients/agent/agent.js";
import { parseAgentConfig, type AgentConfig } from "../../clients/agent/config.js";
import type { Bridge, MigrationHook, PortEvent, PortWatcher } from "../../clients/agent/hypervisor.js";
import type { ControlClient } from "../../clients/control.js";
import type { AllocateCareOfRequest, HeartbeatRequest, MigrationAdvice } from "../../gen/mip46/v1/control.js";
import { Forwarder, type ForwarderConfig } from "../../dataplane/forward/index.js";
import { ipv4Bytes, ipv6Bytes } from "../../dataplane/forward/addresses.js";
import { ARP_OPERATION, parseArp } from "../../dataplane/packet/arp.js";
import { pseudoHeaderSum6 } from "../../dataplane/packet/checksum.js";
import { buildEthernetFrame, ETHERTYPE, formatMac, parseMac } from "../../dataplane/packet/ethernet.js";
import { ICMP6_TYPE } from "../../dataplane/packet/icmp6.js";
import { buildIPv4Packet, IPPROTO } from "../../dataplane/packet/ipv4.js";
import { buildIPv6Packet, walkIPv6Extensions, type IPv6Chain } from "../../dataplane/packet/ipv6.js";
import {
  AUTH_SUBTYPE, BA_STATUS, MH_TYPE, MOBILITY_OPTION, buildBindingAcknowledgement, buildMobilityPacket, decodeMobilityOption, isNewerSequence,
  messageIdOption, parseMobilityHeader, verifyMhChecksum, type BindingUpdate,
} from "../../dataplane/packet/mip6.js";
import { parseNd } from "../../dataplane/packet/nd.js";
import { MIP4_EXTENSION, MIP4_REPLY_CODE, parseMip4, verifyMobileHomeAuth } from "../../dataplane/packet/mip4.js";
import { buildUdp4, buildUdp6 } from "../../dataplane/packet/udp.js";
import { buildAuthenticatedRequest, requestIdentification } from "../../mobility/mip4/registration.js";
import { Mip4HomeAgent, type Mip4SecurityAssociation } from "../../homeagent/mip4/homeagent.js";
import { ntpFromUnixMs } from "../../mobility/mip4/identification.js";
import { checkMnHa, signMnHa } from "../../mobility/mip6/auth.js";
import { buildBindingUpdatePacket } from "../../mobility/mip6/binding-update.js";
import { Mip6HomeAgent, type Mip6SecurityAssociation } from "../../homeagent/mip6/homeagent.js";
import { createLogger, silentLogger, type Logger } from "../../lib/log.js";
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
  /** QEMU's RARP self-announce from `mac`, received on worker interface `ifIndex` (1 the visitor link, 0 the uplink). */
  rarp(mac: string, ifIndex?: number): void;
  clock: { now: number };
  handovers: HandoverTimeline[];
  /** What the fake PortWatcher's current() returns; change it to move ports. */
  present: { port: string; bridge: Bridge }[];
}

type Fake<K extends "heartbeat" | "allocateCareOf" | "registerMigration" | "requestPrefix" | "prepareMigration"> = (req: Parameters<ControlClient[K]>[0]) => Awaited<ReturnType<ControlClient[K]>>;

interface HarnessOptions {
  /** Default: the IPv6 host h6 (agentConfig()). */
  config?: AgentConfig;
  heartbeat?: Fake<"heartbeat">;
  allocateCareOf?: Fake<"allocateCareOf">;
  prepareMigration?: Fake<"prepareMigration">;
  registerMigration?: Fake<"registerMigration">;
  hook?: MigrationHook;
  present?: { port: string; bridge: Bridge }[];
  /** RequestPrefix's answer (default 2001:db8:3::/96). */
  ipv6Prefix?: string;
  /** Default: silentLogger. */
  log?: Logger;
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
  } as ForwarderConfig, T0, {
    intercept: (pkt, _ingress, decapsulated) => agent?.intercept(pkt, decapsulated) ?? false,
    stationSeen: (frame, ingress) => agent?.stationSeen(frame, ingress),
  });
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
      if (options.registerMigration) return options.registerMigration(req as Parameters<ControlClient["registerMigration"]>[0]);
      return { migrationId: "m1", ruleRevision: 5n, translatedIpv4: "", translatedIpv6: "2001:db8:64::c000:201", returnedHome: false };
    },
    async prepareMigration(req: Parameters<ControlClient["prepareMigration"]>[0]) {
      record("prepareMigration", req);
      return options.prepareMigration?.(req) ?? { ruleRevision: 4n, translatedIpv4: "", translatedIpv6: "2001:db8:64::c000:201", prepared: true, active: false };
    },
    async abortMigration(req: object) {
      record("abortMigration", req);
      return { ruleRevision: 6n, releasedAddresses: [] };
    },
    async requestPrefix(req: object) {
      record("requestPrefix", req);
      return { ipv6Prefix: options.ipv6Prefix ?? "2001:db8:3::/96" };
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
    config, control, ports, log: options.log ?? silentLogger, now: () => clock.now, ...(options.hook ? { hook: options.hook } : {}),
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
    rarp: (mac, ifIndex = 1) => forwarder.processFrame(ifIndex, rarpFrame(mac), () => {}, clock.now),
  };
}

/** RFC 903 RARP "request reverse" for `mac` from `mac`, as QEMU's self-announce after a live migration sends it. */
function rarpFrame(mac: string): Uint8Array {
  const body = new Uint8Array(28);
  body.set([0, 1, 0x08, 0x00, 6, 4, 0, 3]);
  body.set(parseMac(mac), 8);
  body.set(parseMac(mac), 18);
  return buildEthernetFrame(parseMac("ff:ff:ff:ff:ff:ff"), parseMac(mac), ETHERTYPE.RARP, body);
}

/** The port appears (prepare), then the VM runs there (its RARP): the two phases of a live migration's arrival. */
async function attachAndRun(h: Harness, port: string, mac: string): Promise<void> {
  const before = h.calls.filter((c) => c.method === "prepareMigration").length;
  h.fire({ kind: "attached", port, bridge: "visitor" });
  await until(() => h.calls.filter((c) => c.method === "prepareMigration").length > before, "the prepare");
  await settle();
  h.rarp(mac);
}

/** A bounded number of turns for the agent's promise chains. */
async function settle(): Promise<void> {
  for (let i = 0; i < 50; i++) await new Promise((r) => setImmediate(r));
}

/** Lets the agent's promise chains run until `cond` holds (no timing: a bounded number of turns). */
async function until(cond: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 2000; i++) {
    if (cond()) return;
    await new Promise((r) => setImmediate(r));
  }
  throw new Error(`never happened: ${what}`);
}

/** node:test's mock timers for the agent's setTimeout/setInterval (tests that use them run serially). */
function fakeTimers(t: ExecutionContext): typeof mock.timers {
  mock.timers.enable({ apis: ["setTimeout", "setInterval"] });
  t.teardown(() => mock.timers.reset());
  return mock.timers;
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
  await attachAndRun(h, "tap-v4", VM_MAC);
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

  await until(() => h.calls.some((c) => c.method === "registerMigration"), "RegisterMigration");
  const steps = h.calls.filter((c) => c.method !== "heartbeat");
  t.deepEqual(steps.map((c) => c.method), ["allocateCareOf", "prepareMigration", "registerMigration"]);
  t.deepEqual(steps[0].request, { hostId: "h6", vmId: "v4", homeAddress: HOME });
  const migration = { vmId: "v4", homeAddress: HOME, homeAgent: HOME_AGENT, sourceHostId: "h4", destinationHostId: "h6", careOfIpv4: CARE_OF4, careOfIpv6: CARE_OF6 };
  t.deepEqual(steps[1].request, migration);
  t.deepEqual(steps[2].request, migration);
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
  // Answered, so that stop() does not wait out the retransmission timer (it does not cancel it).
  const outcome = homeAgent(KEY).handleRequest({ source: HOME, destination: HOME_AGENT, sourcePort: 434, payload }, h.clock.now);
  h.forwarder.processFrame(0, replyFrame(outcome.reply!), () => {}, h.clock.now);
  await until(() => h.handovers.length === 1, "the handover");
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

// ---------------------------------------------------------------- the phases of a live migration: prepare, activate, abort

/** As until(), for the agent's retries, which wait real time (200 ms, then 400 ms, ...): at most `ms`. */
async function untilMs(cond: () => boolean, what: string, ms = 20_000): Promise<void> {
  for (const end = Date.now() + ms; Date.now() < end; ) {
    if (cond()) return;
    await new Promise((r) => setTimeout(r, 5));
  }
  throw new Error(`never happened in ${ms} ms: ${what}`);
}

const unavailable = () => Object.assign(new Error("14 UNAVAILABLE: No connection established"), { code: 14 });

/** The port appears; the prepare is done (PrepareMigration answered) and the chains have settled. */
async function prepared(h: Harness, port = "tap-v4", mac?: string): Promise<void> {
  h.fire({ kind: "attached", port, bridge: "visitor", ...(mac ? { mac } : {}) });
  await until(() => h.calls.some((c) => c.method === "prepareMigration"), "the prepare");
  await settle();
}

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

// ---------------------------------------------------------------- an IPv6 VM on the IPv4 host h4 (flow 3.2 b–f, k)

const etherType = (frame: Uint8Array): number => (frame[12] << 8) | frame[13];
const SA6: Mip6SecurityAssociation = { spi: 257, key: Uint8Array.from(Buffer.from(KEY6, "hex")) };
const WRONG_SA6: Mip6SecurityAssociation = { spi: 257, key: Uint8Array.from(Buffer.from(WRONG_KEY6, "hex")) };
const bytes6 = (a: string): Uint8Array => ipv6Bytes(a, "t");

/** r2, the real protocol core, holding the VM's key. */
function homeAgent6(sa: Mip6SecurityAssociation = SA6): Mip6HomeAgent {
  return new Mip6HomeAgent({ homeAgentAddress: HOME_AGENT6, homePrefix: "2001:db8:1::/64", maxLifetimeS: 600, securityAssociations: new Map([[HOME6, sa]]) });
}

/** What the agent sent 6in4 on the IPv4 host's uplink: the frame, its outer IPv4 packet and the IPv6 packet inside. */
function sent6in4(h: Harness): { frame: Uint8Array; outer: Uint8Array; inner: Uint8Array }[] {
  return h.frames.filter((f) => f.ifIndex === 0 && etherType(f.frame) === ETHERTYPE.IPV4 && f.frame[14 + 9] === IPPROTO.IPV6).map(({ frame }) => {
    const outer = frame.subarray(14);
    return { frame, outer, inner: outer.subarray((outer[0] & 0x0f) << 2) };
  });
}

/** The engine's 6in4 frame to the VM's IPv4 care-of address (flow 3.2 j), carrying `inner`. */
function engine6in4(inner: Uint8Array): Uint8Array {
  const outer = buildIPv4Packet({ src: ipv4Bytes(ENGINE4, "t"), dst: ipv4Bytes(H4_CARE_OF4, "t"), ttl: 62, protocol: IPPROTO.IPV6 }, inner);
  return buildEthernetFrame(parseMac(PV0_MAC), parseMac(GATEWAY_MAC), ETHERTYPE.IPV4, outer);
}

interface MobilityPacket { packet: Uint8Array; chain: IPv6Chain; bu: BindingUpdate }

/** The Binding Update in an IPv6 packet, with its extension chain. */
function bindingUpdateIn(packet: Uint8Array): MobilityPacket {
  const chain = walkIPv6Extensions(packet, 0);
  if (chain === undefined || chain.upperProtocol !== IPPROTO.MOBILITY) throw new Error("not a Mobility Header packet");
  const mh = parseMobilityHeader(packet, chain.upperOffset);
  if (mh === undefined || mh.mhType !== MH_TYPE.BINDING_UPDATE) throw new Error("not a Binding Update");
  return { packet: packet.slice(), chain, bu: mh };
}

/** Waits for the agent's `n`-th 6in4 packet (1-based) and returns its Binding Update. */
async function nthBindingUpdate(h: Harness, n: number): Promise<MobilityPacket & { frame: Uint8Array; outer: Uint8Array }> {
  await until(() => sent6in4(h).length >= n, `6in4 packet ${n}`);
  const s = sent6in4(h)[n - 1];
  return { ...bindingUpdateIn(s.inner), frame: s.frame, outer: s.outer };
}

function h4Harness(t: ExecutionContext, registration: Parameters<typeof agentConfig4>[0] = {}, options: HarnessOptions = {}): Promise<Harness> {
  return harness(t, { config: agentConfig4(registration), ...H4_ANSWERS, ...options });
}

/** RFC 4285 §5.1, computed here with node:crypto: HMAC-SHA1 over CoA | HoA | the MH through the SPI (checksum zero), first 96 bits. */
function mnHaAuthenticator(key: string, careOf: string, home: string, p: MobilityPacket): { expected: string; sent: string } {
  const auth = p.bu.options.at(-1)!;
  const covered = Buffer.from(p.packet.subarray(p.bu.offset, auth.offset + 7));
  covered[4] = 0;
  covered[5] = 0;
  const mac = createHmac("sha1", Buffer.from(key, "hex")).update(bytes6(careOf)).update(bytes6(home)).update(covered).digest();
  return { expected: mac.subarray(0, 12).toString("hex"), sent: hex(p.packet.subarray(auth.offset + 7, auth.offset + 19)) };
}

/** The VM arrives; r2 answers its BU; the answer comes back 6in4 from the engine; the handover ends. */
async function handover6(h: Harness, ha = homeAgent6()): Promise<MobilityPacket> {
  await attachAndRun(h, "tap-v6", VM6_MAC);
  const bu = await nthBindingUpdate(h, 1);
  const outcome = ha.handlePacket(bu.packet, h.clock.now);
  if (outcome.status !== BA_STATUS.ACCEPTED) throw new Error(`r2 refused the BU: ${outcome.reason}`);
  h.forwarder.processFrame(0, engine6in4(outcome.reply!), () => {}, h.clock.now);
  await until(() => h.handovers.length === 1, "the handover");
  return bu;
}

test("an IPv6 VM on an IPv4 host: RequestPrefix, AllocateCareOf, RegisterMigration, and a BU 6in4 from 192.0.2.100 to the engine with the HAO and the MN-HA authenticator", async (t) => {
  const h = await h4Harness(t);
  t.is(h.agent.family, 4);
  t.deepEqual(h.calls.find((c) => c.method === "requestPrefix")?.request, { hostId: "h4", ipv4Segment: "192.0.2.0/24" });
  t.true(h.forwarder.currentRules().some((r) => r.key === "engine/6in4" && r.kind === "tunnel-peer"));
  await attachAndRun(h, "tap-v6", VM6_MAC);
  const p = await nthBindingUpdate(h, 1);

  const steps = h.calls.filter((c) => c.method === "allocateCareOf" || c.method === "registerMigration");
  t.deepEqual(steps.map((c) => c.method), ["allocateCareOf", "registerMigration"]);
  t.deepEqual(steps[0].request, { hostId: "h4", vmId: "v6", homeAddress: HOME6 });
  t.deepEqual(steps[1].request, { vmId: "v6", homeAddress: HOME6, homeAgent: HOME_AGENT6, sourceHostId: "h6", destinationHostId: "h4", careOfIpv4: H4_CARE_OF4, careOfIpv6: H4_CARE_OF6 });
  t.true(steps[1].rulesAtCall.includes("vm/v6/out") && steps[1].rulesAtCall.includes("vm/v6/out-care-of"), "the host's rules before the engine's");

  // 6in4 from the IPv4 care-of address to the engine, by the default gateway.
  t.is(formatMac(p.frame, 0), GATEWAY_MAC);
  t.is(formatMac(p.frame, 6), PV0_MAC);
  t.is(hex(p.outer.subarray(12, 16)), hex(ipv4Bytes(H4_CARE_OF4, "t")));
  t.is(hex(p.outer.subarray(16, 20)), hex(ipv4Bytes(ENGINE4, "t")));
  // Inside: from the IPv6 care-of address to r2, the Home Address option holding the home address (RFC 6275 §6.3, §11.7.1).
  t.is(hex(p.packet.subarray(8, 24)), hex(bytes6(H4_CARE_OF6)));
  t.is(hex(p.packet.subarray(24, 40)), hex(bytes6(HOME_AGENT6)));
  t.true(p.chain.homeAddressOffset >= 0);
  t.is(hex(p.packet.subarray(p.chain.homeAddressOffset, p.chain.homeAddressOffset + 16)), hex(bytes6(HOME6)));
  t.true(p.bu.homeRegistration && p.bu.acknowledge);
  t.is(p.bu.lifetime, 75, "300 s in 4-second units");
  const v4coa = p.bu.options.find((o) => o.type === MOBILITY_OPTION.IPV4_CARE_OF_ADDRESS);
  t.is(v4coa && decodeMobilityOption.ipv4CareOfAddress(v4coa), 0xc0000264, "RFC 5555 IPv4 care-of address 192.0.2.100");
  const mesg = p.bu.options.find((o) => o.type === MOBILITY_OPTION.MESG_ID);
  t.is(mesg && decodeMobilityOption.messageId(mesg), ntpFromUnixMs(T0, 0), "RFC 4285 §6 timestamp from the injected clock");
  // RFC 4285 §5: the MN-HA option last, SPI 257; its authenticator checked by hand and by r2's code.
  const auth = p.bu.options.at(-1)!;
  t.is(auth.type, MOBILITY_OPTION.AUTH);
  t.deepEqual(decodeMobilityOption.auth(auth) && { subtype: decodeMobilityOption.auth(auth)!.subtype, spi: decodeMobilityOption.auth(auth)!.spi }, { subtype: AUTH_SUBTYPE.MN_HA, spi: 257 });
  const { expected, sent } = mnHaAuthenticator(KEY6, H4_CARE_OF6, HOME6, p);
  t.is(sent, expected);
  t.is(checkMnHa(p.packet, p.bu, SA6, bytes6(H4_CARE_OF6), bytes6(HOME6)), "ok");
  t.is(checkMnHa(p.packet, p.bu, WRONG_SA6, bytes6(H4_CARE_OF6), bytes6(HOME6)), "bad-authenticator");
  // RFC 6275 §6.1.1: the MH checksum with the home address as the pseudo-header's source.
  t.true(verifyMhChecksum(p.packet, p.bu.offset, p.bu.length, pseudoHeaderSum6(bytes6(HOME6), 0, bytes6(HOME_AGENT6), 0, IPPROTO.MOBILITY, p.bu.length)));

  const ts = decodeWithTshark([p.frame]);
  t.deepEqual(ts.problems, []);
  t.regex(frameProtocols(ts)[0], /eth:ethertype:ip:ipv6:ipv6\.dstopts:mipv6/);

  // Answered, so that the agent is not left waiting when the test ends.
  h.forwarder.processFrame(0, engine6in4(homeAgent6().handlePacket(p.packet, h.clock.now).reply!), () => {}, h.clock.now);
  await until(() => h.handovers.length === 1, "the handover");
});

test("the IPv6 care-of address is checked against the segment's prefix by its bits, not its text (2001:db8:3:1:: is outside a /96; 2001:db8:3ff:: inside a /40)", async (t) => {
  const cases = [
    { ipv6Prefix: "2001:db8:3::/96", careOfIpv6: H4_CARE_OF6, outside: false },
    { ipv6Prefix: "2001:db8:3::/96", careOfIpv6: "2001:db8:3:1::c000:264", outside: true },
    { ipv6Prefix: "2001:db8:300::/40", careOfIpv6: "2001:db8:3ff::c000:264", outside: false },
    { ipv6Prefix: "2001:db8:300::/40", careOfIpv6: "2001:db8:400::c000:264", outside: true },
  ];
  for (const c of cases) {
    const warnings: string[] = [];
    const log = createLogger({}, "warn", (line) => {
      const entry = JSON.parse(line) as { level: string; msg: string };
      if (entry.level === "warn") warnings.push(entry.msg);
    });
    const h = await h4Harness(t, {}, {
      ipv6Prefix: c.ipv6Prefix, log,
      allocateCareOf: () => ({ careOfIpv4: H4_CARE_OF4, careOfIpv6: c.careOfIpv6, lifetimeSeconds: 300, pool: "192.0.2.96/28", expiresAtMs: 0n }),
    });
    h.fire({ kind: "attached", port: "tap-v6", bridge: "visitor" });
    await until(() => h.calls.some((call) => call.method === "prepareMigration"), "the prepare");
    t.is(warnings.includes("care-of address outside the segment's prefix"), c.outside, `${c.careOfIpv6} in ${c.ipv6Prefix}`);
  }
});

test("r2's acknowledgement, 6in4 from the engine, completes the IPv6 VM's handover; the VM's packets then leave 6in4", async (t) => {
  const h = await h4Harness(t);
  await attachAndRun(h, "tap-v6", VM6_MAC);
  const p = await nthBindingUpdate(h, 1);
  const ha = homeAgent6();
  const outcome = ha.handlePacket(p.packet, h.clock.now);
  t.is(outcome.status, BA_STATUS.ACCEPTED, outcome.reason);
  t.like(ha.binding(HOME6), { careOfAddress: H4_CARE_OF6, careOfIPv4: H4_CARE_OF4, sequence: p.bu.sequence });
  t.is(h.handovers.length, 0, "not done before the acknowledgement");
  h.clock.now += 30;
  const frame = engine6in4(outcome.reply!);
  t.deepEqual(decodeWithTshark([frame]).problems, []);
  h.forwarder.processFrame(0, frame, () => t.fail("the acknowledgement is taken, not forwarded"), h.clock.now);
  t.is(h.forwarder.counters.actions.decap, 1);
  t.is(h.forwarder.counters.actions.deliver, 1);
  await until(() => h.handovers.length === 1, "the handover");
  const tl = h.agent.timelines[0];
  t.true(tl.ok, tl.error);
  t.like(tl, { vmId: "v6", direction: "6to4", careOfIPv4: H4_CARE_OF4, careOfIPv6: H4_CARE_OF6, registrationAttempts: 1, registeredMs: 30 });

  // Reverse tunnelling (flow 3.2 d): what the VM sends from its home address leaves 6in4 to the engine.
  const fromVm6 = buildUdp6({ src: bytes6(HOME6), dst: bytes6(CORRESPONDENT6), srcPort: 5000, dstPort: 6000 }, new TextEncoder().encode("from the VM"));
  const out: { ifIndex: number; frame: Uint8Array }[] = [];
  h.forwarder.processFrame(1, buildEthernetFrame(parseMac(PV1_MAC), parseMac(VM6_MAC), ETHERTYPE.IPV6, fromVm6), (ifIndex, f) => out.push({ ifIndex, frame: f.slice() }), h.clock.now);
  t.is(out.length, 1);
  t.is(out[0].ifIndex, 0);
  t.is(out[0].frame[14 + 9], IPPROTO.IPV6);
  t.is(hex(out[0].frame.subarray(14 + 12, 14 + 20)), hex(ipv4Bytes(H4_CARE_OF4, "t")) + hex(ipv4Bytes(ENGINE4, "t")));
});

/** r2 with a binding made by another host's agent whose sequence number runs ahead of this host's clock. */
function homeAgentAhead(): { ha: Mip6HomeAgent; ahead: number } {
  const ha = homeAgent6();
  const ahead = (Math.floor(T0 / 64) + 1000) & 0xffff;
  const other = buildBindingUpdatePacket({ homeAddress: HOME6, careOfAddress: "2001:db8:9::c000:201", homeAgent: HOME_AGENT6, sequence: ahead, lifetimeS: 300, sa: SA6, nowMs: T0 - 1000 });
  const outcome = ha.handlePacket(other, T0 - 1000);
  if (outcome.status !== BA_STATUS.ACCEPTED) throw new Error(`setup: ${outcome.reason}`);
  return { ha, ahead };
}

test("a BA with status 135 makes the agent send the BU again with a sequence number after r2's, and the second is accepted (RFC 6275 §11.7.3)", async (t) => {
  const h = await h4Harness(t);
  const { ha, ahead } = homeAgentAhead();
  await attachAndRun(h, "tap-v6", VM6_MAC);
  const first = await nthBindingUpdate(h, 1);
  const refused = ha.handlePacket(first.packet, h.clock.now);
  t.is(refused.status, BA_STATUS.SEQUENCE_NUMBER_OUT_OF_WINDOW);
  h.clock.now += 10;
  h.forwarder.processFrame(0, engine6in4(refused.reply!), () => {}, h.clock.now);
  const second = await nthBindingUpdate(h, 2);
  t.is(second.bu.sequence, (ahead + 1) & 0xffff);
  t.true(isNewerSequence(second.bu.sequence, ahead));
  t.is(checkMnHa(second.packet, second.bu, SA6, bytes6(H4_CARE_OF6), bytes6(HOME6)), "ok");
  const accepted = ha.handlePacket(second.packet, h.clock.now);
  t.is(accepted.status, BA_STATUS.ACCEPTED, accepted.reason);
  t.is(ha.binding(HOME6)?.careOfAddress, H4_CARE_OF6);
  h.forwarder.processFrame(0, engine6in4(accepted.reply!), () => {}, h.clock.now);
  await until(() => h.handovers.length === 1, "the handover");
  t.true(h.agent.timelines[0].ok, h.agent.timelines[0].error);
  t.is(h.agent.timelines[0].registrationAttempts, 1, "a resend after 135 is an answer, not a retransmission");
});

// Bug (clients/agent/agent.ts register()): the 135 resynchronisation uses up one of
// registration.maxAttempts, so with maxAttempts 1 an answered registration fails as
// "no answer from home agent 2001:db8:1::1 after 1 attempts" without sending the resynchronised BU.
test("with maxAttempts 1, a BA with status 135 still leads to the resynchronised BU and a completed handover", async (t) => {
  const h = await h4Harness(t, { maxAttempts: 1 });
  const { ha } = homeAgentAhead();
  await attachAndRun(h, "tap-v6", VM6_MAC);
  const first = await nthBindingUpdate(h, 1);
  h.forwarder.processFrame(0, engine6in4(ha.handlePacket(first.packet, h.clock.now).reply!), () => {}, h.clock.now);
  await until(() => sent6in4(h).length === 2 || h.handovers.length === 1, "a second BU or the handover's end");
  t.is(h.handovers.length, 0, h.agent.timelines[0]?.error);
  const second = await nthBindingUpdate(h, 2);
  h.forwarder.processFrame(0, engine6in4(ha.handlePacket(second.packet, h.clock.now).reply!), () => {}, h.clock.now);
  await until(() => h.handovers.length === 1, "the handover");
  t.true(h.agent.timelines[0].ok);
});

// Bug (clients/agent/agent.ts register()): checkAcknowledgement reports status and sequence even
// when the MN-HA check fails ("bad-auth"), and the 135 branch does not look at `reason`, so a
// forged, unauthenticated BA with status 135 sets the VM's sequence number to whatever it says.
test("a BA with status 135 that fails the MN-HA check is refused like any other bad-auth reply, not taken as a resync", async (t) => {
  const h = await h4Harness(t, { firstRetransmitMs: 50 });
  await attachAndRun(h, "tap-v6", VM6_MAC);
  const first = await nthBindingUpdate(h, 1);
  const timestamp = decodeMobilityOption.messageId(first.bu.options.find((o) => o.type === MOBILITY_OPTION.MESG_ID)!)!;
  const forged = signMnHa((o) => buildBindingAcknowledgement({ status: BA_STATUS.SEQUENCE_NUMBER_OUT_OF_WINDOW, sequence: 0x1234, lifetime: 0 }, o), [messageIdOption(timestamp)], WRONG_SA6, bytes6(H4_CARE_OF6), bytes6(HOME6));
  const ba = buildMobilityPacket({ src: bytes6(HOME_AGENT6), dst: bytes6(H4_CARE_OF6), routingHomeAddress: bytes6(HOME6) }, forged);
  h.forwarder.processFrame(0, engine6in4(ba), () => {}, h.clock.now);
  await until(() => sent6in4(h).length === 2 || h.handovers.length === 1, "a second BU or the handover's end");
  t.is(sent6in4(h).length, 1, "no BU with the forged sequence number + 1");
  t.false(h.agent.timelines[0].ok);
  t.regex(h.agent.timelines[0].error ?? "", /bad-auth/);
});

// Serial, with mock timers: the agent's stop() leaves the correspondent's refresh timer (2/3 of the
// lifetime, 200 s here) running, which with real timers keeps the test process from exiting.
test.serial("a correspondent's packet to the home address, 6in4 from the engine, makes the agent send it a BU (no H flag, from the care-of address, HAO = home address) 6in4 toward the engine", async (t) => {
  fakeTimers(t);
  const h = await h4Harness(t);
  await handover6(h);
  t.is(sent6in4(h).length, 1);
  const fromCn = buildUdp6({ src: bytes6(CORRESPONDENT6), dst: bytes6(HOME6), srcPort: 7000, dstPort: 5000, hopLimit: 60 }, new TextEncoder().encode("to the VM"));
  const delivered: { ifIndex: number; frame: Uint8Array }[] = [];
  h.forwarder.processFrame(0, engine6in4(fromCn), (ifIndex, f) => delivered.push({ ifIndex, frame: f.slice() }), h.clock.now);
  t.true(delivered.length > 0 && delivered.every((d) => d.ifIndex === 1), "the packet itself goes on to the VM's link");
  const p = await nthBindingUpdate(h, 2);
  // 6in4 from the IPv4 care-of address to the engine (the engine takes it: flow 3.2 k).
  t.is(hex(p.outer.subarray(12, 20)), hex(ipv4Bytes(H4_CARE_OF4, "t")) + hex(ipv4Bytes(ENGINE4, "t")));
  t.is(hex(p.packet.subarray(8, 24)), hex(bytes6(H4_CARE_OF6)));
  t.is(hex(p.packet.subarray(24, 40)), hex(bytes6(CORRESPONDENT6)));
  t.true(p.chain.homeAddressOffset >= 0);
  t.is(hex(p.packet.subarray(p.chain.homeAddressOffset, p.chain.homeAddressOffset + 16)), hex(bytes6(HOME6)));
  t.false(p.bu.homeRegistration, "no H flag: a correspondent registration");
  t.true(p.bu.acknowledge);
  t.false(p.bu.options.some((o) => o.type === MOBILITY_OPTION.AUTH), "no MN-HA option: the correspondent holds no key");
  t.true(verifyMhChecksum(p.packet, p.bu.offset, p.bu.length, pseudoHeaderSum6(bytes6(HOME6), 0, bytes6(CORRESPONDENT6), 0, IPPROTO.MOBILITY, p.bu.length)));
  t.deepEqual(decodeWithTshark([p.frame]).problems, []);

  // The same correspondent again: no second BU.
  h.forwarder.processFrame(0, engine6in4(fromCn), () => {}, h.clock.now);
  for (let i = 0; i < 50; i++) await new Promise((r) => setImmediate(r));
  t.is(sent6in4(h).length, 2);
  // The correspondent's acknowledgement (the engine answers for it) ends the exchange.
  const ack = buildMobilityPacket({ src: bytes6(CORRESPONDENT6), dst: bytes6(H4_CARE_OF6), routingHomeAddress: bytes6(HOME6) }, buildBindingAcknowledgement({ status: BA_STATUS.ACCEPTED, sequence: p.bu.sequence, lifetime: p.bu.lifetime }));
  h.forwarder.processFrame(0, engine6in4(ack), () => t.fail("the acknowledgement is taken"), h.clock.now);
  const accepted = async () => (await h.agent.metrics.registrations.get()).values.find((v) => v.labels.protocol === "mip6-correspondent" && v.labels.result === "accepted")?.value ?? 0;
  for (let i = 0; i < 200 && (await accepted()) === 0; i++) await new Promise((r) => setImmediate(r));
  t.is(await accepted(), 1);
});

// ---------------------------------------------------------------- coming home (RFC 5944 §4.6, RFC 6275 §11.5.4)

test.serial("an IPv4 VM's port on the home bridge of its home host: a gratuitous ARP with its MAC, a deregistration straight to r1, RegisterMigration without care-of addresses", async (t) => {
  const timers = fakeTimers(t);
  // r1 holds the binding h6's agent made.
  const sa: Mip4SecurityAssociation = { spi: 256, algorithm: "hmac-sha256", key: Uint8Array.from(Buffer.from(KEY, "hex")) };
  const r1 = homeAgent(KEY);
  const away = buildAuthenticatedRequest({ homeAddress: HOME, homeAgent: HOME_AGENT, careOfAddress: CARE_OF4, lifetimeS: 300, sa, nowMs: T0 - 1000 });
  t.is(r1.handleRequest({ source: HOME, destination: HOME_AGENT, sourcePort: 434, payload: away }, T0 - 1000).code, MIP4_REPLY_CODE.ACCEPTED);

  const h = await h4Harness(t);
  h.fire({ kind: "attached", port: "tap-v4", bridge: "home" });
  await settle();
  t.is(h.frames.length, 0, "nothing before the VM runs here");
  t.false(h.calls.some((c) => c.method === "registerMigration"));
  h.rarp(VM_MAC, 0);
  await until(() => h.handovers.length === 1, "the home-coming");
  t.is(h.handovers[0].activation, "rarp");
  t.true(h.handovers[0].ok, h.handovers[0].error);
  t.is(h.handovers[0].direction, "home");
  t.deepEqual(h.calls.filter((c) => c.method === "registerMigration").map((c) => c.request), [
    { vmId: "v4", homeAddress: HOME, homeAgent: HOME_AGENT, sourceHostId: "", destinationHostId: "h4", careOfIpv4: "", careOfIpv6: "" },
  ]);
  t.false(h.calls.some((c) => c.method === "allocateCareOf"));
  t.is(h.frames.length, 2);
  t.true(h.frames.every((f) => f.ifIndex === 0), "both on the uplink");

  // Gratuitous ARP (RFC 5227 §3, RFC 5944 §4.6): sender and target = the home address, sender MAC the VM's.
  const garp = h.frames[0].frame;
  t.is(formatMac(garp, 0), "ff:ff:ff:ff:ff:ff");
  t.is(formatMac(garp, 6), PV0_MAC);
  t.is(etherType(garp), ETHERTYPE.ARP);
  const arp = parseArp(garp, 14)!;
  t.is(arp.operation, ARP_OPERATION.REQUEST);
  t.is(formatMac(garp, arp.senderMacOffset), VM_MAC);
  t.is(arp.senderIp, 0xc0000201);
  t.is(arp.targetIp, 0xc0000201);

  // The deregistration: plain IPv4/UDP 434 to r1's MAC, not tunnelled; lifetime 0, care-of = home.
  const dereg = h.frames[1].frame;
  t.is(formatMac(dereg, 0), R1_MAC);
  t.is(etherType(dereg), ETHERTYPE.IPV4);
  const ip = dereg.subarray(14);
  t.is(ip[9], IPPROTO.UDP);
  t.is(hex(ip.subarray(12, 20)), hex(ipv4Bytes(HOME, "t")) + hex(ipv4Bytes(HOME_AGENT, "t")));
  const payload = ip.subarray(((ip[0] & 0x0f) << 2) + 8);
  const rrq = parseMip4(payload);
  t.true(rrq !== undefined && rrq.type === 1 && rrq.lifetime === 0 && rrq.careOfAddress === 0xc0000201);
  const outcome = r1.handleRequest({ source: HOME, destination: HOME_AGENT, sourcePort: 434, payload: payload.slice() }, h.clock.now);
  t.is(outcome.code, MIP4_REPLY_CODE.ACCEPTED, outcome.reason);
  t.is(r1.binding(HOME), undefined, "r1 dropped the binding");

  const ts = decodeWithTshark(h.frames.map((f) => f.frame));
  t.deepEqual(ts.problems, []);
  t.regex(frameProtocols(ts)[0], /eth:ethertype:arp/);
  t.regex(frameProtocols(ts)[1], /eth:ethertype:ip:udp:mip/);
  // The announcement is repeated once r1 has stopped proxying.
  timers.tick(50);
  t.is(h.frames.length, 3);
  t.is(hex(h.frames[2].frame), hex(garp));
});

test("coming home while the engine is away: the deregistration goes at once, RegisterMigration is asked again until the engine answers", async (t) => {
  let down = 2;
  const h = await h4Harness(t, {}, {
    registerMigration: () => {
      if (down-- > 0) throw unavailable();
      return { migrationId: "m2", ruleRevision: 7n, translatedIpv4: "", translatedIpv6: "", returnedHome: true };
    },
  });
  h.fire({ kind: "attached", port: "tap-v4", bridge: "home" });
  await settle();
  h.rarp(VM_MAC, 0);
  await untilMs(() => h.handovers.length === 1, "the home-coming, after the engine came back");
  t.true(h.handovers[0].ok, h.handovers[0].error);
  t.is(h.handovers[0].direction, "home");
  t.is(h.calls.filter((c) => c.method === "registerMigration").length, 3, "two refusals, then the answer");
  // The VM was reachable at home before the engine answered: the announcement and the
  // deregistration went first, once.
  const uplink = h.frames.filter((f) => f.ifIndex === 0);
  t.is(etherType(uplink[0].frame), ETHERTYPE.ARP);
  t.is(uplink.filter((f) => etherType(f.frame) === ETHERTYPE.IPV4).length, 1, "one deregistration");
});

test.serial("an IPv6 VM's port on the home bridge of its home host: an unsolicited NA (O set) with its MAC, a deregistration straight to r2, RegisterMigration without care-of addresses", async (t) => {
  fakeTimers(t);
  // r2 holds the binding h4's agent made (an older sequence number, as the clock goes).
  const r2 = homeAgent6();
  const away = buildBindingUpdatePacket({ homeAddress: HOME6, careOfAddress: H4_CARE_OF6, careOfIPv4: H4_CARE_OF4, homeAgent: HOME_AGENT6, sequence: (Math.floor(T0 / 64) - 100) & 0xffff, lifetimeS: 300, sa: SA6, nowMs: T0 - 1000 });
  t.is(r2.handlePacket(away, T0 - 1000).status, BA_STATUS.ACCEPTED);

  const h = await harness(t);
  h.fire({ kind: "attached", port: "tap-v6", bridge: "home" });
  await settle();
  h.rarp(VM6_MAC, 0);
  await until(() => h.handovers.length === 1, "the home-coming");
  t.true(h.handovers[0].ok, h.handovers[0].error);
  t.deepEqual(h.calls.filter((c) => c.method === "registerMigration").map((c) => c.request), [
    { vmId: "v6", homeAddress: HOME6, homeAgent: HOME_AGENT6, sourceHostId: "", destinationHostId: "h6", careOfIpv4: "", careOfIpv6: "" },
  ]);
  t.is(h.frames.length, 2);
  t.true(h.frames.every((f) => f.ifIndex === 0), "both on the uplink");

  // Unsolicited NA (RFC 4861 §7.2.6, RFC 6275 §11.5.4): to all nodes, R and S clear, O set, TLLA the VM's MAC.
  const naFrame = h.frames[0].frame;
  t.is(formatMac(naFrame, 0), "33:33:00:00:00:01");
  t.is(formatMac(naFrame, 6), PV0_MAC);
  t.is(etherType(naFrame), ETHERTYPE.IPV6);
  const na6 = naFrame.subarray(14);
  t.is(na6[6], IPPROTO.ICMPV6);
  t.is(na6[7], 255);
  t.is(hex(na6.subarray(8, 10)), "fe80", "from the port's link-local address");
  t.is(hex(na6.subarray(24, 40)), hex(bytes6("ff02::1")));
  t.is(na6[40], ICMP6_TYPE.NEIGHBOR_ADVERTISEMENT);
  const nd = parseNd(na6, 40)!;
  t.like(nd, { router: false, solicited: false, override: true });
  t.is(hex(na6.subarray(nd.targetOffset, nd.targetOffset + 16)), hex(bytes6(HOME6)));
  t.true(nd.targetLinkLayerOffset >= 0);
  t.is(formatMac(na6, nd.targetLinkLayerOffset), VM6_MAC);

  // The deregistration: native IPv6 to r2's MAC, from the home address, no HAO (at home), lifetime 0.
  const dereg = h.frames[1].frame;
  t.is(formatMac(dereg, 0), R2_MAC);
  t.is(etherType(dereg), ETHERTYPE.IPV6);
  const p = bindingUpdateIn(dereg.subarray(14));
  t.is(p.packet[6], IPPROTO.MOBILITY, "no extension header, no tunnel");
  t.is(hex(p.packet.subarray(8, 40)), hex(bytes6(HOME6)) + hex(bytes6(HOME_AGENT6)));
  t.is(p.bu.lifetime, 0);
  t.true(p.bu.homeRegistration);
  t.is(checkMnHa(p.packet, p.bu, SA6, bytes6(HOME6), bytes6(HOME6)), "ok");
  const outcome = r2.handlePacket(p.packet, h.clock.now);
  t.is(outcome.status, BA_STATUS.ACCEPTED, outcome.reason);
  t.deepEqual(outcome.events.map((e) => [e.kind, e.reason]), [["removed", "deregistration"]]);
  t.is(r2.binding(HOME6), undefined);

  const ts = decodeWithTshark(h.frames.map((f) => f.frame));
  t.deepEqual(ts.problems, []);
  t.regex(frameProtocols(ts)[0], /eth:ethertype:ipv6:icmpv6/);
  t.regex(frameProtocols(ts)[1], /eth:ethertype:ipv6:mipv6/);
});

// ---------------------------------------------------------------- heartbeat and migration advice

test.serial("migration advice for this host runs the hook once even while the advice repeats; advice for another source host is ignored; Heartbeat reports the uplink's addresses and the VMs present", async (t) => {
  const timers = fakeTimers(t);
  let advice: MigrationAdvice[] = [];
  const migrations: [string, string][] = [];
  let finish!: () => void;
  const hook: MigrationHook = {
    migrate(vmId, hostId) {
      migrations.push([vmId, hostId]);
      return new Promise<void>((resolve) => (finish = resolve));
    },
  };
  const h = await harness(t, {
    hook, present: [{ port: "tap-v6", bridge: "home" }],
    heartbeat: () => ({ state: 1, networkFamily: 2, network: "2001:db8:1::/64", advice: [...advice], heartbeatIntervalSeconds: 600 }),
  });
  const heartbeats = () => h.calls.filter((c) => c.method === "heartbeat").map((c) => c.request as unknown as HeartbeatRequest);
  t.is(heartbeats().length, 1);
  t.is(heartbeats()[0].hostId, "h6");
  t.deepEqual(heartbeats()[0].addresses, ["2001:db8:1::6/64"]);
  t.deepEqual(heartbeats()[0].vms, [{ vmId: "v6", homeAddress: HOME6, cpuUsedCores: 0, memoryUsedBytes: 0n }]);

  h.present.push({ port: "tap-v4", bridge: "visitor" });
  h.fire({ kind: "attached", port: "tap-v4", bridge: "visitor" });
  await until(() => h.calls.some((c) => c.method === "prepareMigration"), "the prepare");
  timers.tick(600_000);
  await until(() => heartbeats().length === 2, "a heartbeat");
  t.deepEqual(heartbeats()[1].vms.map((v) => v.vmId), ["v6"], "a VM being prepared still runs at its source");
  h.rarp(VM_MAC);
  await until(() => h.calls.some((c) => c.method === "registerMigration"), "the activation");
  advice = [
    { vmId: "v4", sourceHostId: "h6", destinationHostId: "h4", crossProtocol: true, reason: "load" },
    { vmId: "v6", sourceHostId: "h5", destinationHostId: "h4", crossProtocol: true, reason: "load" },
  ];
  timers.tick(600_000);
  await until(() => migrations.length === 1, "the hook");
  t.deepEqual(heartbeats()[2].vms.map((v) => v.vmId), ["v4", "v6"], "the VMs that run here, at home or visiting");
  timers.tick(600_000);
  timers.tick(600_000);
  await until(() => heartbeats().length === 5, "two more heartbeats");
  for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
  t.deepEqual(migrations, [["v4", "h4"]], "once, while the hook runs; never for another source host's advice");
  finish();
});
