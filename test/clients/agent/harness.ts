// The harness of the agent tests (test/clients/agent/*.test.ts).
// The privileged-VM agent (clients/agent/agent.ts): on an IPv6 host handing over an IPv4 VM (flow
// 3.1 b–g), on an IPv4 host handing over an IPv6 VM (3.2 b–f) and starting route optimisation
// with a correspondent (3.2 k), a VM coming home, and Heartbeat with migration advice. A real
// Forwarder is its worker; mocked inside this test only are the engine (a ControlClient that
// records calls), the hypervisor (a PortWatcher whose events we fire, a MigrationHook) and the
// wire (an emit that keeps frames). The home agents' answers are made by the real protocol cores
// (homeagent/mip4/homeagent.ts, homeagent/mip6/homeagent.ts) from what the agent sent; frames are
// checked with our codec, with node:crypto's HMAC as an independent check of the authenticators,
// and with tshark. Tests that need the agent's timers use node:test's mock timers and run serially.
import type { ExecutionContext } from "ava";
import { mock } from "node:test";
import { PrivilegedVmAgent, type HandoverTimeline } from "../../../clients/agent/agent.js";
import { parseAgentConfig, type AgentConfig } from "../../../clients/agent/config.js";
import type { Bridge, MigrationHook, PortEvent, PortWatcher } from "../../../clients/agent/hypervisor.js";
import type { ControlClient } from "../../../clients/control.js";
import type { AllocateCareOfRequest, HeartbeatRequest } from "../../../gen/mip46/v1/control.js";
import { Forwarder, type ForwarderConfig } from "../../../dataplane/forward/index.js";
import { ipv4Bytes, ipv6Bytes } from "../../../dataplane/forward/addresses.js";
import { buildEthernetFrame, ETHERTYPE, parseMac } from "../../../dataplane/packet/ethernet.js";
import { IPPROTO } from "../../../dataplane/packet/ipv4.js";
import { buildIPv6Packet } from "../../../dataplane/packet/ipv6.js";
import { buildUdp4 } from "../../../dataplane/packet/udp.js";
import { Mip4HomeAgent, type Mip4SecurityAssociation } from "../../../homeagent/mip4/homeagent.js";
import { silentLogger, type Logger } from "../../../lib/log.js";

export const KEY = "00112233445566778899aabbccddeeff0011223344556677";
export const WRONG_KEY = "ffeeddccbbaa99887766554433221100ffeeddccbbaa9988";
export const HOME = "192.0.2.1";
export const HOME_AGENT = "192.0.2.2";
export const CARE_OF4 = "198.51.100.10";
export const CARE_OF6 = "2001:db8:1::c000:201";
export const ENGINE6 = "2001:db8:2::1";
export const PV0_MAC = "02:00:00:00:0a:00";
export const PV1_MAC = "02:00:00:00:0a:01";
export const GATEWAY_MAC = "02:00:00:00:0a:fe";
export const VM_MAC = "02:00:00:00:aa:01";
export const R1_MAC = "02:00:00:00:0b:01";
// The IPv6 VM, its home agent r2, and the IPv4 host's side of its handover (flow 3.2).
export const KEY6 = "0f1e2d3c4b5a69788796a5b4c3d2e1f0";
export const WRONG_KEY6 = "f0e1d2c3b4a5968778695a4b3c2d1e0f";
export const HOME6 = "2001:db8:1::2";
export const HOME_AGENT6 = "2001:db8:1::1";
export const R2_MAC = "02:00:00:00:0b:02";
export const VM6_MAC = "02:00:00:00:aa:06";
export const ENGINE4 = "198.51.100.1";
export const H4_CARE_OF4 = "192.0.2.100";
export const H4_CARE_OF6 = "2001:db8:3::c000:264";
export const CORRESPONDENT6 = "2001:db8:c::10";
/** 2026-01-01, the injected clock: the RRQ's Identification and the home agent's replay window use it. */
export const T0 = Date.UTC(2026, 0, 1);

export const hex = (b: Uint8Array): string => Buffer.from(b).toString("hex");

/** The IPv6 host h6 (2001:db8:1::/64 is also the home network of the IPv6 VM v6, whose home agent is r2). */
export function agentConfig(registration: { lifetimeS?: number; firstRetransmitMs?: number; maxAttempts?: number } = {}) {
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
export function agentConfig4(registration: { lifetimeS?: number; firstRetransmitMs?: number; maxAttempts?: number } = {}) {
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

export interface Call {
  method: string;
  request: Record<string, unknown>;
  /** Keys of the worker's rules when the call was made. */
  rulesAtCall: string[];
}

export interface Harness {
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

export type Fake<K extends "heartbeat" | "allocateCareOf" | "registerMigration" | "requestPrefix" | "prepareMigration"> = (req: Parameters<ControlClient[K]>[0]) => Awaited<ReturnType<ControlClient[K]>>;

export interface HarnessOptions {
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
export const H4_ANSWERS: Pick<HarnessOptions, "allocateCareOf" | "heartbeat"> = {
  allocateCareOf: () => ({ careOfIpv4: H4_CARE_OF4, careOfIpv6: H4_CARE_OF6, lifetimeSeconds: 300, pool: "192.0.2.96/28", expiresAtMs: 0n }),
  heartbeat: () => ({ state: 1, networkFamily: 1, network: "192.0.2.0/24", advice: [], heartbeatIntervalSeconds: 1 }),
};

export async function harness(t: ExecutionContext, options: HarnessOptions = {}): Promise<Harness> {
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
export function rarpFrame(mac: string): Uint8Array {
  const body = new Uint8Array(28);
  body.set([0, 1, 0x08, 0x00, 6, 4, 0, 3]);
  body.set(parseMac(mac), 8);
  body.set(parseMac(mac), 18);
  return buildEthernetFrame(parseMac("ff:ff:ff:ff:ff:ff"), parseMac(mac), ETHERTYPE.RARP, body);
}

/** The port appears (prepare), then the VM runs there (its RARP): the two phases of a live migration's arrival. */
export async function attachAndRun(h: Harness, port: string, mac: string): Promise<void> {
  const before = h.calls.filter((c) => c.method === "prepareMigration").length;
  h.fire({ kind: "attached", port, bridge: "visitor" });
  await until(() => h.calls.filter((c) => c.method === "prepareMigration").length > before, "the prepare");
  await settle();
  h.rarp(mac);
}

/** A bounded number of turns for the agent's promise chains. */
export async function settle(): Promise<void> {
  for (let i = 0; i < 50; i++) await new Promise((r) => setImmediate(r));
}

/** Lets the agent's promise chains run until `cond` holds (no timing: a bounded number of turns). */
export async function until(cond: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 2000; i++) {
    if (cond()) return;
    await new Promise((r) => setImmediate(r));
  }
  throw new Error(`never happened: ${what}`);
}

/** node:test's mock timers for the agent's setTimeout/setInterval (tests that use them run serially). */
export function fakeTimers(t: ExecutionContext): typeof mock.timers {
  mock.timers.enable({ apis: ["setTimeout", "setInterval"] });
  t.teardown(() => mock.timers.reset());
  return mock.timers;
}

/** The Registration Request in a 4in6 frame the agent sent, with its parts. */
export function registrationRequest(frame: Uint8Array): { outer: Uint8Array; inner: Uint8Array; payload: Uint8Array } {
  const outer = frame.subarray(14);
  const inner = outer.subarray(40);
  const ihl = (inner[0] & 0x0f) << 2;
  return { outer, inner, payload: inner.subarray(ihl + 8) };
}

/** The engine's 4in6 frame to the care-of address carrying a reply from the home agent. */
export function replyFrame(reply: Uint8Array): Uint8Array {
  const udp = buildUdp4({ src: ipv4Bytes(HOME_AGENT, "t"), dst: ipv4Bytes(HOME, "t"), srcPort: 434, dstPort: 434, ttl: 63 }, reply);
  const outer = buildIPv6Packet({ src: ipv6Bytes(ENGINE6, "t"), dst: ipv6Bytes(CARE_OF6, "t"), hopLimit: 62, nextHeader: IPPROTO.IPIP }, udp);
  return buildEthernetFrame(parseMac(PV0_MAC), parseMac(GATEWAY_MAC), ETHERTYPE.IPV6, outer);
}

export function homeAgent(key: string): Mip4HomeAgent {
  const sa: Mip4SecurityAssociation = { spi: 256, algorithm: "hmac-sha256", key: Uint8Array.from(Buffer.from(key, "hex")) };
  return new Mip4HomeAgent({ homeAgentAddress: HOME_AGENT, homeNetwork: "192.0.2.0/24", maxLifetimeS: 600, securityAssociations: new Map([[HOME, sa]]) });
}

/** A UDP packet from the VM (entering the visitor bridge's interface) to `dst`. */
export function fromVm(dst: string): Uint8Array {
  const p = buildUdp4({ src: ipv4Bytes(HOME, "t"), dst: ipv4Bytes(dst, "t"), srcPort: 5000, dstPort: 6000, ttl: 64 }, new TextEncoder().encode("from the VM"));
  return buildEthernetFrame(parseMac(PV1_MAC), parseMac(VM_MAC), ETHERTYPE.IPV4, p);
}

/** Where the VM's packet goes: "4in6 to the engine", "routed" (on pv1), or what else. */
export function vmPacketGoes(h: Harness): string {
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

export async function arrive(h: Harness): Promise<{ frame: Uint8Array; payload: Uint8Array }> {
  await attachAndRun(h, "tap-v4", VM_MAC);
  await until(() => h.frames.some((f) => f.ifIndex === 0 && f.frame[14 + 6] === IPPROTO.IPIP), "the registration request");
  const sent = h.frames.filter((f) => f.ifIndex === 0 && f.frame[14 + 6] === IPPROTO.IPIP);
  if (sent.length !== 1) throw new Error(`${sent.length} registration frames`);
  return { frame: sent[0].frame, payload: registrationRequest(sent[0].frame).payload.slice() };
}


// ---------------------------------------------------------------- for the tests that wait out the engine


/** As until(), for the agent's retries, which wait real time (jittered, up to 200 ms, then 400 ms, ...): at most `ms`. */
export async function untilMs(cond: () => boolean, what: string, ms = 20_000): Promise<void> {
  for (const end = Date.now() + ms; Date.now() < end; ) {
    if (cond()) return;
    await new Promise((r) => setTimeout(r, 5));
  }
  throw new Error(`never happened in ${ms} ms: ${what}`);
}

export const unavailable = () => Object.assign(new Error("14 UNAVAILABLE: No connection established"), { code: 14 });

/** The port appears; the prepare is done (PrepareMigration answered) and the chains have settled. */
export async function prepared(h: Harness, port = "tap-v4", mac?: string): Promise<void> {
  h.fire({ kind: "attached", port, bridge: "visitor", ...(mac ? { mac } : {}) });
  await until(() => h.calls.some((c) => c.method === "prepareMigration"), "the prepare");
  await settle();
}
