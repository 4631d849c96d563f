// Run inside a namespace with a veth pair ra <-> rb: a burst that overruns rb's small ring, then rb
// going down and coming back. Prints one JSON line with what rb received and its counters.
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { loadRingAddon, RingIo } from "../../../dataplane/io/ring.js";

const lib = loadRingAddon();
if (!lib) throw new Error("addon not built");
const io = new RingIo(lib);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const a = io.open("ra", { mtu: 1500, bufferBytes: 1 << 20 });
// 64 frames of 2 KiB: a burst of 1,024 cannot fit.
const b = io.open("rb", { mtu: 1500, bufferBytes: 64 * 2048 });
const seen: number[] = [];
a.start(() => {});
b.start((frames) => { for (const f of frames) if (f[12] === 0x88 && f[13] === 0xb5) seen.push((f[14] << 8) | f[15]); });
function send(seq: number): void {
  const f = new Uint8Array(60);
  f.set(b.mac, 0);
  f.set(a.mac, 6);
  f[12] = 0x88; f[13] = 0xb5; // IEEE local experimental ethertype
  f[14] = seq >> 8; f[15] = seq & 0xff;
  a.send(f);
}

// 1. The burst: 1,024 frames in one sendmmsg while rb's handler cannot run.
for (let i = 0; i < 1024; i++) send(i);
a.flushSends!();
await sleep(300);
const burst = { received: seen.length, unique: new Set(seen).size, stats: b.stats() };
send(2000);
a.flushSends!();
await sleep(200);
const afterBurst = seen.includes(2000);

// 2. rb goes down, stays down a second, and comes back.
execFileSync("ip", ["link", "set", "rb", "down"]);
const cpu0 = process.cpuUsage();
await sleep(1000);
const cpu = process.cpuUsage(cpu0);
const downStats = b.stats();
execFileSync("ip", ["link", "set", "rb", "up"]);
for (let i = 0; i < 100 && readFileSync("/sys/class/net/rb/carrier", "utf8").trim() !== "1"; i++) await sleep(50);
// The carrier can be up before the kernel's link watch (a work queue, so later, and later still on
// a busy machine) has given ra its queue back; a frame sent before that is dropped on ra. So send
// again every 100 ms, for up to 3 s, until one arrives.
for (let i = 0; i < 30 && !seen.includes(3000); i++) {
  send(3000);
  a.flushSends!();
  for (let j = 0; j < 4 && !seen.includes(3000); j++) await sleep(25);
}
process.stdout.write(JSON.stringify({
  burst, afterBurst, cpuWhileDownMs: (cpu.user + cpu.system) / 1000, socketErrorsWhileDown: downStats.socketErrors, afterUp: seen.includes(3000), final: b.stats(),
}) + "\n");
a.close();
b.close();
