// Packet pairs: scapy builds each input and the exact output RFC 7915 asks for; the translator
// must produce it byte for byte, except the IPv4 Identification and header checksum where the
// RFC leaves the value to the translator (§5.1). tshark then decodes every output.
import test from "ava";
import type { TranslateResult } from "../../../dataplane/translate/index.js";
import { LINKTYPE_RAW } from "../../helpers/pcap.js";
import { decodeWithTshark } from "../../helpers/tshark.js";
import { fromHex, loadCases, maskedHex, translatorFor, type PairCase } from "./fixtures.js";

const cases = loadCases();

function run(pc: PairCase): TranslateResult {
  const c = { ...pc.config, direction: pc.direction, input: pc.input };
  const translator = translatorFor(pc.config);
  const input = fromHex(c.input);
  if (c.direction === "6to4") return translator.translate6to4(input);
  if (!c.forwarder) return translator.translate4to6(input);
  // The forwarder's decision (ipv4.ts): translated only when destination4 says so (an EAM or an
  // IPv4-translatable address); otherwise the packet is not the translator's.
  const dst = ((input[16] << 24) | (input[17] << 16) | (input[18] << 8) | input[19]) >>> 0;
  return translator.destination4(dst) ? translator.translate4to6(input, true) : { action: "drop", reason: "unmapped-destination" };
}

function outputsOf(r: TranslateResult): Uint8Array[] {
  return r.action === "forward" ? r.packets : r.action === "icmp" ? [r.packet] : [];
}

function title(name: string): string {
  return name.startsWith("§") ? `RFC 7915 ${name}` : name;
}

for (const c of cases) {
  test(title(c.name), (t) => {
    const r = run(c);
    t.is(r.action, c.action, r.action === "drop" ? `dropped: ${r.reason}` : undefined);
    if (c.reason !== null && r.action !== "forward") t.is(r.reason as string, c.reason);
    if (c.action === "drop") return;
    const outputs = outputsOf(r);
    // Every case that sends something says exactly what (cases.py builds it with scapy).
    t.true(c.outputs.length > 0, "cases.py gives the expected output");
    t.is(outputs.length, c.outputs.length);
    c.outputs.forEach((expected, i) => {
      t.is(maskedHex(outputs[i] ?? new Uint8Array(0), c.ignore), maskedHex(fromHex(expected), c.ignore), `packet ${i}`);
    });
  });
}

test("RFC 7915 §4 §5: tshark decodes every translated packet without warnings", (t) => {
  const frames: Uint8Array[] = [];
  const owner: string[] = [];
  for (const c of cases) {
    for (const p of outputsOf(run(c))) {
      frames.push(p);
      owner.push(c.name);
    }
  }
  t.true(frames.length > 50);
  const { packets, problems } = decodeWithTshark(frames, LINKTYPE_RAW);
  t.is(packets.length, frames.length);
  t.deepEqual(problems.map((p) => `${owner[p.frame - 1]}: ${p.message}`), []);
});
