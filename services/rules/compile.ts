// Tunnel management (paper, "The parts" 1): the data-plane rules a binding needs. Pure: binding
// in, rules out; the store diffs them against what the data plane already has.
import type { Rule } from "../../lib/rules/rules.js";
import { cidrText } from "../../lib/net/address.js";
import type { EngineConfig } from "../config/config.js";
import type { BindingRecord } from "../store/store.js";

export const CONFIG_OWNER = "config";

/** Rules every worker needs whatever the bindings: the translator's prefix (RFC 6052). */
export function configRules(config: EngineConfig): Rule[] {
  const rules: Rule[] = [];
  if (config.translationPrefix) {
    const prefix = `${config.translationPrefix.network.text}/${config.translationPrefix.length}`;
    const rule: Rule = { key: "config/translation-prefix", kind: "translation-prefix", prefix };
    // RFC 6052 §2: the IPv4 destinations the workers translate with this prefix.
    const translatable = config.ipv4Translatable ?? [];
    if (translatable.length > 0) rule.ipv4Translatable = translatable.map(cidrText);
    rules.push(rule);
  }
  return rules;
}

/** The rules of one VM that is away from home, by the direction it moved. */
export function bindingRules(b: BindingRecord, options: { mappingOwnedElsewhere?: boolean } = {}): Rule[] {
  const k = (what: string) => `vm/${b.vmId}/${what}`;
  if (!b.homeAddress.includes(":")) {
    // Flow 3.1: an IPv4 VM in the IPv6 network.
    return [
      // j: r1 tunnels IPv4-in-IPv4 to the pool care-of address; the engine re-wraps it IPv4-in-IPv6.
      { key: k("reencap"), kind: "reencap-4in4-to-4in6", poolIPv4: b.careOfIPv4, careOfIPv6: b.careOfIPv6, vmId: b.vmId },
      { key: k("peer-home-agent"), kind: "tunnel-peer", tunnel: "4in4", peer: b.homeAgent, vmId: b.vmId },
      // f, l: the privileged VM wraps dv's IPv4 packets IPv4-in-IPv6 toward the engine.
      { key: k("peer-vm"), kind: "tunnel-peer", tunnel: "4in6", peer: b.careOfIPv6, innerSource: b.homeAddress, vmId: b.vmId },
    ];
  }
  // Flow 3.2: an IPv6 VM in an IPv4 network.
  const rules: Rule[] = [
    // i: r2 tunnels IPv6-in-IPv6 to the care-of address; the engine re-wraps it IPv6-in-IPv4.
    { key: k("reencap"), kind: "reencap-6in6-to-6in4", careOfIPv6: b.careOfIPv6, careOfIPv4: b.careOfIPv4, vmId: b.vmId },
    { key: k("peer-home-agent"), kind: "tunnel-peer", tunnel: "6in6", peer: b.homeAgent, vmId: b.vmId },
    // d, k: dv's packets come IPv6-in-IPv4 from its IPv4 care-of address, sourced from its home
    // address (reverse tunnelled) or its care-of address (binding updates, RFC 6275 §11.7.1).
    { key: k("peer-vm-home"), kind: "tunnel-peer", tunnel: "6in4", peer: b.careOfIPv4, innerSource: b.homeAddress, vmId: b.vmId },
    { key: k("peer-vm-care-of"), kind: "tunnel-peer", tunnel: "6in4", peer: b.careOfIPv4, innerSource: b.careOfIPv6, vmId: b.vmId },
  ];
  // Paper 3.2, last paragraph: IPv4 correspondents reach the VM at a pool address.
  // When the address came from MapCorrespondent, that lease's rule already maps it.
  if (b.translatedIPv4 && !options.mappingOwnedElsewhere) rules.push({ key: k("mapping"), kind: "address-mapping", ipv4: b.translatedIPv4, ipv6: b.homeAddress });
  return rules;
}

export function correspondentRules(ipv6: string, ipv4: string): Rule[] {
  return [{ key: `correspondent/${ipv6}`, kind: "address-mapping", ipv4, ipv6 }];
}

export function correspondentOwner(ipv6: string): string {
  return `cn:${ipv6}`;
}
