// The translator set-up the packet-pair tests share, and the scapy-built cases (cases.py).
import { readFileSync } from "node:fs";
import { parseIPv4, parseIPv6 } from "../../../lib/net/address.js";
import { AddressMapping, Translator, type ExplicitAddressMapping, type TranslatorConfig } from "../../../dataplane/translate/index.js";
import { scapyBuild } from "../../helpers/scapy.js";

export interface PairCase {
  name: string;
  direction: "4to6" | "6to4";
  input: string;
  action: "forward" | "icmp" | "drop";
  outputs: string[];
  reason: string | null;
  /** Byte offsets the RFC leaves to the translator (IPv4 Identification and the header checksum). */
  ignore: number[];
  config: { noPrefix?: boolean; prefix?: string; length?: number; lowestIpv6Mtu?: number; ipv4Mtu?: number; ipv6Mtu?: number; udpZeroChecksum?: "compute" | "drop"; icmp4ErrorMaxBytes?: number; sendUntranslatableErrors?: boolean; eamHairpinning?: boolean; translatable?: string[]; forwarder?: boolean; eamLong?: boolean };
}

/** All cases, built by one scapy process. */
export function loadCases(): PairCase[] {
  const source = readFileSync(new URL("./cases.py", import.meta.url), "utf8");
  const [json] = scapyBuild(["CASES_JSON"], source);
  return JSON.parse(Buffer.from(json).toString("utf8")) as PairCase[];
}

export const v4 = (text: string): number => parseIPv4(text, "test").value;
export const v6 = (text: string): Uint8Array => parseIPv6(text, "test").bytes;

export function eam(ipv4: string, ipv4Length: number, ipv6: string, ipv6Length: number): ExplicitAddressMapping {
  return { ipv4: v4(ipv4), ipv4Length, ipv6: v6(ipv6), ipv6Length };
}

/**
 * The mapping of cases.py: a /96 RFC 6052 prefix and a few explicit mappings. `translatable`: the
 * prefix's IPv4-translatable destinations (CIDR); `eamLong`: 203.0.113.0/24 ↔ /72 instead of /120.
 */
export function testMapping(prefix = "2001:db8:64::", length = 96, noPrefix = false, translatable: readonly string[] = [], eamLong = false): AddressMapping {
  const ipv4Translatable = translatable.map((c) => ({ network: v4(c.split("/")[0]), length: Number(c.split("/")[1]) }));
  return AddressMapping.build({
    rfc6052: noPrefix ? [] : [{ prefix: v6(prefix), length, ipv4Translatable }],
    eam: [
      eam("192.0.2.10", 32, "2001:db8:1::10", 128), // pool address ↔ VM
      eam("198.51.100.20", 32, "2001:db8:2::20", 128), // inside the RFC 6052 range: EAM must win 4→6
      eam("192.0.2.30", 32, "2001:db8:64::198.51.100.30", 128), // inside pref64: EAM must win 6→4
      eamLong ? eam("203.0.113.0", 24, "2001:db8:ea::", 72) : eam("203.0.113.0", 24, "2001:db8:ea::", 120),
    ],
  });
}

/** `output`: the buffer whole translated packets are written to (the forwarder's), else none. */
export function translatorFor(c: PairCase["config"], extra: Partial<TranslatorConfig> = {}, output?: Uint8Array): Translator {
  return new Translator({
    mapping: testMapping(c.prefix, c.length, c.noPrefix, c.translatable, c.eamLong),
    icmpErrorSource4: v4("198.51.100.99"),
    routerAddress4: v4("198.51.100.1"),
    lowestIpv6Mtu: c.lowestIpv6Mtu,
    ipv4Mtu: c.ipv4Mtu,
    ipv6Mtu: c.ipv6Mtu,
    udpZeroChecksum: c.udpZeroChecksum,
    icmp4ErrorMaxBytes: c.icmp4ErrorMaxBytes,
    sendUntranslatableErrors: c.sendUntranslatableErrors,
    eamHairpinning: c.eamHairpinning,
    ...extra,
  }, 1, output);
}

export function fromHex(hex: string): Uint8Array {
  return Uint8Array.from(Buffer.from(hex, "hex"));
}

export function maskedHex(bytes: Uint8Array, ignore: readonly number[]): string {
  const copy = Uint8Array.from(bytes);
  for (const i of ignore) if (i < copy.length) copy[i] = 0;
  return Buffer.from(copy).toString("hex");
}
