// Registrations built and signed independently of our code, against the live lab (issue 4,
// "Authentication"):
//  (b) a registration request built by scapy, signed in Python with vm4's key, sent on the home
//      link from a test namespace, is accepted by r1, and its deregistration too;
//  (c) the same with a wrong key is refused (131), a replay of accepted bytes is refused (133),
//      and neither changes r1's bindings;
//  (d) the same for r2 with binding updates: accepted (0), wrong key 146, replay 144.
// The test namespaces hang off the lab's net4/net6 bridges and are removed at the end; vm4 and vm6
// are announced again on their home links afterwards, so the lab is left as it was found. (a), the
// registrations of real migrations as tshark reads them, is test/lab/registration-wire.
// About 360 lines: most of the length is the Python that builds and signs the registrations.
import anyTest, { type ExecutionContext, type TestFn } from "ava";
import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { parse } from "yaml";
import { VM_SECURITY } from "../../deploy/lab/configs.js";
import { REPO } from "../../deploy/lab/lab.js";
import { exec, run } from "../../deploy/lab/netns.js";
import { LAB_PLAN, namespaceName } from "../../deploy/lab/topology.js";
import { SoftChecks, labUnavailable, logPath, logSize, readLog, useLab, waitFor, type LabHandle } from "../helpers/lab.js";
import { readPcap } from "../helpers/pcap.js";
import { decodeWithTshark, type TsharkResult } from "../helpers/tshark.js";
import { allValues, haMetrics, problems } from "./registration-checks.js";

const test = anyTest as TestFn<unknown>;
const unavailable = labUnavailable();
if (unavailable) console.log(`test/lab/registration-keys: skipped, ${unavailable}`);
const live = unavailable ? test.serial.skip : test.serial;
const handle: LabHandle | undefined = unavailable ? undefined : useLab(test);

const P = LAB_PLAN;
const addr = (cidr: string) => cidr.split("/")[0];
const VM4 = addr(P.vms.vm4.homeAddress);
const VM6 = addr(P.vms.vm6.homeAddress);
const R1 = addr(P.homeAgents.r1.interface.addresses[0]);
const R2 = addr(P.homeAgents.r2.interface.addresses[0]);
/** The test stations on the home links, and made-up care-of addresses for their registrations. */
const STATION4 = "192.0.2.77";
const STATION6 = "2001:db8:1::77";
const CARE_OF4 = "198.51.100.200";

interface LabKey { homeAddress: string; spi: number; algorithm: string; key: string }

function labKey(file: "keys-r1.yaml" | "keys-r2.yaml", homeAddress: string): LabKey {
  const keys = parse(readFileSync(join(handle!.lab.dir, file), "utf8")) as LabKey[];
  const k = keys.find((x) => x.homeAddress === homeAddress);
  if (k === undefined) throw new Error(`${file} has no key for ${homeAddress}`);
  return k;
}

/** A key of the same length that is not the right one. */
const wrongKey = (key: string) => randomBytes(key.length / 2).toString("hex");

// --------------------------------------------------------------------- the scapy station
// One Python process per home link, in its test namespace: it builds each message with scapy (and
// Python's hmac), sends it as an Ethernet frame straight to the home agent's MAC, and waits on a
// packet socket for the answer, so neither the kernel nor our codec touches what is sent. Commands
// and answers are JSON lines. Every frame sent and received is kept for tshark.
const STATION = String.raw`
import sys, json, time, hmac, hashlib, struct, select, socket, logging
logging.getLogger("scapy.runtime").setLevel(logging.ERROR)
from scapy.all import Ether, IP, UDP, Raw, conf, wrpcap
from scapy.layers.mobileip import MobileIP, MobileIPRRQ
from scapy.layers.inet6 import *
exec(open(sys.argv[2]).read())  # signed_bu(): test/homeagent/mip6/scapy_signed_bu.py
cfg = json.loads(sys.argv[1])
sock = conf.L2socket(iface=cfg["iface"], filter=cfg["filter"])
frames = []
NTP_EPOCH_OFFSET = 2208988800

def ntp_now():
    t = time.time()
    s = int(t)
    return ((s + NTP_EPOCH_OFFSET) << 32) | int((t - s) * (1 << 32))

def exchange(frame, answer, timeout=3.0):
    raw = bytes(frame)
    frames.append(raw)
    sock.send(Ether(raw))
    deadline = time.time() + timeout
    while time.time() < deadline:
        ready, _, _ = select.select([sock], [], [], max(0.0, deadline - time.time()))
        if not ready:
            break
        p = sock.recv()
        if p is None or bytes(p) == raw:
            continue
        got = answer(bytes(p))
        if got is not None:
            frames.append(bytes(p))
            return got
    return {"timeout": True}

def rrp(sport):
    def answer(b):
        if len(b) < 14 + 20 + 8 or b[12:14] != b"\x08\x00":
            return None
        ip = b[14:]
        ihl = (ip[0] & 15) * 4
        if ip[9] != 17 or socket.inet_ntoa(ip[12:16]) != cfg["ha"]:
            return None
        sp, dp = struct.unpack("!HH", ip[ihl:ihl + 4])
        if sp != 434 or dp != sport:
            return None
        m = ip[ihl + 8:]
        return {"type": m[0], "code": m[1], "lifetime": struct.unpack("!H", m[2:4])[0], "identification": str(struct.unpack("!Q", m[12:20])[0])}
    return answer

def ba(b):
    if len(b) < 14 + 40 or b[12:14] != b"\x86\xdd":
        return None
    ip = b[14:]
    if socket.inet_ntop(socket.AF_INET6, ip[8:24]) != cfg["ha"]:
        return None
    nh, off = ip[6], 40
    while nh in (0, 43, 60) and off + 2 <= len(ip):
        nh, off = ip[off], off + (ip[off + 1] + 1) * 8
    if nh != 135 or off + 8 > len(ip) or ip[off + 2] != 6:
        return None
    return {"mhType": 6, "status": ip[off + 6], "sequence": struct.unpack("!H", ip[off + 8:off + 10])[0]}

def rrq(c):
    ident = ntp_now()
    body = bytes(MobileIP(type=1) / MobileIPRRQ(flags=0, lifetime=c["lifetime"], homeaddr=c["homeAddress"], haaddr=cfg["ha"], coaddr=c["careOf"], id=ident))
    digest = {"hmac-md5": hashlib.md5, "hmac-sha256": hashlib.sha256}[c["algorithm"]]
    head = struct.pack("!BBI", 32, 4 + digest().digest_size, c["spi"])  # RFC 5944 §3.5.2
    auth = hmac.new(bytes.fromhex(c["keyHex"]), body + head, digest).digest()
    return Ether(dst=cfg["haMac"]) / IP(src=cfg["station"], dst=cfg["ha"]) / UDP(sport=c["sport"], dport=434) / Raw(body + head + auth), ident

for line in sys.stdin:
    c = json.loads(line)
    if c["op"] == "rrq":
        frame, ident = rrq(c)
        out = exchange(frame, rrp(c["sport"]))
        out.update(frame=bytes(frame).hex(), sentIdentification=str(ident))
    elif c["op"] == "bu":
        frame = Ether(dst=cfg["haMac"]) / signed_bu(cfg["station"], cfg["ha"], c["homeAddress"], c["sequence"], c["lifetimeUnits"], c["spi"], c["keyHex"], ntp_now())
        out = exchange(frame, ba)
        out.update(frame=bytes(frame).hex())
    elif c["op"] == "resend":
        out = exchange(Ether(bytes.fromhex(c["frame"])), rrp(c["sport"]) if c["kind"] == "rrq" else ba)
    elif c["op"] == "save":
        wrpcap(c["path"], [Ether(f) for f in frames])
        out = {"saved": len(frames)}
    else:
        out = {"error": "unknown op"}
    print(json.dumps(out), flush=True)
`;

/** Announces a VM's home address from the VM itself (gratuitous ARP / unsolicited NA), as it would after a home agent let go. */
const ANNOUNCE = String.raw`
import sys, logging
logging.getLogger("scapy.runtime").setLevel(logging.ERROR)
from scapy.all import Ether, ARP, IPv6, ICMPv6ND_NA, ICMPv6NDOptDstLLAddr, sendp, get_if_hwaddr
family, address = sys.argv[1], sys.argv[2]
iface, mac = sys.argv[3], sys.argv[4]
if family == "4":
    f = Ether(src=mac, dst="ff:ff:ff:ff:ff:ff") / ARP(op=1, hwsrc=mac, psrc=address, hwdst="00:00:00:00:00:00", pdst=address)
else:
    f = Ether(src=mac, dst="33:33:00:00:00:01") / IPv6(src=address, dst="ff02::1", hlim=255) / ICMPv6ND_NA(R=0, S=0, O=1, tgt=address) / ICMPv6NDOptDstLLAddr(lladdr=mac)
sendp(f, iface=iface, count=2, inter=0.05, verbose=False)
`;

type Answer = Record<string, unknown> & { timeout?: boolean; exited?: number | null; code?: number; status?: number; frame?: string };

class Station {
  private readonly answers: Answer[] = [];
  private readonly waiting: ((a: Answer) => void)[] = [];
  private readonly stderr: string[] = [];

  private constructor(readonly name: string, private readonly child: ChildProcess) {
    createInterface({ input: child.stdout! }).on("line", (l) => {
      const a = JSON.parse(l) as Answer;
      const w = this.waiting.shift();
      if (w) w(a);
      else this.answers.push(a);
    });
    createInterface({ input: child.stderr! }).on("line", (l) => this.stderr.push(l));
    child.stdin!.on("error", () => undefined);
    child.once("exit", (code) => {
      for (const w of this.waiting.splice(0)) w({ exited: code, stderr: this.stderr.join("\n").slice(-1500) });
    });
  }

  /** A namespace with one veth end in it and the other in the lab's switch `net`, and the scapy station on it. */
  static async start(h: LabHandle, family: 4 | 6): Promise<Station> {
    const ns = `${h.prefix}-t${family}`;
    const iface = `t${family}`;
    const port = `t${family}${randomBytes(2).toString("hex")}`;
    const net = namespaceName(h.prefix, family === 4 ? "net4" : "net6");
    await run(["ip", "netns", "add", ns]);
    h.onStop(() => run(["ip", "netns", "del", ns]).then(() => undefined, () => undefined));
    const inNs = (argv: string[]) => run(["ip", "netns", "exec", ns, ...argv]);
    // Quiet as the lab's own namespaces: no router solicitations, no DAD, nothing it was not told to send.
    for (const s of ["net.ipv6.conf.default.accept_ra=0", "net.ipv6.conf.all.accept_ra=0", "net.ipv6.conf.default.accept_dad=0", "net.ipv6.conf.all.accept_dad=0",
      `net.ipv6.conf.default.disable_ipv6=${family === 4 ? 1 : 0}`]) await inNs(["sysctl", "-q", "-w", s]);
    await run(["ip", "link", "add", iface, "netns", ns, "type", "veth", "peer", "name", port, "netns", net]);
    await run(["ip", "-n", net, "link", "set", port, "master", "br0", "up"]);
    await inNs(["ip", "link", "set", "lo", "up"]);
    await inNs(["ip", "addr", "add", family === 4 ? `${STATION4}/24` : `${STATION6}/64`, "dev", iface, ...(family === 6 ? ["nodad"] : [])]);
    await inNs(["ip", "link", "set", iface, "up"]);
    const cfg = family === 4
      ? { iface, station: STATION4, ha: R1, haMac: P.homeAgents.r1.interface.mac, filter: `ip and udp and src host ${R1}` }
      : { iface, station: STATION6, ha: R2, haMac: P.homeAgents.r2.interface.mac, filter: `ip6 and src host ${R2}` };
    const child = spawn("ip", ["netns", "exec", ns, "/usr/bin/python3", "-c", STATION, JSON.stringify(cfg), join(REPO, "test/homeagent/mip6/scapy_signed_bu.py")], { stdio: ["pipe", "pipe", "pipe"] });
    h.track(child);
    return new Station(ns, child);
  }

  ask(command: Record<string, unknown>, timeoutMs = 15_000): Promise<Answer> {
    if (this.child.exitCode !== null) return Promise.resolve({ exited: this.child.exitCode, stderr: this.stderr.join("\n").slice(-1500) });
    const queued = this.answers.shift();
    this.child.stdin!.write(JSON.stringify(command) + "\n");
    if (queued) return Promise.resolve(queued);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`station ${this.name}: no answer to ${command.op} in ${timeoutMs} ms; stderr: ${this.stderr.join("\n").slice(-1500)}`)), timeoutMs);
      this.waiting.push((a) => {
        clearTimeout(timer);
        resolve(a);
      });
    });
  }

  async stop(): Promise<void> {
    this.child.stdin!.end();
    if (this.child.exitCode === null) await new Promise((r) => this.child.once("exit", r));
  }

  /** Stops the station, and decodes with tshark every frame it sent and received. */
  async stopAndDecode(test: ExecutionContext, name: string): Promise<TsharkResult> {
    const dir = mkdtempSync(join(tmpdir(), "mip46-lab-reg-"));
    test.teardown(() => rmSync(dir, { recursive: true, force: true }));
    const pcap = join(dir, `${name}.pcap`);
    await this.ask({ op: "save", path: pcap });
    await this.stop();
    return decodeWithTshark(readPcap(readFileSync(pcap)).frames);
  }
}

// --------------------------------------------------------------------- the home agents' side

/** The home agent's binding changes logged after `from`, as "<what> <home address> <care-of address>". */
const bindingChanges = (which: "r1" | "r2", from: number) =>
  readLog(logPath(handle!.lab, `home-agent-${which}`), from).filter((r) => r.msg === "binding added" || r.msg === "binding updated" || r.msg === "binding removed")
    .map((r) => `${r.msg} ${r.homeAddress} ${r.careOfAddress}`);

async function announce(family: 4 | 6): Promise<void> {
  // The guest is unmodified, so the announcement leaves from its home host's bridge with the
  // guest's MAC: on the home link it is the same frame the guest would send.
  const vm = family === 4 ? LAB_PLAN.vms.vm4 : LAB_PLAN.vms.vm6;
  await exec(handle!.prefix, vm.host, ["/usr/bin/python3", "-c", ANNOUNCE, String(family), family === 4 ? VM4 : VM6, LAB_PLAN.hosts[vm.host].homeBridge, vm.mac], { timeoutMs: 20_000 });
}

// --------------------------------------------------------------------- (b), (c) r1 with scapy

live("(b, c) r1 accepts a scapy-built registration with vm4's key, refuses a wrong key (131) and a replay (133) without changing its bindings", async (test) => {
  const t = new SoftChecks(test);
  const h = handle!;
  const key = labKey("keys-r1.yaml", VM4);
  t.is(key.spi, VM_SECURITY.vm4.spi, "the keys file holds vm4's SPI");
  const station = await Station.start(h, 4);
  const logFrom = logSize(logPath(h.lab, "home-agent-r1"));
  const start = await haMetrics(h, "r1");
  t.is(start.bindings, 0, "r1 starts with no binding (vm4 is at home)");
  const sport = 20000 + (randomBytes(2).readUInt16BE() % 10000);
  const request = { op: "rrq", homeAddress: VM4, careOf: CARE_OF4, lifetime: 60, spi: key.spi, algorithm: key.algorithm, sport };

  // (c) wrong key: 131, nothing changes.
  const wrong = await station.ask({ ...request, keyHex: wrongKey(key.key) });
  t.is(wrong.code, 131, `a wrong key is refused with 131 (${JSON.stringify({ ...wrong, frame: undefined })})`);
  const afterWrong = await haMetrics(h, "r1");
  t.is(afterWrong.bindings, 0, "the refused request made no binding");
  t.is(afterWrong.result("bad-auth") - start.result("bad-auth"), 1, "r1 counts the bad authenticator");

  // (b) the right key: accepted, one binding, counted.
  const right = await station.ask({ ...request, keyHex: key.key });
  t.is(right.type, 3, "the answer is a registration reply");
  t.is(right.code, 0, `vm4's key is accepted (${JSON.stringify({ ...right, frame: undefined })})`);
  t.is(right.identification, right.sentIdentification, "the reply carries the request's identification (RFC 5944 §5.7)");
  t.is(right.lifetime, 60, "the lifetime asked for is granted");
  const afterRight = await haMetrics(h, "r1");
  t.is(afterRight.bindings, 1, "r1 holds the binding");
  t.is(afterRight.result("accepted") - start.result("accepted"), 1, "r1 counts the accepted request");

  // (c) the same bytes again: 133, the binding untouched.
  const replay = await station.ask({ op: "resend", kind: "rrq", frame: right.frame, sport });
  t.is(replay.code, 133, `a replayed request is refused with 133 (${JSON.stringify(replay)})`);
  const afterReplay = await haMetrics(h, "r1");
  t.is(afterReplay.bindings, 1, "the replay changed no binding");
  t.is(afterReplay.result("replay") - start.result("replay"), 1, "r1 counts the replay");

  // Deregistration (lifetime 0, RFC 5944 §3.8.2.2) restores r1's state.
  const dereg = await station.ask({ ...request, lifetime: 0, keyHex: key.key });
  t.is(dereg.code, 0, `the deregistration is accepted (${JSON.stringify({ ...dereg, frame: undefined })})`);
  t.is((await haMetrics(h, "r1")).bindings, 0, "r1 holds no binding again");
  const changes = bindingChanges("r1", logFrom);
  t.deepEqual(changes, [`binding added ${VM4} ${CARE_OF4}`, `binding removed ${VM4} ${CARE_OF4}`], "r1's only binding changes: the accepted registration and its deregistration");

  const decoded = await station.stopAndDecode(test, "r1");
  t.is(problems(decoded).join("\n"), "", "tshark has no complaint about the requests or r1's replies");
  t.deepEqual(allValues(decoded, "mip.code").map(Number), [131, 0, 133, 0], "tshark reads the reply codes 131, 0, 133, 0");

  // vm4 takes its address back on the home link, and is reachable again.
  await announce(4);
  await t.wait(waitFor("c4 to reach vm4 again", () => exec(h.prefix, "c4", ["ping", "-c1", "-W1", VM4]).then(() => true), 8_000));
  t.done();
});

// --------------------------------------------------------------------- (d) r2 with scapy

live("(d) r2 accepts a scapy-built binding update with vm6's key, refuses a wrong key (146) and a replay (144) without changing its bindings", async (test) => {
  const t = new SoftChecks(test);
  const h = handle!;
  const key = labKey("keys-r2.yaml", VM6);
  t.is(key.spi, VM_SECURITY.vm6.spi, "the keys file holds vm6's SPI");
  const station = await Station.start(h, 6);
  const logFrom = logSize(logPath(h.lab, "home-agent-r2"));
  const start = await haMetrics(h, "r2");
  t.is(start.bindings, 0, "r2 starts with no binding (vm6 is at home)");
  const sequence = randomBytes(2).readUInt16BE() & 0x7fff;
  const update = { op: "bu", homeAddress: VM6, sequence, lifetimeUnits: 15, spi: key.spi };

  const wrong = await station.ask({ ...update, keyHex: wrongKey(key.key) });
  t.is(wrong.status, 146, `a wrong key is refused with 146 (${JSON.stringify({ ...wrong, frame: undefined })})`);
  const afterWrong = await haMetrics(h, "r2");
  t.is(afterWrong.bindings, 0, "the refused update made no binding");

  const right = await station.ask({ ...update, keyHex: key.key });
  t.is(right.status, 0, `vm6's key is accepted (${JSON.stringify({ ...right, frame: undefined })})`);
  t.is(right.sequence, sequence, "the acknowledgement carries the update's sequence number");
  const afterRight = await haMetrics(h, "r2");
  t.is(afterRight.bindings, 1, "r2 holds the binding");
  t.is(afterRight.result("accepted") - start.result("accepted"), 1, "r2 counts the accepted update");

  const replay = await station.ask({ op: "resend", kind: "bu", frame: right.frame });
  t.is(replay.status, 144, `a replayed update is refused with 144 (${JSON.stringify(replay)})`);
  const afterReplay = await haMetrics(h, "r2");
  t.is(afterReplay.bindings, 1, "the replay changed no binding");
  t.is(afterReplay.result("replay") - start.result("replay"), 1, "r2 counts the replay");

  const dereg = await station.ask({ ...update, sequence: (sequence + 1) & 0xffff, lifetimeUnits: 0, keyHex: key.key });
  t.is(dereg.status, 0, `the deregistration is accepted (${JSON.stringify({ ...dereg, frame: undefined })})`);
  t.is((await haMetrics(h, "r2")).bindings, 0, "r2 holds no binding again");
  const changes = bindingChanges("r2", logFrom);
  t.deepEqual(changes, [`binding added ${VM6} ${STATION6}`, `binding removed ${VM6} ${STATION6}`], "r2's only binding changes: the accepted update and its deregistration");

  const decoded = await station.stopAndDecode(test, "r2");
  t.is(problems(decoded).join("\n"), "", "tshark has no complaint about the updates or r2's acknowledgements");
  t.deepEqual(allValues(decoded, "mip6.ba.status").map(Number), [146, 0, 144, 0], "tshark reads the statuses 146, 0, 144, 0");

  await announce(6);
  await t.wait(waitFor("c6 to reach vm6 again", () => exec(h.prefix, "c6", ["ping", "-6", "-c1", "-W1", VM6]).then(() => true), 8_000));
  t.done();
});
