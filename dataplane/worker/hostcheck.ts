// Checks that the kernel leaves the worker's packets alone. libpcap captures a copy: the kernel
// still receives every frame the worker sees, so the host must be set up so that the kernel drops
// them quietly instead of answering or forwarding them a second time:
// - no IP addresses on worker interfaces: the kernel would answer ARP/NDP and ICMP for them, and
//   deliver tunnel packets to its own ip_tunnel/sit modules;
// - net.ipv6.conf.IF.disable_ipv6=1: otherwise the kernel gives itself a link-local address, runs
//   DAD and router solicitation, and answers neighbour solicitations beside the worker;
// - net.ipv4.ip_forward=0 and net.ipv6.conf.all.forwarding=0: otherwise every packet the worker
//   forwards (addressed to the interface's MAC) is forwarded by the kernel too, or answered with
//   ICMP errors; with forwarding off, the kernel drops a packet for an address it does not have
//   without an ICMP error (RFC 1812 §5.3 lets a host stay silent).
import { readFileSync } from "node:fs";
import { execFileSync } from "node:child_process";

export interface HostProblem { interface?: string; setting: string; found: string; want: string; why: string }

function readSysctl(path: string): string | undefined {
  try {
    return readFileSync(path, "utf8").trim();
  } catch {
    return undefined;
  }
}

function interfaceAddresses(name: string): string[] {
  try {
    const out = execFileSync("ip", ["-j", "addr", "show", "dev", name], { encoding: "utf8", timeout: 5_000, stdio: ["ignore", "pipe", "ignore"] });
    const links = JSON.parse(out) as { addr_info?: { local: string; prefixlen: number }[] }[];
    return links.flatMap((l) => (l.addr_info ?? []).map((a) => `${a.local}/${a.prefixlen}`));
  } catch {
    return [];
  }
}

export function checkHost(interfaces: string[], readSys: (path: string) => string | undefined = readSysctl,
  addresses: (name: string) => string[] = interfaceAddresses): HostProblem[] {
  const problems: HostProblem[] = [];
  const want = (setting: string, path: string, value: string, why: string, iface?: string) => {
    const found = readSys(path);
    if (found !== undefined && found !== value) problems.push({ interface: iface, setting, found, want: value, why });
  };
  want("net.ipv4.ip_forward", "/proc/sys/net/ipv4/ip_forward", "0", "the kernel would forward the packets the worker forwards, a second time");
  want("net.ipv6.conf.all.forwarding", "/proc/sys/net/ipv6/conf/all/forwarding", "0", "the kernel would forward the IPv6 packets the worker forwards, a second time");
  for (const name of interfaces) {
    want(`net.ipv6.conf.${name}.disable_ipv6`, `/proc/sys/net/ipv6/conf/${name}/disable_ipv6`, "1",
      "the kernel would take a link-local address and answer neighbour discovery beside the worker", name);
    const addrs = addresses(name);
    if (addrs.length > 0) {
      problems.push({ interface: name, setting: "addresses", found: addrs.join(" "), want: "none",
        why: "the kernel would answer ARP/NDP and ICMP for them and take tunnel packets to them" });
    }
  }
  return problems;
}
