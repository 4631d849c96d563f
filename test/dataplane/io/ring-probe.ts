// Run inside a namespace with a veth pair ra <-> rb (MTU 4000): opens the ring backend on both,
// sends batches from ra and prints, as one JSON line, what each side received.
import { loadRingAddon, RingIo } from "../../../dataplane/io/ring.js";

const lib = loadRingAddon();
if (!lib) throw new Error("addon not built");
const io = new RingIo(lib);
// rb's ring is sized for MTU 1500: the 3000-byte frame does not fit a ring frame.
const a = io.open("ra", { mtu: 4000, bufferBytes: 1 << 20 });
const b = io.open("rb", { mtu: 1500, bufferBytes: 1 << 20, maxBatch: 1024 });
const gotA: number[] = [];
const gotB: { len: number; seq: number }[] = [];
const batchesB: number[] = [];
// Only our test frames count: the kernel sends IPv6 router solicitations and MLD on ra itself.
a.start((frames) => { for (const f of frames) if (f[12] === 0x88 && f[13] === 0xb5) gotA.push(f.length); });
// Each frame's packet view (FrameBatchHandler's `packets`): the same memory past the Ethernet header.
let packetsSeen = 0;
let packetsBad = 0;
b.start((frames, packets) => {
  batchesB.push(frames.length);
  frames.forEach((f, i) => {
    const p = packets?.[i];
    packetsSeen += p === undefined ? 0 : 1;
    if (p === undefined || p.buffer !== f.buffer || p.byteOffset !== f.byteOffset + 14 || p.length !== f.length - 14) packetsBad++;
  });
  for (const f of frames) if (f[12] === 0x88 && f[13] === 0xb5) gotB.push({ len: f.length, seq: (f[14] << 8) | f[15] });
});
function frame(seq: number, len: number): Uint8Array {
  const f = new Uint8Array(len);
  f.set(b.mac, 0);
  f.set(a.mac, 6);
  f[12] = 0x88; f[13] = 0xb5; // IEEE local experimental ethertype
  f[14] = seq >> 8; f[15] = seq & 0xff;
  return f;
}
const sizes = [1, 2, 512];
let seq = 0;
const sent: number[] = [];
for (const n of sizes) {
  for (let i = 0; i < n; i++) a.send(frame(seq++, 60));
  a.flushSends!();
  sent.push(a.stats().sent);
  await new Promise((r) => setTimeout(r, 200));
}
a.send(frame(seq++, 14 + 1500)); // at the ring's MTU
a.send(frame(seq++, 3000)); // over it
a.flushSends!();
await new Promise((r) => setTimeout(r, 300));
process.stdout.write(JSON.stringify({ gotA, gotB: gotB.length, seqs: gotB.map((g) => g.seq), lens: gotB.map((g) => g.len), batchesB, packetsSeen, packetsBad, sent, a: a.stats(), b: b.stats() }) + "\n");
a.close();
b.close();
