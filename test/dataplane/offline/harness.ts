// Shared by the offline-mode tests: the lab table, running frames through runOffline with real
// files, and the comparison with the documented free offsets.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runOffline, type OfflineSummary } from "../../../dataplane/offline/index.js";
import type { TestFn } from "ava";
import { readPcap, writePcap, LINKTYPE_ETHERNET, type LinkType } from "../../helpers/pcap.js";
import { scapyBuild } from "../../helpers/scapy.js";

export const EXAMPLE_TABLE = new URL("../../../dataplane/offline/example-table.json", import.meta.url).pathname;

/** The example table as an object, to derive variants from. */
export function exampleTable(): Record<string, unknown> {
  return JSON.parse(readFileSync(EXAMPLE_TABLE, "utf8")) as Record<string, unknown>;
}

/** Python prelude for scapy expressions: the lab's MACs and Ethernet headers. */
export const SCAPY_PRELUDE = `
V4='02:00:00:00:04:01'; V6='02:00:00:00:06:01'
R1M='02:00:00:00:04:10'; GW4='02:00:00:00:04:aa'; VMB4='02:00:00:00:04:64'
GW6='02:00:00:00:06:aa'; R2M='02:00:00:00:06:10'; COA6M='02:00:00:00:06:21'; VMB6='02:00:00:00:06:50'
def e4(src=GW4): return Ether(dst=V4, src=src)
def e6(src=GW6): return Ether(dst=V6, src=src)
def o4(dst): return Ether(dst=dst, src=V4)
def o6(dst): return Ether(dst=dst, src=V6)
P=b'mip46 payload 0123456789'
`;

export interface OfflineRun {
  frames: Uint8Array[];
  summary: OfflineSummary;
}

/** Writes the frames to a pcap file, runs the offline mode on it with `table` (a path or an object), reads the output pcap. */
export function runFrames(frames: readonly Uint8Array[], table: string | Record<string, unknown>, ingress?: string, linkType: LinkType = LINKTYPE_ETHERNET): OfflineRun {
  const dir = mkdtempSync(join(tmpdir(), "mip46-offline-"));
  try {
    const input = join(dir, "in.pcap");
    const output = join(dir, "out.pcap");
    let tablePath: string;
    if (typeof table === "string") tablePath = table;
    else {
      tablePath = join(dir, "table.json");
      writeFileSync(tablePath, JSON.stringify(table));
    }
    writeFileSync(input, writePcap(frames, linkType));
    const summary = runOffline({ input, table: tablePath, output, ingress });
    const out = readPcap(readFileSync(output));
    if (out.linkType !== LINKTYPE_ETHERNET) throw new Error(`output link type ${out.linkType}`);
    return { frames: out.frames, summary };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * A copy of an Ethernet frame with the free offsets zeroed: in every IPv4 header (outer, inner,
 * quoted in an ICMP error) the Identification and header checksum, and the ICMPv4 checksum
 * (it covers a quoted IPv4 header). Everything else must match byte for byte.
 */
export function maskFree(frame: Uint8Array): Uint8Array {
  const f = Uint8Array.from(frame);
  if (f.length < 14) return f;
  const type = (f[12] << 8) | f[13];
  if (type === 0x0800) maskIp4(f, 14, f.length);
  else if (type === 0x86dd) maskIp6(f, 14, f.length);
  return f;
}

function maskIp4(f: Uint8Array, off: number, end: number, depth = 0): void {
  if (depth > 3 || off + 20 > end || f[off] >> 4 !== 4) return;
  const ihl = (f[off] & 15) * 4;
  f[off + 4] = 0; f[off + 5] = 0; f[off + 10] = 0; f[off + 11] = 0;
  const p = off + ihl;
  const fragOff = ((f[off + 6] & 0x1f) << 8) | f[off + 7];
  if (fragOff !== 0) return;
  const proto = f[off + 9];
  if (proto === 4) maskIp4(f, p, end, depth + 1);
  else if (proto === 41) maskIp6(f, p, end, depth + 1);
  else if (proto === 1 && p + 8 <= end) {
    f[p + 2] = 0; f[p + 3] = 0;
    if ([3, 11, 12].includes(f[p])) maskIp4(f, p + 8, end, depth + 1);
  }
}

function maskIp6(f: Uint8Array, off: number, end: number, depth = 0): void {
  if (depth > 3 || off + 40 > end || f[off] >> 4 !== 6) return;
  const nh = f[off + 6];
  if (nh === 4) maskIp4(f, off + 40, end, depth + 1);
  else if (nh === 41) maskIp6(f, off + 40, end, depth + 1);
}

export function hex(b: Uint8Array): string {
  return Buffer.from(b).toString("hex");
}

/** One exact-output case: a scapy input frame, and the frames the worker must send for it. */
export interface ExactCase {
  /** Cites the RFC section the case checks. */
  title: string;
  /** The interface the frame arrives on. */
  ingress: string;
  /** A scapy expression (or a name from the prelude) for the input frame. */
  input: string;
  /** Scapy expressions of the frames the worker must send, in order. */
  expected: string[];
}

/**
 * Registers one serial ava test per case (all frames built by one scapy process), comparing the
 * output byte for byte but for the free offsets; returns the list the emitted frames are collected
 * in, for a closing tshark check.
 */
export function exactOutputCases(test: TestFn, cases: readonly ExactCase[], prelude: string, table: () => string | Record<string, unknown>): Uint8Array[] {
  const exprs: string[] = [];
  for (const c of cases) exprs.push(c.input, ...c.expected);
  let built: Uint8Array[] | undefined;
  const outputs: Uint8Array[] = [];
  let at = 0;
  for (const c of cases) {
    const index = at;
    at += 1 + c.expected.length;
    test.serial(c.title, (t) => {
      built ??= scapyBuild(exprs, prelude);
      const expected = built.slice(index + 1, index + 1 + c.expected.length);
      const { frames, summary } = runFrames([built[index]], table(), c.ingress);
      outputs.push(...frames);
      t.is(frames.length, expected.length, `frames out; drops: ${JSON.stringify(Object.fromEntries(Object.entries(summary.counters.drops).filter(([, v]) => v > 0)))}`);
      for (let i = 0; i < Math.min(frames.length, expected.length); i++) t.is(hex(maskFree(frames[i])), hex(maskFree(expected[i])), `frame ${i}`);
      t.is(summary.counters.drops["internal-error"], 0);
    });
  }
  return outputs;
}
