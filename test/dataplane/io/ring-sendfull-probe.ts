// Run inside a namespace with a veth pair ra <-> rb whose ra has a tiny tbf qdisc (a queue of
// one frame that drains at 8 kbit/s): batches of 64 frames sent on ra find the queue full
// (ENOBUFS). Prints one JSON line with ra's counters after each of three batches.
import { loadRingAddon, RingIo } from "../../../dataplane/io/ring.js";

const lib = loadRingAddon();
if (!lib) throw new Error("addon not built");
const io = new RingIo(lib);
const a = io.open("ra", { mtu: 1500, bufferBytes: 1 << 20 });
a.start(() => {});
const after: ReturnType<typeof a.stats>[] = [];
for (let batch = 0; batch < 3; batch++) {
  for (let i = 0; i < 64; i++) {
    const f = new Uint8Array(1000);
    f.fill(0xff, 0, 6);
    f.set(a.mac, 6);
    f[12] = 0x88; f[13] = 0xb5; // IEEE local experimental ethertype
    f[14] = batch; f[15] = i;
    a.send(f);
  }
  a.flushSends!();
  after.push(a.stats());
}
process.stdout.write(JSON.stringify({ after }) + "\n");
a.close();
