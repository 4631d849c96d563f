// Pcap files for tests, on the product's own pcap codec (dataplane/io/pcapfile.ts): what tests
// hand to tshark and to the offline mode. tshark reading the files is the independent check.
import { writeFileSync } from "node:fs";
import { LINKTYPE_ETHERNET, LINKTYPE_RAW, parsePcap, serializePcap } from "../../dataplane/io/pcapfile.js";

export { LINKTYPE_ETHERNET, LINKTYPE_RAW };

export type LinkType = typeof LINKTYPE_ETHERNET | typeof LINKTYPE_RAW;

/** A pcap file holding `frames` in order, one second apart from the epoch. */
export function writePcap(frames: readonly Uint8Array[], linkType: LinkType = LINKTYPE_ETHERNET, snapLength = 262144): Uint8Array {
  return serializePcap(frames.map((data, i) => ({ seconds: i + 1, micros: 0, data })), linkType, snapLength);
}

export function writePcapFile(path: string, frames: readonly Uint8Array[], linkType: LinkType = LINKTYPE_ETHERNET): void {
  writeFileSync(path, writePcap(frames, linkType));
}

export interface PcapContents {
  linkType: number;
  frames: Uint8Array[];
}

/** Reads a classic pcap file (either byte order, micro- or nanosecond stamps); throws on anything else. */
export function readPcap(bytes: Uint8Array): PcapContents {
  const file = parsePcap(bytes);
  return { linkType: file.linkType, frames: file.records.map((r) => r.data) };
}
