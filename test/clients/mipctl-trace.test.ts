// mipctl trace as an operator runs it: a separate process, a worker's settings from an offline
// table file, and with --live the rules of a real engine.
import test from "ava";
import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { hostOn, startTestEngine } from "../../harness/engine.js";

const run = promisify(execFile);
const mipctl = (address: string, ...args: string[]) => run(process.execPath, ["bin/mipctl.js", "--engine", address, ...args], { encoding: "utf8" });

/** A table file with the example's worker settings and no rules of its own. */
function workerOnlyTable(dir: string): string {
  const example = JSON.parse(readFileSync("dataplane/offline/example-table.json", "utf8")) as { worker: unknown };
  const path = join(dir, "worker.json");
  writeFileSync(path, JSON.stringify({ revision: 1, worker: example.worker, rules: [] }));
  return path;
}

test("mipctl trace --live follows the engine's rules as they are now: an IPv6 correspondent's packet is dropped before MapCorrespondent and translated to IPv4 after it", async (t) => {
  const e = await startTestEngine();
  t.teardown(() => e.stop());
  const dir = mkdtempSync(join(tmpdir(), "mipctl-trace-"));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const table = workerOnlyTable(dir);
  const packet = ["--ingress", "v6", "2001:db8:2::5", "2001:db8:64::c000:201", "udp", "53"];

  const before = (await mipctl(e.address, "trace", "--table", table, "--live", ...packet)).stdout;
  t.regex(before, /^rule table revision \d+ \(the engine's, live\)$/m);
  t.regex(before, /^packet 1: Ethernet 02:00:00:00:00:fe > 02:00:00:00:06:01 \| IPv6 2001:db8:2::5 > 2001:db8:64::c000:201 hlim 64 \| UDP 40000 > 53$/m);
  t.regex(before, /^ {2}dropped: unmapped-source$/m, "no mapping for the source yet");

  const mapped = await e.client.mapCorrespondent({ ipv6Address: "2001:db8:2::5" });
  const after = (await mipctl(e.address, "trace", "--table", table, "--live", ...packet)).stdout;
  t.regex(after, /^ {2}pipeline: translate-6to4$/m);
  t.notRegex(after, /dropped/);
  t.regex(after, new RegExp(`^ {2}out v4 \\(\\d+ bytes\\): Ethernet 02:00:00:00:04:01 > \\S+ \\| IPv4 ${mapped.ipv4Address.replaceAll(".", "\\.")} > 192\\.0\\.2\\.1 ttl 63 \\| UDP 40000 > 53$`, "m"),
    "to the VM's IPv4 address, from the correspondent's mapped address");

  // Without --live the table file's own rules (none) decide, and no engine is asked.
  const offline = (await mipctl("127.0.0.1:9", "trace", "--table", table, ...packet)).stdout;
  t.regex(offline, /^rule table revision 1 \(the table file's\)$/m);
  t.regex(offline, /^  dropped: no-rule$/m, "the file has no translation-prefix rule");

  const json = JSON.parse((await mipctl(e.address, "--json", "trace", "--table", table, "--live", ...packet)).stdout);
  t.is(json.live, true);
  t.is(json.revision, (await e.client.getRuleTable({})).revision.toString());
  t.deepEqual(json.packets[0].actions, { "translate-6to4": 1 });
  t.is(json.packets[0].output[0].interface, "v4");
});

test("mipctl trace --pcap: a scapy-built IPv4-in-IPv4 packet from the home agent is re-encapsulated toward the VM's IPv6 care-of address (flow 3.1), as the live rules say", async (t) => {
  const e = await startTestEngine({ hosts: { heartbeatIntervalSeconds: 5, downAfterSeconds: 120 } });
  t.teardown(() => e.stop());
  await e.client.heartbeat(hostOn(6, "h6"));
  await e.client.heartbeat(hostOn(4, "h4"));
  const c = await e.client.allocateCareOf({ hostId: "h6", vmId: "sv", homeAddress: "192.0.2.1" });
  await e.client.registerMigration({ vmId: "sv", homeAddress: "192.0.2.1", homeAgent: "192.0.2.10", sourceHostId: "h4", destinationHostId: "h6", careOfIpv4: c.careOfIpv4, careOfIpv6: c.careOfIpv6 });
  const dir = mkdtempSync(join(tmpdir(), "mipctl-trace-"));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const table = workerOnlyTable(dir);
  const pcap = join(dir, "in.pcap");
  // Built by scapy, not by our codec: r1 (192.0.2.10) tunnels a client's TCP segment to the care-of address.
  await run("/usr/bin/python3", ["-c", `
from scapy.all import Ether, IP, TCP, wrpcap
wrpcap(${JSON.stringify(pcap)}, [Ether(src="02:00:00:00:04:10", dst="02:00:00:00:04:01")/IP(src="192.0.2.10", dst=${JSON.stringify(c.careOfIpv4)})/IP(src="203.0.113.5", dst="192.0.2.1")/TCP(sport=5555, dport=7, flags="S")])
`]);
  const out = (await mipctl(e.address, "trace", "--table", table, "--live", "--ingress", "v4", "--pcap", pcap)).stdout;
  t.regex(out, new RegExp(`^packet 1: Ethernet 02:00:00:00:04:10 > 02:00:00:00:04:01 \\| IPv4 192\\.0\\.2\\.10 > ${c.careOfIpv4.replaceAll(".", "\\.")} ttl 64 \\| IPv4 203\\.0\\.113\\.5 > 192\\.0\\.2\\.1 ttl 64 \\| TCP 5555 > 7$`, "m"),
    "scapy's packet read back layer by layer");
  t.regex(out, /^ {2}pipeline: reencap-4in4-4in6$/m);
  t.regex(out, new RegExp(`^ {2}out v6 \\(\\d+ bytes\\): Ethernet 02:00:00:00:06:01 > \\S+ \\| IPv6 2001:db8:1::fe > ${c.careOfIpv6} hlim 64 \\| IPv4 203\\.0\\.113\\.5 > 192\\.0\\.2\\.1 ttl 63 \\| TCP 5555 > 7$`, "m"),
    "the inner packet forwarded once (its TTL one less), in IPv6 toward the care-of address");
});

test("mipctl trace refuses bad input with a clear message: no table, a packet it cannot read, mixed families, an unknown interface", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "mipctl-trace-"));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const table = workerOnlyTable(dir);
  const fails = async (code: number, pattern: RegExp, ...args: string[]) => {
    const err = await t.throwsAsync(mipctl("127.0.0.1:9", "trace", ...args)) as Error & { code: number; stderr: string };
    t.is(err.code, code, args.join(" "));
    t.regex(err.stderr, pattern, args.join(" "));
  };
  await fails(2, /trace needs --table FILE/, "192.0.2.1", "192.0.2.2");
  await fails(2, /tcp takes a destination port \(1-65535\), not "70000"/, "--table", table, "192.0.2.1", "192.0.2.2", "tcp", "70000");
  await fails(2, /protocol is tcp PORT, udp PORT or icmp, not "sctp"/, "--table", table, "192.0.2.1", "192.0.2.2", "sctp");
  await fails(2, /different families/, "--table", table, "192.0.2.1", "2001:db8::1");
  await fails(1, /SRC: /, "--table", table, "192.0.2.300", "192.0.2.2");
  await fails(1, /ingress: no interface named or numbered "eth9"/, "--table", table, "--ingress", "eth9", "192.0.2.1", "192.0.2.2");
  await fails(1, /--table .*nope\.json: /, "--table", join(dir, "nope.json"), "192.0.2.1", "192.0.2.2");
});
