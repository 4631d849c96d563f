// What the forwarder hands the translator instead of having it redo the work: the buffer the
// frame is sent from (a whole translated packet is written there, once), the IPv6 chain its
// well-formedness step walked, and the mapping its decision looked up. Each must give exactly
// what the standalone entry points give, on every scapy packet pair (pairs.test.ts).
import test from "ava";
import { walkIPv6Extensions } from "../../../dataplane/packet/ipv6.js";
import type { TranslateResult } from "../../../dataplane/translate/index.js";
import { fromHex, loadCases, translatorFor, v4, v6 } from "./fixtures.js";

const cases = loadCases();
const hex = (b: Uint8Array): string => Buffer.from(b).toString("hex");

function translate(c: (typeof cases)[number], output?: Uint8Array, input = fromHex(c.input)): TranslateResult {
  const tr = translatorFor(c.config, {}, output);
  return c.direction === "4to6" ? tr.translate4to6(input) : tr.translate6to4(input);
}

/** Action, reason and the bytes of every packet. */
function summary(r: TranslateResult): string {
  if (r.action === "drop") return `drop ${r.reason}`;
  if (r.action === "icmp") return `icmp ${r.reason} ${hex(r.packet)}`;
  return `forward ${r.packets.map(hex).join(" ")}`;
}

test("RFC 7915 §4 §5: given an output buffer, each whole translated packet is written there, the same bytes as in a buffer of its own", (t) => {
  let written = 0;
  for (const c of cases) {
    const output = new Uint8Array(2000);
    const own = translate(c);
    const into = translate(c, output);
    t.is(summary(into), summary(own), c.name);
    if (into.action === "forward" && into.packets.length === 1) {
      t.is(into.packets[0].buffer, output.buffer, `${c.name}: written into the output buffer`);
      t.is(into.packets[0].byteOffset, output.byteOffset);
      written++;
    }
  }
  t.true(written > 10, `${written} cases wrote into the output buffer`);
});

test("an input that is one of the output buffer's packets is not overwritten: the packet gets a buffer of its own", (t) => {
  // What the forwarder passes when a translated packet comes back to the translator (hairpinning):
  // a packet of the output buffer, as the translator hands them out.
  const c = cases.find((k) => k.action === "forward" && k.outputs.length === 1)!;
  const output = new Uint8Array(2000);
  const tr = translatorFor(c.config, {}, output);
  const input = tr.output!.of(c.input.length / 2);
  input.set(fromHex(c.input));
  const r = c.direction === "4to6" ? tr.translate4to6(input) : tr.translate6to4(input);
  t.is(summary(r), summary(translate(c)));
  t.true(r.action === "forward" && r.packets[0].buffer !== output.buffer);
});

test("an input elsewhere in the output buffer's memory, not overlapping the output, translates the same", (t) => {
  const c = cases.find((k) => k.action === "forward" && k.outputs.length === 1)!;
  const memory = new Uint8Array(4000);
  const input = memory.subarray(2000, 2000 + c.input.length / 2);
  input.set(fromHex(c.input));
  t.is(summary(translate(c, memory.subarray(0, 2000), input)), summary(translate(c)));
});

test("RFC 7915 §5: translateWalked6to4 with the caller's walk and mapping gives what translate6to4 gives", (t) => {
  let n = 0;
  for (const c of cases.filter((k) => k.direction === "6to4")) {
    const input = fromHex(c.input);
    const packet = input.subarray(0, Math.min(input.length, 40 + ((input[4] << 8) | input[5])));
    const chain = input.length >= 40 && input[0] >> 4 === 6 ? walkIPv6Extensions(packet, 0, packet.length) : undefined;
    if (chain === undefined) continue; // the forwarder drops these as malformed before translating
    const tr = translatorFor(c.config);
    t.is(summary(tr.translateWalked6to4(packet, chain, tr.cfg.mapping.map6to4(packet, 24))), summary(translate(c)), c.name);
    n++;
  }
  t.true(n > 10, `${n} IPv6 cases`);
});

test("RFC 6052, RFC 7757 §3.3: the decision's lookups give the translator's mapping, EAM first", (t) => {
  const tr = translatorFor({});
  const m = tr.cfg.mapping;
  const at = (a: string): Uint8Array => { const b = new Uint8Array(40); b.set(v6(a), 24); return b; };
  // In the prefix: its IPv4 form, the EAM's where one covers it (RFC 7757 §3.3).
  t.is(tr.destination6(at("2001:db8:64::cb00:7105"), 24), v4("203.0.113.5"));
  t.is(tr.destination6(at("2001:db8:64::198.51.100.30"), 24), v4("192.0.2.30"));
  t.is(tr.destination6(at("2001:db8:64::198.51.100.30"), 24), m.map6to4(at("2001:db8:64::198.51.100.30"), 24));
  // An EAM outside the prefix names an IPv6 node: not a translated destination.
  t.is(tr.destination6(at("2001:db8:1::10"), 24), -1);
  t.is(m.map6to4(at("2001:db8:1::10"), 24), v4("192.0.2.10"));
  // IPv4: only explicit mappings are translated destinations, with the same IPv6 form as map4to6.
  t.true(tr.destination4(v4("198.51.100.20")));
  const want = new Uint8Array(16);
  t.true(m.map4to6(v4("198.51.100.20"), want, 0));
  t.is(hex(tr.dst6), hex(want));
  t.is(hex(tr.dst6), hex(v6("2001:db8:2::20")));
  t.false(tr.destination4(v4("203.0.114.5")), "in the RFC 6052 range only");
  t.true(m.map4to6(v4("203.0.114.5"), want, 0));
});
