// Run inside a namespace with a veth pair ra <-> rb: two ring ports on rb in one fanout group,
// 64 UDP flows of 50 datagrams each sent from ra. Prints, as one JSON line, which port took each
// datagram, so the test can check that each flow stayed on one port, in order, and that no
// datagram was taken twice or lost.
import { buildEthernetFrame, ETHERTYPE } from "../../../dataplane/packet/ethernet.js";
import { buildUdp4 } from "../../../dataplane/packet/udp.js";
import { loadRingAddon, RingIo } from "../../../dataplane/io/ring.js";

const lib = loadRingAddon();
if (!lib) throw new Error("addon not built");
const io = new RingIo(lib);
const FLOWS = 64;
const PER_FLOW = 50;
const a = io.open("ra", { mtu: 1500, bufferBytes: 1 << 20 });
const ports = [io.open("rb", { mtu: 1500, bufferBytes: 1 << 20, fanout: true }), io.open("rb", { mtu: 1500, bufferBytes: 1 << 20, fanout: true })];
// got[port] = "flow:seq" in arrival order
const got: string[][] = [[], []];
a.start(() => {});
ports.forEach((p, n) => p.start((frames) => {
  for (const f of frames) {
    if (f.length < 14 + 28 + 4 || f[12] !== 0x08 || f[13] !== 0x00 || f[14 + 9] !== 17) continue;
    const d = 14 + 28;
    if (f[d] !== 0x6d) continue; // our marker
    got[n].push(`${f[d + 1]}:${(f[d + 2] << 8) | f[d + 3]}`);
  }
}));
const src = Uint8Array.of(192, 0, 2, 1);
const dst = Uint8Array.of(192, 0, 2, 2);
for (let seq = 0; seq < PER_FLOW; seq++) {
  for (let flow = 0; flow < FLOWS; flow++) {
    const payload = Uint8Array.of(0x6d, flow, seq >> 8, seq & 255);
    a.send(buildEthernetFrame(ports[0].mac, a.mac, ETHERTYPE.IPV4, buildUdp4({ src, dst, srcPort: 20000 + flow, dstPort: 9 }, payload)));
  }
  a.flushSends!();
  await new Promise((r) => setTimeout(r, 5));
}
await new Promise((r) => setTimeout(r, 300));
process.stdout.write(JSON.stringify({ flows: FLOWS, perFlow: PER_FLOW, got }) + "\n");
a.close();
for (const p of ports) p.close();
