// Small builders for the forwarder's unit tests: the lab configuration and frames made with our
// codec (the exact-output cases in test/dataplane/offline use scapy).
import { readFileSync } from "node:fs";
import type { ForwarderConfig } from "../../../dataplane/forward/index.js";
import { buildEthernetFrame, ETHERTYPE, parseMac } from "../../../dataplane/packet/ethernet.js";
import { buildUdp4, buildUdp6 } from "../../../dataplane/packet/udp.js";
import { ipv4Bytes, ipv6Bytes } from "../../../dataplane/forward/addresses.js";
import type { Rule } from "../../../lib/rules/rules.js";

const TABLE = JSON.parse(readFileSync(new URL("../../../dataplane/offline/example-table.json", import.meta.url), "utf8")) as { worker: ForwarderConfig; rules: Rule[] };

export function labWorker(overrides: Partial<ForwarderConfig> = {}): ForwarderConfig {
  return { ...structuredClone(TABLE.worker), ...overrides };
}

export function labRules(): Rule[] {
  return structuredClone(TABLE.rules);
}

export const MAC = {
  v4: parseMac("02:00:00:00:04:01"),
  v6: parseMac("02:00:00:00:06:01"),
  gw4: parseMac("02:00:00:00:04:aa"),
  gw6: parseMac("02:00:00:00:06:aa"),
};

export const ip4 = (t: string): Uint8Array => ipv4Bytes(t, "test");
export const ip6 = (t: string): Uint8Array => ipv6Bytes(t, "test");

export function udp4Frame(src: string, dst: string, opts: { ttl?: number; from?: Uint8Array; to?: Uint8Array } = {}): Uint8Array {
  const p = buildUdp4({ src: ip4(src), dst: ip4(dst), srcPort: 1000, dstPort: 2000, ttl: opts.ttl ?? 64 }, new TextEncoder().encode("payload"));
  return buildEthernetFrame(opts.to ?? MAC.v4, opts.from ?? MAC.gw4, ETHERTYPE.IPV4, p);
}

export function udp6Frame(src: string, dst: string, opts: { hopLimit?: number; from?: Uint8Array; to?: Uint8Array } = {}): Uint8Array {
  const p = buildUdp6({ src: ip6(src), dst: ip6(dst), srcPort: 1000, dstPort: 2000, hopLimit: opts.hopLimit ?? 64 }, new TextEncoder().encode("payload"));
  return buildEthernetFrame(opts.to ?? MAC.v6, opts.from ?? MAC.gw6, ETHERTYPE.IPV6, p);
}

export interface Sent {
  ifIndex: number;
  frame: Uint8Array;
}

/** An emit that keeps copies. */
export function collector(): { sent: Sent[]; emit: (ifIndex: number, frame: Uint8Array) => void } {
  const sent: Sent[] = [];
  return { sent, emit: (ifIndex, frame) => sent.push({ ifIndex, frame: frame.slice() }) };
}
