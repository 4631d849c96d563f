// Run inside a namespace with veth pairs ra <-> rb and rc <-> rd: while a child process floods
// rc -> rd, opens a ring on rb again and again and checks that a frame sent from ra right after
// each open arrives. A ring socket that took in other interfaces' frames before it was bound to
// rb would start reading at the wrong place and miss it. Prints one JSON line.
import { spawn } from "node:child_process";
import { loadRingAddon, RingIo } from "../../../dataplane/io/ring.js";

const lib = loadRingAddon();
if (!lib) throw new Error("addon not built");
const io = new RingIo(lib);

function frame(dst: Uint8Array, src: Uint8Array, seq: number): Uint8Array {
  const f = new Uint8Array(60);
  f.set(dst, 0);
  f.set(src, 6);
  f[12] = 0x88; f[13] = 0xb5; // IEEE local experimental ethertype
  f[14] = seq >> 8; f[15] = seq & 0xff;
  return f;
}

if (process.argv[2] === "flood") {
  // The flooder: batches of 64 frames on rc, until the parent kills it (or 30 s pass).
  const c = io.open("rc", { mtu: 1500, bufferBytes: 1 << 20 });
  const stopAt = Date.now() + 30_000;
  const tick = () => {
    for (let i = 0; i < 64; i++) c.send(frame(new Uint8Array(6).fill(0xff), c.mac, i));
    c.flushSends!();
    if (Date.now() < stopAt) setImmediate(tick);
    else process.exit(0);
  };
  process.stdout.write("flooding\n");
  tick();
} else {
  const rounds = Number(process.argv[2] ?? 30);
  const flood = spawn(process.execPath, ["--import", "tsx", import.meta.filename, "flood"], { stdio: ["ignore", "pipe", "inherit"] });
  await new Promise<void>((resolve) => flood.stdout!.once("data", () => resolve()));
  await new Promise((r) => setTimeout(r, 200));
  const a = io.open("ra", { mtu: 1500, bufferBytes: 1 << 20 });
  a.start(() => {});
  const missed: number[] = [];
  try {
    for (let i = 0; i < rounds; i++) {
      const b = io.open("rb", { mtu: 1500, bufferBytes: 1 << 20 });
      let got = false;
      b.start((frames) => { for (const f of frames) if (f[12] === 0x88 && f[13] === 0xb5 && ((f[14] << 8) | f[15]) === i) got = true; });
      a.send(frame(b.mac, a.mac, i));
      a.flushSends!();
      const until = Date.now() + 500;
      while (!got && Date.now() < until) await new Promise((r) => setTimeout(r, 5));
      if (!got) missed.push(i);
      b.close();
    }
  } finally {
    flood.kill("SIGKILL");
    a.close();
  }
  process.stdout.write(JSON.stringify({ rounds, missed }) + "\n");
}
