// Rules between their domain form (lib/rules/rules.ts) and the generated protobuf messages, both
// ways: the engine sends them, the worker reads them.
import { type Rule as RuleMessage, TunnelKind } from "../../gen/mip46/v1/control.js";
import type { Rule, TunnelType } from "./rules.js";

const TUNNEL_KIND: Record<TunnelType, TunnelKind> = {
  "4in4": TunnelKind.TUNNEL_KIND_IPV4_IN_IPV4,
  "6in6": TunnelKind.TUNNEL_KIND_IPV6_IN_IPV6,
  "4in6": TunnelKind.TUNNEL_KIND_IPV4_IN_IPV6,
  "6in4": TunnelKind.TUNNEL_KIND_IPV6_IN_IPV4,
};
const TUNNEL_TYPE = new Map<TunnelKind, TunnelType>(Object.entries(TUNNEL_KIND).map(([k, v]) => [v, k as TunnelType]));

export function ruleToMessage(r: Rule): RuleMessage {
  switch (r.kind) {
    case "reencap-4in4-to-4in6":
      return { key: r.key, kind: { $case: "reencap4in4To4in6", value: { poolIpv4: r.poolIPv4, careOfIpv6: r.careOfIPv6, vmId: r.vmId } } };
    case "reencap-6in6-to-6in4":
      return { key: r.key, kind: { $case: "reencap6in6To6in4", value: { careOfIpv6: r.careOfIPv6, careOfIpv4: r.careOfIPv4, vmId: r.vmId } } };
    case "tunnel-peer":
      return { key: r.key, kind: { $case: "tunnelPeer", value: { kind: TUNNEL_KIND[r.tunnel], peer: r.peer, innerSource: r.innerSource ?? "", vmId: r.vmId ?? "" } } };
    case "address-mapping":
      return { key: r.key, kind: { $case: "addressMapping", value: { ipv4: r.ipv4, ipv6: r.ipv6 } } };
    case "translation-prefix":
      return { key: r.key, kind: { $case: "translationPrefix", value: { prefix: r.prefix, ipv4Translatable: r.ipv4Translatable ?? [] } } };
    case "encapsulate":
      return {
        key: r.key,
        kind: { $case: "encapsulate", value: { kind: TUNNEL_KIND[r.tunnel], remote: r.remote, local: r.local ?? "", innerSource: r.innerSource ?? "", innerDestination: r.innerDestination ?? "", vmId: r.vmId ?? "" } },
      };
  }
}

/** The domain rule of a message; undefined for a message this version does not understand. */
export function ruleFromMessage(m: RuleMessage): Rule | undefined {
  const k = m.kind;
  switch (k?.$case) {
    case "reencap4in4To4in6":
      return { key: m.key, kind: "reencap-4in4-to-4in6", poolIPv4: k.value.poolIpv4, careOfIPv6: k.value.careOfIpv6, vmId: k.value.vmId };
    case "reencap6in6To6in4":
      return { key: m.key, kind: "reencap-6in6-to-6in4", careOfIPv6: k.value.careOfIpv6, careOfIPv4: k.value.careOfIpv4, vmId: k.value.vmId };
    case "tunnelPeer": {
      const tunnel = TUNNEL_TYPE.get(k.value.kind);
      if (!tunnel) return undefined;
      const r: Rule = { key: m.key, kind: "tunnel-peer", tunnel, peer: k.value.peer };
      if (k.value.innerSource) r.innerSource = k.value.innerSource;
      if (k.value.vmId) r.vmId = k.value.vmId;
      return r;
    }
    case "addressMapping":
      return { key: m.key, kind: "address-mapping", ipv4: k.value.ipv4, ipv6: k.value.ipv6 };
    case "translationPrefix": {
      const r: Rule = { key: m.key, kind: "translation-prefix", prefix: k.value.prefix };
      // A repeated field has no absent form: empty means "not given".
      if (k.value.ipv4Translatable.length > 0) r.ipv4Translatable = [...k.value.ipv4Translatable];
      return r;
    }
    case "encapsulate": {
      const tunnel = TUNNEL_TYPE.get(k.value.kind);
      if (!tunnel) return undefined;
      // proto3 has no absent strings: empty means "not given", as in the domain's optional fields.
      const r: Rule = { key: m.key, kind: "encapsulate", tunnel, remote: k.value.remote };
      if (k.value.local) r.local = k.value.local;
      if (k.value.innerSource) r.innerSource = k.value.innerSource;
      if (k.value.innerDestination) r.innerDestination = k.value.innerDestination;
      if (k.value.vmId) r.vmId = k.value.vmId;
      return r;
    }
    default:
      return undefined;
  }
}

/**
 * Dependency order for adds: what others refer to first (peers and prefixes before
 * re-encapsulation). An `encapsulate` rule comes last with the re-encapsulations: the tunnel-peer
 * rule that accepts the return traffic is in place before packets start leaving through it.
 */
const ORDER: Record<Rule["kind"], number> = {
  "translation-prefix": 0, "address-mapping": 1, "tunnel-peer": 2, "reencap-4in4-to-4in6": 3, "reencap-6in6-to-6in4": 3, encapsulate: 3,
};

export function inDependencyOrder(rules: Rule[]): Rule[] {
  return [...rules].sort((a, b) => ORDER[a.kind] - ORDER[b.kind] || (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
}
