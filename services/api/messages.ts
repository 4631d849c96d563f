// The store's records as API messages: one mapping per record kind, for the unary calls and the watch stream.
import {
  AdviceOutcome, type Binding, HostState, type Lease, LeasePurpose, MigrationCause, NetworkFamily,
} from "../../gen/mip46/v1/control.js";
import type { AdviceOutcome as AdviceOutcomeName } from "../engine/history.js";
import type {
  AdviceRecord, BindingRecord, HostRecord, HostStateName, LeasePurpose as LeasePurposeName, LeaseRecord, MigrationCause as MigrationCauseName, MigrationRecord,
} from "../store/store.js";

export function leaseMessage(l: LeaseRecord): Lease {
  return { address: l.address, pool: l.pool, holder: l.holder, purpose: leasePurpose(l.purpose), hostId: l.hostId, expiresAtMs: BigInt(l.expiresAtMs ?? 0) };
}

export function bindingMessage(b: BindingRecord): Binding {
  return {
    vmId: b.vmId, homeAddress: b.homeAddress, homeAgent: b.homeAgent, hostId: b.hostId, careOfIpv4: b.careOfIPv4, careOfIpv6: b.careOfIPv6,
    translatedIpv4: b.translatedIPv4, translatedIpv6: b.translatedIPv6, migrationId: b.migrationId, updatedAtMs: BigInt(b.updatedAtMs),
  };
}

export function hostState(s: HostStateName): HostState {
  return s === "hot" ? HostState.HOST_STATE_HOT : s === "down" ? HostState.HOST_STATE_DOWN : HostState.HOST_STATE_UP;
}

export function family(f: 0 | 4 | 6): NetworkFamily {
  return f === 4 ? NetworkFamily.NETWORK_FAMILY_IPV4 : f === 6 ? NetworkFamily.NETWORK_FAMILY_IPV6 : NetworkFamily.NETWORK_FAMILY_UNSPECIFIED;
}

function leasePurpose(p: LeasePurposeName): LeasePurpose {
  return p === "care-of" ? LeasePurpose.LEASE_PURPOSE_CARE_OF : p === "translation" ? LeasePurpose.LEASE_PURPOSE_TRANSLATION : LeasePurpose.LEASE_PURPOSE_CORRESPONDENT;
}

export function hostMessage(h: HostRecord) {
  return {
    hostId: h.hostId, state: hostState(h.state), networkFamily: family(h.family), network: h.network, addresses: h.addresses,
    resources: { cpuUsedCores: h.resources.cpuUsedCores, cpuTotalCores: h.resources.cpuTotalCores, memoryUsedBytes: BigInt(h.resources.memoryUsedBytes), memoryTotalBytes: BigInt(h.resources.memoryTotalBytes) },
    vmCount: h.vms.length, lastSeenMs: BigInt(h.lastSeenMs),
    cordoned: h.cordoned === true, draining: h.draining === true,
    vms: h.vms.map((v) => ({ vmId: v.vmId, homeAddress: v.homeAddress, cpuUsedCores: v.cpuUsedCores, memoryUsedBytes: BigInt(v.memoryUsedBytes) })),
  };
}

export function adviceMessage(a: AdviceRecord) {
  return { vmId: a.vmId, sourceHostId: a.sourceHostId, destinationHostId: a.destinationHostId, crossProtocol: a.crossProtocol, reason: a.reason, givenAtMs: BigInt(a.givenAtMs) };
}

const CAUSE: Record<MigrationCauseName, MigrationCause> = {
  advice: MigrationCause.MIGRATION_CAUSE_ADVICE, hypervisor: MigrationCause.MIGRATION_CAUSE_HYPERVISOR, operator: MigrationCause.MIGRATION_CAUSE_OPERATOR,
};

export const ADVICE_OUTCOME: Record<AdviceOutcomeName, AdviceOutcome> = {
  "pending": AdviceOutcome.ADVICE_OUTCOME_PENDING, "followed": AdviceOutcome.ADVICE_OUTCOME_FOLLOWED,
  "moved-elsewhere": AdviceOutcome.ADVICE_OUTCOME_MOVED_ELSEWHERE, "not-followed": AdviceOutcome.ADVICE_OUTCOME_NOT_FOLLOWED,
};

export function migrationMessage(m: MigrationRecord) {
  return {
    migrationId: m.migrationId, vmId: m.vmId, sourceHostId: m.sourceHostId, destinationHostId: m.destinationHostId,
    careOfIpv4: m.careOfIPv4, careOfIpv6: m.careOfIPv6, registeredAtMs: BigInt(m.registeredAtMs),
    cause: m.cause ? CAUSE[m.cause] : MigrationCause.MIGRATION_CAUSE_UNSPECIFIED, advice: m.advice && adviceMessage(m.advice),
  };
}
