// The registrations of real migrations against the live lab, checked with an independent
// implementation (issue 4, "Wire formats"):
//  (a) the registration traffic of real migrations, captured on the engine's links, is decoded by
//      tshark as Mobile IP / Mobile IPv6 without warnings.
// (b)–(d), registrations built and signed by scapy, are test/lab/registration-keys.
import anyTest, { type TestFn } from "ava";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { VM_SECURITY } from "../../deploy/lab/configs.js";
import { spawnIn } from "../../deploy/lab/netns.js";
import { migrate } from "../../deploy/lab/qemu.js";
import { SoftChecks, labUnavailable, logPath, logSize, sleep, useLab, waitFor, waitForHandover, type LabHandle } from "../helpers/lab.js";
import { readPcap } from "../helpers/pcap.js";
import { decodeWithTshark, type TsharkResult } from "../helpers/tshark.js";
import { allValues, haMetrics, problems } from "./registration-checks.js";

const test = anyTest as TestFn<unknown>;
const unavailable = labUnavailable();
if (unavailable) console.log(`test/lab/registration-wire: skipped, ${unavailable}`);
const live = unavailable ? test.serial.skip : test.serial;
const handle: LabHandle | undefined = unavailable ? undefined : useLab(test);

// --------------------------------------------------------------------- (a) the wire, by tshark

live("(a) the registrations of real migrations, captured on the engine's links, decode in tshark without warnings", async (test) => {
  const t = new SoftChecks(test);
  const h = handle!;
  const { prefix, lab } = h;
  const dir = mkdtempSync(join(tmpdir(), "mip46-lab-reg-"));
  test.teardown(() => rmSync(dir, { recursive: true, force: true }));
  // The outer headers of what registrations travel in: UDP 434 itself; IPv4-in-IPv4/IPv6 and
  // IPv6-in-IPv4/IPv6 tunnels; IPv6 with a Destination Options (Home Address), type 2 Routing or
  // Mobility header.
  const filter = "udp port 434 or ip proto 4 or ip proto 41 or ip6 proto 4 or ip6 proto 41 or ip6 proto 60 or ip6 proto 43 or ip6 proto 135";
  const captures = (["e4", "e6"] as const).map((iface) => {
    const file = join(dir, `${iface}.pcap`);
    const child = spawnIn(prefix, "eng", ["/usr/bin/tshark", "-n", "-p", "-i", iface, "-F", "pcap", "-w", file, "-f", filter], { stdio: ["ignore", "ignore", "pipe"] });
    h.track(child);
    let err = "";
    child.stderr!.on("data", (d) => (err += String(d)));
    return { iface, file, child, stderr: () => err };
  });
  for (const c of captures) await waitFor(`tshark capturing on ${c.iface}`, () => c.stderr().includes("Capturing on"), 15_000);

  // 3.1 and 3.2 at once: vm4 to the IPv6 host, vm6 to the IPv4 host, then both home.
  const off = { h4: logSize(logPath(lab, "agent-h4")), h6: logSize(logPath(lab, "agent-h6")) };
  await Promise.all([migrate(prefix, "vm4", "h6"), migrate(prefix, "vm6", "h4")]);
  const [vm4Away, vm6Away] = await Promise.all([waitForHandover(lab, "h6", "vm4", off.h6), waitForHandover(lab, "h4", "vm6", off.h4)]);
  t.true(vm4Away.ok === true, `vm4's registration through the engine: ${JSON.stringify(vm4Away)}`);
  t.true(vm6Away.ok === true, `vm6's binding update through the engine: ${JSON.stringify(vm6Away)}`);
  const back = { h4: logSize(logPath(lab, "agent-h4")), h6: logSize(logPath(lab, "agent-h6")) };
  await Promise.all([migrate(prefix, "vm4", "h4"), migrate(prefix, "vm6", "h6")]);
  await Promise.all([waitForHandover(lab, "h4", "vm4", back.h4), waitForHandover(lab, "h6", "vm6", back.h6)]);
  // Time for the deregistrations to cross; whether they are accepted is test/lab/mobility's business.
  await waitFor("r1 and r2 to hold no binding", async () => (await haMetrics(h, "r1")).bindings === 0 && (await haMetrics(h, "r2")).bindings === 0, 2_000)
    .catch((e: Error) => test.log(e.message));
  await sleep(300);
  for (const c of captures) {
    c.child.kill("SIGINT");
    await new Promise((r) => (c.child.exitCode !== null ? r(null) : c.child.once("exit", r)));
  }

  const decoded = captures.map((c) => ({ iface: c.iface, result: decodeWithTshark(readPcap(readFileSync(c.file)).frames) }));
  for (const { iface, result } of decoded) {
    test.log(`${iface}: ${result.packets.length} frames: ${[...new Set(result.packets.map((p) => String((p._source.layers.frame as Record<string, unknown>)?.["frame.protocols"])))].join(", ")}`);
    t.is(problems(result).join("\n"), "", `tshark has no complaint about what crossed ${iface}`);
  }
  const [e4, e6] = decoded.map((d) => d.result);
  const both = { packets: [...e4.packets, ...e6.packets], problems: [] } as TsharkResult;
  // RFC 5944 §3.3/§3.4: a request (type 1) and an accepted reply (type 3, code 0), with the
  // mobile-home authentication extension (type 32) and vm4's SPI.
  const mipTypes = allValues(both, "mip.type");
  t.true(mipTypes.includes("1") && mipTypes.includes("3"), `tshark sees registration requests and replies (mip.type: ${mipTypes.join(",")})`);
  t.true(allValues(both, "mip.code").includes("0"), `an accepted reply (mip.code: ${allValues(both, "mip.code").join(",")})`);
  t.true(allValues(both, "mip.auth.spi").some((s) => Number(s) === VM_SECURITY.vm4.spi), `vm4's SPI in the authentication extension (${allValues(both, "mip.auth.spi").join(",")})`);
  // RFC 6275 §6.1.7/§6.1.8: a binding update (MH type 5) and an accepted acknowledgement (6, status 0), signed (RFC 4285, vm6's SPI).
  const mhTypes = allValues(both, "mip6.mhtype");
  t.true(mhTypes.includes("5") && mhTypes.includes("6"), `tshark sees binding updates and acknowledgements (mip6.mhtype: ${mhTypes.join(",")})`);
  t.true(allValues(both, "mip6.ba.status").includes("0"), `an accepted acknowledgement (mip6.ba.status: ${allValues(both, "mip6.ba.status").join(",")})`);
  t.true(allValues(both, "mip6.auth.mobility_spi").some((s) => Number(s) === VM_SECURITY.vm6.spi), `vm6's SPI in the authentication option (${allValues(both, "mip6.auth.mobility_spi").join(",")})`);
  t.done();
});
