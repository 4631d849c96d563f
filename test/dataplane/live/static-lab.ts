// The static lab of the live tests and the restart test: the worker's configuration, a rule table
// covering every kind of rule, and the sender's and receiver's addresses.
import { configureHost, type Topology } from "../../../harness/topology.js";

export const WORKER_CONFIG = {
  workerId: "live-static",
  interfaces: [
    { name: "w0", addresses: ["203.0.113.1/24", "2001:db8:c::1/64"] },
    { name: "w1", addresses: ["192.0.2.254/24", "2001:db8:1::fe/64"] },
  ],
  served: ["198.51.100.0/24", "2001:db8:3::/96"],
};

export const TABLE = {
  revision: 7,
  rules: [
    { key: "peer-4in4", kind: "tunnel-peer", tunnel: "4in4", peer: "203.0.113.2" },
    { key: "peer-6in4", kind: "tunnel-peer", tunnel: "6in4", peer: "203.0.113.2" },
    { key: "peer-6in6", kind: "tunnel-peer", tunnel: "6in6", peer: "2001:db8:c::2" },
    { key: "peer-4in6", kind: "tunnel-peer", tunnel: "4in6", peer: "2001:db8:c::2" },
    { key: "vm/a/reencap", kind: "reencap-4in4-to-4in6", poolIPv4: "198.51.100.2", careOfIPv6: "2001:db8:1::c000:201", vmId: "a" },
    { key: "vm/b/reencap", kind: "reencap-6in6-to-6in4", careOfIPv6: "2001:db8:3::c000:203", careOfIPv4: "192.0.2.3", vmId: "b" },
    { key: "config/translation-prefix", kind: "translation-prefix", prefix: "2001:db8:64::/96" },
    { key: "correspondent/2001:db8:c::10", kind: "address-mapping", ipv4: "198.51.100.7", ipv6: "2001:db8:c::10" },
    { key: "vm/c/mapping", kind: "address-mapping", ipv4: "198.51.100.20", ipv6: "2001:db8:1::2" },
  ],
};

/** Sender and receiver hosts of the static lab: clients and tunnel peers left, VMs right. */
export async function configureEnds(topo: Topology): Promise<void> {
  await configureHost(topo, topo.sender, "s0", ["203.0.113.2/24", "203.0.113.10/24", "2001:db8:c::2/64", "2001:db8:c::10/64"],
    [["default", "via", "203.0.113.1"], ["default", "via", "2001:db8:c::1"]]);
  await configureHost(topo, topo.receiver, "r0", ["192.0.2.1/24", "192.0.2.3/24", "2001:db8:1::2/64", "2001:db8:1::5/64", "2001:db8:1::c000:201/64"],
    [["default", "via", "192.0.2.254"], ["default", "via", "2001:db8:1::fe"]]);
}

