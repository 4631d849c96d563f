// The gRPC adapter of the ControlEngine service: check each field, call the engine, map the
// result to the generated messages; errors become status codes in status.ts, for every call.
import { type handleUnaryCall, type sendUnaryData, type ServerUnaryCall, status } from "@grpc/grpc-js";
import {
  type AllocateCareOfRequest, type AllocateCareOfResponse, ControlEngineDefinition, type ControlEngineServer, type HeartbeatRequest,
  type PrepareMigrationRequest, type RegisterMigrationRequest, type RegisterMigrationResponse,
} from "../../gen/mip46/v1/control.js";
import { type IPAddress, parseCidr, parseCidr4, parseIPv4, parseIPv6, parseUnicast, parseUnicast6, quoted } from "../../lib/net/address.js";
import type { Logger } from "../../lib/log.js";
import { audit, caller } from "./audit.js";
import { ruleToMessage } from "../../lib/rules/wire.js";
import type { Engine, HeartbeatInput, MigrationInput } from "../engine/engine.js";
import { InvalidArgumentError } from "../errors.js";
import type { EngineMetrics } from "../metrics/metrics.js";
import type { WorkerStatus } from "../rules/push.js";
import type { ClusterView } from "../engine/replicas.js";
import { ADVICE_OUTCOME, adviceMessage, bindingMessage, family, hostMessage, hostState, leaseMessage, migrationMessage } from "./messages.js";
import { watchHandler } from "./watch.js";
import { backupHandler } from "./backup.js";
import { STATUS_NAME, toStatus } from "./status.js";
import type { HostRecord, MigrationCursor } from "../store/store.js";

export const SERVICE_NAME = "mip46.v1.ControlEngine";

/** The longest identifier (host, VM) the API accepts. */
const MAX_ID = 253;
const MAX_ADDRESSES = 256;
const MAX_VMS = 4096;

/**
 * Home addresses already checked, each with its canonical text: every heartbeat repeats those of
 * its host's VMs, and parsing them was a fifth of a heartbeat's cost. Bounded; only valid
 * addresses are kept, so a bad one is refused, naming its field, every time.
 */
const homeAddressText = new Map<string, string>();
const HOME_ADDRESS_MEMO = 1 << 20;

function homeAddress(text: string, field: string): string {
  const known = homeAddressText.get(text);
  if (known !== undefined) return known;
  const canonical = parseUnicast(text, field).text;
  if (homeAddressText.size >= HOME_ADDRESS_MEMO) homeAddressText.clear();
  homeAddressText.set(text, canonical);
  return canonical;
}

function id(value: string, field: string): string {
  if (value === "") throw new InvalidArgumentError(field, "is required");
  if (value.length > MAX_ID || !/^[A-Za-z0-9][A-Za-z0-9._:@/-]*$/.test(value)) {
    throw new InvalidArgumentError(field, `'${value.slice(0, 64)}' must be 1-${MAX_ID} characters of letters, digits and . _ : @ / -, starting with a letter or digit`);
  }
  return value;
}

function nonNegative(value: number, field: string): number {
  if (!Number.isFinite(value) || value < 0) throw new InvalidArgumentError(field, `must be a finite number of zero or more, not ${value}`);
  return value;
}

function bytes(value: bigint, field: string): number {
  if (value < 0n || value > BigInt(Number.MAX_SAFE_INTEGER)) throw new InvalidArgumentError(field, "is out of range");
  return Number(value);
}

function sameFamily(a: IPAddress, b: IPAddress, field: string, other: string): void {
  if (a.family !== b.family) throw new InvalidArgumentError(field, `must be IPv${b.family} like ${other}`);
}

/**
 * The calls that change state, each logged at info with its caller and outcome: those the proto
 * does not declare free of side effects (idempotency_level NO_SIDE_EFFECTS), except Heartbeat,
 * which every host sends every few seconds (its effects are logged where they happen: a host
 * marked down, advice given).
 */
const MUTATING: ReadonlySet<string> = new Set<string>(Object.values(ControlEngineDefinition.methods)
  .filter((m) => (m.options as { idempotencyLevel?: string }).idempotencyLevel !== "NO_SIDE_EFFECTS" && m.name !== "Heartbeat")
  .map((m) => m.name));

/** What the control service reads from the rule push: the workers connected to this replica. */
export interface WorkerDirectory {
  workers(): WorkerStatus[];
  currentRevision(): Promise<bigint>;
}

export function controlService(engine: Engine, metrics: EngineMetrics, log: Logger, push: WorkerDirectory, cluster: ClusterView): ControlEngineServer {
  function unary<Req, Res>(method: string, fn: (req: Req, call: ServerUnaryCall<Req, Res>) => Promise<Res> | Res): handleUnaryCall<Req, Res> {
    const labels = { grpc_type: "unary", grpc_service: SERVICE_NAME, grpc_method: method };
    const logged = MUTATING.has(method);
    return (call: ServerUnaryCall<Req, Res>, callback: sendUnaryData<Res>) => {
      const end = metrics.handling.startTimer(labels);
      const started = logged ? performance.now() : 0;
      const done = (code: number) => {
        end();
        const outcome = STATUS_NAME[code] ?? String(code);
        metrics.handled.inc({ ...labels, grpc_code: outcome });
        if (logged) log.info("call", { method, who: caller(call), outcome, ms: Math.round((performance.now() - started) * 10) / 10 });
      };
      Promise.resolve()
        .then(() => fn(call.request, call))
        .then(
          (res) => { done(status.OK); callback(null, res); },
          (e) => {
            const err = toStatus(e, log, method);
            done(err.code!);
            callback(err, null);
          },
        );
    };
  }

  async function cordon(hostId: string, cordoned: boolean, call: Pick<ServerUnaryCall<unknown, unknown>, "getAuthContext">, draining = false) {
    const r = await engine.cordonHost(id(hostId, "host_id"), cordoned, draining);
    const state = (h: HostRecord) => ({ cordoned: h.cordoned === true, draining: h.draining === true });
    audit(log, call, { what: draining ? "DrainHost" : cordoned ? "CordonHost" : "UncordonHost", request: { hostId }, before: state(r.before), after: state(r.after) });
    return { host: hostMessage(r.after) };
  }

  return {
    allocateCareOf: unary<AllocateCareOfRequest, AllocateCareOfResponse>("AllocateCareOf", async (req) => {
      const hostId = id(req.hostId, "host_id");
      const vmId = id(req.vmId, "vm_id");
      const home = parseUnicast(req.homeAddress, "home_address");
      const c = await engine.allocateCareOf(hostId, vmId, home);
      return { careOfIpv4: c.careOfIPv4, careOfIpv6: c.careOfIPv6, lifetimeSeconds: c.lifetimeSeconds, pool: c.pool, expiresAtMs: BigInt(c.expiresAtMs) };
    }),

    releaseCareOf: unary("ReleaseCareOf", async (req, call) => {
      if ((req.address === "") === (req.vmId === "")) throw new InvalidArgumentError("address", "give either address or vm_id, not both or neither");
      const r = await engine.releaseCareOf(req.address !== "" ? { address: parseIPv4(req.address, "address") } : { vmId: id(req.vmId, "vm_id") }, req.force);
      audit(log, call, {
        what: "ReleaseCareOf", request: { address: req.address, vmId: req.vmId, force: req.force },
        before: { lease: r.lease, binding: r.binding ?? null }, after: { cooling: r.released, binding: null },
      });
      return { address: r.address, cooldownUntilMs: BigInt(r.cooldownUntilMs) };
    }),

    requestPrefix: unary("RequestPrefix", (req) => {
      id(req.hostId, "host_id");
      const segment = parseCidr4(req.ipv4Segment, "ipv4_segment");
      return { ipv6Prefix: engine.requestPrefix(segment) };
    }),

    registerMigration: unary<RegisterMigrationRequest, RegisterMigrationResponse>("RegisterMigration", async (req) => {
      const r = await engine.registerMigration(migrationInput(req, "register"));
      return { migrationId: r.migrationId, ruleRevision: r.ruleRevision, translatedIpv4: r.translatedIPv4, translatedIpv6: r.translatedIPv6, returnedHome: r.returnedHome };
    }),

    prepareMigration: unary("PrepareMigration", async (req: PrepareMigrationRequest) => {
      const r = await engine.prepareMigration(migrationInput(req, "prepare"));
      return { ruleRevision: r.ruleRevision, translatedIpv4: r.translatedIPv4, translatedIpv6: r.translatedIPv6, prepared: r.prepared, active: r.active };
    }),

    abortMigration: unary("AbortMigration", async (req) => {
      const r = await engine.abortMigration(id(req.vmId, "vm_id"), id(req.hostId, "host_id"));
      return { ruleRevision: r.ruleRevision, releasedAddresses: r.released };
    }),

    heartbeat: unary("Heartbeat", async (req: HeartbeatRequest) => {
      const input = heartbeatInput(req);
      const r = await engine.heartbeat(input);
      return {
        state: hostState(r.host.state),
        networkFamily: family(r.host.family),
        network: r.host.network,
        advice: r.advice.map(adviceMessage),
        heartbeatIntervalSeconds: Math.ceil(r.heartbeatIntervalSeconds),
      };
    }),

    mapCorrespondent: unary("MapCorrespondent", async (req, call) => {
      const { lease, before } = await engine.mapCorrespondent(parseUnicast6(req.ipv6Address, "ipv6_address"));
      audit(log, call, { what: "MapCorrespondent", request: { ipv6Address: req.ipv6Address }, before: { lease: before ?? null }, after: { lease } });
      return { ipv4Address: lease.address, lifetimeSeconds: engine.config.leases.correspondentLifetimeSeconds };
    }),

    listPools: unary("ListPools", async () => ({
      pools: (await engine.poolUsage()).map((p) => ({ name: p.pool, kind: p.kind, first: p.first, last: p.last, size: p.size, leased: p.leased, cooling: p.cooling, free: p.free })),
    })),

    listLeases: unary("ListLeases", async (req) => ({
      leases: (await engine.listLeases({ hostId: req.hostId, holder: req.holder })).map(leaseMessage),
    })),

    listPrefixes: unary("ListPrefixes", () => ({
      prefixes: engine.config.segments.map((s) => ({
        ipv4Segment: `${s.network.network.text}/${s.network.length}`,
        ipv6Prefix: s.prefix ? `${s.prefix.network.text}/${s.prefix.length}` : "",
        careOfFirst: s.careOfPool?.ranges[0].first.text ?? "",
        careOfLast: s.careOfPool?.ranges[s.careOfPool.ranges.length - 1].last.text ?? "",
      })),
      translationPrefix: engine.config.translationPrefix ? `${engine.config.translationPrefix.network.text}/${engine.config.translationPrefix.length}` : "",
      ipv6Networks: engine.config.ipv6Networks.map((n) => `${n.network.network.text}/${n.network.length}`),
    })),

    listBindings: unary("ListBindings", async (req) => ({
      bindings: (await engine.listBindings({ hostId: req.hostId, vmId: req.vmId })).map(bindingMessage),
    })),

    getLease: unary("GetLease", async (req) => ({ lease: leaseMessage(await engine.getLease(parseIPv4(req.address, "address"))) })),
    getBinding: unary("GetBinding", async (req) => ({ binding: bindingMessage(await engine.getBinding(id(req.vmId, "vm_id"))) })),
    getHost: unary("GetHost", async (req) => ({ host: hostMessage(await engine.getHost(id(req.hostId, "host_id"))) })),

    listHosts: unary("ListHosts", async (req) => ({ hosts: (await engine.listHosts({ hostId: req.hostId, vmId: req.vmId })).map(hostMessage) })),

    listMigrations: unary("ListMigrations", async (req) => {
      if (req.pageSize < 0) throw new InvalidArgumentError("page_size", `must be zero or more, not ${req.pageSize}`);
      const page = await engine.listMigrations(req.pageSize, req.pageToken === "" ? undefined : cursorFromToken(req.pageToken));
      return { migrations: page.migrations.map(migrationMessage), nextPageToken: page.next ? tokenOf(page.next) : "" };
    }),

    getVm: unary("GetVm", async (req) => {
      const p = await engine.getVm(id(req.vmId, "vm_id"));
      const b = p.binding;
      return {
        vmId: p.vmId, hostId: p.hostId, atHome: p.atHome, homeAddress: p.homeAddress, homeAgent: b?.homeAgent ?? "",
        careOfIpv4: b?.careOfIPv4 ?? "", careOfIpv6: b?.careOfIPv6 ?? "", translatedIpv4: b?.translatedIPv4 ?? "", translatedIpv6: b?.translatedIPv6 ?? "",
        sinceMs: BigInt(p.sinceMs), lastMigration: p.lastMigration && migrationMessage(p.lastMigration), reportedBy: p.reportedBy,
      };
    }),

    cordonHost: unary("CordonHost", (req, call) => cordon(req.hostId, true, call)),
    uncordonHost: unary("UncordonHost", (req, call) => cordon(req.hostId, false, call)),
    drainHost: unary("DrainHost", (req, call) => cordon(req.hostId, true, call, true)),

    listAdvice: unary("ListAdvice", async (req) => ({
      advice: (await engine.listAdvice(req.vmId === "" ? undefined : id(req.vmId, "vm_id"))).map((e) => ({
        advice: adviceMessage(e.advice), outcome: ADVICE_OUTCOME[e.outcome], migrationId: e.migrationId,
      })),
    })),

    listWorkers: unary("ListWorkers", async () => {
      const revision = await push.currentRevision();
      const workers = push.workers().sort((a, b) => a.workerId.localeCompare(b.workerId)).map((w) => ({
        workerId: w.workerId, appliedRevision: w.ackedRevision, sentRevision: w.sentRevision,
        lagRevisions: revision > w.ackedRevision ? revision - w.ackedRevision : 0n, lagMs: BigInt(w.lagMs), connectedAtMs: BigInt(w.connectedAtMs),
      }));
      return { revision, workers };
    }),

    watch: watchHandler(engine, metrics, log),
    backup: backupHandler(engine, metrics, log),

    getCluster: unary("GetCluster", async () => {
      const c = await cluster.status();
      return {
        store: c.store, replica: c.replica, leaderReplica: c.leaderReplica,
        replicas: c.replicas.map((r) => ({ replica: r.replica, listen: r.listen, startedAtMs: BigInt(r.startedAtMs), version: r.version })),
        etcd: c.etcd.map((m) => ({ endpoint: m.endpoint, healthy: m.healthy, leader: m.leader, version: m.version, dbSizeBytes: BigInt(m.dbSizeBytes), raftIndex: m.raftIndex, error: m.error })),
      };
    }),

    getRuleTable: unary("GetRuleTable", async () => {
      const t = await engine.ruleTable();
      return { revision: t.revision, rules: t.rules.map(ruleToMessage) };
    }),
  };
}

function heartbeatInput(req: HeartbeatRequest): HeartbeatInput {
  const hostId = id(req.hostId, "host_id");
  if (req.addresses.length > MAX_ADDRESSES) throw new InvalidArgumentError("addresses", `at most ${MAX_ADDRESSES}`);
  const addresses = req.addresses.map((a, i) => {
    const c = parseCidr(a, `addresses[${i}]`, false);
    return `${c.address.text}/${c.length}`;
  });
  const r = req.resources;
  const resources = {
    cpuUsedCores: nonNegative(r?.cpuUsedCores ?? 0, "resources.cpu_used_cores"),
    cpuTotalCores: nonNegative(r?.cpuTotalCores ?? 0, "resources.cpu_total_cores"),
    memoryUsedBytes: bytes(r?.memoryUsedBytes ?? 0n, "resources.memory_used_bytes"),
    memoryTotalBytes: bytes(r?.memoryTotalBytes ?? 0n, "resources.memory_total_bytes"),
  };
  if (req.vms.length > MAX_VMS) throw new InvalidArgumentError("vms", `at most ${MAX_VMS}`);
  const vms = req.vms.map((v, i) => ({
    vmId: id(v.vmId, `vms[${i}].vm_id`),
    homeAddress: v.homeAddress === "" ? "" : homeAddress(v.homeAddress, `vms[${i}].home_address`),
    cpuUsedCores: nonNegative(v.cpuUsedCores, `vms[${i}].cpu_used_cores`),
    memoryUsedBytes: bytes(v.memoryUsedBytes, `vms[${i}].memory_used_bytes`),
  }));
  return { hostId, addresses, resources, vms };
}

/** A page token (AIP-158): opaque to the caller; here the last migration of the page, base64url. */
function tokenOf(c: MigrationCursor): string {
  return Buffer.from(`${c.registeredAtMs}/${c.migrationId}`).toString("base64url");
}

function cursorFromToken(token: string): MigrationCursor {
  const m = /^(\d{1,15})\/([A-Za-z0-9-]{1,64})$/.exec(Buffer.from(token, "base64url").toString());
  if (!m) throw new InvalidArgumentError("page_token", "is not a token this engine gave (pass next_page_token of the previous page)");
  return { registeredAtMs: Number(m[1]), migrationId: m[2] };
}

/** The fields of RegisterMigration and PrepareMigration, checked. Only a registration may say "came home". */
function migrationInput(req: RegisterMigrationRequest | PrepareMigrationRequest, kind: "register" | "prepare"): MigrationInput {
  const vmId = id(req.vmId, "vm_id");
  const home = parseUnicast(req.homeAddress, "home_address");
  const homeAgent = parseUnicast(req.homeAgent, "home_agent");
  sameFamily(homeAgent, home, "home_agent", "home_address");
  if (homeAgent.text === home.text) throw new InvalidArgumentError("home_agent", `${quoted(homeAgent.text)} is the home address itself; the home agent is another node`);
  // A VM coming home may leave the source out: its agent (on the home host) does not know
  // where it was, and the engine takes it from the binding.
  const home_ = req.careOfIpv4 === "" && req.careOfIpv6 === "";
  if (home_ && kind === "prepare") throw new InvalidArgumentError("care_of_ipv4", "is required: a move home needs no preparation (RegisterMigration with empty care-of addresses registers it)");
  const sourceHostId = home_ && req.sourceHostId === "" ? "" : id(req.sourceHostId, "source_host_id");
  const destinationHostId = id(req.destinationHostId, "destination_host_id");
  const careOfIPv4 = req.careOfIpv4 === "" ? undefined : parseIPv4(req.careOfIpv4, "care_of_ipv4");
  const careOfIPv6 = req.careOfIpv6 === "" ? undefined : parseIPv6(req.careOfIpv6, "care_of_ipv6");
  return { vmId, home, homeAgent, sourceHostId, destinationHostId, careOfIPv4, careOfIPv6 };
}
