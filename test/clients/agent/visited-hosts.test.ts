// The privileged-VM agent (clients/agent/agent.ts), with the harness of ./harness.ts (a real
// Forwarder as its worker; the engine, hypervisor and wire mocked).
// A move between two visited hosts (an IPv4 VM from one IPv6 host to another): the destination's
// prepare is refused while the source still lists the VM, and asked again at the activation; the
// care-of address, the same at both hosts, is announced (RFC 4861 §7.2.6); the source beats at
// once when the VM departs, and stops answering for the care-of address.
import test from "ava";
import { Metadata } from "@grpc/grpc-js";
import { ipv6Bytes } from "../../../dataplane/forward/addresses.js";
import { buildEthernetFrame, ETHERTYPE, formatMac, parseMac } from "../../../dataplane/packet/ethernet.js";
import { IPPROTO } from "../../../dataplane/packet/ipv4.js";
import { ICMP6_TYPE } from "../../../dataplane/packet/icmp6.js";
import { buildNeighborSolicitation, parseNd, solicitedNodeAddress } from "../../../dataplane/packet/nd.js";
import type { HeartbeatRequest } from "../../../gen/mip46/v1/control.js";
import { createLogger } from "../../../lib/log.js";
import { refusedWhileSourceLists } from "../../../clients/agent/source.js";
import {
  CARE_OF4, CARE_OF6, GATEWAY_MAC, HOME, KEY, PV0_MAC, VM_MAC, harness, hex, homeAgent, registrationRequest, replyFrame, settle, until, untilMs,
} from "./harness.js";

/** As grpc-js gives the engine's error (services/engine/leases.ts, takeOver): code 9, the "9 FAILED_PRECONDITION: " prefix, the trailers. */
const failedPrecondition = (message: string, reason?: string) => {
  const metadata = new Metadata();
  if (reason !== undefined) metadata.set("mip46-reason", reason);
  return Object.assign(new Error(`9 FAILED_PRECONDITION: ${message}`), { code: 9, metadata });
};
const boundElsewhere = () => failedPrecondition("vm_id: vm v4 is bound at host h5 (migration m7) with care-of address 198.51.100.10, and that host's heartbeat lists it: "
  + "host h6 takes the lease over only for a migration to it the engine knows of (its advice), or once h5 is down or no longer lists the VM", "VM_RUNS_AT_SOURCE");
const preparedElsewhere = () => failedPrecondition("vm_id: vm v4's care-of address 198.51.100.10 is held for host h5, where its migration is prepared: "
  + "one migration per VM at a time; h5 aborts it (AbortMigration) or it lapses with the lease, unless the engine advised the move to h6 or h5 is down");

function capture() {
  const lines: Record<string, unknown>[] = [];
  return { lines, log: createLogger({}, "info", (l) => lines.push(JSON.parse(l) as Record<string, unknown>)) };
}

/** The unsolicited NAs the agent sent on the uplink (worker interface 0) for `target`: their flags and link-layer addresses. */
function announcements(frames: { ifIndex: number; frame: Uint8Array }[], target: string) {
  const out: { override: boolean; solicited: boolean; router: boolean; ethSource: string; targetLinkLayer: string; dst: string }[] = [];
  for (const { ifIndex, frame } of frames) {
    if (ifIndex !== 0 || ((frame[12] << 8) | frame[13]) !== ETHERTYPE.IPV6 || frame[14 + 6] !== IPPROTO.ICMPV6) continue;
    const m = parseNd(frame, 54);
    if (m?.type !== ICMP6_TYPE.NEIGHBOR_ADVERTISEMENT || hex(frame.subarray(m.targetOffset, m.targetOffset + 16)) !== hex(ipv6Bytes(target, "t"))) continue;
    out.push({
      override: m.override, solicited: m.solicited, router: m.router, ethSource: formatMac(frame, 6),
      targetLinkLayer: m.targetLinkLayerOffset >= 0 ? formatMac(frame, m.targetLinkLayerOffset) : "", dst: hex(frame.subarray(38, 54)),
    });
  }
  return out;
}

const rrqs = (frames: { ifIndex: number; frame: Uint8Array }[]) => frames.filter((f) => f.ifIndex === 0 && f.frame[14 + 6] === IPPROTO.IPIP);

test("refusedWhileSourceLists: only the engine's refusal with reason VM_RUNS_AT_SOURCE, whatever the message says", (t) => {
  t.true(refusedWhileSourceLists(boundElsewhere()));
  t.true(refusedWhileSourceLists(failedPrecondition("vm_id: vm v4's binding at host h5 (migration m7) uses care-of address 192.0.2.100 of pool a, and host h6 takes from pool b: "
    + "the binding would point at an address cooling down while the VM runs at h5; the lease is taken over once h5 no longer lists the VM", "VM_RUNS_AT_SOURCE")));
  t.false(refusedWhileSourceLists(preparedElsewhere()));
  t.false(refusedWhileSourceLists(failedPrecondition("once h5 no longer lists the VM")), "the words without the reason are not it");
  t.false(refusedWhileSourceLists(Object.assign(new Error("14 UNAVAILABLE"), { code: 14, metadata: boundElsewhere().metadata })), "another code is not it");
  t.false(refusedWhileSourceLists(failedPrecondition("host h6 is unknown: its agent must send a Heartbeat with its addresses first")));
});

test("a prepare refused while the source host lists the VM waits for the activation, then asks again until the source lets go, and goes on as a move between visited hosts", async (t) => {
  const { lines, log } = capture();
  let refusals = 0;
  let sourceLists = true;
  const h = await harness(t, {
    log,
    allocateCareOf: () => {
      if (sourceLists) {
        refusals++;
        throw boundElsewhere();
      }
      return { careOfIpv4: CARE_OF4, careOfIpv6: CARE_OF6, lifetimeSeconds: 300, pool: "198.51.100.0/24", expiresAtMs: 0n };
    },
    // The VM's rules serve its binding at h5: nothing can be prepared (control.proto, PrepareMigrationResponse.prepared).
    prepareMigration: () => ({ ruleRevision: 4n, translatedIpv4: "", translatedIpv6: "2001:db8:64::c000:201", prepared: false, active: false }),
  });
  h.fire({ kind: "attached", port: "tap-v4", bridge: "visitor" });
  await until(() => refusals === 1, "the first AllocateCareOf");
  await settle();
  t.deepEqual(h.calls.filter((c) => c.method !== "heartbeat").map((c) => c.method), ["allocateCareOf"], "nothing more during the pre-copy");
  t.false(h.forwarder.currentRules().some((r) => r.key === "vm/v4/out"), "no host rule while the VM runs at its source");
  t.true(lines.some((l) => l.msg === "prepare waits for the activation: the VM's source host still lists it (a move between visited hosts)" && l.vmId === "v4"), "the wait is logged, with why");
  t.false(lines.some((l) => l.msg === "handover failed"), "the refusal is not a failure");

  h.rarp(VM_MAC);
  await untilMs(() => refusals >= 3, "AllocateCareOf asked again at the activation");
  t.deepEqual(h.calls.filter((c) => c.method !== "heartbeat").map((c) => c.method), Array(refusals).fill("allocateCareOf"), "only AllocateCareOf while the source lists the VM");
  t.is(announcements(h.frames, CARE_OF6).length, 0, "nothing announced before the lease is ours");
  sourceLists = false;
  await untilMs(() => rrqs(h.frames).length === 1, "the registration request");
  const steps = h.calls.filter((c) => c.method !== "heartbeat");
  t.deepEqual(steps.slice(refusals).map((c) => c.method), ["allocateCareOf", "prepareMigration", "registerMigration"]);
  t.true(steps[refusals + 2].rulesAtCall.includes("vm/v4/out"), "the host's rule is in place before RegisterMigration");
  // The care-of address is this host's now, also for the engine's worker, whose entry pointed at h5.
  const na = announcements(h.frames, CARE_OF6);
  t.deepEqual(na, [{ override: true, solicited: false, router: false, ethSource: PV0_MAC, targetLinkLayer: PV0_MAC, dst: hex(ipv6Bytes("ff02::1", "t")) }], "one unsolicited NA with Override (RFC 4861 §7.2.6) for the care-of address, at pv0's MAC");
  const naAt = h.frames.findIndex((f) => announcements([f], CARE_OF6).length === 1);
  t.true(naAt < h.frames.indexOf(rrqs(h.frames)[0]), "announced before the registration goes");
  t.true(lines.some((l) => l.msg === "care-of lease granted: the source host no longer lists the VM" && l.vmId === "v4"));

  const { payload } = registrationRequest(rrqs(h.frames)[0].frame);
  const outcome = homeAgent(KEY).handleRequest({ source: HOME, destination: "192.0.2.2", sourcePort: 434, payload }, h.clock.now);
  h.forwarder.processFrame(0, replyFrame(outcome.reply!), () => {}, h.clock.now);
  await until(() => h.handovers.length === 1, "the handover");
  const rec = h.handovers[0];
  t.true(rec.ok, JSON.stringify(rec));
  t.is(rec.activation, "rarp");
  t.is(rec.leaseTakenOverMs, rec.allocatedMs);
  t.is(rec.careOfIPv6, CARE_OF6);
  t.false(lines.some((l) => l.msg === "handover failed"));
});

test("a prepare refused while the source lists the VM, whose source has let go by the activation: the first ask at the activation is granted, and counted as the lease's takeover", async (t) => {
  const { lines, log } = capture();
  let sourceLists = true;
  const h = await harness(t, {
    log,
    allocateCareOf: () => {
      if (sourceLists) throw boundElsewhere();
      return { careOfIpv4: CARE_OF4, careOfIpv6: CARE_OF6, lifetimeSeconds: 300, pool: "198.51.100.0/24", expiresAtMs: 0n };
    },
    prepareMigration: () => ({ ruleRevision: 4n, translatedIpv4: "", translatedIpv6: "", prepared: false, active: false }),
  });
  h.fire({ kind: "attached", port: "tap-v4", bridge: "visitor" });
  await until(() => lines.some((l) => String(l.msg).startsWith("prepare waits")), "the refusal");
  sourceLists = false;
  h.rarp(VM_MAC);
  await until(() => rrqs(h.frames).length === 1, "the registration request");
  t.deepEqual(h.calls.filter((c) => c.method !== "heartbeat").map((c) => c.method), ["allocateCareOf", "allocateCareOf", "prepareMigration", "registerMigration"]);
  t.false(lines.some((l) => l.msg === "AllocateCareOf failed; trying again"), "no retry was needed");
  t.true(lines.some((l) => l.msg === "care-of lease granted: the source host no longer lists the VM"));
  const { payload } = registrationRequest(rrqs(h.frames)[0].frame);
  h.forwarder.processFrame(0, replyFrame(homeAgent(KEY).handleRequest({ source: HOME, destination: "192.0.2.2", sourcePort: 434, payload }, h.clock.now).reply!), () => {}, h.clock.now);
  await until(() => h.handovers.length === 1, "the handover");
  t.true(h.handovers[0].ok);
  t.is(h.handovers[0].leaseTakenOverMs, h.handovers[0].allocatedMs);
});

test("another FAILED_PRECONDITION at the prepare still fails the handover: the activation asks nothing again", async (t) => {
  const { lines, log } = capture();
  const h = await harness(t, { log, allocateCareOf: () => { throw preparedElsewhere(); } });
  h.fire({ kind: "attached", port: "tap-v4", bridge: "visitor" });
  await until(() => lines.some((l) => l.msg === "handover failed"), "the failure");
  h.rarp(VM_MAC);
  await until(() => lines.some((l) => l.msg === "the VM runs here but its prepare did not complete; it stays unreachable here until its port comes again"), "the activation");
  await settle();
  t.deepEqual(h.calls.filter((c) => c.method !== "heartbeat").map((c) => c.method), ["allocateCareOf"], "asked once, never again");
  t.false(lines.some((l) => String(l.msg).startsWith("prepare waits")));
  t.is(rrqs(h.frames).length, 0);
  t.is(announcements(h.frames, CARE_OF6).length, 0);
});

test("at the activation the refusal is asked again only for a bounded time: once it is over, the handover fails", async (t) => {
  const { lines, log } = capture();
  let refusals = 0;
  const h = await harness(t, { log, allocateCareOf: () => { refusals++; throw boundElsewhere(); } });
  h.fire({ kind: "attached", port: "tap-v4", bridge: "visitor" });
  await until(() => refusals === 1, "the prepare");
  await settle();
  h.rarp(VM_MAC);
  await untilMs(() => refusals >= 3, "asked again");
  // The agent's clock past SOURCE_RELEASE_WAIT_MS (30 s) from the activation.
  h.clock.now += 30_001;
  await untilMs(() => lines.some((l) => l.msg === "handover failed"), "the failure");
  const n = refusals;
  await new Promise((r) => setTimeout(r, 600));
  t.is(refusals, n, "no attempt after the failure");
  t.is(rrqs(h.frames).length, 0);
  t.false(h.forwarder.currentRules().some((r) => r.key === "vm/v4/out"));
});

test("the source: an active visitor's port leaving sends a Heartbeat at once, without the VM, and the care-of address is answered no more", async (t) => {
  const h = await harness(t);
  h.fire({ kind: "attached", port: "tap-v4", bridge: "visitor" });
  await until(() => h.calls.some((c) => c.method === "prepareMigration"), "the prepare");
  await settle();
  h.rarp(VM_MAC);
  await until(() => rrqs(h.frames).length === 1, "the registration");
  const { payload } = registrationRequest(rrqs(h.frames)[0].frame);
  h.forwarder.processFrame(0, replyFrame(homeAgent(KEY).handleRequest({ source: HOME, destination: "192.0.2.2", sourcePort: 434, payload }, h.clock.now).reply!), () => {}, h.clock.now);
  await until(() => h.handovers.length === 1, "the handover");
  const heartbeats = () => h.calls.filter((c) => c.method === "heartbeat").map((c) => c.request as unknown as HeartbeatRequest);
  const before = heartbeats().length;
  t.is(before, 1, "the start's heartbeat only (the interval is 10 minutes)");

  // A neighbour solicitation for the care-of address from the engine's side (RFC 4861 §7.2.3): answered while the VM is here.
  const solicit = () => {
    const target = ipv6Bytes(CARE_OF6, "t");
    const ns = buildNeighborSolicitation({ src: ipv6Bytes("2001:db8:1::fe", "t"), target, sourceLinkLayer: parseMac(GATEWAY_MAC) });
    const dst = solicitedNodeAddress(target);
    const frame = buildEthernetFrame(Uint8Array.of(0x33, 0x33, ...dst.subarray(12, 16)), parseMac(GATEWAY_MAC), ETHERTYPE.IPV6, ns);
    const sent: Uint8Array[] = [];
    h.forwarder.processFrame(0, frame, (_i, f) => sent.push(f.slice()), h.clock.now);
    return sent.filter((f) => parseNd(f, 54)?.type === ICMP6_TYPE.NEIGHBOR_ADVERTISEMENT).length;
  };
  t.is(solicit(), 1, "h6 answers for the care-of address while vm v4 runs here");

  h.fire({ kind: "detached", port: "tap-v4", bridge: "visitor" });
  await until(() => heartbeats().length === before + 1, "the departure's heartbeat");
  t.deepEqual(heartbeats()[before].vms.map((v) => v.vmId), [], "the VM is no longer listed");
  t.is(solicit(), 0, "the care-of address is no longer answered for");
  t.false(h.forwarder.currentRules().some((r) => r.key === "vm/v4/out"));
  t.false(h.calls.some((c) => c.method === "abortMigration"), "a departure is no abort");
});
