// mipctl's where-and-why commands (issue 14 §1): where a VM is, the hosts with their VMs, the
// migrations with their cause, and the advice the engine gave with what became of it.
import type { ControlClient } from "../control.js";
import {
  AdviceEntry, AdviceOutcome, GetVmResponse, Host, HostState, ListMigrationsResponse, type Migration, MigrationCause, NetworkFamily,
} from "../../gen/mip46/v1/control.js";
import { renderTable } from "./table.js";

export const enumName = (e: Record<string, unknown>, v: number, prefix: string) =>
  String(Object.entries(e).find(([, x]) => x === v)?.[0] ?? v).replace(prefix, "").toLowerCase().replaceAll("_", "-");
export const time = (ms: bigint) => (ms === 0n ? "-" : new Date(Number(ms)).toISOString().replace(/\.\d+Z$/, "Z"));

/** What a command prints: its table, or with --json its answer as canonical proto3 JSON (enum names, 64-bit integers as strings, default values left out). */
export type Output = { json: unknown; table: string };

/** A migration's cause in a word, with the advice's figures when it followed one. */
export function cause(m: Migration): string {
  const name = enumName(MigrationCause, m.cause, "MIGRATION_CAUSE_");
  return m.advice ? `${name} (${m.advice.reason})` : name;
}

export async function where(client: ControlClient, vmId: string): Promise<Output> {
  const r = await client.getVm({ vmId });
  const m = r.lastMigration;
  const lines = [
    `vm ${r.vmId} on ${r.hostId || "(no host reports it)"}, ${r.atHome ? "at home" : "away"}${r.reportedBy.length > 1 ? ` (reported by ${r.reportedBy.join(", ")})` : ""}`,
    `home address: ${r.homeAddress || "-"}`,
    `home agent: ${r.homeAgent || "-"}`,
    `care-of: ${r.careOfIpv4 || "-"} ${r.careOfIpv6 || "-"}`,
    `translated: ${r.translatedIpv4 || r.translatedIpv6 || "-"}`,
    `since: ${time(r.sinceMs)}`,
    `last migration: ${m ? `${m.migrationId} ${m.sourceHostId || "?"} -> ${m.destinationHostId} at ${time(m.registeredAtMs)}, cause ${cause(m)}` : "-"}`,
  ];
  return { json: GetVmResponse.toJSON(r), table: lines.join("\n") + "\n" };
}

export async function hosts(client: ControlClient, hostId = "", vmId = ""): Promise<Output> {
  return hostTable((await client.listHosts({ hostId, vmId })).hosts);
}

export function hostTable(hosts: Host[]): Output {
  return { json: hosts.map((x) => Host.toJSON(x)), table: renderTable(["HOST", "STATE", "FAMILY", "NETWORK", "CPU", "MEMORY", "VMS", "LAST SEEN", "MAINTENANCE"],
    hosts.map((h) => [h.hostId, enumName(HostState, h.state, "HOST_STATE_"), enumName(NetworkFamily, h.networkFamily, "NETWORK_FAMILY_"), h.network || "-",
      h.resources ? `${h.resources.cpuUsedCores.toFixed(1)}/${h.resources.cpuTotalCores}` : "-",
      h.resources && h.resources.memoryTotalBytes > 0n ? `${(Number(h.resources.memoryUsedBytes * 100n / h.resources.memoryTotalBytes))}%` : "-",
      h.vms.length === 0 ? "-" : h.vms.map((v) => v.vmId).join(","), time(h.lastSeenMs), h.draining ? `draining (${h.vms.length} left)` : h.cordoned ? "cordoned" : ""])) };
}

export async function migrations(client: ControlClient, pageSize: number, pageToken: string): Promise<Output> {
  const r = await client.listMigrations({ pageSize, pageToken });
  const table = renderTable(["MIGRATION", "VM", "FROM", "TO", "CARE-OF IPV4", "CARE-OF IPV6", "AT", "CAUSE"],
    r.migrations.map((m) => [m.migrationId, m.vmId, m.sourceHostId, m.destinationHostId, m.careOfIpv4 || "(home)", m.careOfIpv6 || "-", time(m.registeredAtMs), cause(m)]));
  return { json: ListMigrationsResponse.toJSON(r), table: table + (r.nextPageToken ? `more: --page-token ${r.nextPageToken}\n` : "") };
}

export async function advice(client: ControlClient, vmId: string | undefined): Promise<Output> {
  const r = await client.listAdvice({ vmId: vmId ?? "" });
  return { json: r.advice.map((x) => AdviceEntry.toJSON(x)), table: renderTable(["GIVEN", "VM", "FROM", "TO", "OUTCOME", "MIGRATION", "REASON"],
    r.advice.map((e) => [time(e.advice!.givenAtMs), e.advice!.vmId, e.advice!.sourceHostId, e.advice!.destinationHostId,
      enumName(AdviceOutcome, e.outcome, "ADVICE_OUTCOME_"), e.migrationId || "-", e.advice!.reason])) };
}

export async function cordon(client: ControlClient, hostId: string, action: "cordon" | "uncordon" | "drain"): Promise<Output> {
  const r = action === "cordon" ? await client.cordonHost({ hostId }) : action === "drain" ? await client.drainHost({ hostId }) : await client.uncordonHost({ hostId });
  const said = {
    cordon: "cordoned: no VM will be advised to move to it",
    drain: `draining: each of its VMs (${r.host!.vms.length} now) is advised to move away; see mipctl hosts`,
    uncordon: "uncordoned",
  }[action];
  return { json: r.host ? Host.toJSON(r.host) : {}, table: `host ${hostId} ${said}\n` };
}
