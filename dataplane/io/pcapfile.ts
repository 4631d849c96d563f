// Classic libpcap capture files (https://www.tcpdump.org/manpages/pcap-savefile.5.html): a
// 24-byte global header, then a 16-byte header per record. Read in either byte order with
// microsecond or nanosecond stamps; written little-endian with microsecond stamps. pcapng is not
// read. Pure: bytes in, bytes out; the offline mode does the file I/O.

export const LINKTYPE_ETHERNET = 1;
export const LINKTYPE_RAW = 101;

export class PcapFormatError extends Error {
  override name = "PcapFormatError";
}

export interface PcapRecord {
  /** Seconds and microseconds since the epoch. */
  seconds: number;
  micros: number;
  /** Captured bytes (a copy). */
  data: Uint8Array;
  /** Length on the wire (≥ data.length when the capture was cut short by the snap length). */
  originalLength: number;
}

export interface PcapFile {
  linkType: number;
  snapLength: number;
  records: PcapRecord[];
}

export function parsePcap(bytes: Uint8Array): PcapFile {
  if (bytes.length < 24) throw new PcapFormatError("shorter than the 24-byte global header");
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let little: boolean;
  let nanos: boolean;
  const le = view.getUint32(0, true);
  const be = view.getUint32(0, false);
  if (le === 0xa1b2c3d4 || le === 0xa1b23c4d) {
    little = true;
    nanos = le === 0xa1b23c4d;
  } else if (be === 0xa1b2c3d4 || be === 0xa1b23c4d) {
    little = false;
    nanos = be === 0xa1b23c4d;
  } else if (le === 0x0a0d0d0a) {
    throw new PcapFormatError("this is a pcapng file; convert it with `editcap -F pcap IN OUT`");
  } else {
    throw new PcapFormatError("bad magic number: not a pcap file");
  }
  const snapLength = view.getUint32(16, little);
  // The upper bits of the link-type field carry FCS information (pcap-savefile(5)).
  const linkType = view.getUint32(20, little) & 0x0fffffff;
  const records: PcapRecord[] = [];
  let at = 24;
  while (at < bytes.length) {
    if (at + 16 > bytes.length) throw new PcapFormatError(`record ${records.length + 1}: header cut short at byte ${at}`);
    const seconds = view.getUint32(at, little);
    const fraction = view.getUint32(at + 4, little);
    const captured = view.getUint32(at + 8, little);
    const originalLength = view.getUint32(at + 12, little);
    if (at + 16 + captured > bytes.length) throw new PcapFormatError(`record ${records.length + 1}: data cut short at byte ${at}`);
    records.push({ seconds, micros: nanos ? Math.floor(fraction / 1000) : fraction, data: bytes.slice(at + 16, at + 16 + captured), originalLength });
    at += 16 + captured;
  }
  return { linkType, snapLength, records };
}

export interface PcapWriteRecord {
  seconds: number;
  micros: number;
  data: Uint8Array;
}

export function serializePcap(records: readonly PcapWriteRecord[], linkType = LINKTYPE_ETHERNET, snapLength = 262144): Uint8Array {
  let size = 24;
  for (const r of records) size += 16 + r.data.length;
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
  for (const r of records) {
    view.setUint32(at, r.seconds >>> 0, true);
    view.setUint32(at + 4, r.micros >>> 0, true);
    view.setUint32(at + 8, r.data.length, true);
    view.setUint32(at + 12, r.data.length, true);
    out.set(r.data, at + 16);
    at += 16 + r.data.length;
  }
  return out;
}
