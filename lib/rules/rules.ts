// The data-plane rule table: what the engine compiles from bindings and configuration, pushes to
// workers, and what the offline mode reads from JSON. Addresses are canonical text; the worker
// turns them into bytes once per table revision.

export type TunnelType = "4in4" | "6in6" | "4in6" | "6in4";

export type Rule =
  /** Flow 3.1 j: IPv4-in-IPv4 arriving for a pool address leaves as IPv4-in-IPv6 to the VM. */
  | { key: string; kind: "reencap-4in4-to-4in6"; poolIPv4: string; careOfIPv6: string; vmId: string }
  /** Flow 3.2 i: IPv6-in-IPv6 for a VM's IPv6 care-of address leaves as IPv6-in-IPv4. */
  | { key: string; kind: "reencap-6in6-to-6in4"; careOfIPv6: string; careOfIPv4: string; vmId: string }
  /** A tunnel the engine decapsulates: outer source `peer`; inner source limited if given (RFC 4213 §3.6). */
  | { key: string; kind: "tunnel-peer"; tunnel: TunnelType; peer: string; innerSource?: string; vmId?: string }
  /** An explicit address mapping for the translator (RFC 7757). */
  | { key: string; kind: "address-mapping"; ipv4: string; ipv6: string }
  /**
   * An RFC 6052 prefix for the translator; `ipv4Translatable`: the IPv4 prefixes (CIDR) whose
   * addresses are IPv6 nodes at this prefix (RFC 6052 §2): IPv4 packets to them are translated
   * and the worker answers ARP for them. Absent: only explicit mappings are translated 4→6.
   */
  | { key: string; kind: "translation-prefix"; prefix: string; ipv4Translatable?: string[] }
  /**
   * Flows 3.1 f, l and 3.2 d, k (the privileged VM on a hypervisor host): a plain packet whose
   * source matches `innerSource` and destination matches `innerDestination` (absent: any) is sent
   * through a `tunnel` to `remote` (the engine, a home agent). A policy route: it applies only to
   * packets the worker would otherwise route, never to one that came out of a tunnel; the outer
   * packet is routed by `remote` and never looked at again (dataplane/forward/README.md).
   */
  | {
      key: string;
      kind: "encapsulate";
      tunnel: TunnelType;
      /** Outer destination, of the tunnel's outer family. */
      remote: string;
      /** Outer source; default the worker's tunnel source, else the egress interface's first address of that family. */
      local?: string;
      /** Address or CIDR of the tunnel's inner family the packet's source must be in; absent: any. */
      innerSource?: string;
      /** Address or CIDR of the inner family the packet's destination must be in; absent: any. */
      innerDestination?: string;
      vmId?: string;
    };

export type RuleKind = Rule["kind"];

export interface RuleTable {
  revision: bigint;
  rules: Rule[];
}

/** Rules compare equal when their JSON forms do; used to skip no-op updates. */
export function sameRule(a: Rule, b: Rule): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}
