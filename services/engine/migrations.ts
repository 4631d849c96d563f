// The migration operations of the engine: RegisterMigration, and for live migration
// PrepareMigration and AbortMigration. A VM's binding, its compiled rules and the leases they use
// change together, one VM's move at a time (the engine's queue of composite operations).
import { randomUUID } from "node:crypto";
import { type IPAddress, type IPv4, type IPv6, cidrText, prefixContains, quoted } from "../../lib/net/address.js";
import { FailedPreconditionError, InvalidArgumentError } from "../errors.js";
import type { EngineCore } from "./core.js";
import { networkText } from "../prefix/plan.js";
import { otherHomeAgent, vmOwner } from "../store/store.js";
import type { BindingRecord, HomeAgentRecord, HostRecord, MigrationRecord } from "../store/store.js";
import type { Rule } from "../../lib/rules/rules.js";
import { bindingRules } from "../rules/compile.js";

export interface MigrationInput {
  vmId: string;
  home: IPAddress;
  homeAgent: IPAddress;
  sourceHostId: string;
  destinationHostId: string;
  careOfIPv4?: IPv4;
  careOfIPv6?: IPv6;
}

export interface MigrationResult {
  migrationId: string;
  ruleRevision: bigint;
  translatedIPv4: string;
  translatedIPv6: string;
  returnedHome: boolean;
}

export interface PrepareResult {
  ruleRevision: bigint;
  translatedIPv4: string;
  translatedIPv6: string;
  prepared: boolean;
  active: boolean;
}

export interface AbortResult {
  ruleRevision: bigint;
  released: string[];
}

export class Migrations {
  constructor(private readonly core: EngineCore) {}

  // --- RegisterMigration -----------------------------------------------------------------------

  register(m: MigrationInput): Promise<MigrationResult> {
    return this.core.exclusive(async () => {
      const nowMs = this.core.now();
      const migration: MigrationRecord = {
        migrationId: randomUUID(), vmId: m.vmId, sourceHostId: m.sourceHostId, destinationHostId: m.destinationHostId,
        careOfIPv4: m.careOfIPv4?.text ?? "", careOfIPv6: m.careOfIPv6?.text ?? "", registeredAtMs: nowMs,
      };
      const existing = await this.core.store.getBinding(m.vmId);
      const host = await this.checkHome(m, existing);
      Object.assign(migration, await this.core.history.causeOf(m.vmId, m.destinationHostId, nowMs));
      if (!m.careOfIPv4 && !m.careOfIPv6) {
        // The VM is home again: its rules go, and its addresses cool down.
        if (migration.sourceHostId === "") migration.sourceHostId = existing?.hostId ?? "";
        const { revision, binding } = await this.core.store.deleteBinding(m.vmId, migration);
        await this.core.store.releaseLease({ holder: m.vmId, purpose: "translation" }, nowMs, this.core.cooldownMs);
        await this.core.store.releaseLease({ holder: m.vmId, purpose: "care-of" }, nowMs, this.core.cooldownMs);
        this.core.advisor.noteMigration(m.vmId, nowMs);
        this.core.log.info("vm returned home", { vmId: m.vmId, hadBinding: binding !== undefined, revision });
        return { migrationId: migration.migrationId, ruleRevision: revision, translatedIPv4: "", translatedIPv6: "", returnedHome: true };
      }
      const { careOfIPv4, careOfIPv6 } = await this.checkCareOf(m, host);
      if (!existing) await this.checkPrepared(m);
      if (existing && sameBinding(existing, m, careOfIPv4, careOfIPv6)) {
        // A repeat: same binding, same rules; nothing to write.
        const { revision } = await this.core.store.ruleTable();
        return { migrationId: existing.migrationId, ruleRevision: revision, translatedIPv4: existing.translatedIPv4, translatedIPv6: existing.translatedIPv6, returnedHome: false };
      }
      const { binding, mappedElsewhere } = await this.newBinding(m, careOfIPv4, careOfIPv6, migration.migrationId, nowMs);
      const { translatedIPv4, translatedIPv6 } = binding;
      const revision = await this.core.store.putBinding(binding, migration, bindingRules(binding, { mappingOwnedElsewhere: mappedElsewhere }), this.homeAgentClaim(m));
      this.core.advisor.noteMigration(m.vmId, nowMs);
      this.core.log.info("migration registered", { vmId: m.vmId, migrationId: migration.migrationId, careOfIPv4: binding.careOfIPv4, careOfIPv6: binding.careOfIPv6, revision });
      return { migrationId: migration.migrationId, ruleRevision: revision, translatedIPv4, translatedIPv6, returnedHome: false };
    });
  }

  /**
   * What every registration records must agree with what the engine knows (issue 11 §1): the
   * destination is a host that beat; the VM keeps its home address, which no other VM's binding
   * holds and which the destination's heartbeat does not contradict; and the home agent is on the
   * VM's home network. Answers the destination's record.
   */
  private async checkHome(m: MigrationInput, existing: BindingRecord | undefined): Promise<HostRecord> {
    const host = await this.core.host(m.destinationHostId);
    if (!host) throw new FailedPreconditionError(`destination_host_id: host ${m.destinationHostId} is unknown: its agent must send a Heartbeat with its addresses first`);
    if (existing && existing.homeAddress !== m.home.text) {
      throw new FailedPreconditionError(`home_address: ${quoted(m.home.text)} is not vm ${m.vmId}'s home address: its binding at ${existing.hostId} (migration ${existing.migrationId}) has ${existing.homeAddress}; a VM keeps its home address`);
    }
    const reported = host.vms.find((v) => v.vmId === m.vmId);
    if (reported && reported.homeAddress !== "" && reported.homeAddress !== m.home.text) {
      throw new FailedPreconditionError(`home_address: ${quoted(m.home.text)} is not vm ${m.vmId}'s home address: host ${host.hostId} reports it with ${reported.homeAddress} in its heartbeat`);
    }
    const other = (await this.core.store.bindingsWithHome(m.home.text)).find((b) => b.vmId !== m.vmId);
    if (other) {
      throw new FailedPreconditionError(`home_address: ${m.home.text} is the home address of vm ${other.vmId}, bound at ${other.hostId} (migration ${other.migrationId}); two VMs cannot hold one home address`);
    }
    // A VM comes home to a host on its home network: no other host may declare it home.
    const homeNet = this.core.plan.homeNetworkOf(m.home);
    if (!m.careOfIPv4 && !m.careOfIPv6 && homeNet && host.network !== networkText(homeNet)) {
      throw new FailedPreconditionError(`destination_host_id: host ${host.hostId} is on ${host.network || "no network the engine serves"}, not vm ${m.vmId}'s home network ${homeNet.name} (${networkText(homeNet)}): only a host there registers the VM home`);
    }
    // The home agent is a router on the mobile node's home network (RFC 5944 §1.2, RFC 6275 §2).
    // The engine's configuration names the home networks, not their agents: it checks the agent
    // is on the VM's home network. A home address on no configured network is taken as given.
    const cidr = homeNet && (homeNet.family === 4 ? homeNet.segment.network : homeNet.network.network);
    if (cidr && !prefixContains(cidr.network.bytes, cidr.length, m.homeAgent.bytes)) {
      throw new FailedPreconditionError(`home_agent: ${quoted(m.homeAgent.text)} is not on vm ${m.vmId}'s home network ${homeNet!.name} (${cidrText(cidr)}); its home agent is a router of that network`);
    }
    // And it is that network's one home agent: the configured one, or the one learned from the
    // network's first registration (recorded with that binding; putBinding holds to it).
    if (homeNet) {
      const configured = homeNet.family === 4 ? homeNet.segment.homeAgent : homeNet.network.homeAgent;
      if (configured && configured.text !== m.homeAgent.text) {
        throw new FailedPreconditionError(`home_agent: ${quoted(m.homeAgent.text)} is not the home agent of vm ${m.vmId}'s home network ${homeNet.name} (${cidrText(cidr!)}): the configuration names ${configured.text}`);
      }
      const claim = this.homeAgentClaim(m);
      const known = claim && (await this.core.store.getHomeAgent(claim.network));
      if (claim && known && known.homeAgent !== claim.homeAgent) throw new FailedPreconditionError(otherHomeAgent(claim, known));
    }
    return host;
  }

  /** The home agent a registration claims for its home network: none when configured there, or the home address is on no configured network. */
  private homeAgentClaim(m: MigrationInput): HomeAgentRecord | undefined {
    const homeNet = this.core.plan.homeNetworkOf(m.home);
    if (!homeNet || (homeNet.family === 4 ? homeNet.segment.homeAgent : homeNet.network.homeAgent)) return undefined;
    return { network: networkText(homeNet), homeAgent: m.homeAgent.text, vmId: m.vmId };
  }

  /**
   * One prepared migration per VM (issue 11 §1): a VM with no binding whose rules were written by
   * PrepareMigration is prepared for the host its care-of lease is held for (checkCareOf holds to
   * that), with the care-of addresses and home agent of those rules. A PrepareMigration or
   * RegisterMigration that names others is refused until AbortMigration undoes the prepared one
   * (or its care-of lease lapses, which removes its rules).
   */
  private async checkPrepared(m: MigrationInput): Promise<void> {
    const prepared = preparedOf(await this.core.store.rulesOf(vmOwner(m.vmId)));
    if (!prepared) return;
    const asked = { careOfIPv4: m.careOfIPv4?.text ?? "", careOfIPv6: m.careOfIPv6?.text ?? "", homeAgent: m.homeAgent.text };
    const field = prepared.careOfIPv4 !== asked.careOfIPv4 ? "care_of_ipv4" : prepared.careOfIPv6 !== asked.careOfIPv6 ? "care_of_ipv6" : prepared.homeAgent !== asked.homeAgent ? "home_agent" : undefined;
    if (!field) return;
    throw new FailedPreconditionError(
      `${field}: vm ${m.vmId}'s migration to host ${m.destinationHostId} is prepared with care-of ${prepared.careOfIPv4} and ${prepared.careOfIPv6} (home agent ${prepared.homeAgent}), `
      + `not ${quoted(asked.careOfIPv4)} and ${quoted(asked.careOfIPv6)} (home agent ${quoted(asked.homeAgent)}): one migration per VM at a time; AbortMigration undoes the prepared one`);
  }

  /**
   * The care-of addresses of a registration must be those the engine gave the VM: its care-of
   * lease, held for the destination host, and the IPv6 care-of address derived from it on the
   * destination's network (as AllocateCareOf answered them).
   */
  private async checkCareOf(m: MigrationInput, host: HostRecord): Promise<{ careOfIPv4: IPv4; careOfIPv6: IPv6 }> {
    if (!m.careOfIPv4) throw new InvalidArgumentError("care_of_ipv4", "is required unless both care-of addresses are empty (the VM came home)");
    if (!m.careOfIPv6) throw new InvalidArgumentError("care_of_ipv6", "is required unless both care-of addresses are empty (the VM came home)");
    const lease = await this.core.store.getLease(m.vmId, "care-of");
    if (!lease || lease.address !== m.careOfIPv4.text) {
      throw new FailedPreconditionError(`care_of_ipv4: ${m.careOfIPv4.text} is not leased to vm ${m.vmId}; call AllocateCareOf first`);
    }
    if (lease.hostId !== m.destinationHostId) {
      throw new FailedPreconditionError(`destination_host_id: vm ${m.vmId}'s care-of address ${lease.address} is leased for host ${lease.hostId}, not ${m.destinationHostId}; the host the VM arrives on allocates it`);
    }
    const net = this.core.plan.networkByCidr(host.network);
    const derived = net && this.core.plan.careOfIPv6(net, m.home, m.careOfIPv4);
    if (!derived || derived.text !== m.careOfIPv6.text) {
      throw new FailedPreconditionError(`care_of_ipv6: ${quoted(m.careOfIPv6.text)} is not the IPv6 care-of address the engine derived for vm ${m.vmId} at host ${host.hostId} (${derived?.text ?? "none on its network"})`);
    }
    return { careOfIPv4: m.careOfIPv4, careOfIPv6: m.careOfIPv6 };
  }

  /** The binding a registration makes, with the translation address it needs (taken, or renewed: the same one again). */
  private async newBinding(m: MigrationInput, careOfIPv4: IPv4, careOfIPv6: IPv6, migrationId: string, nowMs: number): Promise<{ binding: BindingRecord; mappedElsewhere: boolean }> {
    let translatedIPv4 = "";
    let translatedIPv6 = "";
    let mappedElsewhere = false;
    if (m.home.family === 6) {
      // An IPv6 VM that IPv4 clients already reach at a pool address (MapCorrespondent while it
      // was home) keeps that address, or their open sessions would break with the migration.
      const mapped = await this.core.store.getLease(m.home.text, "correspondent");
      if (mapped) {
        translatedIPv4 = mapped.address;
        mappedElsewhere = true;
      } else {
        // Paper 3.2, last paragraph: IPv4 correspondents reach the VM at a pool address.
        const t = await this.core.store.acquireLease({
          pool: this.core.config.pool.name, holder: m.vmId, purpose: "translation", hostId: m.destinationHostId, nowMs, expiresAtMs: null, cooldownMs: this.core.cooldownMs,
        });
        translatedIPv4 = t.address;
      }
    } else {
      translatedIPv6 = this.core.plan.translated(m.home)?.text ?? "";
    }
    const binding: BindingRecord = {
      vmId: m.vmId, homeAddress: m.home.text, homeAgent: m.homeAgent.text, hostId: m.destinationHostId,
      careOfIPv4: careOfIPv4.text, careOfIPv6: careOfIPv6.text, translatedIPv4, translatedIPv6,
      migrationId, updatedAtMs: nowMs,
    };
    return { binding, mappedElsewhere };
  }

  // --- PrepareMigration / AbortMigration (live migration: before the VM runs at its destination) --

  /**
   * Writes the rules the VM will need at its destination under the VM's own keys, with no
   * binding yet: the rules only receive (re-wrap what the home agent tunnels to the new care-of
   * address, unwrap what comes from it), so nothing of the VM's traffic moves until its home
   * agent takes the registration. RegisterMigration at activation then compiles the same rules
   * and changes none of them (the store writes only differences), so no rule push lies on the
   * handover's path. A VM whose rules still serve a binding at another host is left alone.
   */
  prepare(m: MigrationInput): Promise<PrepareResult> {
    return this.core.exclusive(async () => {
      const existing = await this.core.store.getBinding(m.vmId);
      const { careOfIPv4, careOfIPv6 } = await this.checkCareOf(m, await this.checkHome(m, existing));
      if (!existing) await this.checkPrepared(m);
      if (existing) {
        const { revision } = await this.core.store.ruleTable();
        const active = sameBinding(existing, m, careOfIPv4, careOfIPv6);
        return { ruleRevision: revision, translatedIPv4: existing.translatedIPv4, translatedIPv6: existing.translatedIPv6, prepared: active, active };
      }
      const { binding, mappedElsewhere } = await this.newBinding(m, careOfIPv4, careOfIPv6, "", this.core.now());
      const revision = await this.core.store.replaceRules(vmOwner(m.vmId), bindingRules(binding, { mappingOwnedElsewhere: mappedElsewhere }));
      this.core.log.info("migration prepared", { vmId: m.vmId, destinationHostId: m.destinationHostId, careOfIPv4: binding.careOfIPv4, careOfIPv6: binding.careOfIPv6, revision });
      return { ruleRevision: revision, translatedIPv4: binding.translatedIPv4, translatedIPv6: binding.translatedIPv6, prepared: true, active: false };
    });
  }

  /**
   * A prepared migration that will not arrive: its rules and the leases taken for it go. A VM
   * bound at this host has arrived (nothing to abort); a VM bound at another host keeps its
   * binding, rules and leases (the care-of lease serves that binding).
   */
  abort(vmId: string, hostId: string): Promise<AbortResult> {
    return this.core.exclusive(async () => {
      const nowMs = this.core.now();
      const binding = await this.core.store.getBinding(vmId);
      if (binding?.hostId === hostId) {
        throw new FailedPreconditionError(`vm_id: vm ${vmId} is bound at host ${hostId} (migration ${binding.migrationId}): it arrived, so there is nothing to abort; register its next move instead`);
      }
      const released: string[] = [];
      if (binding) {
        // Bound at another host: nothing was prepared (prepareMigration left it alone). A care-of
        // lease this host took over for the move, which the binding still uses, goes back to the
        // host the VM is bound at (AllocateCareOf's takeover, issue 11 §1).
        const careOf = await this.core.store.getLease(vmId, "care-of");
        if (careOf && careOf.hostId === hostId && careOf.address === binding.careOfIPv4) {
          await this.core.store.acquireLease({
            pool: careOf.pool, holder: vmId, purpose: "care-of", hostId: binding.hostId, nowMs, expiresAtMs: careOf.expiresAtMs, cooldownMs: this.core.cooldownMs,
          });
        }
        this.core.log.info("migration aborted", { vmId, hostId, released, boundAt: binding.hostId });
        return { ruleRevision: (await this.core.store.ruleTable()).revision, released };
      }
      const careOf = await this.core.store.getLease(vmId, "care-of");
      if (careOf && careOf.hostId !== hostId) {
        // Only the host a migration was prepared for may abort it (issue 11 §4).
        throw new FailedPreconditionError(`host_id: vm ${vmId}'s care-of address ${careOf.address} is leased for host ${careOf.hostId}, not ${hostId}: only that host aborts its migration`);
      }
      const revision = await this.core.store.replaceRules(vmOwner(vmId), []);
      if (careOf) {
        const r = await this.core.store.releaseLease({ holder: vmId, purpose: "care-of" }, nowMs, this.core.cooldownMs);
        if (r) released.push(r.address);
      }
      const t = await this.core.store.releaseLease({ holder: vmId, purpose: "translation" }, nowMs, this.core.cooldownMs);
      if (t) released.push(t.address);
      this.core.log.info("migration aborted", { vmId, hostId, released, revision });
      return { ruleRevision: revision, released };
    });
  }

}

/** What the rules of a prepared migration name: the re-encapsulation's care-of addresses and the home agent's tunnel. */
function preparedOf(rules: Rule[]): { careOfIPv4: string; careOfIPv6: string; homeAgent: string } | undefined {
  let careOfIPv4 = "";
  let careOfIPv6 = "";
  let homeAgent = "";
  for (const r of rules) {
    if (r.kind === "reencap-4in4-to-4in6") [careOfIPv4, careOfIPv6] = [r.poolIPv4, r.careOfIPv6];
    else if (r.kind === "reencap-6in6-to-6in4") [careOfIPv4, careOfIPv6] = [r.careOfIPv4, r.careOfIPv6];
    else if (r.kind === "tunnel-peer" && r.key.endsWith("/peer-home-agent")) homeAgent = r.peer;
  }
  return careOfIPv4 ? { careOfIPv4, careOfIPv6, homeAgent } : undefined;
}

function sameBinding(b: BindingRecord, m: MigrationInput, careOfIPv4: IPv4, careOfIPv6: IPv6): boolean {
  return b.homeAddress === m.home.text && b.homeAgent === m.homeAgent.text && b.hostId === m.destinationHostId
    && b.careOfIPv4 === careOfIPv4.text && b.careOfIPv6 === careOfIPv6.text;
}
