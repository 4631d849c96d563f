// Classic libpcap files (the format of https://wiki.wireshark.org/Development/LibpcapFileFormat):
// a 24-byte global header and a 16-byte header per record, little-endian, microsecond stamps.
// Shared by every test that hands packets to tshark or to the offline mode.
import { writeFileSync } from "node:fs";

export const LINKTYPE_ETHERNET = 1;
export const LINKTYPE_RAW = 101;

export type LinkType = typeof LINKTYPE_ETHERNET | typeof LINKTYPE_RAW;

/** A pcap file holding `frames` in order, one second apart from the epoch. */
export function writePcap(frames: readonly Uint8Array[], linkType: LinkType = LINKTYPE_ETHERNET, snapLength = 262144): Uint8Array {
  let size = 24;
  for (const f of frames) size += 16 + f.length;
  const out = new Uint8Array(size);
  const view = new DataView(out.buffer);
  view.setUint32(0, 0xa1b2c3d4, true);
  view.setUint16(4, 2, true);
  view.setUint16(6, 4, true);
  view.setInt32(8, 0, true);
  view.setUint32(12, 0, true);
  view.setUint32(16, snapLength, true);
  view.setUint32(20, linkType, true);
  let at = 24;
  frames.forEach((f, i) => {
    view.setUint32(at, i + 1, true);
    view.setUint32(at + 4, 0, true);
    view.setUint32(at + 8, f.length, true);
    view.setUint32(at + 12, f.length, true);
    out.set(f, at + 16);
    at += 16 + f.length;
  });
  return out;
}

export function writePcapFile(path: string, frames: readonly Uint8Array[], linkType: LinkType = LINKTYPE_ETHERNET): void {
  writeFileSync(path, writePcap(frames, linkType));
}

export interface PcapContents {
  linkType: number;
  frames: Uint8Array[];
}

/**
 * Reads a classic pcap file in either byte order, microsecond or nanosecond magic. Throws
 * Error on a file that is not one (pcapng is not read).
 */
export function readPcap(bytes: Uint8Array): PcapContents {
  if (bytes.length < 24) throw new Error("pcap: shorter than its global header");
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const magicLe = view.getUint32(0, true);
  let little: boolean;
  if (magicLe === 0xa1b2c3d4 || magicLe === 0xa1b23c4d) little = true;
  else if (view.getUint32(0, false) === 0xa1b2c3d4 || view.getUint32(0, false) === 0xa1b23c4d) little = false;
  else throw new Error("pcap: bad magic (pcapng is not supported)");
  const linkType = view.getUint32(20, little) & 0x0fffffff;
  const frames: Uint8Array[] = [];
  let at = 24;
  while (at < bytes.length) {
    if (at + 16 > bytes.length) throw new Error(`pcap: record header cut short at ${at}`);
    const captured = view.getUint32(at + 8, little);
    if (at + 16 + captured > bytes.length) throw new Error(`pcap: record data cut short at ${at}`);
    frames.push(bytes.slice(at + 16, at + 16 + captured));
    at += 16 + captured;
  }
  return { linkType, frames };
}
